// `lifeline ship` (drain a spool to Kafka) and the Kafka flags `lifeline capture` shares with it.
#include "cli/commands.h"
#include "common/config.h"
#include "common/kafka_config.h"
#include "common/shutdown.h"
#include "shipper/shipper.h"

namespace lifeline::cli {

void AddKafkaPropertiesFileFlag(CLI::App& sub, std::string* path) {
  sub.add_option("--kafka-properties-file", *path,
                 "File of librdkafka key=value lines (# comments), e.g. SASL settings and "
                 "sasl.password; --kafka-property items override it");
}

Status FinishKafkaProperties(const std::string& properties_file, KafkaRole role,
                             std::vector<std::string>* items) {
  LIFELINE_ASSIGN_OR_RETURN(*items, MergeKafkaProperties(properties_file, *items));
  return CheckKafkaProperties(role, *items);
}

void AddKafkaFlags(CLI::App& sub, ShipperOptions* options, KafkaFlagText* text) {
  sub.add_option("--kafka-brokers", options->brokers, "Kafka bootstrap servers, host:port,...");
  sub.add_option("--topic", options->topic, "Kafka topic")->capture_default_str();
  sub.add_option("--kafka-property", options->kafka_properties,
                 "librdkafka property key=value (repeatable; TLS and SASL settings go here)");
  AddKafkaPropertiesFileFlag(sub, &text->properties_file);
  sub.add_option("--topic-partitions", options->partitions, "Partitions of a topic created here")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  sub.add_option("--topic-replication-factor", options->replication_factor,
                 "Replication factor of a topic created here (-1: the cluster's default)")
      ->capture_default_str();
  sub.add_option("--spool-retention", text->retention,
                 "Keep shipped events this long before trimming them, e.g. 24h")
      ->capture_default_str();
}

Status FinishKafkaFlags(ShipperOptions* options, const KafkaFlagText& text) {
  LIFELINE_ASSIGN_OR_RETURN(options->retention_ms, ParseDurationMs(text.retention));
  return FinishKafkaProperties(text.properties_file, KafkaRole::kProducer,
                               &options->kafka_properties);
}

void AddShipCommand(CLI::App& app, CommandBody* body) {
  auto* sub = app.add_subcommand(
      "ship", "Drain a spool to Kafka (for example a spool copied off a failed host)");
  AddConfigFileOption(*sub);
  AddLogValuesFlag(*sub);
  auto opts = std::make_shared<ShipperOptions>();
  auto kafka_text = std::make_shared<KafkaFlagText>();
  auto spool = std::make_shared<std::string>();
  auto metrics_addr = std::make_shared<std::string>();
  sub->add_option("--spool", *spool, "Spool directory")->required();
  AddKafkaFlags(*sub, opts.get(), kafka_text.get());
  sub->get_option("--kafka-brokers")->required();
  sub->add_flag("--until-drained", opts->until_drained,
                "Exit 0 once everything in the spool is acknowledged by Kafka");
  sub->add_option("--metrics-addr", *metrics_addr, "HOST:PORT for /health and /metrics");
  sub->callback([opts, kafka_text, spool, metrics_addr, body] {
    *body = [opts, kafka_text, spool, metrics_addr]() -> Status {
      LIFELINE_RETURN_IF_ERROR(FinishKafkaFlags(opts.get(), *kafka_text));
      return ShipSpool(*spool, *opts, *metrics_addr, StopRequested());
    };
  });
}

}  // namespace lifeline::cli
