// `lifeline demo` (the pipeline on this machine), `lifeline drill` (the recovery plan's drills on
// it) and `lifeline load` (the emergency-request load).
#include <cstdio>

#include "cli/commands.h"
#include "common/config.h"
#include "common/shutdown.h"
#include "demo/demo.h"
#include "demo/drill.h"
#include "demo/load_generator.h"

namespace lifeline::cli {

void AddDemoCommand(CLI::App& app, CommandBody* body) {
  auto* sub = app.add_subcommand(
      "demo", "Run the pipeline on this machine with local clusters, a load, and a verdict");
  auto opts = std::make_shared<DemoOptions>();
  auto duration = std::make_shared<std::string>("30s");
  sub->add_option("--duration", *duration, "How long the load runs, e.g. 60s")
      ->capture_default_str();
  sub->add_option("--rate", opts->rate, "Changes per second")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 100000.0));
  sub->add_option("--workdir", opts->workdir, "Work directory (default: a new one under /tmp)");
  sub->add_flag("--keep", opts->keep, "Keep the work directory afterwards");
  sub->add_option("--rtt-ms", opts->rtt_ms, "Round trip added by each Kafka broker (ms)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000));
  sub->add_option("--format", opts->format, "text or json (the summary)")->capture_default_str();
  sub->add_option("--report-dir", opts->report_dir,
                  "Where gapcheck's reports go (default: the work directory if kept, else /tmp)");
  sub->callback([opts, duration, body] {
    *body = [opts, duration]() -> Status {
      LIFELINE_ASSIGN_OR_RETURN(opts->duration_ms, ParseDurationMs(*duration));
      return RunDemo(*opts);
    };
  });
}

void AddDrillCommand(CLI::App& app, ReportBody* body) {
  auto* sub = app.add_subcommand(
      "drill",
      "Run a recovery drill under load and judge it against the plan (exit 1 if it fails)");
  auto opts = std::make_shared<DrillOptions>();
  struct Text {
    std::string duration = "60s", outage = "30s";
  };
  auto t = std::make_shared<Text>();
  sub->add_option("--scenario", opts->scenario,
                  "capture-crash, replayer-crash, kafka-outage, primary-restart, standby-restart, "
                  "region-loss, pitr, chaos or all")
      ->required();
  sub->add_option("--duration", t->duration, "How long the load runs in each scenario")
      ->capture_default_str();
  sub->add_option("--rate", opts->rate, "Changes per second")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 100000.0));
  sub->add_option("--outage", t->outage, "kafka-outage: how long the brokers stay down")
      ->capture_default_str();
  sub->add_option("--rtt-ms", opts->rtt_ms, "Round trip added by each Kafka broker (ms)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000));
  sub->add_option("--workdir", opts->workdir, "Parent of each scenario's work directory");
  sub->add_flag("--keep", opts->keep, "Keep the work directories afterwards");
  sub->add_option("--seed", opts->seed, "chaos: seed of the fault order and timing");
  sub->add_option("--format", opts->format, "text or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  sub->callback([opts, t, body] {
    *body = [opts, t]() -> Result<int> {
      LIFELINE_ASSIGN_OR_RETURN(opts->duration_ms, ParseDurationMs(t->duration));
      LIFELINE_ASSIGN_OR_RETURN(opts->outage_ms, ParseDurationMs(t->outage));
      LIFELINE_ASSIGN_OR_RETURN(std::vector<DrillResult> results, RunDrills(*opts));
      PrintDrillResults(results, opts->format);
      for (const auto& r : results) {
        if (!r.passed) return 1;
      }
      return results.empty() ? 1 : 0;
    };
  });
}

void AddLoadCommand(CLI::App& app, CommandBody* body) {
  auto* sub = app.add_subcommand(
      "load", "Drive the emergency-request load against a database, with a ledger of calls");
  AddConfigFileOption(*sub);
  auto opts = std::make_shared<LoadOptions>();
  auto duration = std::make_shared<std::string>("60s");
  auto password_file = std::make_shared<std::string>();
  sub->add_option("--target", opts->target, "libpq conninfo of the database")->required();
  sub->add_option("--rate", opts->rate, "Changes per second")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 100000.0));
  sub->add_option("--duration", *duration, "How long, e.g. 60s (0: until Ctrl-C)")
      ->capture_default_str();
  sub->add_option("--ledger", opts->ledger_path, "Append each committed request id here");
  sub->add_option("--target-password-file", *password_file, "File holding the password");
  sub->callback([opts, duration, password_file, body] {
    *body = [opts, duration, password_file]() -> Status {
      LIFELINE_ASSIGN_OR_RETURN(opts->duration_ms, ParseDurationMs(*duration));
      LIFELINE_ASSIGN_OR_RETURN(opts->password,
                                ReadSecret("LIFELINE_TARGET_PASSWORD", *password_file));
      LIFELINE_ASSIGN_OR_RETURN(LoadReport r, RunLoad(*opts, StopRequested()));
      std::printf(
          "{\"changes\":%llu,\"requests_created\":%llu,\"transactions\":%llu,"
          "\"errors\":%llu}\n",
          static_cast<unsigned long long>(r.changes),
          static_cast<unsigned long long>(r.requests_created),
          static_cast<unsigned long long>(r.transactions),
          static_cast<unsigned long long>(r.errors));
      return Status::Ok();
    };
  });
}

}  // namespace lifeline::cli
