// The whole pipeline through Kafka: primary -> capture+shipper -> devkafka -> replay -> standby,
// on one and on three partitions; a record that does not parse stops the replayer at its offset,
// and with --dead-letter is stored and passed; --from-time seeks instead of scanning; all brokers
// down mid-load loses nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <thread>

#include "common/devkafka.h"
#include "common/event_format.h"
#include "common/spool.h"
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
  std::unique_ptr<LifelineDaemon> StartCapture(const std::string& heartbeat = "200ms") {
    return Start({"capture", "--source", primary_->ConnInfo("app"), "--spool", tmp_.Sub("spool"),
                  "--heartbeat-interval", heartbeat, "--kafka-brokers", kafka_->bootstrap_servers(),
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
  // Waits until capture's shipper has delivered every event the spool holds past `lsn`.
  bool WaitShipped(const std::string& lsn) {
    return WaitFor(
        [&] {
          auto spool = Spool::OpenForRead(tmp_.Sub("spool"));
          return spool.ok() && (*spool)->last_complete_commit_lsn() > *Lsn::Parse(lsn) &&
                 (*spool)->GetCursor("shipper") >= (*spool)->last_complete_seq();
        },
        120s);
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
        auto offsets =
            testing::ReadTopicWithKcat(kcat, kafka_->bootstrap_servers(), "calls", "%o\n");
        return offsets && std::count(offsets->begin(), offsets->end(), '\n') > 300;
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
  // It stopped after everything before the poison record, its position included: the seq of the
  // record just before it (one partition).
  std::smatch at;
  ASSERT_TRUE(std::regex_search(r.stderr_text, at, std::regex("partition 0 offset ([0-9]+)")));
  const std::string before = std::to_string(std::stoll(at[1].str()) - 1);
  auto records = testing::ReadTopicWithKcat(kcat, kafka_->bootstrap_servers(), "calls", "%o %h\n");
  ASSERT_TRUE(records.has_value());
  std::smatch seq;
  ASSERT_TRUE(std::regex_search(*records, seq, std::regex("(^|\n)" + before + " seq=([0-9]+)")))
      << *records;
  EXPECT_EQ(Trim(*standby_->Psql("SELECT max(last_seq) FROM lifeline.replay_position", "app")),
            seq[2].str())
      << r.stderr_text;

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

// A number from the replayer's one-line JSON summary, or -1.
int64_t JsonNumber(const std::string& json, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(json, m, std::regex("\"" + name + "\":(-?[0-9]+)"))) return -1;
  return std::stoll(m[1].str());
}

class FromTimeIntegration : public KafkaReplayIntegration {};

TEST_P(FromTimeIntegration, FromTimeSeeksToTheWindowAndAppliesExactlyIt) {
  auto capture = StartCapture();
  Load("6s");
  std::string t = Trim(*primary_->Psql("SELECT clock_timestamp()::text", "app"));
  std::this_thread::sleep_for(50ms);
  Load("1s");
  std::string lsn = Trim(*primary_->Psql("SELECT pg_current_wal_lsn()", "app"));
  ASSERT_TRUE(WaitShipped(lsn));
  EXPECT_EQ(capture->Stop(), 0);

  // What the window is, from the spool the topic was shipped from (up to the shipper's cursor: the
  // stopped shipper had every event up to it acknowledged, and none after it): every event from
  // the first one committed after t on, and how many of them change rows.
  auto t_us = ParseTimestampUs(t);
  ASSERT_TRUE(t_us.ok()) << t;
  auto spool = Spool::OpenForRead(tmp_.Sub("spool"));
  ASSERT_TRUE(spool.ok());
  uint64_t total = 0, window = 0, window_rows = 0, first_seq = 0;
  const uint64_t shipped = (*spool)->GetCursor("shipper");
  for (uint64_t next = 1; next <= shipped;) {
    auto batch = (*spool)->Read(next, 5000);
    ASSERT_TRUE(batch.ok());
    if (batch->empty()) break;
    for (const auto& rec : *batch) {
      if (rec.seq > shipped) break;
      auto ev = ParseEvent(rec);
      ASSERT_TRUE(ev.ok());
      ++total;
      if (first_seq == 0 && ev->commit_time_us() > *t_us) first_seq = ev->seq();
      if (first_seq != 0) {
        ++window;
        if (ev->op() == v1::OP_INSERT || ev->op() == v1::OP_UPDATE || ev->op() == v1::OP_DELETE) {
          ++window_rows;
        }
      }
      next = rec.seq + 1;
    }
  }
  ASSERT_GT(window_rows, 100u);
  ASSERT_GT(total, 4 * window) << "the window should be a small part of the topic";

  CommandResult r =
      testing::RunLifeline(ReplayArgs({"--from-time", t, "--stop-at-end", "--format", "json",
                                       "--audit-table", "public.emergency_requests_audit"}),
                           "", 120'000);
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(JsonNumber(r.stdout_text, "events"), static_cast<int64_t>(window)) << r.stdout_text;
  EXPECT_EQ(JsonNumber(r.stdout_text, "first_seq"), static_cast<int64_t>(first_seq));
  EXPECT_EQ(JsonNumber(r.stdout_text, "last_seq"), static_cast<int64_t>(shipped));
  auto audit = standby_->Psql("SELECT count(*) FROM emergency_requests_audit", "app");
  EXPECT_EQ(Trim(*audit), std::to_string(window_rows)) << "each row change after t, once";
  // It sought the window (a binary search here: devkafka answers offsets-for-times with the end
  // offset) instead of reading the topic from its start.
  int64_t read = JsonNumber(r.stdout_text, "records_read");
  EXPECT_GE(read, static_cast<int64_t>(window));
  EXPECT_LT(read, static_cast<int64_t>(window + 60 * GetParam() + 20)) << r.stdout_text;
  EXPECT_NE(r.stderr_text.find("binary search"), std::string::npos) << r.stderr_text;
  // A window replay does not move the daemon's position.
  auto pos = standby_->Psql("SELECT count(*) FROM lifeline.replay_position", "app");
  EXPECT_EQ(Trim(*pos), "0");

  // A start outside what the topic holds says what it holds.
  r = testing::RunLifeline(
      ReplayArgs({"--from-time", "2099-01-01 00:00:00", "--stop-at-end", "--dry-run"}), "", 60'000);
  EXPECT_EQ(r.exit_code, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("outside what topic calls holds (seq 1.."), std::string::npos)
      << r.stderr_text;
  r = testing::RunLifeline(ReplayArgs({"--from-offset", "0:99999999", "--stop-at-end"}), "",
                           60'000);
  EXPECT_EQ(r.exit_code, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("offsets 0:0.."), std::string::npos) << r.stderr_text;
}

INSTANTIATE_TEST_SUITE_P(Partitions, FromTimeIntegration, ::testing::Values(1, 3));

class BrokerOutageIntegration : public KafkaReplayIntegration {};

TEST_P(BrokerOutageIntegration, AllBrokersDownMidLoadLosesNothing) {
  auto capture = StartCapture();
  auto replay = Start(ReplayArgs(), "replay.log");
  std::thread load([&] { Load("10s"); });
  std::this_thread::sleep_for(3s);
  for (int id = 1; id <= kafka_->broker_count(); ++id) {
    EXPECT_TRUE(kafka_->SetBrokerDown(id).ok());
  }
  std::this_thread::sleep_for(4s);
  for (int id = 1; id <= kafka_->broker_count(); ++id) {
    EXPECT_TRUE(kafka_->SetBrokerUp(id).ok());
  }
  load.join();
  std::string lsn = Trim(*primary_->Psql("SELECT pg_current_wal_lsn()", "app"));
  ASSERT_TRUE(WaitFor([&] { return StandbyPast(lsn); }, 180s)) << replay->Log();
  EXPECT_EQ(TableDigest(*standby_), TableDigest(*primary_));
  EXPECT_TRUE(replay->running()) << "the replayer must ride out a broker outage";
  // It heard the outage (librdkafka reports it outside the message stream), which is what holds
  // gap detection back until the brokers answer again.
  EXPECT_NE(replay->Log().find("replay: Kafka: "), std::string::npos) << replay->Log();
  EXPECT_EQ(replay->Stop(), 0) << replay->Log();
  EXPECT_EQ(capture->Stop(), 0);
}

INSTANTIATE_TEST_SUITE_P(ThreePartitions, BrokerOutageIntegration, ::testing::Values(3));

}  // namespace
}  // namespace lifeline
