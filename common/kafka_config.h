// Kafka client configuration shared by the shipper, the replayer and gapcheck: the user's
// `--kafka-property key=value` items and `--kafka-properties-file` lines, checked by librdkafka and
// layered over and under each component's own settings.
//
//   component defaults  (bootstrap.servers, client.id, ...)     set first
//   user properties     (properties file, then --kafka-property) may override the defaults
//   component fixed     (what the component relies on)          set last, never overridden
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

struct rd_kafka_conf_s;

namespace lifeline {

struct KafkaConfDeleter {
  void operator()(rd_kafka_conf_s* conf) const;
};
using KafkaConf = std::unique_ptr<rd_kafka_conf_s, KafkaConfDeleter>;

using KafkaProperty = std::pair<std::string, std::string>;

// Splits `key=value` items (the value may hold '='; the key is trimmed). A malformed item is an
// InvalidArgument naming only its leading property-name characters, never the rest (a secret).
[[nodiscard]] Result<std::vector<KafkaProperty>> ParseKafkaProperties(
    const std::vector<std::string>& items);

// Reads a Java-style properties file: `key=value` lines, blank lines and `#` or `!` comments;
// whitespace around the key and the value is dropped. Returns the lines as `key=value` items, to be
// placed ahead of the command line's (which then win). Errors name the file and the line.
[[nodiscard]] Result<std::vector<std::string>> ReadKafkaPropertiesFile(const std::string& path);

// The properties file's items followed by the command line's: what a component is given.
[[nodiscard]] Result<std::vector<std::string>> MergeKafkaProperties(
    const std::string& properties_file, const std::vector<std::string>& items);

// Builds a librdkafka configuration: `defaults`, then the user's `items`, then `fixed`. A property
// librdkafka does not know or whose value it rejects is an InvalidArgument naming the property and
// quoting librdkafka's message (values of secret-looking properties are masked).
[[nodiscard]] Result<KafkaConf> BuildKafkaConf(const std::vector<KafkaProperty>& defaults,
                                               const std::vector<std::string>& items,
                                               const std::vector<KafkaProperty>& fixed = {});

enum class KafkaRole { kProducer, kConsumer };

// What every lifeline client of a role fixes (BuildKafkaConf's `fixed`); a component may add more:
//   producer  enable.idempotence=true acks=all message.timeout.ms=0
//             enable.gapless.guarantee=true
//   consumer  enable.auto.commit=false enable.auto.offset.store=false enable.partition.eof=true
const std::vector<KafkaProperty>& FixedKafkaProperties(KafkaRole role);

// Checks the user's items as BuildKafkaConf would for `role`: for commands to fail at start,
// before they open or create anything.
[[nodiscard]] Status CheckKafkaProperties(KafkaRole role, const std::vector<std::string>& items);

}  // namespace lifeline
