// YAML config through CLI11 (flags override), secrets, durations.
#include "common/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

#include "tests/support/test_env.h"

namespace lifeline {
namespace {

struct Parsed {
  std::string source;
  std::string spool;
  std::vector<std::string> tables;
  std::vector<std::string> props;
  int batch = 0;
};

std::string ParseWith(const std::string& yaml, std::vector<std::string> args, Parsed* out) {
  testing::TempDir tmp;
  std::string path = tmp.Sub("c.yaml");
  std::ofstream(path) << yaml;
  CLI::App app;
  AddConfigFileOption(app);
  app.add_option("--source", out->source);
  app.add_option("--spool", out->spool);
  app.add_option("--table", out->tables);
  app.add_option("--kafka-property", out->props);
  app.add_option("--batch-size", out->batch);
  args.insert(args.begin(), {"prog", "--config", path});
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
  return "";
}

TEST(ConfigTest, YamlFillsOptionsAndFlagsOverride) {
  Parsed p;
  std::string err = ParseWith(
      "source: host=a dbname=b\nspool: /var/spool\ntable: [public.t1, public.t2]\n"
      "kafka_property:\n  security.protocol: SASL_SSL\n  acks: all\nbatch-size: 500\n",
      {"--spool", "/override"}, &p);
  ASSERT_EQ(err, "");
  EXPECT_EQ(p.source, "host=a dbname=b");
  EXPECT_EQ(p.spool, "/override");
  EXPECT_EQ(p.tables, (std::vector<std::string>{"public.t1", "public.t2"}));
  EXPECT_EQ(p.props, (std::vector<std::string>{"security.protocol=SASL_SSL", "acks=all"}));
  EXPECT_EQ(p.batch, 500);
}

TEST(ConfigTest, UnknownKeysAndBadYamlAreErrorsNamingTheProblem) {
  Parsed p;
  std::string err = ParseWith("sourse: x\n", {}, &p);
  EXPECT_NE(err.find("sourse"), std::string::npos) << err;
  err = ParseWith("source: [unclosed\n", {}, &p);
  EXPECT_NE(err.find("YAML"), std::string::npos) << err;
  err = ParseWith("batch-size: lots\n", {}, &p);
  EXPECT_NE(err, "");
}

// Found by fuzz/config_fuzz: a key or list item that is itself a list or map made yaml-cpp throw
// an exception no command catches, instead of a config error (exit code 2).
TEST(ConfigTest, NestedKeysAndValuesAreConfigErrorsNamingTheLine) {
  Parsed p;
  std::string err = ParseWith("source: x\n[a, b]: c\n", {}, &p);
  EXPECT_NE(err.find("line 2"), std::string::npos) << err;
  EXPECT_NE(err.find("option name"), std::string::npos) << err;
  err = ParseWith(": ratio\n", {}, &p);
  EXPECT_NE(err.find("option name"), std::string::npos) << err;
  err = ParseWith("table: [public.t1, {a: b}]\n", {}, &p);
  EXPECT_NE(err.find("'table' takes plain values"), std::string::npos) << err;
  err = ParseWith("kafka-property:\n  acks: [all]\n", {}, &p);
  EXPECT_NE(err.find("'kafka-property' takes plain values"), std::string::npos) << err;
}

TEST(ConfigTest, SecretsComeFromTheEnvironmentOrAFile) {
  testing::TempDir tmp;
  std::ofstream(tmp.Sub("pw")) << "s3cret\n";
  setenv("LIFELINE_TEST_SECRET", "from-env", 1);
  EXPECT_EQ(*ReadSecret("LIFELINE_TEST_SECRET", tmp.Sub("pw")), "from-env");
  unsetenv("LIFELINE_TEST_SECRET");
  EXPECT_EQ(*ReadSecret("LIFELINE_TEST_SECRET", tmp.Sub("pw")), "s3cret");
  EXPECT_EQ(*ReadSecret("LIFELINE_TEST_SECRET", ""), "");
  auto missing = ReadSecret("", tmp.Sub("nope"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().ExitCode(), 2);
}

TEST(ConfigTest, Durations) {
  EXPECT_EQ(*ParseDurationMs("500ms"), 500);
  EXPECT_EQ(*ParseDurationMs("1s"), 1000);
  EXPECT_EQ(*ParseDurationMs("2m"), 120'000);
  EXPECT_EQ(*ParseDurationMs("24h"), 86'400'000);
  EXPECT_EQ(*ParseDurationMs("1.5s"), 1500);
  EXPECT_FALSE(ParseDurationMs("fast").ok());
  EXPECT_FALSE(ParseDurationMs("5 parsecs").ok());
  EXPECT_FALSE(ParseDurationMs("").ok());
  // Found by fuzz/config_fuzz: past 2^63 ms the conversion to int64 was undefined.
  auto huge = ParseDurationMs(std::string(120, '7') + "d");
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("too long"), std::string::npos);
  EXPECT_EQ(huge.status().ExitCode(), 2);
  EXPECT_EQ(*ParseDurationMs("36500d"), 36500LL * 86'400'000);
}

}  // namespace
}  // namespace lifeline
