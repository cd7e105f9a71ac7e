// Orchestrates the local pipeline for `lifeline demo` and judges it against the load's ledger.
#include "demo/demo.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "common/devkafka.h"
#include "common/event_format.h"
#include "common/json_writer.h"
#include "common/local_postgres.h"
#include "common/lsn.h"
#include "common/shutdown.h"
#include "common/spool.h"
#include "common/subprocess.h"
#include "demo/pipeline.h"

namespace lifeline {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Runs one `lifeline gapcheck` report into the report directory: its exit code (0 clean).
int RunReport(const std::vector<std::string>& args, const std::string& report_dir,
              const std::string& name, FILE* out) {
  CommandSpec spec;
  spec.argv = {SelfExecutable(), "gapcheck"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.argv.insert(spec.argv.end(),
                   {"--html", report_dir + "/" + name + ".html", "--color", "never"});
  spec.timeout = std::chrono::minutes(10);
  auto r = RunCommand(spec);
  if (!r.ok()) {
    std::fprintf(out, "gapcheck %s: %s\n", name.c_str(), r.status().ToString().c_str());
    return 2;
  }
  std::ofstream(report_dir + "/" + name + ".txt") << r->stdout_text << r->stderr_text;
  return r->exit_code;
}

}  // namespace

Status RunDemo(const DemoOptions& options) {
  const std::atomic<bool>& stop = StopRequested();
  bool json = options.format == "json";
  if (!json && options.format != "text") {
    return Status::InvalidArgument("unknown --format '" + options.format + "': use text or json");
  }
  FILE* out = json ? stderr : stdout;  // with --format json, stdout carries only the summary
  PipelineOptions po;
  po.workdir = options.workdir;
  po.keep = options.keep;
  po.rtt_ms = options.rtt_ms;
  LIFELINE_ASSIGN_OR_RETURN(auto pipeline, LocalPipeline::Create(po));
  const std::string workdir = pipeline->workdir();
  std::fprintf(out,
               "lifeline demo: primary -> capture -> spool -> Kafka -> replay -> standby\n"
               "%0.f changes/s for %lld s, Kafka round trip %d ms; work directory %s\n",
               options.rate, static_cast<long long>(options.duration_ms / 1000), options.rtt_ms,
               workdir.c_str());
  std::fprintf(out,
               "primary on 127.0.0.1:%d, standby on 127.0.0.1:%d (reference schema, PostGIS)\n"
               "devkafka: 3 brokers at %s\n",
               pipeline->primary().port(), pipeline->standby().port(),
               pipeline->kafka().bootstrap_servers().c_str());
  LIFELINE_RETURN_IF_ERROR(pipeline->StartCapture());
  LIFELINE_RETURN_IF_ERROR(pipeline->StartReplay());
  std::fprintf(out, "capture+shipper (pid %d) and replayer (pid %d) running; logs in %s\n",
               pipeline->capture_pid(), pipeline->replay_pid(), workdir.c_str());
  pipeline->StartLoad(options.rate, options.duration_ms);

  bool tty = isatty(fileno(out)) != 0;
  auto started = Clock::now();
  auto last_print = started;
  uint64_t last_committed = 0, last_seq = 0, last_shipped = 0, last_applied = 0;
  std::unique_ptr<Spool> reader;
  double max_lag = 0;
  bool load_done = false;
  while (!load_done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    load_done =
        Clock::now() - started > std::chrono::milliseconds(options.duration_ms) || stop.load();
    if (!pipeline->capture_running() || !pipeline->replay_running()) break;
    if (!reader) {
      auto r = Spool::OpenForRead(pipeline->spool_dir());
      if (r.ok()) reader = std::move(r).value();
    }
    if (Clock::now() - last_print < std::chrono::seconds(tty ? 1 : 5)) continue;
    double secs = std::chrono::duration<double>(Clock::now() - last_print).count();
    last_print = Clock::now();
    uint64_t seq = 0, shipped = 0;
    if (reader && reader->Refresh().ok()) {
      SpoolStats st = reader->Stats();
      seq = st.last_seq;
      shipped = st.cursors.count("shipper") ? st.cursors.at("shipper") : 0;
    }
    AppliedPosition applied = pipeline->Applied();
    double lag = applied.commit_time_us > 0 ? (NowUnixMicros() - applied.commit_time_us) / 1e6 : 0;
    max_lag = std::max(max_lag, lag);
    uint64_t c = pipeline->changes_committed();
    std::fprintf(out,
                 "%s%4.0fs committed %6.0f/s | captured %6.0f/s | shipped %6.0f/s | applied "
                 "%6.0f/s | seq %llu | lag (RPO) %5.2f s%s",
                 tty ? "\r" : "", std::chrono::duration<double>(Clock::now() - started).count(),
                 (c - last_committed) / secs, (seq - last_seq) / secs,
                 (shipped - last_shipped) / secs, (applied.seq - last_applied) / secs,
                 static_cast<unsigned long long>(applied.seq), lag, tty ? "" : "\n");
    std::fflush(out);
    last_committed = c;
    last_seq = seq;
    last_shipped = shipped;
    last_applied = applied.seq;
  }
  pipeline->StopLoad();
  Result<LoadReport> load_result = pipeline->WaitLoad();
  if (tty) std::fprintf(out, "\n");
  if (!load_result.ok()) return load_result.status().WithContext("load");
  if (!pipeline->capture_running() || !pipeline->replay_running()) {
    return Status::Internal("a daemon exited early; see " + workdir + "/capture.log and " +
                            workdir + "/replay.log");
  }

  // Until the standby has applied a heartbeat committed after everything the load committed.
  auto catch_up_started = Clock::now();
  if (Result<Lsn> end = pipeline->PrimaryWalLsn(); end.ok()) {
    (void)pipeline->WaitApplied(*end, std::chrono::seconds(120), stop);
  }
  double catch_up_s = std::chrono::duration<double>(Clock::now() - catch_up_started).count();
  int replay_exit = pipeline->StopReplay();
  int capture_exit = pipeline->StopCapture();
  reader.reset();

  // The evidence: gapcheck's stream, rows and buckets reports, as text and HTML.
  std::string report_dir = options.report_dir;
  if (report_dir.empty() && options.keep) report_dir = workdir + "/report";
  if (report_dir.empty()) {
    std::string tmpl = "/tmp/lifeline-demo-report-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) return Status::IOError("cannot create a report directory");
    report_dir = tmpl;
  }
  std::error_code ec;
  fs::create_directories(report_dir, ec);
  if (ec) {
    return Status::InvalidArgument("cannot create the report directory " + report_dir + ": " +
                                   ec.message());
  }
  std::vector<std::string> databases = {"--source", pipeline->primary().ConnInfo("app"), "--target",
                                        pipeline->standby().ConnInfo("app")};
  std::vector<std::string> stream = {"--kafka-brokers", pipeline->kafka().bootstrap_servers(),
                                     "--topic", pipeline->topic()};
  std::vector<std::string> rows_args = {"rows"},
                           bucket_args = {"buckets", "--since", "10m", "--bucket", "10s"};
  for (auto* a : {&rows_args, &bucket_args}) {
    a->insert(a->end(), databases.begin(), databases.end());
    a->insert(a->end(), stream.begin(), stream.end());
  }
  std::vector<std::string> stream_args = {"stream"};
  stream_args.insert(stream_args.end(), stream.begin(), stream.end());
  int stream_exit = RunReport(stream_args, report_dir, "stream", out);
  int rows_exit = RunReport(rows_args, report_dir, "rows", out);
  int buckets_exit = RunReport(bucket_args, report_dir, "buckets", out);

  std::vector<LedgerEntry> ledger = pipeline->Ledger();
  std::vector<LedgerEntry> lost = pipeline->LostCalls();
  LIFELINE_ASSIGN_OR_RETURN(auto spool, Spool::OpenForRead(pipeline->spool_dir()));
  Status verified = spool->Verify();
  std::string primary_digest = pipeline->Digest(pipeline->primary());
  std::string standby_digest = pipeline->Digest(pipeline->standby());
  bool equal = !primary_digest.empty() && primary_digest == standby_digest;
  SpoolStats st = spool->Stats();
  const LoadReport& lr = *load_result;
  if (json) {
    JsonWriter w;
    w.BeginObject().Field("changes_committed", lr.changes);
    w.Field("calls_committed", static_cast<uint64_t>(ledger.size()));
    w.Field("calls_lost", static_cast<uint64_t>(lost.size())).Key("lost_ids").BeginArray();
    for (const auto& e : lost) w.String(e.id);
    w.EndArray().Field("standby_equals_primary", equal).Field("spool_events", st.events);
    w.Field("spool_last_seq", st.last_seq).Field("spool_verified", verified.ok());
    w.Field("max_lag_seconds", max_lag).Field("catch_up_seconds", catch_up_s);
    w.Field("capture_exit_code", capture_exit).Field("replay_exit_code", replay_exit);
    w.Field("gapcheck_stream_exit", stream_exit).Field("gapcheck_rows_exit", rows_exit);
    w.Field("gapcheck_buckets_exit", buckets_exit).Field("report_dir", report_dir);
    w.Field("workdir", workdir).EndObject();
    std::printf("%s\n", w.str().c_str());
  } else {
    auto verdict = [](int code) {
      return code == 0 ? "clean" : code == 1 ? "DIFFERENCES" : "ERROR";
    };
    std::printf(
        "\nsummary\n  changes committed    %llu (%llu transactions, %llu failed)\n"
        "  calls committed      %zu (ledger %s/ledger.txt)\n"
        "  calls on the standby %zu of them; lost %zu\n"
        "  standby vs primary   %s (%s)\n"
        "  spool                %llu events, seq %llu..%llu, %s\n"
        "  lag                  at most %.2f s during the load; caught up %.2f s after it\n"
        "  gapcheck             stream %s, rows %s, buckets %s\n"
        "  report               %s/{stream,rows,buckets}.html\n"
        "  daemons              capture exit %d, replay exit %d\n",
        static_cast<unsigned long long>(lr.changes),
        static_cast<unsigned long long>(lr.transactions),
        static_cast<unsigned long long>(lr.errors), ledger.size(), workdir.c_str(),
        ledger.size() - lost.size(), lost.size(), equal ? "identical" : "DIFFERENT",
        primary_digest.c_str(), static_cast<unsigned long long>(st.events),
        static_cast<unsigned long long>(st.first_seq), static_cast<unsigned long long>(st.last_seq),
        verified.ok() ? "hash chain verified" : verified.ToString().c_str(), max_lag, catch_up_s,
        verdict(stream_exit), verdict(rows_exit), verdict(buckets_exit), report_dir.c_str(),
        capture_exit, replay_exit);
    for (size_t i = 0; i < lost.size() && i < 20; ++i)
      std::printf("  LOST %s\n", lost[i].id.c_str());
  }
  spool.reset();
  if (options.keep) {
    std::fprintf(out, "kept %s (cluster data directories, spool, logs, ledger)\n", workdir.c_str());
  }
  if (!verified.ok()) return verified;
  if (!lost.empty()) {
    return Status::Internal(std::to_string(lost.size()) +
                            " committed call(s) missing on the standby, first " + lost.front().id);
  }
  if (!equal) return Status::Internal("the standby differs from the primary");
  if (stream_exit != 0 || rows_exit != 0) {
    return Status::Internal("gapcheck found differences; see " + report_dir);
  }
  if (capture_exit != 0 || replay_exit != 0) {
    return Status::Internal("a daemon did not stop cleanly; see its log in " + workdir);
  }
  return Status::Ok();
}

}  // namespace lifeline
