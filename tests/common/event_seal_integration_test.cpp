// Payload encryption through the real binary: capture with a key keeps row values out of the spool
// and the topic; the replayer with the keys (after a rotation) makes the standby equal to the
// primary, and without the right key stops at the first sealed record having applied no row; a
// tampered record produced into the topic is reported at its partition and offset, never applied,
// and goes to lifeline.dead_letter with --dead-letter; gapcheck stream with the keys is clean and
// reports the tampered record at its position.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/devkafka.h"
#include "common/spool.h"
#include "tests/support/daemon.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

using namespace std::chrono_literals;
using testing::LifelineDaemon;
using testing::TableDigest;
using testing::TempDir;
using testing::Trim;
using testing::WaitFor;

// A string no generated value contains: found anywhere, a row value leaked.
constexpr const char* kMarker = "SEALMARK-7c1f0e";

class EventSealIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    kcat_ = testing::RequireProgram("kcat", "kcat");
    ASSERT_FALSE(kcat_.empty());
    kafka_ = testing::StartDevKafka(3);
    primary_ = testing::StartPostgres({.name = "primary"});
    standby_ = testing::StartPostgres({.name = "standby"});
    ASSERT_TRUE(kafka_ && primary_ && standby_);
    ASSERT_TRUE(kafka_->CreateTopic("calls", 3, 3).ok());
    testing::LoadReferenceSchema(*primary_, "app");
    testing::LoadReferenceSchema(*standby_, "app");
    std::filesystem::create_directory(tmp_.Sub("keys"));
    std::filesystem::create_directory(tmp_.Sub("wrong"));
  }

  std::string Key(const std::string& name) { return tmp_.Sub("keys/" + name + ".key"); }

  void Keygen(const std::string& path) {
    CommandResult r = testing::RunLifeline({"keygen", path});
    ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  }

  std::unique_ptr<LifelineDaemon> StartCapture(const std::vector<std::string>& keys) {
    std::vector<std::string> args = {"capture",
                                     primary_->ConnInfo("app"),
                                     "--spool",
                                     tmp_.Sub("spool"),
                                     "--kafka-brokers",
                                     kafka_->bootstrap_servers(),
                                     "--topic",
                                     "calls",
                                     "--heartbeat-interval",
                                     "200ms"};
    args.insert(args.begin() + 1, "--source");
    for (const auto& k : keys) {
      args.push_back("--encryption-key-file");
      args.push_back(k);
    }
    auto d = std::make_unique<LifelineDaemon>(args, tmp_.Sub("capture.log"));
    EXPECT_TRUE(d->Start());
    return d;
  }

  void Write(const std::string& tag, int rows) {
    auto r = primary_->Psql(
        "INSERT INTO emergency_requests (id, customer_name, phone_number, location_address) "
        "SELECT gen_random_uuid(), '" +
            std::string(kMarker) + " " + tag + " ' || g, '+44 " + kMarker +
            " ' || g, 'A1 southbound ' || g FROM generate_series(1, " + std::to_string(rows) +
            ") g; "
            "UPDATE emergency_requests SET notes = jsonb_build_object('m', '" +
            kMarker + "') WHERE customer_name LIKE '%" + tag +
            " 1%'; "
            "DELETE FROM emergency_requests WHERE customer_name LIKE '%" +
            tag + " 2%';",
        "app");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  // Waits until capture has spooled past the primary's current WAL position and shipped it all.
  void WaitShipped() {
    std::string lsn = Trim(*primary_->Psql("SELECT pg_current_wal_lsn()", "app"));
    ASSERT_TRUE(WaitFor(
        [&] {
          auto spool = Spool::OpenForRead(tmp_.Sub("spool"));
          return spool.ok() && (*spool)->last_complete_commit_lsn() > *Lsn::Parse(lsn) &&
                 (*spool)->GetCursor("shipper") >= (*spool)->last_complete_seq();
        },
        120s));
  }

  std::vector<std::string> ReplayArgs(const std::vector<std::string>& keys,
                                      std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"replay",
                                     "--target",
                                     standby_->ConnInfo("app"),
                                     "--kafka-brokers",
                                     kafka_->bootstrap_servers(),
                                     "--topic",
                                     "calls",
                                     "--gap-timeout",
                                     "3s",
                                     "--stop-at-end"};
    for (const auto& k : keys) {
      args.push_back("--encryption-key-file");
      args.push_back(k);
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  std::string StandbyRows() {
    return Trim(*standby_->Psql("SELECT count(*) FROM emergency_requests", "app"));
  }

  std::string Topic(const std::string& format) {
    auto topic = testing::ReadTopicWithKcat(kcat_, kafka_->bootstrap_servers(), "calls", format);
    EXPECT_TRUE(topic.has_value()) << "kcat could not read topic calls";
    return topic.value_or("");
  }

  std::string kcat_;
  TempDir tmp_;
  std::unique_ptr<DevKafkaCluster> kafka_;
  std::unique_ptr<LocalPostgres> primary_, standby_;
};

TEST_F(EventSealIntegration, SealedStreamCrossesKafkaAndOnlyTheKeysOpenIt) {
  Keygen(Key("2026-10"));
  // Capture seals with the first key; after a restart with a second key added, with the second.
  auto capture = StartCapture({Key("2026-10")});
  Write("october", 60);
  WaitShipped();
  ASSERT_EQ(capture->Stop(), 0) << capture->Log();
  Keygen(Key("2026-11"));
  capture = StartCapture({Key("2026-10"), Key("2026-11")});
  Write("november", 60);
  WaitShipped();
  ASSERT_EQ(capture->Stop(), 0) << capture->Log();
  auto primary_rows =
      Trim(*primary_->Psql("SELECT count(*) FROM emergency_requests WHERE customer_name LIKE '" +
                               std::string(kMarker) + "%'",
                           "app"));
  ASSERT_NE(primary_rows, "0");

  // The spool holds no row value in clear: not in any stored event, not in its files.
  uint64_t sealed_events = 0;
  std::set<std::string> key_ids;
  std::string last_bytes, last_sealed_bytes;
  uint64_t last_seq = 0;
  {
    auto spool = Spool::OpenForRead(tmp_.Sub("spool"));
    ASSERT_TRUE(spool.ok());
    last_seq = (*spool)->last_complete_seq();
    for (uint64_t next = 1; next <= last_seq;) {
      auto batch = (*spool)->Read(next, 1000);
      ASSERT_TRUE(batch.ok());
      if (batch->empty()) break;
      for (const auto& rec : *batch) {
        EXPECT_EQ(rec.bytes.find(kMarker), std::string::npos) << "seq " << rec.seq;
        auto ev = ParseEvent(rec);
        ASSERT_TRUE(ev.ok());
        EXPECT_FALSE(ev->has_after() || ev->has_before()) << "seq " << rec.seq << " in clear";
        if (ev->has_sealed()) {
          ++sealed_events;
          key_ids.insert(ev->sealed().key_id());
          last_sealed_bytes = rec.bytes;
        }
        last_bytes = rec.bytes;
        next = rec.seq + 1;
      }
    }
  }
  EXPECT_GE(sealed_events, 120u);
  EXPECT_EQ(key_ids, (std::set<std::string>{"2026-10", "2026-11"}));
  for (const auto& entry : std::filesystem::recursive_directory_iterator(tmp_.Sub("spool"))) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(content.find(kMarker), std::string::npos) << entry.path();
  }
  // spool inspect shows sealed events by key id; with the keys it shows their rows.
  CommandResult plain =
      testing::RunLifeline({"spool", "inspect", "--spool", tmp_.Sub("spool"), "--format", "json"});
  ASSERT_EQ(plain.exit_code, 0) << plain.stderr_text;
  EXPECT_EQ(plain.stdout_text.find(kMarker), std::string::npos);
  EXPECT_NE(plain.stdout_text.find("\"sealed\":\"2026-11\""), std::string::npos);
  CommandResult opened = testing::RunLifeline({"spool", "inspect", "--spool", tmp_.Sub("spool"),
                                               "--encryption-key-file", Key("2026-10"),
                                               "--encryption-key-file", Key("2026-11")});
  ASSERT_EQ(opened.exit_code, 0) << opened.stderr_text;
  EXPECT_NE(opened.stdout_text.find("key=(id="), std::string::npos);
  EXPECT_EQ(opened.stdout_text.find("sealed (key"), std::string::npos);

  // The topic: no row value, a key_id header on each sealed record, keys still the row ids.
  std::string topic = Topic("%p|%k|%h|%s\n");
  EXPECT_EQ(topic.find(kMarker), std::string::npos);
  EXPECT_NE(topic.find("key_id=2026-10"), std::string::npos);
  EXPECT_NE(topic.find("key_id=2026-11"), std::string::npos);
  std::string some_id = Trim(*primary_->Psql(
      "SELECT id FROM emergency_requests WHERE customer_name LIKE '%november%' LIMIT 1", "app"));
  EXPECT_NE(topic.find("|" + some_id + "|"), std::string::npos) << "record key in clear";

  // gapcheck stream reads continuity without a key, and with the keys opens every record.
  CommandResult gap_plain = testing::RunLifeline(
      {"gapcheck", "stream", "--kafka-brokers", kafka_->bootstrap_servers(), "--topic", "calls"});
  EXPECT_EQ(gap_plain.exit_code, 0) << gap_plain.stdout_text << gap_plain.stderr_text;
  CommandResult gap_keys = testing::RunLifeline(
      {"gapcheck", "stream", "--kafka-brokers", kafka_->bootstrap_servers(), "--topic", "calls",
       "--encryption-key-file", Key("2026-10"), "--encryption-key-file", Key("2026-11")});
  EXPECT_EQ(gap_keys.exit_code, 0) << gap_keys.stdout_text << gap_keys.stderr_text;

  // Without a key, or with a different key under the same id, the replayer stops at the first
  // sealed record, naming it, having applied no row.
  CommandResult none = testing::RunLifeline(ReplayArgs({}), "", 120'000);
  EXPECT_EQ(none.exit_code, 2) << none.stderr_text;
  EXPECT_NE(none.stderr_text.find("key id '2026-10'"), std::string::npos) << none.stderr_text;
  EXPECT_NE(none.stderr_text.find("topic calls partition"), std::string::npos) << none.stderr_text;
  EXPECT_EQ(StandbyRows(), "0");
  const std::string wrong = tmp_.Sub("wrong/2026-10.key");
  Keygen(wrong);
  CommandResult bad = testing::RunLifeline(ReplayArgs({wrong, Key("2026-11")}), "", 120'000);
  EXPECT_EQ(bad.exit_code, 2) << bad.stderr_text;
  EXPECT_NE(bad.stderr_text.find("authentication failed"), std::string::npos) << bad.stderr_text;
  EXPECT_NE(bad.stderr_text.find("topic calls partition"), std::string::npos) << bad.stderr_text;
  EXPECT_EQ(StandbyRows(), "0");
  CommandResult seal_only = testing::RunLifeline(ReplayArgs({Key("2026-11")}), "", 120'000);
  EXPECT_EQ(seal_only.exit_code, 2) << seal_only.stderr_text;
  EXPECT_EQ(StandbyRows(), "0");

  // With both keys the standby becomes the primary.
  const std::vector<std::string> keys = {Key("2026-10"), Key("2026-11")};
  CommandResult good = testing::RunLifeline(ReplayArgs(keys), "", 180'000);
  ASSERT_EQ(good.exit_code, 0) << good.stderr_text;
  EXPECT_EQ(TableDigest(*standby_), TableDigest(*primary_));

  // A tampered record: the next seq, a row blob with one byte flipped, produced into partition 0.
  v1::ChangeEvent forged;
  ASSERT_TRUE(forged.ParseFromString(last_sealed_bytes));
  v1::ChangeEvent last;
  ASSERT_TRUE(last.ParseFromString(last_bytes));
  EventHash prev = HashEventBytes(last_bytes);
  forged.set_seq(last_seq + 1);
  forged.set_prev_hash(prev.data(), prev.size());
  forged.set_commit_lsn(last.commit_lsn() + 64);
  forged.set_event_lsn(last.commit_lsn() + 32);
  forged.set_index_in_txn(0);
  forged.set_last_in_txn(true);
  forged.set_txn_event_count(1);
  (*forged.mutable_sealed()->mutable_ciphertext())[3] ^= 0x20;
  const std::string forged_path = tmp_.Sub("forged.bin");
  std::ofstream(forged_path, std::ios::binary) << forged.SerializeAsString();
  CommandSpec produce;
  produce.argv = {kcat_, "-P", "-b",       kafka_->bootstrap_servers(), "-t", "calls",
                  "-p",  "0",  forged_path};
  auto produced = RunCommand(produce);
  ASSERT_TRUE(produced.ok());
  ASSERT_EQ(produced->exit_code, 0) << produced->stderr_text;
  std::string offsets = Topic("%p %o\n");
  int64_t forged_offset = -1;
  std::istringstream lines(offsets);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("0 ", 0) == 0)
      forged_offset = std::max<int64_t>(forged_offset, std::stoll(line.substr(2)));
  }
  ASSERT_GE(forged_offset, 0);
  const std::string where = "topic calls partition 0 offset " + std::to_string(forged_offset);

  CommandResult stopped = testing::RunLifeline(ReplayArgs(keys), "", 120'000);
  EXPECT_EQ(stopped.exit_code, 2) << stopped.stderr_text;
  EXPECT_NE(stopped.stderr_text.find(where), std::string::npos) << stopped.stderr_text;
  EXPECT_NE(stopped.stderr_text.find("authentication failed"), std::string::npos);
  EXPECT_EQ(TableDigest(*standby_), TableDigest(*primary_));

  CommandResult gap_forged = testing::RunLifeline(
      {"gapcheck", "stream", "--kafka-brokers", kafka_->bootstrap_servers(), "--topic", "calls",
       "--encryption-key-file", Key("2026-10"), "--encryption-key-file", Key("2026-11")});
  EXPECT_EQ(gap_forged.exit_code, 1) << gap_forged.stdout_text << gap_forged.stderr_text;
  EXPECT_NE(gap_forged.stdout_text.find("partition 0 offset " + std::to_string(forged_offset)),
            std::string::npos)
      << gap_forged.stdout_text;
  EXPECT_NE(gap_forged.stdout_text.find("authentication failed"), std::string::npos)
      << gap_forged.stdout_text;

  CommandResult lettered = testing::RunLifeline(ReplayArgs(keys, {"--dead-letter"}), "", 120'000);
  EXPECT_EQ(lettered.exit_code, 0) << lettered.stderr_text;
  EXPECT_EQ(TableDigest(*standby_), TableDigest(*primary_));
  auto dead = standby_->Psql(
      "SELECT count(*) || ':' || min(partition) || ':' || min(\"offset\") FROM "
      "lifeline.dead_letter",
      "app");
  ASSERT_TRUE(dead.ok()) << dead.status().ToString();
  EXPECT_EQ(Trim(*dead), "1:0:" + std::to_string(forged_offset));
}

}  // namespace
}  // namespace lifeline
