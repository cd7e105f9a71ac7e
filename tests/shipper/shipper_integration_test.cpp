// shipper against devkafka (3 in-process mock brokers) with capture on a real PostgreSQL 15: every
// spooled event reaches the topic in order through broker outages, produce errors, leader moves,
// kill -9 and a full spool; the topic is read back with kcat, an independent client.
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/lsn.h"
#include "common/spool.h"
#include "tests/support/daemon.h"
#include "tests/support/sample_events.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

using testing::Trim;

using testing::LifelineDaemon;
using testing::TempDir;
using testing::WaitFor;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

// Kafka's Utils.murmur2 (the Java client's default partitioner), to check that keys land where a
// Java producer would put them.
int32_t JavaPartition(const std::string& key, int partitions) {
  const uint32_t m = 0x5bd1e995;
  const size_t len = key.size();
  const auto* d = reinterpret_cast<const uint8_t*>(key.data());
  uint32_t h = 0x9747b28cu ^ static_cast<uint32_t>(len);
  for (size_t i = 0; i + 4 <= len; i += 4) {
    uint32_t k = d[i] | (d[i + 1] << 8) | (d[i + 2] << 16) | (uint32_t{d[i + 3]} << 24);
    k *= m;
    k ^= k >> 24;
    k *= m;
    h *= m;
    h ^= k;
  }
  size_t tail = len & ~size_t{3};
  switch (len % 4) {
    case 3:
      h ^= uint32_t{d[tail + 2]} << 16;
      [[fallthrough]];
    case 2:
      h ^= uint32_t{d[tail + 1]} << 8;
      [[fallthrough]];
    case 1:
      h ^= d[tail];
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<int32_t>((h & 0x7fffffffu) % static_cast<uint32_t>(partitions));
}

// One record as kcat prints it.
struct TopicRecord {
  int partition = -1;
  int64_t offset = -1;
  std::optional<std::string> key;  // nullopt: a null key
  int64_t timestamp_ms = 0;
  std::map<std::string, std::string> headers;
  size_t size = 0;
  uint64_t seq = 0;  // from the seq header
};

// The whole topic, read with kcat, in (partition, offset) order.
std::vector<TopicRecord> ReadTopic(const std::string& brokers, const std::string& topic) {
  std::vector<TopicRecord> out;
  if (testing::RequireProgram("kcat", "kcat").empty()) return out;
  CommandSpec spec;
  spec.argv = {"kcat",
               "-C",
               "-b",
               brokers,
               "-t",
               topic,
               "-o",
               "beginning",
               "-e",
               "-q",
               "-Z",
               "-f",
               "%p|%o|%k|%T|%h|%S\n"};
  spec.timeout = 60s;
  auto r = RunCommand(spec);
  if (!r.ok() || r->exit_code != 0) {
    ADD_FAILURE() << "kcat failed: " << (r.ok() ? r->stderr_text : r.status().ToString());
    return out;
  }
  std::istringstream in(r->stdout_text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto f = Split(line, '|');
    if (f.size() != 6) {
      ADD_FAILURE() << "unexpected kcat line: " << line;
      continue;
    }
    TopicRecord rec;
    rec.partition = std::stoi(f[0]);
    rec.offset = std::stoll(f[1]);
    if (f[2] != "NULL") rec.key = f[2];
    rec.timestamp_ms = std::stoll(f[3]);
    for (const auto& kv : Split(f[4], ',')) {
      size_t eq = kv.find('=');
      if (eq != std::string::npos) rec.headers[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    rec.size = std::stoul(f[5]);
    auto seq = rec.headers.find("seq");
    if (seq == rec.headers.end()) {
      ADD_FAILURE() << "record without a seq header: " << line;
      continue;
    }
    rec.seq = std::stoull(seq->second);
    out.push_back(std::move(rec));
  }
  std::sort(out.begin(), out.end(), [](const TopicRecord& a, const TopicRecord& b) {
    return std::tie(a.partition, a.offset) < std::tie(b.partition, b.offset);
  });
  return out;
}

struct Spooled {
  v1::ChangeEvent ev;
  size_t size = 0;
};

std::map<uint64_t, Spooled> ReadSpool(const std::string& dir) {
  std::map<uint64_t, Spooled> out;
  auto spool = Spool::OpenForRead(dir);
  if (!spool.ok()) {
    ADD_FAILURE() << spool.status().ToString();
    return out;
  }
  uint64_t next = 1;
  for (int i = 0; i < 100'000; ++i) {
    auto batch = (*spool)->Read(next, 10'000);
    if (!batch.ok() || batch->empty()) break;
    for (const auto& rec : *batch) {
      auto ev = ParseEvent(rec);
      EXPECT_TRUE(ev.ok()) << ev.status().ToString();
      if (ev.ok()) out[rec.seq] = {*ev, rec.bytes.size()};
      next = rec.seq + 1;
    }
  }
  return out;
}

// The text of column `name` in the row an event is about (the old row for a delete).
std::optional<std::string> RowId(const v1::ChangeEvent& ev) {
  const v1::Row* row = ev.op() == v1::OP_DELETE ? &ev.before() : &ev.after();
  if (ev.op() == v1::OP_HEARTBEAT || ev.op() == v1::OP_TRUNCATE ||
      ev.op() == v1::OP_RESNAPSHOT_MARKER) {
    return std::nullopt;
  }
  for (int i = 0; i < ev.relation().columns_size() && i < row->values_size(); ++i) {
    if (ev.relation().columns(i).name() == "id") return row->values(i).text();
  }
  return std::nullopt;
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

struct TopicCheck {
  // Every seq 1..through must be in the topic.
  uint64_t through = 0;
  // A restarted shipper re-ships from its cursor: the same seq may appear again.
  bool allow_duplicates = false;
  int partitions = 1;
};

// The topic against the spool: seqs, keys, timestamps, headers, sizes, order, partitioning.
// Returns the highest seq in the topic.
uint64_t CheckTopic(const std::vector<TopicRecord>& records,
                    const std::map<uint64_t, Spooled>& spool, const TopicCheck& want) {
  std::map<uint64_t, const TopicRecord*> first;
  std::map<std::string, int> partition_of_key;
  std::map<int, uint64_t> last_new_seq_in_partition;
  size_t duplicates = 0, mismatches = 0;
  auto fail = [&](const std::string& what) {
    if (++mismatches <= 20) ADD_FAILURE() << what;
  };
  for (const auto& rec : records) {
    std::string where = "seq " + std::to_string(rec.seq) + " at " + std::to_string(rec.partition) +
                        "/" + std::to_string(rec.offset);
    auto [it, inserted] = first.emplace(rec.seq, &rec);
    if (!inserted) {
      ++duplicates;
      if (!want.allow_duplicates) fail("duplicate " + where);
      if (it->second->size != rec.size || it->second->partition != rec.partition) {
        fail("duplicate " + where + " differs from its first copy (size " +
             std::to_string(it->second->size) + " vs " + std::to_string(rec.size) + ")");
      }
      continue;
    }
    // Per partition, the first copies of seqs come in increasing order (so per key too).
    uint64_t& last = last_new_seq_in_partition[rec.partition];
    if (rec.seq <= last) {
      fail(where + " comes after seq " + std::to_string(last) + " in its partition");
    }
    last = std::max(last, rec.seq);
    auto sp = spool.find(rec.seq);
    if (sp == spool.end()) {
      fail(where + " is not in the spool");
      continue;
    }
    const v1::ChangeEvent& ev = sp->second.ev;
    if (rec.size != sp->second.size) fail(where + ": payload size differs from the spool");
    if (rec.timestamp_ms != ev.commit_time_us() / 1000) fail(where + ": timestamp");
    std::map<std::string, std::string> headers = {
        {"seq", std::to_string(ev.seq())},
        {"commit_lsn", Lsn(ev.commit_lsn()).ToString()},
        {"source", ev.source().system_id() + "/" + ev.source().slot_name()},
        {"schema_version", std::to_string(ev.relation().schema_version())}};
    if (rec.headers != headers)
      fail(where + ": headers differ (commit_lsn " + headers["commit_lsn"] + ")");
    std::optional<std::string> key = RowId(ev);
    if (rec.key != key) fail(where + ": key '" + rec.key.value_or("NULL") + "'");
    if (!key) {
      if (rec.partition != 0) fail(where + ": a record without a key must go to partition 0");
      continue;
    }
    if (JavaPartition(*key, want.partitions) != rec.partition) {
      fail(where + ": key " + *key + " is not where the Java partitioner puts it (" +
           std::to_string(JavaPartition(*key, want.partitions)) + ")");
    }
    auto [kp, new_key] = partition_of_key.emplace(*key, rec.partition);
    if (!new_key && kp->second != rec.partition)
      fail(where + ": key " + *key + " in two partitions");
  }
  uint64_t max_seq = first.empty() ? 0 : first.rbegin()->first;
  EXPECT_GE(max_seq, want.through);
  // Contiguous from 1: nothing skipped, including anything shipped beyond `through`.
  size_t missing = 0;
  for (uint64_t s = 1; s <= std::max(max_seq, want.through); ++s) {
    if (!first.count(s) && ++missing <= 20) ADD_FAILURE() << "seq " << s << " is not in the topic";
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(first.size(), max_seq) << "record seqs are exactly 1.." << max_seq;
  if (!want.allow_duplicates) {
    EXPECT_EQ(records.size(), first.size());
  }
  std::printf("[ topic    ] %zu records, seqs 1..%llu, %zu duplicates, %zu partitions used\n",
              records.size(), static_cast<unsigned long long>(max_seq), duplicates,
              last_new_seq_in_partition.size());
  return max_seq;
}

// Brokers only: for spools built in the test.
class ShipperKafkaIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(testing::RequireProgram("kcat", "kcat").empty());
    kafka_ = testing::StartDevKafka(3);
    ASSERT_TRUE(kafka_);
  }

  std::string brokers() const { return kafka_->bootstrap_servers(); }
  std::string spool_dir() const { return tmp_.Sub("spool"); }

  uint64_t StoredCursor() {
    auto spool = Spool::OpenForRead(spool_dir());
    if (!spool.ok()) return 0;
    return (*spool)->Stats().cursors["shipper"];
  }

  TempDir tmp_{"lifeline-shipper"};
  std::unique_ptr<DevKafkaCluster> kafka_;
  std::string topic_ = "lifeline.events";
};

// Brokers, a PostgreSQL cluster with the reference schema, and capture shipping beside itself.
class ShipperIntegration : public ShipperKafkaIntegration {
 protected:
  void SetUp() override {
    ShipperKafkaIntegration::SetUp();
    if (HasFatalFailure()) return;
    pg_ = testing::StartPostgres({.name = "shipper"});
    ASSERT_TRUE(pg_);
    testing::LoadReferenceSchema(*pg_, "app");
  }

  std::vector<std::string> CaptureArgs(const std::vector<std::string>& extra) const {
    std::vector<std::string> args = {"capture",
                                     "--source",
                                     pg_->ConnInfo("app"),
                                     "--spool",
                                     spool_dir(),
                                     "--heartbeat-interval",
                                     "200ms",
                                     "--kafka-brokers",
                                     brokers(),
                                     "--topic",
                                     topic_};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  std::unique_ptr<LifelineDaemon> StartCapture(const std::vector<std::string>& extra = {}) {
    auto d = std::make_unique<LifelineDaemon>(CaptureArgs(extra), tmp_.Sub("capture.log"));
    EXPECT_TRUE(d->Start());
    return d;
  }

  // Waits until capture streams and its shipper has connected (the log accumulates across
  // restarts: count occurrences).
  bool WaitStreaming(LifelineDaemon& d, size_t occurrence = 1, std::chrono::milliseconds t = 60s) {
    auto count = [&](const std::string& needle) {
      std::string log = d.Log();
      size_t n = 0;
      for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) {
        ++n;
      }
      return n;
    };
    return WaitFor(
        [&] {
          return count("streaming from slot") >= occurrence &&
                 count("shipper: shipping to") >= occurrence;
        },
        t);
  }

  std::string Sql(const std::string& sql) {
    auto r = pg_->Psql(sql, "app");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? Trim(*r) : "";
  }

  // `lifeline load` on a thread; the future's result is its exit.
  std::future<CommandResult> StartLoad(int rate, const std::string& duration) {
    std::vector<std::string> args = {"load",   "--target",           pg_->ConnInfo("app"),
                                     "--rate", std::to_string(rate), "--duration",
                                     duration, "--ledger",           ledger()};
    return std::async(std::launch::async,
                      [args] { return testing::RunLifeline(args, "", 180'000); });
  }

  void ExpectLoadOk(std::future<CommandResult>& load) {
    ASSERT_EQ(load.wait_for(180s), std::future_status::ready);
    CommandResult r = load.get();
    ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
    std::printf("[ load     ] %s", r.stdout_text.c_str());
  }

  // Waits until the spool holds everything committed so far (a heartbeat after it is spooled)
  // and the shipper's stored cursor is the spool's last seq; returns that seq (0 on timeout).
  uint64_t WaitShipped(std::chrono::milliseconds timeout = 90s) {
    uint64_t target = Lsn::Parse(Sql("SELECT pg_current_wal_lsn()"))->value();
    uint64_t shipped = 0;
    bool ok = WaitFor(
        [&] {
          auto spool = Spool::OpenForRead(spool_dir());
          if (!spool.ok()) return false;
          SpoolStats st = (*spool)->Stats();
          if (st.last_commit_lsn.value() <= target) return false;
          if (st.cursors["shipper"] != st.last_seq) return false;
          shipped = st.last_seq;
          return true;
        },
        timeout);
    EXPECT_TRUE(ok) << "the shipper did not catch up (cursor " << StoredCursor() << " of "
                    << testing::SpoolLastSeq(spool_dir()) << ")";
    return ok ? shipped : 0;
  }

  // Every committed request id of the load is a key in the topic.
  void ExpectLedgerInTopic(const std::vector<TopicRecord>& records) {
    std::set<std::string> keys;
    for (const auto& r : records) {
      if (r.key) keys.insert(*r.key);
    }
    auto ids = ReadLines(ledger());
    EXPECT_GT(ids.size(), 50u) << "the load created too few requests to mean anything";
    size_t missing = 0;
    for (const auto& id : ids) {
      if (!keys.count(id) && ++missing <= 10) ADD_FAILURE() << "request " << id << " not in topic";
    }
    EXPECT_EQ(missing, 0u) << "of " << ids.size() << " committed requests";
  }

  std::string ledger() const { return tmp_.Sub("ledger.txt"); }

  std::unique_ptr<LocalPostgres> pg_;
};

// 1. Everything spooled arrives once, in seq order, keyed and stamped as spooled.
TEST_F(ShipperIntegration, EverythingSpooledArrivesOnceInOrder) {
  ASSERT_TRUE(kafka_->CreateTopic(topic_, 1, 3).ok());
  auto capture = StartCapture();
  ASSERT_TRUE(WaitStreaming(*capture)) << capture->Log();
  auto started = Clock::now();
  auto load = StartLoad(300, "4s");
  ExpectLoadOk(load);
  uint64_t shipped = WaitShipped();
  std::printf("[ timing   ] shipped through seq %llu %.1f s after the load began\n",
              static_cast<unsigned long long>(shipped), SecondsSince(started));
  ASSERT_GT(shipped, 0u);
  EXPECT_EQ(capture->Stop(), 0) << capture->Log();
  auto spool = ReadSpool(spool_dir());
  auto records = ReadTopic(brokers(), topic_);
  uint64_t max_seq = CheckTopic(records, spool, {.through = shipped});
  EXPECT_LE(max_seq, spool.rbegin()->first);
  // One partition: the topic's order is the spool's order.
  for (size_t i = 0; i < records.size(); ++i) {
    ASSERT_EQ(records[i].seq, i + 1) << "offset " << records[i].offset;
  }
  ExpectLedgerInTopic(records);
  EXPECT_EQ(capture->Log().find("delivery of seq"), std::string::npos) << capture->Log();
}

// 1b. With three partitions a key's events stay in one partition, in seq order, where the Java
// client would put them; rowless events (heartbeats) go to partition 0.
TEST_F(ShipperIntegration, ThreePartitionsKeepEachKeyInOnePartitionInOrder) {
  ASSERT_TRUE(kafka_->CreateTopic(topic_, 3, 3).ok());
  auto capture = StartCapture();
  ASSERT_TRUE(WaitStreaming(*capture)) << capture->Log();
  auto load = StartLoad(300, "4s");
  ExpectLoadOk(load);
  uint64_t shipped = WaitShipped();
  ASSERT_GT(shipped, 0u);
  EXPECT_EQ(capture->Stop(), 0) << capture->Log();
  auto records = ReadTopic(brokers(), topic_);
  CheckTopic(records, ReadSpool(spool_dir()), {.through = shipped, .partitions = 3});
  std::set<int> partitions;
  for (const auto& r : records) partitions.insert(r.partition);
  EXPECT_EQ(partitions.size(), 3u) << "keys spread over all partitions";
  ExpectLedgerInTopic(records);
}

// 2. All brokers away for 20 s: capture keeps spooling, and afterwards everything arrives in order.
TEST_F(ShipperIntegration, AllBrokersDownForTwentySecondsLosesNothing) {
  ASSERT_TRUE(kafka_->CreateTopic(topic_, 1, 3).ok());
  auto capture = StartCapture();
  ASSERT_TRUE(WaitStreaming(*capture)) << capture->Log();
  auto load = StartLoad(300, "12s");
  std::this_thread::sleep_for(2s);
  ASSERT_TRUE(kafka_->SetAllBrokersDown().ok());
  auto down_at = Clock::now();
  std::this_thread::sleep_for(1s);
  uint64_t spooled_early = testing::SpoolLastSeq(spool_dir());
  uint64_t cursor_early = StoredCursor();
  std::this_thread::sleep_for(8s);
  uint64_t spooled_mid = testing::SpoolLastSeq(spool_dir());
  uint64_t cursor_mid = StoredCursor();
  EXPECT_GT(spooled_mid, spooled_early + 300) << "capture keeps spooling while Kafka is away";
  EXPECT_EQ(cursor_mid, cursor_early) << "nothing can be acknowledged while every broker is down";
  EXPECT_TRUE(capture->running());
  std::this_thread::sleep_for(20s - (Clock::now() - down_at));
  ASSERT_TRUE(kafka_->SetAllBrokersUp().ok());
  auto up_at = Clock::now();
  ExpectLoadOk(load);
  uint64_t shipped = WaitShipped();
  std::printf("[ timing   ] outage 20 s; caught up through seq %llu %.1f s after brokers came up\n",
              static_cast<unsigned long long>(shipped), SecondsSince(up_at));
  ASSERT_GT(shipped, 0u);
  EXPECT_TRUE(capture->running()) << capture->Log();
  EXPECT_EQ(capture->Stop(), 0) << capture->Log();
  auto records = ReadTopic(brokers(), topic_);
  CheckTopic(records, ReadSpool(spool_dir()), {.through = shipped});
  for (size_t i = 0; i < records.size(); ++i) {
    ASSERT_EQ(records[i].seq, i + 1) << "offset " << records[i].offset;
  }
  ExpectLedgerInTopic(records);
}

// 3. Produce errors and leader moves during a load: retried, nothing lost, order kept.
//
// One request in flight per connection, because that is the only way devkafka answers these
// injected errors as a real broker would. librdkafka's mock checks idempotent sequence numbers only
// for transactional producers (rd_kafka_mock_validate_records returns early when there is no
// TransactionalId). So when an injected error fails batch N of a partition (often its retry) while
// batch N+1 is in flight, the mock appends N+1. A real broker rejects N+1 with
// OUT_OF_ORDER_SEQUENCE_NUMBER. librdkafka reads the success of N+1 as proof that N was written
// (debug "IMPLICITACK ... implicitly acked by subsequent batch success") and reports N as
// delivered. N is never in the log. With the default five in flight (and librdkafka debug logging
// on), 6 of 15 runs here lost 1 to 6 seqs. Every lost seq matched an IMPLICITACK message in the
// capture log, and the shipper logged no failed delivery or restart. The mock does the same to an
// independent client: `kcat -P -X enable.idempotence=true` at 300 lines/s of 900 bytes against
// `lifeline devkafka` with these injections lost 1 or 2 lines in 3 of 18 rounds. Each time it
// exited 0, reported no failed delivery and logged the matching IMPLICITACK. With
// max.in.flight.requests.per.connection=1 it lost nothing in 8 rounds.
TEST_F(ShipperIntegration, ProduceErrorsAndLeaderChangesLoseNothing) {
  ASSERT_TRUE(kafka_->CreateTopic(topic_, 3, 3).ok());
  auto capture = StartCapture({"--kafka-property", "max.in.flight.requests.per.connection=1"});
  ASSERT_TRUE(WaitStreaming(*capture)) << capture->Log();
  auto load = StartLoad(300, "8s");
  std::this_thread::sleep_for(1500ms);
  ASSERT_TRUE(kafka_->PushRequestErrors("Produce", "NOT_LEADER_FOR_PARTITION", 5).ok());
  std::this_thread::sleep_for(1500ms);
  ASSERT_TRUE(kafka_->PushRequestErrors("Produce", "REQUEST_TIMED_OUT", 5).ok());
  std::this_thread::sleep_for(1500ms);
  ASSERT_TRUE(kafka_->SetPartitionLeader(topic_, 0, 2).ok());
  std::this_thread::sleep_for(1000ms);
  ASSERT_TRUE(kafka_->SetPartitionLeader(topic_, 0, 3).ok());
  ASSERT_TRUE(kafka_->SetPartitionLeader(topic_, 1, 1).ok());
  ExpectLoadOk(load);
  uint64_t shipped = WaitShipped();
  ASSERT_GT(shipped, 0u);
  EXPECT_EQ(capture->Stop(), 0) << capture->Log();
  auto records = ReadTopic(brokers(), topic_);
  CheckTopic(records, ReadSpool(spool_dir()),
             {.through = shipped, .allow_duplicates = true, .partitions = 3});
  ExpectLedgerInTopic(records);
}

// 4. kill -9 of capture+shipper again and again during a load: every spooled seq reaches the
// topic; a re-shipped seq is the same record.
TEST_F(ShipperIntegration, RepeatedKillNineLosesNothing) {
  ASSERT_TRUE(kafka_->CreateTopic(topic_, 3, 3).ok());
  auto capture = StartCapture();
  ASSERT_TRUE(WaitStreaming(*capture)) << capture->Log();
  // 12 kills take about 12 s; the load lasts long enough for a slow machine to fit 10 in it.
  auto load = StartLoad(300, "25s");
  std::mt19937 rng(std::random_device{}());
  int kills_during_load = 0;
  auto started = Clock::now();
  for (int i = 0; i < 12; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(700 + rng() % 600));
    if (load.wait_for(0s) != std::future_status::ready) ++kills_during_load;
    capture->Kill();
    capture = StartCapture();
  }
  std::printf("[ timing   ] 12 kills in %.1f s, %d during the load\n", SecondsSince(started),
              kills_during_load);
  EXPECT_GE(kills_during_load, 10);
  ExpectLoadOk(load);
  uint64_t shipped = WaitShipped(120s);
  ASSERT_GT(shipped, 0u);
  EXPECT_EQ(capture->Stop(), 0) << capture->Log();
  auto spool = ReadSpool(spool_dir());
  auto records = ReadTopic(brokers(), topic_);
  CheckTopic(records, spool, {.through = shipped, .allow_duplicates = true, .partitions = 3});
  ExpectLedgerInTopic(records);
}

// 6. A full spool pauses capture (the slot holds WAL) while Kafka is away; once the shipper
// drains and trims it, capture resumes and nothing is lost.
TEST_F(ShipperIntegration, SpoolMaxBytesPausesCaptureUntilShipped) {
  constexpr uint64_t kLimit = 200'000;
  ASSERT_TRUE(kafka_->CreateTopic(topic_, 1, 3).ok());
  auto capture =
      StartCapture({"--spool-max-bytes", std::to_string(kLimit), "--spool-retention", "1s"});
  ASSERT_TRUE(WaitStreaming(*capture)) << capture->Log();
  ASSERT_TRUE(kafka_->SetAllBrokersDown().ok());
  auto load = StartLoad(100, "6s");
  ASSERT_TRUE(
      WaitFor([&] { return capture->Log().find("capture has paused") != std::string::npos; }, 30s))
      << capture->Log();
  std::this_thread::sleep_for(1s);
  auto bytes = [&] {
    auto spool = Spool::OpenForRead(spool_dir());
    return spool.ok() ? (*spool)->Stats().bytes : 0;
  };
  auto confirmed = [&] {
    return Sql(
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = "
        "'lifeline'");
  };
  uint64_t bytes_before = bytes();
  std::string confirmed_before = confirmed();
  uint64_t seq_before = testing::SpoolLastSeq(spool_dir());
  std::this_thread::sleep_for(3s);
  EXPECT_GE(bytes_before, kLimit);
  EXPECT_LT(bytes_before, 2 * kLimit) << "the spool stops near its limit";
  EXPECT_EQ(bytes(), bytes_before) << "nothing is spooled while full";
  EXPECT_EQ(testing::SpoolLastSeq(spool_dir()), seq_before);
  EXPECT_EQ(confirmed(), confirmed_before) << "the slot is not confirmed past what is spooled";
  ASSERT_TRUE(kafka_->SetAllBrokersUp().ok());
  auto up_at = Clock::now();
  ExpectLoadOk(load);
  uint64_t shipped = WaitShipped(120s);
  std::printf("[ timing   ] drained through seq %llu %.1f s after brokers came up\n",
              static_cast<unsigned long long>(shipped), SecondsSince(up_at));
  ASSERT_GT(shipped, seq_before);
  EXPECT_EQ(capture->Stop(), 0) << capture->Log();
  // Shipped events were trimmed, so check the topic on its own: seqs contiguous, once each, and
  // every committed request present.
  auto records = ReadTopic(brokers(), topic_);
  std::set<uint64_t> seqs;
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].seq, i + 1) << "offset " << records[i].offset;
    seqs.insert(records[i].seq);
  }
  EXPECT_GE(seqs.size(), shipped);
  EXPECT_EQ(seqs.size(), records.size());
  ExpectLedgerInTopic(records);
  auto spool = Spool::OpenForRead(spool_dir());
  ASSERT_TRUE(spool.ok());
  EXPECT_LT((*spool)->Stats().first_seq, shipped + 1);
  EXPECT_GT((*spool)->Stats().first_seq, 1u) << "shipped events older than retention are trimmed";
}

// A command's log without the per-record delivery warnings, for failure messages.
std::string LogSummary(const std::string& log) {
  std::string out;
  size_t kept = 0;
  for (const auto& line : Split(log, '\n')) {
    if (line.find("delivery of seq") != std::string::npos || ++kept > 60) continue;
    out += line.substr(0, 300) + "\n";
  }
  return out;
}

// Builds a spool of `txns` sample transactions of `per_txn` events.
void BuildSampleSpool(const std::string& dir, uint32_t txns, uint32_t per_txn) {
  auto spool = Spool::OpenForWrite(dir);
  ASSERT_TRUE(spool.ok()) << spool.status().ToString();
  for (uint32_t xid = 1; xid <= txns; ++xid) {
    auto txn = testing::SampleTransaction(1000 + xid, per_txn, 300);
    ASSERT_TRUE((*spool)->Append(txn).ok());
  }
}

// 5. `lifeline ship --until-drained` drains a spool once, and a second run ships nothing new.
TEST_F(ShipperKafkaIntegration, StandaloneShipDrainsOnceAndStoresItsCursor) {
  ASSERT_TRUE(kafka_->CreateTopic(topic_, 3, 3).ok());
  constexpr uint32_t kTxns = 250, kPerTxn = 10;  // 2,500 events: several read batches
  BuildSampleSpool(spool_dir(), kTxns, kPerTxn);
  if (HasFatalFailure()) return;
  std::vector<std::string> args = {"ship",    "--spool", spool_dir(), "--kafka-brokers",
                                   brokers(), "--topic", topic_,      "--until-drained"};
  auto started = Clock::now();
  CommandResult first = testing::RunLifeline(args, "", 120'000);
  std::printf("[ timing   ] drained %u events in %.1f s\n", kTxns * kPerTxn, SecondsSince(started));
  ASSERT_EQ(first.exit_code, 0) << first.stderr_text;
  EXPECT_NE(first.stdout_text.find("\"cursor\":2500,\"last_seq\":2500"), std::string::npos)
      << first.stdout_text;
  EXPECT_EQ(StoredCursor(), kTxns * kPerTxn);
  auto spool = ReadSpool(spool_dir());
  ASSERT_EQ(spool.size(), kTxns * kPerTxn);
  auto records = ReadTopic(brokers(), topic_);
  CheckTopic(records, spool, {.through = kTxns * kPerTxn, .partitions = 3});
  EXPECT_EQ(records.size(), spool.size());
  // For the sample events the key is the id column too.
  for (const auto& r : records) {
    ASSERT_TRUE(r.key.has_value());
    EXPECT_EQ(*r.key, spool.at(r.seq).ev.after().values(0).text());
  }

  CommandResult second = testing::RunLifeline(args, "", 120'000);
  ASSERT_EQ(second.exit_code, 0) << second.stderr_text;
  EXPECT_NE(second.stdout_text.find("\"cursor\":2500,\"last_seq\":2500"), std::string::npos)
      << second.stdout_text;
  EXPECT_EQ(ReadTopic(brokers(), topic_).size(), records.size()) << "nothing shipped twice";
}

// A produce error Kafka does not retry fails a delivery: the shipper replaces its producer and
// ships again from its cursor. Nothing may be lost, and a partition's first copies of seqs must
// still come in seq order (only re-shipped duplicates may go back): a consumer that drops seqs it
// has seen would otherwise drop the re-shipped ones for good.
TEST_F(ShipperKafkaIntegration, FailedDeliveryReshipsFromTheCursorInOrder) {
  ASSERT_TRUE(kafka_->CreateTopic(topic_, 1, 3).ok());
  constexpr uint32_t kTxns = 1000, kPerTxn = 10;
  BuildSampleSpool(spool_dir(), kTxns, kPerTxn);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(kafka_->PushRequestErrors("Produce", "INVALID_RECORD", 1).ok());
  // One request in flight, as in test 3: with more, devkafka may append a batch sent behind the
  // failed one, which a real broker refuses.
  CommandResult r = testing::RunLifeline(
      {"ship", "--spool", spool_dir(), "--kafka-brokers", brokers(), "--topic", topic_,
       "--until-drained", "--kafka-property", "max.in.flight.requests.per.connection=1"},
      "", 120'000);
  ASSERT_EQ(r.exit_code, 0) << LogSummary(r.stderr_text);
  EXPECT_NE(r.stderr_text.find("re-shipping from the cursor"), std::string::npos)
      << "the injected error did not fail a delivery";
  auto records = ReadTopic(brokers(), topic_);
  CheckTopic(records, ReadSpool(spool_dir()),
             {.through = kTxns * kPerTxn, .allow_duplicates = true});
}

// With enable.gapless.guarantee=true (the setting that keeps the idempotent producer from
// delivering past a failed batch) a failed batch is a fatal producer error. The shipper must
// replace the producer (its FatalError path), wherever in its loop the error surfaces, and not
// give up: for capture that would stop capture.
TEST_F(ShipperKafkaIntegration, FatalProducerErrorReplacesTheProducer) {
  ASSERT_TRUE(kafka_->CreateTopic(topic_, 1, 3).ok());
  constexpr uint32_t kTxns = 1000, kPerTxn = 10;
  BuildSampleSpool(spool_dir(), kTxns, kPerTxn);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(kafka_->PushRequestErrors("Produce", "INVALID_RECORD", 1).ok());
  CommandResult r = testing::RunLifeline(
      {"ship", "--spool", spool_dir(), "--kafka-brokers", brokers(), "--topic", topic_,
       "--until-drained", "--kafka-property", "enable.gapless.guarantee=true", "--kafka-property",
       "max.in.flight.requests.per.connection=1"},
      "", 120'000);
  ASSERT_EQ(r.exit_code, 0) << LogSummary(r.stderr_text);
  EXPECT_NE(r.stderr_text.find("restarting the producer"), std::string::npos);
  auto records = ReadTopic(brokers(), topic_);
  CheckTopic(records, ReadSpool(spool_dir()),
             {.through = kTxns * kPerTxn, .allow_duplicates = true});
}

// 5b. An empty spool drains at once.
TEST_F(ShipperKafkaIntegration, StandaloneShipOfAnEmptySpoolExitsAtOnce) {
  ASSERT_TRUE(kafka_->CreateTopic(topic_, 1, 3).ok());
  { ASSERT_TRUE(Spool::OpenForWrite(spool_dir()).ok()); }
  CommandResult r = testing::RunLifeline({"ship", "--spool", spool_dir(), "--kafka-brokers",
                                          brokers(), "--topic", topic_, "--until-drained"},
                                         "", 60'000);
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_TRUE(ReadTopic(brokers(), topic_).empty());
}

// A bad --kafka-property stops `lifeline ship` with a message naming it, never the value.
TEST_F(ShipperKafkaIntegration, ShipRejectsABadKafkaPropertyWithoutEchoingIt) {
  { ASSERT_TRUE(Spool::OpenForWrite(spool_dir()).ok()); }
  for (const std::string& prop :
       {std::string("no.such.thing=1"), std::string("sasl.pasword=hunter2")}) {
    CommandResult r =
        testing::RunLifeline({"ship", "--spool", spool_dir(), "--kafka-brokers", brokers(),
                              "--topic", topic_, "--until-drained", "--kafka-property", prop},
                             "", 60'000);
    EXPECT_NE(r.exit_code, 0);
    std::string out = r.stdout_text + r.stderr_text;
    EXPECT_NE(out.find(prop.substr(0, prop.find('='))), std::string::npos) << out;
    EXPECT_EQ(out.find("hunter2"), std::string::npos) << out;
  }
}

// The partition count of `topic` as kcat lists it from the whole cluster's metadata (asking for the
// topic by name could create it); 0 when it is not listed.
int ListedPartitions(const std::string& brokers, const std::string& topic) {
  if (testing::RequireProgram("kcat", "kcat").empty()) return 0;
  CommandSpec spec;
  spec.argv = {"kcat", "-L", "-b", brokers};
  spec.timeout = 30s;
  auto r = RunCommand(spec);
  if (!r.ok() || r->exit_code != 0) {
    ADD_FAILURE() << "kcat -L failed: " << (r.ok() ? r->stderr_text : r.status().ToString());
    return 0;
  }
  std::string head = "topic \"" + topic + "\" with ";
  size_t at = r->stdout_text.find(head);
  if (at == std::string::npos) return 0;
  return std::stoi(r->stdout_text.substr(at + head.size()));
}

// devkafka, like a broker with auto.create.topics.enable=true, creates a topic that a metadata
// request names, with its default partition count (4). The shipper must never let that happen:
// it looks the topic up in the list of all topics and creates it with CreateTopics and
// --topic-partitions. devkafka's mock brokers do not serve CreateTopics, so here the topic stays
// absent until it is made with 6 partitions beside the shipper, as CreateTopics would make it.
TEST_F(ShipperKafkaIntegration, TopicPartitionsAreNotLostToAutoCreation) {
  constexpr uint32_t kTxns = 40, kPerTxn = 5;
  BuildSampleSpool(spool_dir(), kTxns, kPerTxn);
  if (HasFatalFailure()) return;
  ASSERT_EQ(ListedPartitions(brokers(), topic_), 0) << "the topic must not exist yet";
  const std::vector<std::string> args = {"ship",      "--spool",
                                         spool_dir(), "--kafka-brokers",
                                         brokers(),   "--topic",
                                         topic_,      "--topic-partitions",
                                         "6",         "--topic-replication-factor",
                                         "3",         "--until-drained"};
  CommandResult first = testing::RunLifeline(args, "", 8'000);
  EXPECT_TRUE(first.timed_out) << "nothing can have been shipped: "
                               << LogSummary(first.stderr_text);
  EXPECT_NE(first.stderr_text.find("creating topic " + topic_), std::string::npos)
      << "CreateTopics was not tried: " << LogSummary(first.stderr_text);
  EXPECT_EQ(ListedPartitions(brokers(), topic_), 0)
      << "the topic was auto-created with the broker's default partition count\n"
      << LogSummary(first.stderr_text);

  ASSERT_TRUE(kafka_->CreateTopic(topic_, 6, 3).ok());
  CommandResult second = testing::RunLifeline(args, "", 120'000);
  ASSERT_EQ(second.exit_code, 0) << LogSummary(second.stderr_text);
  EXPECT_NE(second.stderr_text.find("topic " + topic_ + " has 6 partition(s)"), std::string::npos)
      << LogSummary(second.stderr_text);
  EXPECT_EQ(ListedPartitions(brokers(), topic_), 6);
  CheckTopic(ReadTopic(brokers(), topic_), ReadSpool(spool_dir()),
             {.through = kTxns * kPerTxn, .partitions = 6});
}

// An existing topic is used as it is, with a warning when its partition count is not the one asked
// for.
TEST_F(ShipperKafkaIntegration, AnExistingTopicIsUsedAsItIsWithAWarning) {
  ASSERT_TRUE(kafka_->CreateTopic(topic_, 2, 3).ok());
  constexpr uint32_t kTxns = 40, kPerTxn = 5;
  BuildSampleSpool(spool_dir(), kTxns, kPerTxn);
  if (HasFatalFailure()) return;
  CommandResult r =
      testing::RunLifeline({"ship", "--spool", spool_dir(), "--kafka-brokers", brokers(), "--topic",
                            topic_, "--topic-partitions", "6", "--until-drained"},
                           "", 120'000);
  ASSERT_EQ(r.exit_code, 0) << LogSummary(r.stderr_text);
  EXPECT_NE(r.stderr_text.find("exists with 2 partition(s), not the 6 of --topic-partitions"),
            std::string::npos)
      << LogSummary(r.stderr_text);
  EXPECT_EQ(r.stderr_text.find("created topic"), std::string::npos) << LogSummary(r.stderr_text);
  EXPECT_EQ(ListedPartitions(brokers(), topic_), 2);
  CheckTopic(ReadTopic(brokers(), topic_), ReadSpool(spool_dir()),
             {.through = kTxns * kPerTxn, .partitions = 2});
}

}  // namespace
}  // namespace lifeline
