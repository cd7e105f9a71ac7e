// The whole pipeline through Kafka: primary -> capture+shipper -> devkafka -> replay -> standby,
// on one and on three partitions; a record that does not parse stops the replayer at its offset,
// and with --dead-letter is stored and passed.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "common/devkafka.h"
#include "tests/support/daemon.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

using testing::TableDigest;
using testing::Trim;

using testing::LifelineDaemon;
using testing::TempDir;
using testing::WaitFor;
using namespace std::chrono_literals;

class KafkaReplayIntegration : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    kafka_ = testing::StartDevKafka(3);
    primary_ = testing::StartPostgres({.name = "primary"});
    standby_ = testing::StartPostgres({.name = "standby"});
    ASSERT_TRUE(kafka_ && primary_ && standby_);
    ASSERT_TRUE(kafka_->CreateTopic("calls", GetParam(), 3).ok());
    testing::LoadReferenceSchema(*primary_, "app");
    testing::LoadReferenceSchema(*standby_, "app");
  }

  std::unique_ptr<LifelineDaemon> Start(std::vector<std::string> args, const std::string& log) {
    auto d = std::make_unique<LifelineDaemon>(args, tmp_.Sub(log));
    EXPECT_TRUE(d->Start());
    return d;
  }
  std::unique_ptr<LifelineDaemon> StartCapture() {
    return Start({"capture", "--source", primary_->ConnInfo("app"), "--spool", tmp_.Sub("spool"),
                  "--heartbeat-interval", "200ms", "--kafka-brokers", kafka_->bootstrap_servers(),
                  "--topic", "calls"},
                 "capture.log");
  }
  std::vector<std::string> ReplayArgs(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"replay",
                                     "--target",
                                     standby_->ConnInfo("app"),
                                     "--kafka-brokers",
                                     kafka_->bootstrap_servers(),
                                     "--topic",
                                     "calls",
                                     "--gap-timeout",
                                     "3s"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  void Load(const std::string& duration) {
    CommandResult r = testing::RunLifeline(
        {"load", "--target", primary_->ConnInfo("app"), "--rate", "300", "--duration", duration},
        "", 300'000);
    ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  }
  bool StandbyPast(const std::string& lsn) {
    auto r = standby_->Psql("SELECT coalesce(max(last_commit_lsn), '0/0') > '" + lsn +
                                "'::pg_lsn FROM lifeline.replay_position",
                            "app");
    return r.ok() && Trim(*r) == "t";
  }

  TempDir tmp_;
  std::unique_ptr<DevKafkaCluster> kafka_;
  std::unique_ptr<LocalPostgres> primary_, standby_;
};

TEST_P(KafkaReplayIntegration, StandbyEqualsPrimaryThroughKafka) {
  auto capture = StartCapture();
  auto replay = Start(ReplayArgs(), "replay.log");
  Load("6s");
  std::string lsn = Trim(*primary_->Psql("SELECT pg_current_wal_lsn()", "app"));
  ASSERT_TRUE(WaitFor([&] { return StandbyPast(lsn); }, 120s)) << replay->Log();
  EXPECT_EQ(TableDigest(*standby_), TableDigest(*primary_));
  // Restarting the replayer resumes from the offsets stored in the target.
  EXPECT_EQ(replay->Stop(), 0) << replay->Log();
  Load("2s");
  replay = Start(ReplayArgs(), "replay.log");
  lsn = Trim(*primary_->Psql("SELECT pg_current_wal_lsn()", "app"));
  ASSERT_TRUE(WaitFor([&] { return StandbyPast(lsn); }, 120s)) << replay->Log();
  EXPECT_EQ(TableDigest(*standby_), TableDigest(*primary_));
  auto partitions =
      standby_->Psql("SELECT count(*) FROM lifeline.replay_position WHERE stream = 'calls'", "app");
  EXPECT_EQ(Trim(*partitions), std::to_string(GetParam()));
  EXPECT_EQ(replay->Stop(), 0);
  EXPECT_EQ(capture->Stop(), 0);
}

INSTANTIATE_TEST_SUITE_P(Partitions, KafkaReplayIntegration, ::testing::Values(1, 3));

class PoisonIntegration : public KafkaReplayIntegration {};

TEST_P(PoisonIntegration, APoisonRecordStopsAtItsOffsetOrIsDeadLettered) {
  std::string kcat = testing::RequireProgram("kcat", "kcat");
  ASSERT_FALSE(kcat.empty());
  auto capture = StartCapture();
  Load("2s");
  std::string lsn = Trim(*primary_->Psql("SELECT pg_current_wal_lsn()", "app"));
  // Plant a record that is not a ChangeEvent, then more load behind it.
  ASSERT_TRUE(WaitFor(
      [&] {
        CommandSpec count;
        count.argv = {kcat, "-C",    "-b", kafka_->bootstrap_servers(),
                      "-t", "calls", "-o", "beginning",
                      "-e", "-q",    "-f", "%o\n"};
        auto r = RunCommand(count);
        return r.ok() && std::count(r->stdout_text.begin(), r->stdout_text.end(), '\n') > 300;
      },
      60s));
  capture->Stop();
  CommandSpec plant;
  plant.argv = {kcat, "-P", "-b", kafka_->bootstrap_servers(), "-t", "calls", "-p", "0"};
  plant.stdin_text = "this is not a change event\n";
  auto planted = RunCommand(plant);
  ASSERT_TRUE(planted.ok());
  ASSERT_EQ(planted->exit_code, 0) << planted->stderr_text;
  capture = StartCapture();
  Load("1s");
  lsn = Trim(*primary_->Psql("SELECT pg_current_wal_lsn()", "app"));

  CommandResult r =
      testing::RunLifeline(ReplayArgs({"--stop-at-end", "--record-position"}), "", 120'000);
  EXPECT_EQ(r.exit_code, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("topic calls partition 0 offset"), std::string::npos)
      << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("--dead-letter"), std::string::npos);

  auto replay = Start(ReplayArgs({"--dead-letter"}), "replay.log");
  ASSERT_TRUE(WaitFor([&] { return StandbyPast(lsn); }, 120s)) << replay->Log();
  EXPECT_EQ(TableDigest(*standby_), TableDigest(*primary_));
  auto dead = standby_->Psql(
      "SELECT count(*) || ':' || min(convert_from(raw, 'UTF8')) FROM lifeline.dead_letter", "app");
  EXPECT_EQ(Trim(*dead), "1:this is not a change event");
  EXPECT_EQ(replay->Stop(), 0);
  EXPECT_EQ(capture->Stop(), 0);
}

INSTANTIATE_TEST_SUITE_P(OnePartition, PoisonIntegration, ::testing::Values(1));

}  // namespace
}  // namespace lifeline
