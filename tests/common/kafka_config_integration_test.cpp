// Kafka properties through the real binary: every command that talks to Kafka refuses a misspelt
// property or an invalid value at start (exit 2, the property named, librdkafka quoted) before it
// creates a spool, a slot or a schema; and properties from a YAML config or a properties file reach
// librdkafka.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/devkafka.h"
#include "common/local_postgres.h"
#include "common/spool.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

using testing::RunLifeline;
using testing::TempDir;
using testing::Trim;

struct BadProperty {
  std::string item;
  std::string librdkafka_says;  // a piece of librdkafka's own message
};

const std::vector<BadProperty>& BadProperties() {
  static const std::vector<BadProperty> kBad = {
      {"securty.protocol=SSL", "No such configuration property: \"securty.protocol\""},
      {"security.protocol=carrier-pigeon",
       "Invalid value \"<value>\" for configuration property \"security.protocol\""},
  };
  return kBad;
}

std::string Sql(const LocalPostgres& pg, const std::string& sql, const std::string& db) {
  auto r = pg.Psql(sql, db);
  EXPECT_TRUE(r.ok()) << sql << ": " << r.status().ToString();
  return r.ok() ? Trim(*r) : std::string();
}

std::string WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  chmod(path.c_str(), 0600);
  return path;
}

// Lines librdkafka logs for the `metadata` debug context; none without `debug` set.
size_t MetadataDebugLines(const std::string& log) {
  size_t n = 0;
  for (size_t at = log.find("METADATA"); at != std::string::npos;
       at = log.find("METADATA", at + 1)) {
    ++n;
  }
  return n;
}

class KafkaConfigIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    kafka_ = testing::StartDevKafka(1);
    ASSERT_TRUE(kafka_);
  }

  // Runs `args` once per bad property, each given both as --kafka-property and as a line of a
  // --kafka-properties-file; each run must stop at start with exit 2, naming it.
  void ExpectRefusedAtStart(const std::vector<std::string>& args) {
    for (const auto& bad : BadProperties()) {
      std::string file = WriteFile(tmp_.Sub("bad.properties"), "# test\n" + bad.item + "\n");
      for (const auto& how : std::vector<std::vector<std::string>>{
               {"--kafka-property", bad.item}, {"--kafka-properties-file", file}}) {
        std::vector<std::string> argv = args;
        argv.insert(argv.end(), how.begin(), how.end());
        auto started = std::chrono::steady_clock::now();
        CommandResult r = RunLifeline(argv, "", 60'000);
        std::string what = args[0] + " " + how[0] + " " + bad.item;
        EXPECT_EQ(r.exit_code, 2) << what << "\n" << r.stderr_text;
        std::string name = bad.item.substr(0, bad.item.find('='));
        EXPECT_NE(r.stderr_text.find("Kafka property '" + name + "'"), std::string::npos)
            << what << "\n"
            << r.stderr_text;
        EXPECT_NE(r.stderr_text.find(bad.librdkafka_says), std::string::npos) << what << "\n"
                                                                              << r.stderr_text;
        EXPECT_EQ(r.stderr_text.find("carrier-pigeon"), std::string::npos)
            << "the value is not repeated\n"
            << r.stderr_text;
        EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10)) << what;
      }
    }
  }

  TempDir tmp_{"lifeline-kafka-config"};
  std::unique_ptr<DevKafkaCluster> kafka_;
  std::string topic_ = "lifeline.events";
};

TEST_F(KafkaConfigIntegration, CaptureRefusesABadPropertyBeforeMakingASpoolOrASlot) {
  auto pg = testing::StartPostgres({.name = "kafka-config"});
  ASSERT_TRUE(pg);
  testing::LoadReferenceSchema(*pg, "app");
  ExpectRefusedAtStart({"capture", "--source", pg->ConnInfo("app"), "--spool", tmp_.Sub("spool"),
                        "--kafka-brokers", kafka_->bootstrap_servers(), "--topic", topic_});
  EXPECT_FALSE(std::filesystem::exists(tmp_.Sub("spool"))) << "no spool may be created";
  EXPECT_EQ(Sql(*pg, "SELECT count(*) FROM pg_replication_slots", "app"), "0");
  EXPECT_EQ(Sql(*pg, "SELECT count(*) FROM pg_publication", "app"), "0");
}

TEST_F(KafkaConfigIntegration, ShipRefusesABadPropertyBeforeOpeningTheSpool) {
  // A spool that exists, so that only the property can be what stops `ship`; a missing spool
  // would stop it too, and the spool being left without a shipper cursor shows it was not used.
  { ASSERT_TRUE(Spool::OpenForWrite(tmp_.Sub("spool")).ok()); }
  ExpectRefusedAtStart({"ship", "--spool", tmp_.Sub("spool"), "--kafka-brokers",
                        kafka_->bootstrap_servers(), "--topic", topic_, "--until-drained"});
  // Nor may it reach the brokers: asking for the topic would have created it here.
  CommandResult list = RunLifeline(
      {"gapcheck", "stream", "--kafka-brokers", kafka_->bootstrap_servers(), "--topic", topic_}, "",
      60'000);
  EXPECT_EQ(list.exit_code, 2) << list.stderr_text;
  EXPECT_NE(list.stderr_text.find("does not exist"), std::string::npos) << list.stderr_text;
}

TEST_F(KafkaConfigIntegration, ReplayRefusesABadPropertyBeforeTouchingTheTarget) {
  auto pg = testing::StartPostgres({.name = "kafka-config-target"});
  ASSERT_TRUE(pg);
  testing::LoadReferenceSchema(*pg, "app");
  ASSERT_TRUE(kafka_->CreateTopic(topic_, 1, 1).ok());
  ExpectRefusedAtStart({"replay", "--target", pg->ConnInfo("app"), "--kafka-brokers",
                        kafka_->bootstrap_servers(), "--topic", topic_, "--stop-at-end"});
  EXPECT_EQ(Sql(*pg, "SELECT count(*) FROM pg_namespace WHERE nspname = 'lifeline'", "app"), "0")
      << "the replayer's own schema must not be created";
}

TEST_F(KafkaConfigIntegration, GapcheckStreamRefusesABadProperty) {
  ASSERT_TRUE(kafka_->CreateTopic(topic_, 1, 1).ok());
  ExpectRefusedAtStart(
      {"gapcheck", "stream", "--kafka-brokers", kafka_->bootstrap_servers(), "--topic", topic_});
}

// Properties from the YAML config (a kafka-property map, or a kafka-properties-file) reach the
// producer: librdkafka's `metadata` debug lines appear with them and not without.
TEST_F(KafkaConfigIntegration, APropertyFromTheYamlConfigReachesTheProducer) {
  ASSERT_TRUE(kafka_->CreateTopic(topic_, 1, 1).ok());
  { ASSERT_TRUE(Spool::OpenForWrite(tmp_.Sub("spool")).ok()); }
  std::string base = "spool: " + tmp_.Sub("spool") +
                     "\nkafka-brokers: " + kafka_->bootstrap_servers() + "\ntopic: " + topic_ +
                     "\nuntil-drained: true\n";
  std::string plain = WriteFile(tmp_.Sub("plain.yaml"), base);
  std::string with_debug =
      WriteFile(tmp_.Sub("debug.yaml"), base +
                                            "kafka-property:\n"
                                            "  debug: metadata\n"
                                            "  client.id: lifeline-yaml-test\n");
  CommandResult without =
      RunLifeline({"--log-level", "debug", "ship", "--config", plain}, "", 60'000);
  ASSERT_EQ(without.exit_code, 0) << without.stderr_text;
  EXPECT_EQ(MetadataDebugLines(without.stderr_text), 0u) << without.stderr_text;
  CommandResult with =
      RunLifeline({"--log-level", "debug", "ship", "--config", with_debug}, "", 60'000);
  ASSERT_EQ(with.exit_code, 0) << with.stderr_text;
  EXPECT_GT(MetadataDebugLines(with.stderr_text), 0u) << with.stderr_text;
  // And a properties file named in the YAML config, as docs/kafka.md shows.
  std::string props = WriteFile(tmp_.Sub("client.properties"), "debug=metadata\n");
  std::string with_file =
      WriteFile(tmp_.Sub("file.yaml"), base + "kafka-properties-file: " + props);
  CommandResult from_file =
      RunLifeline({"--log-level", "debug", "ship", "--config", with_file}, "", 60'000);
  ASSERT_EQ(from_file.exit_code, 0) << from_file.stderr_text;
  EXPECT_GT(MetadataDebugLines(from_file.stderr_text), 0u) << from_file.stderr_text;
}

// A properties file reaches the consumer (gapcheck). (Which of the file and --kafka-property wins
// is checked in kafka_config_test.)
TEST_F(KafkaConfigIntegration, APropertiesFileReachesTheConsumer) {
  ASSERT_TRUE(kafka_->CreateTopic(topic_, 1, 1).ok());
  std::string props = WriteFile(tmp_.Sub("client.properties"), "# debugging\ndebug=metadata\n");
  const std::vector<std::string> stream = {
      "--log-level", "debug", "gapcheck", "stream", "--kafka-brokers", kafka_->bootstrap_servers(),
      "--topic",     topic_};
  CommandResult without = RunLifeline(stream, "", 60'000);
  ASSERT_EQ(without.exit_code, 0) << without.stderr_text;
  EXPECT_EQ(MetadataDebugLines(without.stderr_text), 0u) << without.stderr_text;

  std::vector<std::string> with_file = stream;
  with_file.insert(with_file.end(), {"--kafka-properties-file", props});
  CommandResult with = RunLifeline(with_file, "", 60'000);
  ASSERT_EQ(with.exit_code, 0) << with.stderr_text;
  EXPECT_GT(MetadataDebugLines(with.stderr_text), 0u) << with.stderr_text;
}

}  // namespace
}  // namespace lifeline
