// The Kafka configuration every client is built from: key=value items, properties files, the
// layering of lifeline's settings around the user's, and errors that name the property but never
// repeat a value.
#include "common/kafka_config.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <sys/stat.h>

#include <fstream>

#include "tests/support/test_env.h"

namespace lifeline {
namespace {

std::string Get(const KafkaConf& conf, const std::string& key) {
  char value[512];
  size_t size = sizeof value;
  if (rd_kafka_conf_get(conf.get(), key.c_str(), value, &size) != RD_KAFKA_CONF_OK) return "?";
  return value;
}

std::string WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  chmod(path.c_str(), 0600);
  return path;
}

TEST(KafkaProperties, SplitsAtTheFirstEquals) {
  auto p = ParseKafkaProperties({"sasl.password=a=b", "client.id="});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ((*p)[0], KafkaProperty("sasl.password", "a=b"));
  EXPECT_EQ((*p)[1], KafkaProperty("client.id", ""));
}

TEST(KafkaProperties, AMalformedItemNamesOnlyItsLeadingName) {
  for (const std::string& bad : {std::string("sasl.password:hunter2"), std::string("=hunter2"),
                                 std::string("sasl.password hunter2")}) {
    auto p = ParseKafkaProperties({bad});
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find("key=value"), std::string::npos) << p.status().ToString();
    EXPECT_EQ(p.status().message().find("hunter2"), std::string::npos) << p.status().ToString();
  }
}

TEST(KafkaConfBuild, LayersDefaultsUserAndFixed) {
  auto conf = BuildKafkaConf({{"client.id", "ours"}, {"linger.ms", "5"}},
                             {"client.id=theirs", "socket.timeout.ms=12345"},
                             {{"enable.idempotence", "true"}});
  ASSERT_TRUE(conf.ok()) << conf.status().ToString();
  EXPECT_EQ(Get(*conf, "client.id"), "theirs");
  EXPECT_EQ(Get(*conf, "linger.ms"), "5");
  EXPECT_EQ(Get(*conf, "socket.timeout.ms"), "12345");
  EXPECT_EQ(Get(*conf, "enable.idempotence"), "true");
}

TEST(KafkaConfBuild, AnUnknownPropertyIsNamedWithLibrdkafkasMessage) {
  auto conf = BuildKafkaConf({}, {"securty.protocol=SSL"});
  ASSERT_FALSE(conf.ok());
  EXPECT_EQ(conf.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(conf.status().ExitCode(), 2);
  const std::string& m = conf.status().message();
  EXPECT_NE(m.find("securty.protocol"), std::string::npos) << m;
  EXPECT_NE(m.find("No such configuration property"), std::string::npos) << m;
  EXPECT_NE(m.find("--kafka-property"), std::string::npos) << m;
}

TEST(KafkaConfBuild, AnInvalidValueIsNamedButNotRepeated) {
  auto conf = BuildKafkaConf({}, {"security.protocol=carrier-pigeon"});
  ASSERT_FALSE(conf.ok());
  EXPECT_EQ(conf.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = conf.status().message();
  EXPECT_NE(m.find("security.protocol"), std::string::npos) << m;
  EXPECT_NE(m.find("Invalid value"), std::string::npos) << m;
  EXPECT_EQ(m.find("carrier-pigeon"), std::string::npos) << m;
}

TEST(KafkaConfBuild, AKeyIsTakenAsTyped) {
  auto conf = BuildKafkaConf({}, {" sasl.password=hunter2"});
  ASSERT_FALSE(conf.ok());
  EXPECT_EQ(conf.status().message().find("hunter2"), std::string::npos);
}

TEST(KafkaConfBuild, AFixedPropertyMayBeRepeatedButNotChanged) {
  const std::vector<KafkaProperty> fixed = {{"enable.idempotence", "true"}, {"acks", "all"}};
  EXPECT_TRUE(BuildKafkaConf({}, {"enable.idempotence=true", "acks=-1"}, fixed).ok());
  for (const std::string& item : {std::string("enable.idempotence=false"), std::string("acks=1")}) {
    auto conf = BuildKafkaConf({}, {item}, fixed);
    ASSERT_FALSE(conf.ok()) << item;
    EXPECT_EQ(conf.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(conf.status().message().find(item.substr(0, item.find('='))), std::string::npos)
        << conf.status().ToString();
  }
}

TEST(KafkaConfBuild, CheckSeesWhatBuildSees) {
  for (KafkaRole role : {KafkaRole::kProducer, KafkaRole::kConsumer}) {
    EXPECT_TRUE(
        CheckKafkaProperties(role, {"security.protocol=SASL_SSL", "sasl.mechanisms=PLAIN"}).ok());
    EXPECT_EQ(CheckKafkaProperties(role, {"securty.protocol=SSL"}).code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(CheckKafkaProperties(role, {"no-equals"}).code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(CheckKafkaProperties(KafkaRole::kProducer, {"acks=1"}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckKafkaProperties(KafkaRole::kConsumer, {"acks=1"}).ok());
  EXPECT_EQ(CheckKafkaProperties(KafkaRole::kConsumer, {"enable.auto.commit=true"}).code(),
            StatusCode::kInvalidArgument);
}

TEST(KafkaPropertiesFile, ReadsJavaStyleLines) {
  testing::TempDir dir;
  std::string path = WriteFile(dir.path() + "/client.properties",
                               "# managed cluster\n"
                               "\n"
                               "! also a comment\n"
                               "security.protocol=SASL_SSL\n"
                               "  sasl.mechanisms = SCRAM-SHA-512  \r\n"
                               "sasl.password=p=w#1\n");
  auto items = ReadKafkaPropertiesFile(path);
  ASSERT_TRUE(items.ok()) << items.status().ToString();
  EXPECT_EQ(*items,
            (std::vector<std::string>{"security.protocol=SASL_SSL", "sasl.mechanisms=SCRAM-SHA-512",
                                      "sasl.password=p=w#1"}));
}

TEST(KafkaPropertiesFile, AMalformedLineIsNamedByNumber) {
  testing::TempDir dir;
  std::string path =
      WriteFile(dir.path() + "/bad.properties", "security.protocol=SSL\nsasl.password hunter2\n");
  auto items = ReadKafkaPropertiesFile(path);
  ASSERT_FALSE(items.ok());
  EXPECT_EQ(items.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(items.status().message().find("line 2"), std::string::npos)
      << items.status().ToString();
  EXPECT_NE(items.status().message().find(path), std::string::npos);
  EXPECT_EQ(items.status().message().find("hunter2"), std::string::npos);
}

TEST(KafkaPropertiesFile, AMissingFileIsNotFound) {
  testing::TempDir dir;
  auto items = ReadKafkaPropertiesFile(dir.path() + "/nope.properties");
  ASSERT_FALSE(items.ok());
  EXPECT_EQ(items.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(items.status().ExitCode(), 2);
}

TEST(KafkaPropertiesFile, TheCommandLineComesAfterTheFile) {
  testing::TempDir dir;
  std::string path = WriteFile(dir.path() + "/c.properties", "client.id=from-file\n");
  auto merged = MergeKafkaProperties(path, {"client.id=from-flag"});
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  auto conf = BuildKafkaConf({}, *merged);
  ASSERT_TRUE(conf.ok()) << conf.status().ToString();
  EXPECT_EQ(Get(*conf, "client.id"), "from-flag");
  auto none = MergeKafkaProperties("", {"a=b"});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, std::vector<std::string>{"a=b"});
}

}  // namespace
}  // namespace lifeline
