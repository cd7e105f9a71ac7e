// Parsing the user's Kafka properties and layering them with a component's own into an
// rd_kafka_conf_t, with errors that name the property and quote librdkafka.
#include "common/kafka_config.h"

#include <librdkafka/rdkafka.h>

#include <cctype>
#include <fstream>

#include "common/config.h"

namespace lifeline {

void KafkaConfDeleter::operator()(rd_kafka_conf_s* conf) const {
  rd_kafka_conf_destroy(conf);
}

namespace {

constexpr const char* kWhitespace = " \t\r\n";

std::string Trim(const std::string& s) {
  size_t begin = s.find_first_not_of(kWhitespace);
  if (begin == std::string::npos) return "";
  size_t end = s.find_last_not_of(kWhitespace);
  return s.substr(begin, end - begin + 1);
}

// The leading property-name characters of a malformed item, never the rest (a secret).
std::string PropertyNameOf(const std::string& item) {
  size_t n = 0;
  while (n < item.size() && (std::isalnum(static_cast<unsigned char>(item[n])) || item[n] == '.' ||
                             item[n] == '_' || item[n] == '-')) {
    ++n;
  }
  return item.substr(0, n);
}

Status Set(rd_kafka_conf_t* conf, const std::string& key, const std::string& value, bool user) {
  char err[512];
  rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err);
  if (res == RD_KAFKA_CONF_OK) return Status::Ok();
  // Never echo the value: it may be a secret (sasl.password). librdkafka quotes it in its message.
  std::string message = err;
  for (size_t at; !value.empty() && (at = message.find(value)) != std::string::npos;) {
    message.replace(at, value.size(), "<value>");
  }
  std::string what = res == RD_KAFKA_CONF_UNKNOWN ? "unknown Kafka property '"
                                                  : "invalid value for Kafka property '";
  return Status::InvalidArgument(
      what + key + "': " + message +
      (user ? "; fix or remove it (--kafka-property, --kafka-properties-file or the config file)"
            : ""));
}

// A property's current value as librdkafka normalises it ("" if unset or unreadable).
std::string Get(rd_kafka_conf_t* conf, const std::string& key) {
  char value[512];
  size_t size = sizeof value;
  if (rd_kafka_conf_get(conf, key.c_str(), value, &size) != RD_KAFKA_CONF_OK) return "";
  return value;
}

}  // namespace

Result<std::vector<KafkaProperty>> ParseKafkaProperties(const std::vector<std::string>& items) {
  std::vector<KafkaProperty> out;
  out.reserve(items.size());
  for (const auto& item : items) {
    size_t eq = item.find('=');
    // Taken as typed: " sasl.password" is a property librdkafka does not know, said so below.
    std::string key = eq == std::string::npos ? "" : item.substr(0, eq);
    if (key.empty()) {
      return Status::InvalidArgument("malformed Kafka property starting '" + PropertyNameOf(item) +
                                     "': expected key=value, e.g. security.protocol=SASL_SSL");
    }
    out.emplace_back(std::move(key), item.substr(eq + 1));
  }
  return out;
}

Result<std::vector<std::string>> ReadKafkaPropertiesFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return Status::NotFound("cannot read Kafka properties file " + path +
                            "; check --kafka-properties-file");
  }
  WarnIfOthersMayRead(path, "Kafka properties file");
  std::vector<std::string> items;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::string text = Trim(line);
    if (text.empty() || text[0] == '#' || text[0] == '!') continue;
    size_t eq = text.find('=');
    std::string key = eq == std::string::npos ? "" : Trim(text.substr(0, eq));
    if (key.empty()) {
      return Status::InvalidArgument("Kafka properties file " + path + " line " +
                                     std::to_string(number) + " (starting '" +
                                     PropertyNameOf(text) + "'): expected key=value");
    }
    items.push_back(key + "=" + Trim(text.substr(eq + 1)));
  }
  if (in.bad()) return Status::IOError("reading Kafka properties file " + path);
  return items;
}

Result<std::vector<std::string>> MergeKafkaProperties(const std::string& properties_file,
                                                      const std::vector<std::string>& items) {
  std::vector<std::string> merged;
  if (!properties_file.empty()) {
    LIFELINE_ASSIGN_OR_RETURN(merged, ReadKafkaPropertiesFile(properties_file));
  }
  merged.insert(merged.end(), items.begin(), items.end());
  return merged;
}

Result<KafkaConf> BuildKafkaConf(const std::vector<KafkaProperty>& defaults,
                                 const std::vector<std::string>& items,
                                 const std::vector<KafkaProperty>& fixed) {
  LIFELINE_ASSIGN_OR_RETURN(std::vector<KafkaProperty> user, ParseKafkaProperties(items));
  KafkaConf conf(rd_kafka_conf_new());
  for (const auto& [k, v] : defaults) LIFELINE_RETURN_IF_ERROR(Set(conf.get(), k, v, false));
  for (const auto& [k, v] : user) LIFELINE_RETURN_IF_ERROR(Set(conf.get(), k, v, true));
  for (const auto& [k, v] : fixed) {
    // The user may repeat lifeline's value (in any spelling librdkafka accepts), not change it.
    std::string given = Get(conf.get(), k);
    LIFELINE_RETURN_IF_ERROR(Set(conf.get(), k, v, false));
    bool user_set = false;
    for (const auto& u : user) user_set = user_set || u.first == k;
    if (user_set && given != Get(conf.get(), k)) {
      return Status::InvalidArgument("Kafka property '" + k + "' is set by lifeline to '" + v +
                                     "' and must not be changed; remove it from the properties");
    }
  }
  return conf;
}

const std::vector<KafkaProperty>& FixedKafkaProperties(KafkaRole role) {
  static const std::vector<KafkaProperty> kProducer = {
      // The delivery guarantee: no duplicates or reordering from retries, a record counts once
      // every in-sync replica has it, and it is never given up on (an outage only delays it).
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"message.timeout.ms", "0"},
      // A failed batch stops the producer rather than letting later records land ahead of it; the
      // shipper then re-ships from its cursor with a new producer.
      {"enable.gapless.guarantee", "true"},
  };
  // Partitions are assigned by hand and read to their end; positions are kept by lifeline (in
  // the standby) or not at all, never committed to the cluster.
  static const std::vector<KafkaProperty> kConsumer = {
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"enable.partition.eof", "true"},
  };
  return role == KafkaRole::kProducer ? kProducer : kConsumer;
}

Status CheckKafkaProperties(KafkaRole role, const std::vector<std::string>& items) {
  return BuildKafkaConf({}, items, FixedKafkaProperties(role)).status();
}

}  // namespace lifeline
