// `lifeline replay`: the standby-side daemon, and window replays for recovery.
#include "cli/commands.h"
#include "common/config.h"
#include "common/event_format.h"
#include "common/lsn.h"
#include "common/postgres.h"
#include "common/shutdown.h"
#include "replayer/replayer.h"

namespace lifeline::cli {

void AddReplayCommand(CLI::App& app, CommandBody* body) {
  auto* sub = app.add_subcommand(
      "replay",
      "Apply the stream to a standby (follows forever), or replay a window to rebuild rows");
  AddConfigFileOption(*sub);
  AddLogValuesFlag(*sub);
  auto o = std::make_shared<ReplayOptions>();
  struct Text {
    std::string from_offset, from_lsn, from_time, until_lsn, until_time, password_file,
        batch_ms = "50ms", gap_timeout = "10s", properties_file;
    uint64_t from_seq = 0, until_seq = 0;
  };
  auto t = std::make_shared<Text>();
  sub->add_option("--target", o->target, "libpq conninfo of the standby (no password in it)")
      ->required();
  sub->add_option("--target-password-file", t->password_file, "File holding the password");
  sub->add_option("--spool", o->spool_dir, "Read a spool directory (live or copied)");
  sub->add_option("--kafka-brokers", o->kafka_brokers, "Read a Kafka topic from these brokers");
  sub->add_option("--topic", o->topic, "Kafka topic")->capture_default_str();
  sub->add_option("--kafka-property", o->kafka_properties,
                  "librdkafka property key=value (repeatable; TLS and SASL settings go here)");
  AddKafkaPropertiesFileFlag(*sub, &t->properties_file);
  sub->add_option("--batch-events", o->batch_events, "Events per target transaction at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000'000));
  sub->add_option("--batch-time", t->batch_ms, "Longest wait to fill a target transaction")
      ->capture_default_str();
  sub->add_flag("--each-change", o->each_change,
                "Apply every change as its own row operation, not each row's net change per "
                "target transaction");
  sub->add_option("--from-offset", t->from_offset, "Start at PARTITION:OFFSET (Kafka)");
  sub->add_option("--from-seq", t->from_seq, "Start at this seq");
  sub->add_option("--from-lsn", t->from_lsn, "Start at transactions committed at or after X/Y");
  sub->add_option("--from-time", t->from_time,
                  "Start after this time (transactions committed after it, as PostgreSQL's "
                  "recovery_target_time includes the ones at it)");
  sub->add_option("--until-seq", t->until_seq, "Stop after the transaction holding this seq");
  sub->add_option("--until-lsn", t->until_lsn, "Stop after transactions committed at X/Y");
  sub->add_option("--until-time", t->until_time, "Stop after transactions committed by then");
  sub->add_flag("--stop-at-end", o->stop_at_end, "Stop when the source has nothing more");
  sub->add_flag("--dry-run", o->dry_run, "Read the window and say what would be done");
  sub->add_flag("--only-missing", o->only_missing,
                "Insert the latest image of rows the target lacks; never update or delete");
  sub->add_flag("--record-position", o->record_position,
                "Let a window replay move the daemon's stored position");
  sub->add_flag("--allow-gaps", o->allow_gaps, "Record seq gaps in lifeline.replay_gaps, go on");
  sub->add_flag("--dead-letter", o->dead_letter,
                "Store records that do not parse in lifeline.dead_letter and go on");
  sub->add_option("--audit-table", o->audit_table,
                  "Also write each applied change to this audit table (schema.name)");
  sub->add_option("--gap-timeout", t->gap_timeout,
                  "How long a missing seq may be awaited from other partitions (counted while "
                  "the brokers answer: an outage does not make a gap)")
      ->capture_default_str();
  sub->add_option("--metrics-addr", o->metrics_addr, "HOST:PORT for /health and /metrics");
  AddEncryptionKeyFileFlag(*sub, &o->encryption_key_files);
  sub->add_option("--format", o->format, "Summary format: text or json")->capture_default_str();
  sub->callback([o, t, body] {
    *body = [o, t]() -> Status {
      LIFELINE_RETURN_IF_ERROR(
          FinishKafkaProperties(t->properties_file, KafkaRole::kConsumer, &o->kafka_properties));
      LIFELINE_ASSIGN_OR_RETURN(o->batch_ms, ParseDurationMs(t->batch_ms));
      LIFELINE_ASSIGN_OR_RETURN(o->gap_timeout_ms, ParseDurationMs(t->gap_timeout));
      LIFELINE_RETURN_IF_ERROR(CheckConnInfo(o->target, "--target"));
      LIFELINE_ASSIGN_OR_RETURN(o->target_password,
                                ReadSecret("LIFELINE_TARGET_PASSWORD", t->password_file));
      if (!t->from_offset.empty()) {
        size_t colon = t->from_offset.find(':');
        try {
          if (colon == std::string::npos) throw std::invalid_argument("no colon");
          o->from_offset = std::make_pair(std::stoi(t->from_offset.substr(0, colon)),
                                          std::stoll(t->from_offset.substr(colon + 1)));
        } catch (const std::exception&) {
          return Status::InvalidArgument("malformed --from-offset '" + t->from_offset +
                                         "': expected PARTITION:OFFSET, e.g. 0:1200");
        }
      }
      if (t->from_seq > 0) o->from_seq = t->from_seq;
      if (t->until_seq > 0) o->until_seq = t->until_seq;
      if (!t->from_lsn.empty()) {
        LIFELINE_ASSIGN_OR_RETURN(Lsn l, Lsn::Parse(t->from_lsn));
        o->from_lsn = l.value();
      }
      if (!t->until_lsn.empty()) {
        LIFELINE_ASSIGN_OR_RETURN(Lsn l, Lsn::Parse(t->until_lsn));
        o->until_lsn = l.value();
      }
      if (!t->from_time.empty()) {
        LIFELINE_ASSIGN_OR_RETURN(int64_t us, ParseTimestampUs(t->from_time));
        o->from_time_us = us;
      }
      if (!t->until_time.empty()) {
        LIFELINE_ASSIGN_OR_RETURN(int64_t us, ParseTimestampUs(t->until_time));
        o->until_time_us = us;
      }
      return RunReplay(*o, StopRequested());
    };
  });
}

}  // namespace lifeline::cli
