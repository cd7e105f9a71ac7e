// The `lifeline` executable: subcommands listed, bad input gives exit 2 with a clear message,
// spool stats/inspect output formats, devkafka as a daemon.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/spool.h"
#include "tests/support/sample_events.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

using testing::RunLifeline;

TEST(CliTest, HelpListsTheSubcommands) {
  CommandResult r = RunLifeline({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* sub : {"spool", "devkafka"}) {
    EXPECT_NE(r.stdout_text.find(sub), std::string::npos) << sub << "\n" << r.stdout_text;
  }
}

TEST(CliTest, BadInputExitsTwoNamingTheProblem) {
  CommandResult r = RunLifeline({"spool", "stats", "--spool", "/tmp", "--bogus"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("--bogus"), std::string::npos) << r.stderr_text;

  r = RunLifeline({"spool", "stats", "--spool", "/nonexistent/spool"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("/nonexistent/spool does not exist"), std::string::npos)
      << r.stderr_text;

  r = RunLifeline({"spool", "stats", "--spool", "/etc"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("not a lifeline spool"), std::string::npos) << r.stderr_text;

  r = RunLifeline({"--log-level", "loud", "spool", "stats", "--spool", "/tmp"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("unknown log level 'loud'"), std::string::npos) << r.stderr_text;

  r = RunLifeline({"devkafka", "--topic", "events:zero"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("malformed --topic 'events:zero'"), std::string::npos)
      << r.stderr_text;
}

class SpoolCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto spool = Spool::OpenForWrite(tmp_.Sub("spool"));
    ASSERT_TRUE(spool.ok()) << spool.status().ToString();
    for (uint32_t xid = 1; xid <= 4; ++xid) {
      auto txn = testing::SampleTransaction(xid, 3);
      ASSERT_TRUE((*spool)->Append(txn).ok());
    }
    ASSERT_TRUE((*spool)->SetCursor("shipper", 6).ok());
  }
  testing::TempDir tmp_;
};

TEST_F(SpoolCliTest, StatsJson) {
  CommandResult r =
      RunLifeline({"spool", "stats", "--spool", tmp_.Sub("spool"), "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("\"first_seq\":1,\"last_seq\":12,\"last_commit_lsn\":\"0/1004000\""),
            std::string::npos)
      << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("\"events\":12"), std::string::npos);
  EXPECT_NE(r.stdout_text.find("\"cursors\":{\"shipper\":6}"), std::string::npos);
}

TEST_F(SpoolCliTest, InspectJsonLinesFromASeq) {
  CommandResult r = RunLifeline({"spool", "inspect", "--spool", tmp_.Sub("spool"), "--from-seq",
                                 "5", "--limit", "3", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  std::vector<std::string> lines;
  std::istringstream in(r.stdout_text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u) << r.stdout_text;
  EXPECT_EQ(lines[0].rfind("{\"seq\":5,\"op\":\"insert\"", 0), 0u) << lines[0];
  EXPECT_EQ(lines[2].rfind("{\"seq\":7,", 0), 0u) << lines[2];
  for (const auto& l : lines) {
    for (const char* key :
         {"\"schema\":", "\"table\":", "\"xid\":", "\"commit_lsn\":", "\"commit_time\":",
          "\"key\":", "\"before\":", "\"after\":", "\"unchanged\":"}) {
      EXPECT_NE(l.find(key), std::string::npos) << key << " in " << l;
    }
  }
  r = RunLifeline({"spool", "inspect", "--spool", tmp_.Sub("spool"), "--limit", "1"});
  EXPECT_EQ(r.stdout_text.rfind("seq=1 insert public.emergency_requests", 0), 0u) << r.stdout_text;
  r = RunLifeline({"spool", "verify", "--spool", tmp_.Sub("spool")});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("verified"), std::string::npos);
}

TEST(CliIntegration, DevKafkaDaemonServesKcatAndStopsOnSigterm) {
  std::string kcat = testing::RequireProgram("kcat", "kcat");
  ASSERT_FALSE(kcat.empty());
  testing::TempDir tmp;
  std::string boot_file = tmp.Sub("bootstrap");
  CommandSpec spec;
  spec.argv = {testing::LifelineBinary(), "devkafka", "--brokers", "3", "--topic", "calls:2",
               "--bootstrap-file",        boot_file};
  auto child = ChildProcess::Start(spec, tmp.Sub("devkafka.log"));
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  std::string bootstrap;
  for (int i = 0; i < 200 && bootstrap.empty(); ++i) {
    std::ifstream in(boot_file);
    std::getline(in, bootstrap);
    if (bootstrap.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(bootstrap.empty()) << "devkafka did not write its bootstrap file";
  CommandSpec meta;
  meta.argv = {kcat, "-L", "-b", bootstrap, "-t", "calls"};
  meta.timeout = std::chrono::milliseconds(20'000);
  auto r = RunCommand(meta);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0) << r->stderr_text;
  EXPECT_NE(r->stdout_text.find("3 brokers"), std::string::npos) << r->stdout_text;
  EXPECT_NE(r->stdout_text.find("2 partitions"), std::string::npos) << r->stdout_text;
  auto code = child->Stop(SIGTERM, std::chrono::milliseconds(10'000));
  ASSERT_TRUE(code.ok()) << code.status().ToString();
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace lifeline
