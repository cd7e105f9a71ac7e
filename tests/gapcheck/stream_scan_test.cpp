// Tests the stream continuity scan on real spools and on devkafka topics holding hash-chained
// events, clean and with planted faults: gaps, duplicates, unparsable records, altered events,
// seq going backwards; and its errors for a missing spool or topic and an unreachable broker.
#include "gapcheck/stream_scan.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/lsn.h"
#include "common/spool.h"
#include "tests/support/sample_events.h"
#include "tests/support/test_env.h"

namespace lifeline::gapcheck {
namespace {

using testing::TempDir;

// Events of `txns` transactions of `per_txn` events, seq and hash chain set by a real spool.
std::vector<SpoolRecord> ChainedRecords(const std::string& dir, uint32_t txns, uint32_t per_txn,
                                        const std::string& slot = "lifeline") {
  auto spool = Spool::OpenForWrite(dir);
  EXPECT_TRUE(spool.ok()) << spool.status().ToString();
  if (!spool.ok()) return {};
  for (uint32_t xid = 1; xid <= txns; ++xid) {
    auto events = testing::SampleTransaction(1000 + xid, per_txn, 300);
    for (auto& ev : events) ev.mutable_source()->set_slot_name(slot);
    auto appended = (*spool)->Append(events);
    EXPECT_TRUE(appended.ok()) << appended.status().ToString();
  }
  auto records = (*spool)->Read(1, 1'000'000);
  EXPECT_TRUE(records.ok()) << records.status().ToString();
  return records.ok() ? *records : std::vector<SpoolRecord>{};
}

v1::ChangeEvent Decode(const SpoolRecord& r) {
  v1::ChangeEvent ev;
  EXPECT_TRUE(ev.ParseFromString(r.bytes));
  return ev;
}

// The same seq and prev_hash, different row content: what an edited record looks like.
std::string Altered(const SpoolRecord& r) {
  v1::ChangeEvent ev = Decode(r);
  ev.mutable_after()->mutable_values(1)->set_text("Somebody Else");
  return ev.SerializeAsString();
}

const SpoolRecord& BySeq(const std::vector<SpoolRecord>& records, uint64_t seq) {
  for (const auto& r : records) {
    if (r.seq == seq) return r;
  }
  ADD_FAILURE() << "no record with seq " << seq;
  return records.front();
}

StreamScanOptions SpoolOptions(const std::string& dir) {
  StreamScanOptions o;
  o.stream.spool_dir = dir;
  return o;
}

// --- Positions ---------------------------------------------------------------------------------

TEST(StreamPosition, DescribesSpoolSeqOrPartitionOffset) {
  EXPECT_EQ((StreamPosition{-1, 12}).Describe(), "seq 12");
  EXPECT_EQ((StreamPosition{2, 345}).Describe(), "partition 2 offset 345");
}

// --- Spool -------------------------------------------------------------------------------------

TEST(StreamScanSpool, ASpoolWrittenByLifelineIsCleanWithRightCounts) {
  TempDir tmp;
  auto records = ChainedRecords(tmp.Sub("spool"), 40, 3);
  ASSERT_EQ(records.size(), 120u);
  StreamScanOptions o = SpoolOptions(tmp.Sub("spool"));
  uint64_t visited = 0;
  uint64_t last_read = 0, last_total = 0;
  o.visit = [&](const StreamPosition& pos, const v1::ChangeEvent& ev) {
    EXPECT_EQ(pos.partition, -1);
    EXPECT_EQ(static_cast<uint64_t>(pos.offset), ev.seq());
    ++visited;
  };
  o.progress = [&](uint64_t read, uint64_t total) {
    last_read = read;
    last_total = total;
  };
  auto report = ScanStream(o);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->clean());
  EXPECT_EQ(report->description, "spool " + tmp.Sub("spool"));
  EXPECT_EQ(report->records, 120u);
  EXPECT_EQ(visited, 120u);
  EXPECT_EQ(last_read, 120u);
  EXPECT_EQ(last_total, 120u);
  EXPECT_TRUE(report->partitions.empty());
  EXPECT_TRUE(report->bad_records.empty());
  ASSERT_EQ(report->sources.size(), 1u);
  const SourceContinuity& s = report->sources[0];
  EXPECT_EQ(s.source_id, "7312345678901234567/app/lifeline");
  EXPECT_EQ(s.events, 120u);
  EXPECT_EQ(s.first_seq, 1u);
  EXPECT_EQ(s.last_seq, 120u);
  v1::ChangeEvent last = Decode(records.back());
  EXPECT_EQ(s.last.commit_lsn, Lsn(last.commit_lsn()).ToString());
  EXPECT_EQ(s.last.commit_time_us, last.commit_time_us());
  EXPECT_EQ(s.last.position.Describe(), "seq 120");
  EXPECT_EQ(s.first.position.Describe(), "seq 1");
  EXPECT_TRUE(s.gaps.empty() && s.duplicates.empty() && s.backwards.empty() &&
              s.chain_breaks.empty() && s.resnapshots.empty());
}

TEST(StreamScanSpool, ATrimmedSpoolIsCleanSinceItsFirstEventHasNothingToLinkTo) {
  TempDir tmp;
  ChainedRecords(tmp.Sub("spool"), 20, 3);
  {
    auto spool = Spool::OpenForWrite(tmp.Sub("spool"));
    ASSERT_TRUE(spool.ok()) << spool.status().ToString();
    auto trimmed = (*spool)->Trim(30, INT64_MAX);
    ASSERT_TRUE(trimmed.ok()) << trimmed.status().ToString();
    ASSERT_EQ(*trimmed, 30u);
  }
  auto report = ScanStream(SpoolOptions(tmp.Sub("spool")));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->clean());
  ASSERT_EQ(report->sources.size(), 1u);
  EXPECT_EQ(report->sources[0].first_seq, 31u);
  EXPECT_EQ(report->sources[0].events, 30u);
}

TEST(StreamScanSpool, ResnapshotMarkersAreListedAndLeaveTheStreamClean) {
  TempDir tmp;
  ChainedRecords(tmp.Sub("spool"), 5, 2);
  {
    auto spool = Spool::OpenForWrite(tmp.Sub("spool"));
    ASSERT_TRUE(spool.ok()) << spool.status().ToString();
    std::vector<v1::ChangeEvent> marker(1, testing::SampleEvent(2000, 0, 1, 200));
    marker[0].set_op(v1::OP_RESNAPSHOT_MARKER);
    marker[0].clear_after();
    marker[0].set_message("lifeline.resnapshot");
    ASSERT_TRUE((*spool)->Append(marker).ok());
    auto more = testing::SampleTransaction(2001, 2, 200);
    ASSERT_TRUE((*spool)->Append(more).ok());
  }
  auto report = ScanStream(SpoolOptions(tmp.Sub("spool")));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->clean());
  ASSERT_EQ(report->sources.size(), 1u);
  ASSERT_EQ(report->sources[0].resnapshots.size(), 1u);
  EXPECT_EQ(report->sources[0].resnapshots[0].seq, 11u);
}

TEST(StreamScanSpool, ACommitLsnGoingBackwardsIsReported) {
  TempDir tmp;
  {
    auto spool = Spool::OpenForWrite(tmp.Sub("spool"));
    ASSERT_TRUE(spool.ok()) << spool.status().ToString();
    for (uint32_t xid : {10u, 11u, 5u, 12u}) {  // xid 5 commits at a lower LSN than xid 11
      auto events = testing::SampleTransaction(xid, 2, 200);
      ASSERT_TRUE((*spool)->Append(events).ok());
    }
  }
  auto report = ScanStream(SpoolOptions(tmp.Sub("spool")));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(report->clean());
  ASSERT_EQ(report->sources.size(), 1u);
  const auto& back = report->sources[0].backwards;
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].what, "commit_lsn");
  EXPECT_EQ(back[0].previous.seq, 4u);
  EXPECT_EQ(back[0].at.seq, 5u);
  EXPECT_EQ(back[0].at.commit_lsn, Lsn(testing::SampleEvent(5, 0, 2).commit_lsn()).ToString());
}

TEST(StreamScanSpool, AMissingSpoolDirectoryIsNotFoundNamingIt) {
  TempDir tmp;
  auto report = ScanStream(SpoolOptions(tmp.Sub("nope")));
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), StatusCode::kNotFound);
  EXPECT_NE(report.status().message().find(tmp.Sub("nope")), std::string::npos)
      << report.status().ToString();
}

TEST(StreamScanSpool, NoStreamOrTwoStreamsIsInvalidArgument) {
  StreamScanOptions none;
  EXPECT_EQ(ScanStream(none).status().code(), StatusCode::kInvalidArgument);
  StreamScanOptions both;
  both.stream.spool_dir = "/tmp/x";
  both.stream.kafka_brokers = "127.0.0.1:9092";
  EXPECT_EQ(ScanStream(both).status().code(), StatusCode::kInvalidArgument);
}

// A loopback port nobody listens on: bound, then released.
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "cannot bind a loopback socket";
  }
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(StreamScanKafka, ABrokerNobodyListensOnIsUnavailableWithinTheTimeout) {
  StreamScanOptions o;
  o.stream.kafka_brokers = "127.0.0.1:" + std::to_string(FreePort());
  o.stream.topic = "calls";
  o.kafka_timeout_ms = 2000;
  auto start = std::chrono::steady_clock::now();
  auto report = ScanStream(o);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), StatusCode::kUnavailable) << report.status().ToString();
  EXPECT_NE(report.status().message().find(o.stream.kafka_brokers), std::string::npos)
      << report.status().ToString();
  EXPECT_LT(took, std::chrono::seconds(10));
}

TEST(StreamScanKafka, AMalformedPropertyIsInvalidArgument) {
  StreamScanOptions o;
  o.stream.kafka_brokers = "127.0.0.1:1";
  o.stream.kafka_properties = {"no-equals-sign"};
  EXPECT_EQ(ScanStream(o).status().code(), StatusCode::kInvalidArgument);
}

// --- Kafka -------------------------------------------------------------------------------------

// Writes records to devkafka exactly as planted: chosen partition (or by key), in order.
class TopicWriter {
 public:
  explicit TopicWriter(const std::string& brokers) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    for (auto [k, v] :
         std::vector<std::pair<std::string, std::string>>{{"bootstrap.servers", brokers},
                                                          {"enable.idempotence", "true"},
                                                          {"partitioner", "murmur2_random"},
                                                          {"linger.ms", "2"}}) {
      EXPECT_EQ(rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err), RD_KAFKA_CONF_OK)
          << err;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) ++*static_cast<int*>(opaque);
    });
    rd_kafka_conf_set_opaque(conf, &failed_);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    EXPECT_NE(rk_, nullptr) << err;
  }
  ~TopicWriter() {
    if (rk_ != nullptr) rd_kafka_destroy(rk_);
  }

  void Send(const std::string& topic, int32_t partition, const std::string& value,
            const std::string& key = "") {
    rd_kafka_resp_err_t e =
        key.empty()
            ? rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC(topic.c_str()),
                                RD_KAFKA_V_PARTITION(partition),
                                RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)
            : rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC(topic.c_str()),
                                RD_KAFKA_V_PARTITION(partition),
                                RD_KAFKA_V_KEY(key.data(), key.size()),
                                RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    EXPECT_EQ(e, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(e);
  }

  // True when every record was acknowledged.
  bool Flush() {
    rd_kafka_resp_err_t e = rd_kafka_flush(rk_, 30'000);
    return e == RD_KAFKA_RESP_ERR_NO_ERROR && rd_kafka_outq_len(rk_) == 0 && failed_ == 0;
  }

 private:
  rd_kafka_t* rk_ = nullptr;
  int failed_ = 0;
};

class StreamScanKafkaIntegration : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { kafka_ = testing::StartDevKafka(3).release(); }
  static void TearDownTestSuite() {
    delete kafka_;
    kafka_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(kafka_, nullptr);
    records_ = ChainedRecords(tmp_.Sub("spool"), 20, 3);
    ASSERT_EQ(records_.size(), 60u);
  }

  // A new topic of `partitions` holding `values` in this order (all on partition 0 when there
  // is one partition; by the row key otherwise).
  std::string Topic(const std::vector<std::string>& values, int partitions = 1) {
    std::string topic = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    EXPECT_TRUE(kafka_->CreateTopic(topic, partitions, 1).ok());
    TopicWriter writer(kafka_->bootstrap_servers());
    for (const auto& v : values) {
      if (partitions == 1) {
        writer.Send(topic, 0, v);
      } else {
        v1::ChangeEvent ev;
        std::string key =
            ev.ParseFromString(v) && ev.has_after() ? ev.after().values(0).text() : "";
        writer.Send(topic, RD_KAFKA_PARTITION_UA, v, key.empty() ? "none" : key);
      }
    }
    EXPECT_TRUE(writer.Flush());
    return topic;
  }

  std::vector<std::string> AllValues() const {
    std::vector<std::string> out;
    for (const auto& r : records_) out.push_back(r.bytes);
    return out;
  }

  Result<StreamReport> Scan(const std::string& topic) {
    StreamScanOptions o;
    o.stream.kafka_brokers = kafka_->bootstrap_servers();
    o.stream.topic = topic;
    o.kafka_timeout_ms = 10'000;
    return ScanStream(o);
  }

  // Where `value` landed on a one-partition topic written from `values`.
  static StreamPosition At(const std::vector<std::string>& values, const std::string& value,
                           size_t nth = 0) {
    for (size_t i = 0; i < values.size(); ++i) {
      if (values[i] == value && nth-- == 0) return StreamPosition{0, static_cast<int64_t>(i)};
    }
    ADD_FAILURE() << "value not planted";
    return {};
  }

  const std::string& Bytes(uint64_t seq) const { return BySeq(records_, seq).bytes; }

  static DevKafkaCluster* kafka_;
  TempDir tmp_;
  std::vector<SpoolRecord> records_;
};

DevKafkaCluster* StreamScanKafkaIntegration::kafka_ = nullptr;

void ExpectMark(const EventMark& mark, const v1::ChangeEvent& ev, StreamPosition pos) {
  EXPECT_EQ(mark.seq, ev.seq());
  EXPECT_EQ(mark.commit_lsn, Lsn(ev.commit_lsn()).ToString());
  EXPECT_EQ(mark.commit_time_us, ev.commit_time_us());
  EXPECT_EQ(mark.position.Describe(), pos.Describe());
}

TEST_F(StreamScanKafkaIntegration, ACleanChainedStreamIsClean) {
  std::string topic = Topic(AllValues());
  uint64_t visited = 0;
  StreamScanOptions o;
  o.stream.kafka_brokers = kafka_->bootstrap_servers();
  o.stream.topic = topic;
  o.visit = [&](const StreamPosition& pos, const v1::ChangeEvent& ev) {
    EXPECT_EQ(static_cast<uint64_t>(pos.offset) + 1, ev.seq());
    ++visited;
  };
  auto report = ScanStream(o);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->clean());
  EXPECT_EQ(report->records, 60u);
  EXPECT_EQ(visited, 60u);
  EXPECT_EQ(report->description,
            "topic " + topic + " at " + kafka_->bootstrap_servers() + " (1 partition)");
  ASSERT_EQ(report->partitions.size(), 1u);
  EXPECT_EQ(report->partitions[0].low, 0);
  EXPECT_EQ(report->partitions[0].high, 60);
  EXPECT_EQ(report->partitions[0].records, 60u);
  ASSERT_EQ(report->sources.size(), 1u);
  const auto& s = report->sources[0];
  EXPECT_EQ(s.events, 60u);
  EXPECT_EQ(s.first_seq, 1u);
  EXPECT_EQ(s.last_seq, 60u);
  ExpectMark(s.first, Decode(records_.front()), {0, 0});
  ExpectMark(s.last, Decode(records_.back()), {0, 59});
}

TEST_F(StreamScanKafkaIntegration, AnEmptyTopicIsClean) {
  std::string topic = Topic({});
  auto report = Scan(topic);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->clean());
  EXPECT_EQ(report->records, 0u);
  EXPECT_TRUE(report->sources.empty());
}

TEST_F(StreamScanKafkaIntegration, AGapIsReportedWithTheEventsAroundIt) {
  std::vector<std::string> values;
  for (const auto& r : records_) {
    if (r.seq < 20 || r.seq > 22) values.push_back(r.bytes);
  }
  auto report = Scan(Topic(values));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(report->clean());
  ASSERT_EQ(report->sources.size(), 1u);
  const auto& s = report->sources[0];
  ASSERT_EQ(s.gaps.size(), 1u);
  EXPECT_EQ(s.gaps[0].from_seq, 20u);
  EXPECT_EQ(s.gaps[0].to_seq, 22u);
  ASSERT_TRUE(s.gaps[0].before && s.gaps[0].after);
  ExpectMark(*s.gaps[0].before, Decode(BySeq(records_, 19)), {0, 18});
  ExpectMark(*s.gaps[0].after, Decode(BySeq(records_, 23)), {0, 19});
  EXPECT_TRUE(s.chain_breaks.empty()) << "nothing to link across a hole";
  EXPECT_TRUE(s.duplicates.empty() && s.backwards.empty() && report->bad_records.empty());
  EXPECT_EQ(s.events, 57u);
}

TEST_F(StreamScanKafkaIntegration, AnIdenticalCopyIsReportedAndTheStreamStaysClean) {
  std::vector<std::string> values = AllValues();
  values.push_back(Bytes(30));  // a re-ship after a crash
  auto report = Scan(Topic(values));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->clean());
  EXPECT_EQ(report->records, 61u);
  ASSERT_EQ(report->sources.size(), 1u);
  const auto& s = report->sources[0];
  EXPECT_EQ(s.events, 60u);
  ASSERT_EQ(s.duplicates.size(), 1u);
  EXPECT_EQ(s.duplicates[0].seq, 30u);
  EXPECT_TRUE(s.duplicates[0].identical);
  ASSERT_EQ(s.duplicates[0].positions.size(), 2u);
  EXPECT_EQ(s.duplicates[0].positions[0].Describe(), "partition 0 offset 29");
  EXPECT_EQ(s.duplicates[0].positions[1].Describe(), "partition 0 offset 60");
  EXPECT_TRUE(s.backwards.empty()) << "a re-shipped copy is not an order fault";
}

TEST_F(StreamScanKafkaIntegration, ADifferingCopyIsADifference) {
  std::vector<std::string> values = AllValues();
  values.push_back(Altered(BySeq(records_, 30)));
  auto report = Scan(Topic(values));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(report->clean());
  const auto& s = report->sources.at(0);
  ASSERT_EQ(s.duplicates.size(), 1u);
  EXPECT_EQ(s.duplicates[0].seq, 30u);
  EXPECT_FALSE(s.duplicates[0].identical);
  EXPECT_TRUE(s.gaps.empty() && s.backwards.empty() && s.chain_breaks.empty());
}

TEST_F(StreamScanKafkaIntegration, ARecordThatDoesNotParseIsReportedAtItsOffset) {
  std::vector<std::string> values = AllValues();
  values[39] = "this is not a change event";  // seq 40
  auto report = Scan(Topic(values));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(report->clean());
  EXPECT_EQ(report->records, 60u);
  ASSERT_EQ(report->bad_records.size(), 1u);
  EXPECT_EQ(report->bad_records[0].position.Describe(), "partition 0 offset 39");
  EXPECT_NE(report->bad_records[0].error.find("not a ChangeEvent"), std::string::npos)
      << report->bad_records[0].error;
  const auto& s = report->sources.at(0);
  ASSERT_EQ(s.gaps.size(), 1u);  // its seq is missing from the stream
  EXPECT_EQ(s.gaps[0].from_seq, 40u);
  EXPECT_EQ(s.gaps[0].to_seq, 40u);
}

TEST_F(StreamScanKafkaIntegration, AnAlteredEventBreaksTheChainAtTheNextSeq) {
  std::vector<std::string> values = AllValues();
  values[24] = Altered(BySeq(records_, 25));
  auto report = Scan(Topic(values));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(report->clean());
  const auto& s = report->sources.at(0);
  ASSERT_EQ(s.chain_breaks.size(), 1u);
  EXPECT_EQ(s.chain_breaks[0].seq, 26u);
  EXPECT_EQ(s.chain_breaks[0].position.Describe(), "partition 0 offset 25");
  EXPECT_NE(s.chain_breaks[0].detail.find("seq 25 at partition 0 offset 24"), std::string::npos)
      << s.chain_breaks[0].detail;
  EXPECT_TRUE(s.gaps.empty() && s.duplicates.empty() && s.backwards.empty());
}

TEST_F(StreamScanKafkaIntegration, SeqGoingBackwardsInAPartitionIsReported) {
  std::vector<std::string> values = AllValues();
  std::swap(values[9], values[10]);  // seq 11 before seq 10
  auto report = Scan(Topic(values));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(report->clean());
  const auto& s = report->sources.at(0);
  ASSERT_EQ(s.backwards.size(), 1u);
  EXPECT_EQ(s.backwards[0].what, "seq");
  ExpectMark(s.backwards[0].previous, Decode(BySeq(records_, 11)), {0, 9});
  ExpectMark(s.backwards[0].at, Decode(BySeq(records_, 10)), {0, 10});
  EXPECT_TRUE(s.gaps.empty() && s.duplicates.empty() && s.chain_breaks.empty());
}

TEST_F(StreamScanKafkaIntegration, EveryFaultTogetherIsEachReported) {
  std::vector<std::string> values;
  const std::string corrupt = "\xff\xff\xff not an event";
  const std::string altered25 = Altered(BySeq(records_, 25));
  const std::string altered30 = Altered(BySeq(records_, 30));
  for (const auto& r : records_) {
    if (r.seq >= 20 && r.seq <= 22) continue;  // gap
    if (r.seq == 10) continue;                 // placed after 11
    if (r.seq == 25) {
      values.push_back(altered25);
    } else if (r.seq == 40) {
      values.push_back(corrupt);
    } else {
      values.push_back(r.bytes);
    }
    if (r.seq == 11) values.push_back(Bytes(10));
  }
  values.push_back(Bytes(5));   // identical copy
  values.push_back(altered30);  // differing copy
  auto report = Scan(Topic(values));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(report->clean());
  EXPECT_EQ(report->records, values.size());

  ASSERT_EQ(report->bad_records.size(), 1u);
  EXPECT_EQ(report->bad_records[0].position.Describe(), At(values, corrupt).Describe());

  const auto& s = report->sources.at(0);
  ASSERT_EQ(s.gaps.size(), 2u);
  EXPECT_EQ(s.gaps[0].from_seq, 20u);
  EXPECT_EQ(s.gaps[0].to_seq, 22u);
  ExpectMark(*s.gaps[0].before, Decode(BySeq(records_, 19)), At(values, Bytes(19)));
  ExpectMark(*s.gaps[0].after, Decode(BySeq(records_, 23)), At(values, Bytes(23)));
  EXPECT_EQ(s.gaps[1].from_seq, 40u);
  EXPECT_EQ(s.gaps[1].to_seq, 40u);

  ASSERT_EQ(s.duplicates.size(), 2u);
  EXPECT_EQ(s.duplicates[0].seq, 5u);
  EXPECT_TRUE(s.duplicates[0].identical);
  EXPECT_EQ(s.duplicates[1].seq, 30u);
  EXPECT_FALSE(s.duplicates[1].identical);
  ASSERT_EQ(s.duplicates[1].positions.size(), 2u);
  EXPECT_EQ(s.duplicates[1].positions[1].Describe(), At(values, altered30).Describe());

  ASSERT_EQ(s.chain_breaks.size(), 1u);
  EXPECT_EQ(s.chain_breaks[0].seq, 26u);
  EXPECT_EQ(s.chain_breaks[0].position.Describe(), At(values, Bytes(26)).Describe());

  ASSERT_EQ(s.backwards.size(), 1u);
  EXPECT_EQ(s.backwards[0].what, "seq");
  EXPECT_EQ(s.backwards[0].previous.seq, 11u);
  EXPECT_EQ(s.backwards[0].at.seq, 10u);
  EXPECT_EQ(s.backwards[0].at.position.Describe(), At(values, Bytes(10)).Describe());
}

TEST_F(StreamScanKafkaIntegration, ThreePartitionsByKeyAreCleanAndGapsSpanPartitions) {
  auto report = Scan(Topic(AllValues(), 3));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->clean()) << "seq order is global; only each partition's order is checked";
  ASSERT_EQ(report->partitions.size(), 3u);
  uint64_t sum = 0;
  for (const auto& [p, summary] : report->partitions) {
    EXPECT_GT(summary.records, 0u) << "partition " << p << " got no events";
    EXPECT_EQ(summary.high - summary.low, static_cast<int64_t>(summary.records));
    sum += summary.records;
  }
  EXPECT_EQ(sum, 60u);
  ASSERT_EQ(report->sources.size(), 1u);
  EXPECT_EQ(report->sources[0].events, 60u);
  EXPECT_NE(report->description.find("(3 partitions)"), std::string::npos);
}

TEST_F(StreamScanKafkaIntegration, AGapAcrossThreePartitionsIsFound) {
  std::vector<std::string> values;
  for (const auto& r : records_) {
    if (r.seq != 33) values.push_back(r.bytes);
  }
  auto report = Scan(Topic(values, 3));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(report->clean());
  const auto& s = report->sources.at(0);
  ASSERT_EQ(s.gaps.size(), 1u);
  EXPECT_EQ(s.gaps[0].from_seq, 33u);
  EXPECT_EQ(s.gaps[0].to_seq, 33u);
  EXPECT_EQ(s.gaps[0].before->seq, 32u);
  EXPECT_EQ(s.gaps[0].after->seq, 34u);
  EXPECT_GE(s.gaps[0].after->position.partition, 0);
  EXPECT_TRUE(s.backwards.empty() && s.chain_breaks.empty());
}

// devkafka keeps about 5 MB per partition and drops the oldest batches beyond it, as retention
// does: each partition then starts at a different seq, which is not a gap. Partition 2 gets
// records twice the size of the others', so it is trimmed much further whatever the batching:
// 7 MB and 14 MB given, 4-5 MB kept, so partitions 0 and 1 start near seq 2,000-2,600 and
// partition 2 near 3,900-4,300, and partition 2's seqs between are trimmed, not lost.
TEST_F(StreamScanKafkaIntegration, PartitionsTrimmedByRetentionLeaveNoFalseGaps) {
  const std::string topic = "trimmed";
  ASSERT_TRUE(kafka_->CreateTopic(topic, 3, 1).ok());
  auto partition_of = [](uint64_t seq) { return static_cast<int32_t>(seq % 3); };
  {
    TempDir big;
    auto spool = Spool::OpenForWrite(big.Sub("spool"));
    ASSERT_TRUE(spool.ok()) << spool.status().ToString();
    for (uint32_t xid = 1; xid <= 6000; ++xid) {  // one event each, so seq == xid
      auto events = testing::SampleTransaction(xid, 1, partition_of(xid) == 2 ? 7000 : 3500);
      ASSERT_TRUE((*spool)->Append(events).ok());
    }
    auto all = (*spool)->Read(1, 1'000'000, size_t{1} << 30);
    ASSERT_TRUE(all.ok()) << all.status().ToString();
    ASSERT_EQ(all->size(), 6000u);
    TopicWriter writer(kafka_->bootstrap_servers());
    for (const auto& r : *all) {
      if (r.seq != 5900) writer.Send(topic, partition_of(r.seq), r.bytes);  // one real hole
    }
    ASSERT_TRUE(writer.Flush());
  }
  auto report = Scan(topic);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->partitions.size(), 3u);
  for (const auto& [p, summary] : report->partitions) {
    ASSERT_GT(summary.low, 0) << "partition " << p << " was not trimmed; the test needs it";
  }
  // Partition p held seqs p, p+3, ... from its first offset on: the first seq it still holds is
  // 3 * low + p (partition 0 starts at seq 3), so what it lost to retention is known exactly.
  auto first_held = [&](int32_t p) {
    return static_cast<uint64_t>(3 * report->partitions.at(p).low + (p == 0 ? 3 : p));
  };
  const uint64_t from = std::max({first_held(0), first_held(1), first_held(2)});
  const uint64_t lowest = std::min({first_held(0), first_held(1), first_held(2)});
  uint64_t trimmed_above_lowest = 0;
  for (uint64_t seq = lowest; seq < from; ++seq) {
    if (seq < first_held(partition_of(seq))) ++trimmed_above_lowest;
  }
  const auto& s = report->sources.at(0);
  EXPECT_EQ(s.first_seq, lowest);
  EXPECT_EQ(s.retained_from_seq, from);
  EXPECT_GT(trimmed_above_lowest, 100u) << "partition 2 should have lost far more than the others";
  EXPECT_EQ(s.missing_before_retained, trimmed_above_lowest);
  ASSERT_EQ(s.gaps.size(), 1u) << "only the planted hole, none from retention";
  EXPECT_EQ(s.gaps[0].from_seq, 5900u);
  EXPECT_EQ(s.gaps[0].to_seq, 5900u);
  EXPECT_TRUE(s.backwards.empty() && s.chain_breaks.empty() && s.duplicates.empty());
}

// A live shipper: seqs 58 and 59 reach partition 1 and 2 only after the scan took the watermarks
// (seq 60 was already there), and 61..63 follow. The second look fills the hole and leaves out
// what came after the cut.
TEST_F(StreamScanKafkaIntegration, WritesLandingDuringTheScanLeaveNoFalseTailGap) {
  auto records = ChainedRecords(tmp_.Sub("live"), 21, 3);
  ASSERT_EQ(records.size(), 63u);
  const std::string topic = "live";
  ASSERT_TRUE(kafka_->CreateTopic(topic, 3, 1).ok());
  auto partition_of = [](uint64_t seq) { return static_cast<int32_t>(seq % 3); };
  TopicWriter writer(kafka_->bootstrap_servers());
  for (const auto& r : records) {
    if (r.seq <= 60 && r.seq != 58 && r.seq != 59) writer.Send(topic, partition_of(r.seq), r.bytes);
  }
  ASSERT_TRUE(writer.Flush());
  bool late_written = false;
  StreamScanOptions o;
  o.stream.kafka_brokers = kafka_->bootstrap_servers();
  o.stream.topic = topic;
  o.progress = [&](uint64_t, uint64_t) {  // first called once the watermarks are taken
    if (late_written) return;
    late_written = true;
    for (const auto& r : records) {
      if (r.seq >= 58 && r.seq != 60) writer.Send(topic, partition_of(r.seq), r.bytes);
    }
    EXPECT_TRUE(writer.Flush());
  };
  auto report = ScanStream(o);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_TRUE(late_written);
  EXPECT_TRUE(report->clean());
  EXPECT_EQ(report->records, 60u);
  const auto& s = report->sources.at(0);
  EXPECT_TRUE(s.gaps.empty()) << s.gaps.size() << " gaps, first from seq " << s.gaps[0].from_seq;
  EXPECT_EQ(s.events, 60u);
  EXPECT_EQ(s.last_seq, 60u);
}

TEST_F(StreamScanKafkaIntegration, TwoSourcesInOneTopicAreCheckedApart) {
  auto other = ChainedRecords(tmp_.Sub("other"), 5, 2, "other_slot");
  std::vector<std::string> values;
  for (size_t i = 0; i < records_.size(); ++i) {
    values.push_back(records_[i].bytes);
    if (i < other.size()) values.push_back(other[i].bytes);
  }
  auto report = Scan(Topic(values));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->clean());
  ASSERT_EQ(report->sources.size(), 2u);
  EXPECT_EQ(report->sources[0].source_id, "7312345678901234567/app/lifeline");
  EXPECT_EQ(report->sources[0].events, 60u);
  EXPECT_EQ(report->sources[1].source_id, "7312345678901234567/app/other_slot");
  EXPECT_EQ(report->sources[1].events, 10u);
}

TEST_F(StreamScanKafkaIntegration, AMissingTopicIsNotFoundNamingItAndIsNotCreated) {
  Topic(AllValues());
  for (int attempt = 0; attempt < 2; ++attempt) {  // the first look must not have created it
    auto report = Scan("no.such.topic");
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.status().code(), StatusCode::kNotFound) << report.status().ToString();
    EXPECT_NE(report.status().message().find("no.such.topic"), std::string::npos);
    EXPECT_NE(report.status().message().find("AMissingTopicIsNotFoundNamingItAndIsNotCreated"),
              std::string::npos)
        << "the topics that exist are listed: " << report.status().message();
  }
}

}  // namespace
}  // namespace lifeline::gapcheck
