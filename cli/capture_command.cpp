// `lifeline capture`: the primary-side daemon (PostgreSQL logical decoding into the spool).
#include "capture/capture.h"
#include "cli/commands.h"
#include "common/config.h"
#include "common/postgres.h"
#include "common/shutdown.h"

namespace lifeline::cli {

void AddCaptureCommand(CLI::App& app, CommandBody* body) {
  auto* sub = app.add_subcommand(
      "capture",
      "Stream committed changes of the captured tables from PostgreSQL (pgoutput) into a spool, "
      "and with --kafka-brokers ship them to Kafka");
  AddConfigFileOption(*sub);
  AddLogValuesFlag(*sub);
  auto opts = std::make_shared<CaptureOptions>();
  auto heartbeat = std::make_shared<std::string>("1s");
  auto password_file = std::make_shared<std::string>();
  sub->add_option("--source", opts->source,
                  "libpq conninfo of the primary, without a password (use PGPASSWORD, a passfile "
                  "or --source-password-file)")
      ->required();
  sub->add_option("--spool", opts->spool_dir, "Spool directory (created if missing)")->required();
  sub->add_option("--slot", opts->slot, "Logical replication slot")->capture_default_str();
  sub->add_option("--publication", opts->publication, "Publication (created if missing)")
      ->capture_default_str();
  sub->add_option("--table", opts->tables, "Captured table, schema.name (repeatable)")
      ->capture_default_str();
  sub->add_option("--heartbeat-interval", *heartbeat, "Heartbeat interval, e.g. 1s or 500ms")
      ->capture_default_str();
  sub->add_option("--metrics-addr", opts->metrics_addr,
                  "HOST:PORT for /health and /metrics (e.g. 127.0.0.1:9187)");
  sub->add_option("--source-password-file", *password_file,
                  "File whose first line is the source password");
  sub->add_flag("--resnapshot", opts->resnapshot,
                "Make a new slot and snapshot again after the old slot was lost or dropped");
  sub->add_option("--batch-events", opts->batch_events, "Events per synced spool write at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  auto kafka = std::make_shared<ShipperOptions>();
  auto kafka_text = std::make_shared<KafkaFlagText>();
  AddKafkaFlags(*sub, kafka.get(), kafka_text.get());
  AddEncryptionKeyFileFlag(*sub, &opts->encryption_key_files);
  sub->add_option("--spool-max-bytes", opts->spool_max_bytes,
                  "Pause capture (the slot holds WAL) when the spool holds this many bytes; 0: "
                  "no limit");
  sub->callback([opts, heartbeat, password_file, kafka, kafka_text, body] {
    *body = [opts, heartbeat, password_file, kafka, kafka_text]() -> Status {
      if (!kafka->brokers.empty()) {
        LIFELINE_RETURN_IF_ERROR(FinishKafkaFlags(kafka.get(), *kafka_text));
        opts->companion = [kafka](Spool& spool, Metrics& metrics, const std::atomic<bool>& stop) {
          return RunShipper(spool, *kafka, stop, metrics);
        };
      }
      LIFELINE_ASSIGN_OR_RETURN(opts->heartbeat_interval_ms, ParseDurationMs(*heartbeat));
      if (opts->heartbeat_interval_ms < 10) {
        return Status::InvalidArgument("--heartbeat-interval must be at least 10ms");
      }
      LIFELINE_RETURN_IF_ERROR(CheckConnInfo(opts->source, "--source"));
      LIFELINE_ASSIGN_OR_RETURN(opts->source_password,
                                ReadSecret("LIFELINE_SOURCE_PASSWORD", *password_file));
      return RunCapture(*opts, StopRequested());
    };
  });
}

}  // namespace lifeline::cli
