// `lifeline gapcheck stream|buckets|rows|rpo`: flags for the DBA's reports; gapcheck/ does the
// work. Exit 0 clean, 1 differences found, 2 error.
#include <unistd.h>

#include "cli/commands.h"
#include "common/config.h"
#include "common/postgres.h"
#include "gapcheck/gapcheck.h"

namespace lifeline::cli {
namespace {

struct GapcheckFlags {
  std::string since = "2h", bucket = "1m", rpo_objective = "30s";
  std::string source_password_file, target_password_file;
  std::string color = "auto";
  std::string kafka_properties_file;
};

void AddDatabaseFlags(CLI::App* sub, GapcheckOptions* o, GapcheckFlags* f) {
  sub->add_option("--source", o->source, "libpq conninfo of the primary (no password in it)")
      ->required();
  sub->add_option("--target", o->target, "libpq conninfo of the standby (no password in it)")
      ->required();
  sub->add_option("--source-password-file", f->source_password_file,
                  "File holding the primary's password (or LIFELINE_SOURCE_PASSWORD)");
  sub->add_option("--target-password-file", f->target_password_file,
                  "File holding the standby's password (or LIFELINE_TARGET_PASSWORD)");
}

void AddStreamFlags(CLI::App* sub, GapcheckOptions* o, GapcheckFlags* f) {
  sub->add_option("--spool", o->stream.spool_dir, "Read this spool directory as the stream");
  sub->add_option("--kafka-brokers", o->stream.kafka_brokers, "Read a Kafka topic as the stream");
  sub->add_option("--topic", o->stream.topic, "Kafka topic")->capture_default_str();
  AddEncryptionKeyFileFlag(*sub, &o->stream.encryption_key_files);
  sub->add_option("--kafka-property", o->stream.kafka_properties,
                  "librdkafka property key=value (repeatable; TLS and SASL settings go here)");
  AddKafkaPropertiesFileFlag(*sub, &f->kafka_properties_file);
}

void AddOutputFlags(CLI::App* sub, GapcheckOptions* o, GapcheckFlags* f) {
  sub->add_option("--format", o->format, "text or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  sub->add_option("--html", o->html_path, "Also write a self-contained HTML report here");
  sub->add_option("--color", f->color, "auto (on a terminal), always or never")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "always", "never"}));
}

}  // namespace

void AddGapcheckCommand(CLI::App& app, ReportBody* body) {
  auto* gap = app.add_subcommand(
      "gapcheck",
      "Reports after an incident: stream continuity, per-bucket counts, row differences, RPO "
      "(exit 0 clean, 1 differences, 2 error)");
  gap->require_subcommand(1);
  auto o = std::make_shared<GapcheckOptions>();
  auto f = std::make_shared<GapcheckFlags>();

  auto* stream = gap->add_subcommand(
      "stream", "Seq gaps, duplicates, reordering, unreadable records and hash-chain breaks");
  AddConfigFileOption(*stream);
  AddStreamFlags(stream, o.get(), f.get());
  AddOutputFlags(stream, o.get(), f.get());

  auto* buckets = gap->add_subcommand(
      "buckets", "Rows per time bucket on the primary, the standby and the stream");
  AddConfigFileOption(*buckets);
  AddDatabaseFlags(buckets, o.get(), f.get());
  AddStreamFlags(buckets, o.get(), f.get());
  buckets->add_option("--table", o->table, "schema.name")->capture_default_str();
  buckets->add_option("--since", f->since, "How far back, e.g. 2h")->capture_default_str();
  buckets->add_option("--bucket", f->bucket, "Bucket width, e.g. 1m")->capture_default_str();
  buckets->add_option("--time-column", o->time_column, "Timestamp column rows are bucketed by")
      ->capture_default_str();
  AddOutputFlags(buckets, o.get(), f.get());

  auto* rows = gap->add_subcommand(
      "rows", "Row-level diff by primary key (checksums of key ranges pushed down to SQL)");
  AddConfigFileOption(*rows);
  AddDatabaseFlags(rows, o.get(), f.get());
  AddStreamFlags(rows, o.get(), f.get());
  rows->add_option("--table", o->table, "schema.name")->capture_default_str();
  rows->add_option("--where", o->where, "SQL condition both sides are filtered by");
  AddOutputFlags(rows, o.get(), f.get());

  auto* rpo = gap->add_subcommand(
      "rpo", "Seconds and transactions that would be lost if the primary died now");
  AddConfigFileOption(*rpo);
  AddDatabaseFlags(rpo, o.get(), f.get());
  AddStreamFlags(rpo, o.get(), f.get());
  rpo->add_option("--objective", f->rpo_objective, "Recovery point objective to judge by")
      ->capture_default_str();
  AddOutputFlags(rpo, o.get(), f.get());

  for (CLI::App* sub : {stream, buckets, rows, rpo}) {
    AddLogValuesFlag(*sub);
    sub->callback([o, f, body, sub] {
      o->report = sub->get_name();
      *body = [o, f]() -> Result<int> {
        LIFELINE_RETURN_IF_ERROR(FinishKafkaProperties(
            f->kafka_properties_file, KafkaRole::kConsumer, &o->stream.kafka_properties));
        LIFELINE_ASSIGN_OR_RETURN(o->since_ms, ParseDurationMs(f->since));
        LIFELINE_ASSIGN_OR_RETURN(o->bucket_ms, ParseDurationMs(f->bucket));
        LIFELINE_ASSIGN_OR_RETURN(o->rpo_objective_ms, ParseDurationMs(f->rpo_objective));
        if (!o->source.empty()) LIFELINE_RETURN_IF_ERROR(CheckConnInfo(o->source, "--source"));
        if (!o->target.empty()) LIFELINE_RETURN_IF_ERROR(CheckConnInfo(o->target, "--target"));
        LIFELINE_ASSIGN_OR_RETURN(o->source_password,
                                  ReadSecret("LIFELINE_SOURCE_PASSWORD", f->source_password_file));
        LIFELINE_ASSIGN_OR_RETURN(o->target_password,
                                  ReadSecret("LIFELINE_TARGET_PASSWORD", f->target_password_file));
        o->color = f->color == "always" || (f->color == "auto" && isatty(STDOUT_FILENO));
        o->progress = isatty(STDERR_FILENO);
        LIFELINE_ASSIGN_OR_RETURN(GapcheckVerdict verdict, RunGapcheck(*o));
        return verdict == GapcheckVerdict::kClean ? 0 : 1;
      };
    });
  }
}

}  // namespace lifeline::cli
