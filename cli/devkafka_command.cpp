// `lifeline devkafka`: a Kafka-protocol cluster on loopback for local runs and tests.
#include "cli/commands.h"
#include "common/devkafka.h"

namespace lifeline::cli {

void AddDevKafkaCommand(CLI::App& app, CommandBody* body) {
  auto* sub = app.add_subcommand(
      "devkafka",
      "Run a Kafka-protocol cluster on loopback (in memory) with fault injection. Control lines "
      "on stdin: down ID|all, up ID|all, rtt ID|all MS, errors API ERROR COUNT, leader TOPIC "
      "PARTITION ID, topic NAME PARTITIONS, help");
  auto opts = std::make_shared<DevKafkaOptions>();
  auto topics = std::make_shared<std::vector<std::string>>();
  sub->add_option("--brokers", opts->brokers, "Number of brokers")
      ->capture_default_str()
      ->check(CLI::Range(1, DevKafkaCluster::kMaxBrokers));
  sub->add_option("--topic", *topics, "Topic to create, NAME[:PARTITIONS] (repeatable)");
  sub->add_option("--bootstrap-file", opts->bootstrap_file,
                  "Write the bootstrap list here once serving");
  sub->callback([opts, topics, body] {
    *body = [opts, topics]() -> Status {
      for (const auto& t : *topics) {
        size_t colon = t.rfind(':');
        int partitions = 1;
        std::string name = t;
        if (colon != std::string::npos) {
          name = t.substr(0, colon);
          try {
            partitions = std::stoi(t.substr(colon + 1));
          } catch (const std::exception&) {
            partitions = 0;
          }
        }
        if (name.empty() || partitions < 1) {
          return Status::InvalidArgument("malformed --topic '" + t +
                                         "': expected NAME or NAME:PARTITIONS, e.g. events:3");
        }
        opts->topics.emplace_back(name, partitions);
      }
      return ServeDevKafka(*opts);
    };
  });
}

}  // namespace lifeline::cli
