// shipper unit tests: the contiguous-acknowledgement cursor, the event-to-record transform (key,
// headers, timestamp) and the producer's checking of --kafka-property, which must never echo a
// value.
#include <gtest/gtest.h>

#include <iterator>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/event_seal.h"
#include "common/lsn.h"
#include "common/spool.h"
#include "shipper/delivery_tracker.h"
#include "shipper/kafka_producer.h"
#include "shipper/kafka_record.h"
#include "tests/support/sample_events.h"
#include "tests/support/test_env.h"

namespace lifeline::shipper {
namespace {

// --- DeliveryTracker ---------------------------------------------------------------------------

TEST(DeliveryTracker, StartsAtTheStoredCursorWithNothingInFlight) {
  DeliveryTracker t(41);
  EXPECT_EQ(t.cursor(), 41u);
  EXPECT_EQ(t.in_flight(), 0u);
  EXPECT_EQ(t.oldest_unacknowledged_commit_time_us(), 0);
}

TEST(DeliveryTracker, InOrderAcknowledgementsAdvanceOneByOne) {
  DeliveryTracker t(0);
  for (uint64_t s = 1; s <= 3; ++s) t.Sent(s, 1000 + static_cast<int64_t>(s));
  EXPECT_EQ(t.in_flight(), 3u);
  t.Acknowledged(1);
  EXPECT_EQ(t.cursor(), 1u);
  t.Acknowledged(2);
  EXPECT_EQ(t.cursor(), 2u);
  t.Acknowledged(3);
  EXPECT_EQ(t.cursor(), 3u);
  EXPECT_EQ(t.in_flight(), 0u);
}

TEST(DeliveryTracker, OutOfOrderAcknowledgementsOnlyAdvanceOverContiguousRuns) {
  DeliveryTracker t(10);
  for (uint64_t s = 11; s <= 16; ++s) t.Sent(s, static_cast<int64_t>(s) * 100);
  // Partitions report in any order: 12, 13 and 15 first. The cursor may not move past 10.
  t.Acknowledged(13);
  t.Acknowledged(12);
  t.Acknowledged(15);
  EXPECT_EQ(t.cursor(), 10u);
  EXPECT_EQ(t.in_flight(), 6u);
  EXPECT_EQ(t.oldest_unacknowledged_commit_time_us(), 1100);
  // 11 closes the gap up to 13; 14 is still missing.
  t.Acknowledged(11);
  EXPECT_EQ(t.cursor(), 13u);
  EXPECT_EQ(t.in_flight(), 3u);
  EXPECT_EQ(t.oldest_unacknowledged_commit_time_us(), 1400);
  t.Acknowledged(14);
  EXPECT_EQ(t.cursor(), 15u);
  EXPECT_EQ(t.oldest_unacknowledged_commit_time_us(), 1600);
  t.Acknowledged(16);
  EXPECT_EQ(t.cursor(), 16u);
  EXPECT_EQ(t.in_flight(), 0u);
  EXPECT_EQ(t.oldest_unacknowledged_commit_time_us(), 0);
}

TEST(DeliveryTracker, AcknowledgementOfAnUnknownOrRepeatedSeqIsIgnored) {
  DeliveryTracker t(5);
  t.Sent(6, 1);
  t.Acknowledged(99);  // never sent
  t.Acknowledged(3);   // before the cursor
  EXPECT_EQ(t.cursor(), 5u);
  EXPECT_EQ(t.in_flight(), 1u);
  t.Acknowledged(6);
  t.Acknowledged(6);
  EXPECT_EQ(t.cursor(), 6u);
  EXPECT_EQ(t.in_flight(), 0u);
}

TEST(DeliveryTracker, ResetForgetsInFlightButKeepsTheCursor) {
  DeliveryTracker t(0);
  for (uint64_t s = 1; s <= 4; ++s) t.Sent(s, static_cast<int64_t>(s));
  t.Acknowledged(1);
  t.Acknowledged(3);  // acknowledged out of order: lost by the Reset, shipped again
  t.Reset();
  EXPECT_EQ(t.cursor(), 1u);
  EXPECT_EQ(t.in_flight(), 0u);
  EXPECT_EQ(t.oldest_unacknowledged_commit_time_us(), 0);
  // Reports of the old producer that arrive after the Reset change nothing.
  t.Acknowledged(2);
  EXPECT_EQ(t.cursor(), 1u);
  // Shipping starts again after the cursor.
  for (uint64_t s = 2; s <= 4; ++s) t.Sent(s, static_cast<int64_t>(s));
  t.Acknowledged(4);
  t.Acknowledged(3);
  EXPECT_EQ(t.cursor(), 1u);
  t.Acknowledged(2);
  EXPECT_EQ(t.cursor(), 4u);
}

TEST(DeliveryTracker, OldestUnacknowledgedSkipsAcknowledgedOnesAfterAGap) {
  DeliveryTracker t(0);
  t.Sent(1, 500);
  t.Sent(2, 700);
  t.Sent(3, 900);
  t.Acknowledged(2);
  EXPECT_EQ(t.oldest_unacknowledged_commit_time_us(), 500);
  t.Acknowledged(1);
  EXPECT_EQ(t.oldest_unacknowledged_commit_time_us(), 900);
}

// Thousands in flight, acknowledged in any order and now and then forgotten by a Reset: the
// tracker's ring (which grows and wraps) must agree with a plain set of what was acknowledged.
TEST(DeliveryTracker, AgreesWithASetModelThroughGrowthWrapAndReset) {
  std::mt19937_64 rng(7);
  DeliveryTracker t(100);
  uint64_t cursor = 100;     // the model's cursor
  uint64_t next = 101;       // next seq to send
  std::set<uint64_t> sent;   // sent after the cursor, not acknowledged
  std::set<uint64_t> acked;  // acknowledged, not yet passed by the cursor (still in flight)
  for (int step = 0; step < 200'000; ++step) {
    uint64_t r = rng() % 100;
    if (r < 50 && sent.size() < 5000) {
      t.Sent(next, static_cast<int64_t>(next) * 10);
      sent.insert(next++);
    } else if (r < 99 && !sent.empty()) {
      auto it = sent.begin();
      std::advance(it, static_cast<long>(rng() % std::min<size_t>(sent.size(), 64)));
      t.Acknowledged(*it);
      acked.insert(*it);
      sent.erase(it);
      while (acked.count(cursor + 1) > 0) acked.erase(++cursor);
    } else {
      t.Reset();
      sent.clear();
      acked.clear();
      next = cursor + 1;
    }
    ASSERT_EQ(t.cursor(), cursor) << "step " << step;
    ASSERT_EQ(t.in_flight(), sent.size() + acked.size()) << "step " << step;
    int64_t oldest = sent.empty() ? 0 : static_cast<int64_t>(*sent.begin()) * 10;
    if (step % 97 == 0) {
      ASSERT_EQ(t.oldest_unacknowledged_commit_time_us(), oldest) << "step " << step;
      t.Acknowledged(next + rng() % 3);  // a report of the producer before a Reset: ignored
    }
  }
}

// --- RecordKey / ToKafkaRecord -----------------------------------------------------------------

v1::ChangeEvent RowEvent(v1::Op op, const std::vector<std::pair<std::string, bool>>& cols,
                         const std::vector<std::string>& values) {
  v1::ChangeEvent ev;
  ev.set_seq(7);
  ev.set_op(op);
  ev.mutable_source()->set_system_id("7312345678901234567");
  ev.mutable_source()->set_slot_name("lifeline");
  ev.set_commit_lsn(0x16B374D848ull);
  ev.set_commit_time_us(1'764'000'000'123'456LL);
  ev.mutable_relation()->set_schema("public");
  ev.mutable_relation()->set_table("t");
  ev.mutable_relation()->set_schema_version(3);
  for (const auto& [name, key] : cols) {
    auto* c = ev.mutable_relation()->add_columns();
    c->set_name(name);
    c->set_key(key);
  }
  v1::Row* row = op == v1::OP_DELETE ? ev.mutable_before() : ev.mutable_after();
  for (const auto& v : values) row->add_values()->set_text(v);
  return ev;
}

SpoolRecord ToSpoolRecord(const v1::ChangeEvent& ev) {
  SpoolRecord r;
  r.seq = ev.seq();
  r.bytes = ev.SerializeAsString();
  return r;
}

TEST(RecordKey, SingleKeyColumnIsItsText) {
  auto ev = RowEvent(v1::OP_INSERT, {{"note", false}, {"id", true}, {"v", false}},
                     {"hello", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "x"});
  EXPECT_EQ(RecordKey(ev), std::optional<std::string>("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
}

TEST(RecordKey, CompositeKeyIsAJsonObjectInColumnOrder) {
  auto ev = RowEvent(v1::OP_UPDATE, {{"tenant", true}, {"v", false}, {"n", true}},
                     {"acme \"east\"", "x", "42"});
  EXPECT_EQ(RecordKey(ev), std::optional<std::string>(R"({"tenant":"acme \"east\"","n":"42"})"));
}

TEST(RecordKey, UpdateUsesTheAfterImage) {
  // A primary-key change: the record goes with the new key.
  auto ev = RowEvent(v1::OP_UPDATE, {{"id", true}, {"v", false}}, {"10", "x"});
  auto* before = ev.mutable_before();
  before->add_values()->set_text("2");
  before->add_values()->set_null(true);
  EXPECT_EQ(RecordKey(ev), std::optional<std::string>("10"));
}

TEST(RecordKey, DeleteUsesTheBeforeImage) {
  auto ev = RowEvent(v1::OP_DELETE, {{"id", true}, {"v", false}}, {"4", ""});
  ev.mutable_before()->mutable_values(1)->set_null(true);
  ASSERT_FALSE(ev.has_after());
  EXPECT_EQ(RecordKey(ev), std::optional<std::string>("4"));
}

TEST(RecordKey, SnapshotRowsAreKeyed) {
  auto ev = RowEvent(v1::OP_SNAPSHOT, {{"id", true}}, {"99"});
  EXPECT_EQ(RecordKey(ev), std::optional<std::string>("99"));
}

TEST(RecordKey, RowlessEventsHaveNoKey) {
  v1::ChangeEvent hb;
  hb.set_op(v1::OP_HEARTBEAT);
  hb.set_message("lifeline.heartbeat");
  EXPECT_EQ(RecordKey(hb), std::nullopt);
  auto truncate = RowEvent(v1::OP_TRUNCATE, {{"id", true}}, {});
  truncate.clear_after();
  EXPECT_EQ(RecordKey(truncate), std::nullopt);
  v1::ChangeEvent marker;
  marker.set_op(v1::OP_RESNAPSHOT_MARKER);
  EXPECT_EQ(RecordKey(marker), std::nullopt);
}

TEST(RecordKey, TableWithoutKeyColumnsHasNoKey) {
  auto ev = RowEvent(v1::OP_INSERT, {{"a", false}, {"b", false}}, {"1", "2"});
  EXPECT_EQ(RecordKey(ev), std::nullopt);
}

TEST(ToKafkaRecord, CarriesValueTimestampAndExactHeaders) {
  auto ev = RowEvent(v1::OP_INSERT, {{"id", true}, {"v", false}}, {"17", "x"});
  SpoolRecord rec = ToSpoolRecord(ev);
  std::string bytes = rec.bytes;
  auto r = ToKafkaRecord(rec);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->seq, 7u);
  EXPECT_EQ(r->key, std::optional<std::string>("17"));
  EXPECT_EQ(r->value, bytes) << "the value is the spooled event, byte for byte";
  EXPECT_EQ(r->commit_time_us, 1'764'000'000'123'456LL);
  EXPECT_EQ(r->timestamp_ms, 1'764'000'000'123LL);
  std::vector<std::pair<std::string, std::string>> want = {
      {"seq", "7"},
      {"commit_lsn", "16/B374D848"},
      {"source", "7312345678901234567/lifeline"},
      {"schema_version", "3"}};
  EXPECT_EQ(Headers(*r), want);
}

TEST(ToKafkaRecord, SampleEventsMatchTheirSeqLsnAndTime) {
  auto events = testing::SampleTransaction(12, 3);
  for (uint32_t i = 0; i < events.size(); ++i) {
    auto& ev = events[i];
    ev.set_seq(100 + i);
    SpoolRecord rec = ToSpoolRecord(ev);
    auto r = ToKafkaRecord(rec);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->seq, 100u + i);
    EXPECT_EQ(r->timestamp_ms, ev.commit_time_us() / 1000);
    auto headers = Headers(*r);
    ASSERT_EQ(headers.size(), 4u);
    EXPECT_EQ(headers[0].second, std::to_string(100 + i));
    EXPECT_EQ(headers[1].second, Lsn(ev.commit_lsn()).ToString());
    EXPECT_EQ(headers[2].second, "7312345678901234567/lifeline");
    EXPECT_EQ(headers[3].second, "1");
    EXPECT_EQ(r->key, ev.after().values(0).text());
  }
}

TEST(ToKafkaRecord, HeartbeatHasNoKeyButFullHeaders) {
  v1::ChangeEvent hb;
  hb.set_seq(3);
  hb.set_op(v1::OP_HEARTBEAT);
  hb.mutable_source()->set_system_id("1");
  hb.mutable_source()->set_slot_name("s");
  hb.set_commit_lsn(0x1000028);
  hb.set_commit_time_us(1999);
  SpoolRecord rec = ToSpoolRecord(hb);
  auto r = ToKafkaRecord(rec);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->key, std::nullopt);
  EXPECT_EQ(r->timestamp_ms, 1);
  std::vector<std::pair<std::string, std::string>> want = {
      {"seq", "3"}, {"commit_lsn", "0/1000028"}, {"source", "1/s"}, {"schema_version", "0"}};
  EXPECT_EQ(Headers(*r), want);
}

TEST(ToKafkaRecord, RejectsUnparseableOrMisplacedEvents) {
  SpoolRecord garbage{5, std::string("\xff\xff\xff\xff", 4)};
  EXPECT_FALSE(ToKafkaRecord(garbage).ok());
  auto ev = RowEvent(v1::OP_INSERT, {{"id", true}}, {"1"});
  SpoolRecord misplaced = ToSpoolRecord(ev);
  misplaced.seq = 8;  // the event says 7
  EXPECT_FALSE(ToKafkaRecord(misplaced).ok());
}

// The record built from the wire scan must equal the one built from a full parse, whatever the
// event looks like: RecordKey and the headers over ParseEvent are the reference.
void ExpectSameAsFullParse(const SpoolRecord& rec, const std::string& what) {
  SCOPED_TRACE(what);
  auto full = ParseEvent(rec);
  auto r = ToKafkaRecord(rec);
  ASSERT_EQ(r.ok(), full.ok()) << (r.ok() ? full.status() : r.status()).ToString();
  if (!r.ok()) return;
  EXPECT_EQ(r->seq, full->seq());
  EXPECT_EQ(r->key, RecordKey(*full));
  EXPECT_EQ(r->value, rec.bytes);
  EXPECT_EQ(r->commit_time_us, full->commit_time_us());
  EXPECT_EQ(r->timestamp_ms, full->commit_time_us() / 1000);
  std::vector<std::pair<std::string, std::string>> want = {
      {"seq", std::to_string(full->seq())},
      {"commit_lsn", Lsn(full->commit_lsn()).ToString()},
      {"source", full->source().system_id() + "/" + full->source().slot_name()},
      {"schema_version", std::to_string(full->relation().schema_version())}};
  EXPECT_EQ(Headers(*r), want);
}

TEST(ToKafkaRecord, AgreesWithAFullParseOnEveryShapeOfEvent) {
  std::vector<std::pair<std::string, v1::ChangeEvent>> cases;
  cases.emplace_back("single key",
                     RowEvent(v1::OP_INSERT, {{"id", true}, {"v", false}}, {"1", "x"}));
  cases.emplace_back("composite key",
                     RowEvent(v1::OP_UPDATE, {{"t", true}, {"v", false}, {"n", true}},
                              {"acme \"east\"", "x", "42"}));
  cases.emplace_back("delete", RowEvent(v1::OP_DELETE, {{"id", true}}, {"4"}));
  cases.emplace_back("no key columns", RowEvent(v1::OP_INSERT, {{"a", false}}, {"1"}));
  cases.emplace_back("more columns than values",
                     RowEvent(v1::OP_INSERT, {{"a", false}, {"id", true}}, {"1"}));
  auto null_key = RowEvent(v1::OP_INSERT, {{"id", true}, {"n", true}}, {"1", "2"});
  null_key.mutable_after()->mutable_values(0)->set_null(true);
  null_key.mutable_after()->mutable_values(1)->set_unchanged_toast(true);
  cases.emplace_back("null and unchanged-TOAST key values", null_key);
  auto delete_without_before = RowEvent(v1::OP_DELETE, {{"id", true}}, {"4"});
  delete_without_before.clear_before();
  delete_without_before.mutable_after()->add_values()->set_text("5");
  cases.emplace_back("delete with only an after image", delete_without_before);
  auto empty_after = RowEvent(v1::OP_INSERT, {{"id", true}}, {});
  cases.emplace_back("empty after image", empty_after);
  v1::ChangeEvent hb;
  hb.set_seq(7);
  hb.set_op(v1::OP_HEARTBEAT);
  hb.set_message("beat");
  cases.emplace_back("heartbeat without source", hb);
  auto sample = testing::SampleEvent(12, 0, 1);
  sample.set_seq(7);
  sample.set_prev_hash(std::string(32, '\x01'));
  cases.emplace_back("sample event", sample);
  auto negative_time = RowEvent(v1::OP_INSERT, {{"id", true}}, {"1"});
  negative_time.set_commit_time_us(-5);
  cases.emplace_back("negative commit time", negative_time);
  for (const auto& [what, ev] : cases) ExpectSameAsFullParse(ToSpoolRecord(ev), what);

  // Protobuf merges a message given twice: scalars last wins, lists append, sub-messages merge.
  auto first = RowEvent(v1::OP_INSERT, {{"id", true}}, {"1"});
  auto second = RowEvent(v1::OP_UPDATE, {{"n", true}}, {"2"});
  second.mutable_source()->set_slot_name("other");
  second.mutable_relation()->set_schema_version(9);
  SpoolRecord merged{7, first.SerializeAsString() + second.SerializeAsString()};
  ExpectSameAsFullParse(merged, "two serializations concatenated");

  // Unknown fields are skipped; a known field number with another wire type is unknown too.
  std::string unknown = ToSpoolRecord(first).bytes;
  unknown += std::string("\xa8\x06\x05", 3);              // field 101, varint
  unknown += std::string("\x0a\x00", 2);                  // field 1 (seq) as length-delimited
  unknown += std::string("\xb5\x06\x01\x02\x03\x04", 6);  // field 102, fixed32
  ExpectSameAsFullParse(SpoolRecord{7, unknown}, "unknown fields");
  std::string group = ToSpoolRecord(first).bytes + std::string("\xab\x06\xac\x06", 4);
  ExpectSameAsFullParse(SpoolRecord{7, group}, "an empty group (field 101)");
}

// A sealed event keeps its record's key (the clear Sealed.record_key, equal to the clear event's
// key) and names its key in a header.
TEST(ToKafkaRecord, SealedEventsKeepTheirKeyAndNameTheirKeyId) {
  testing::TempDir dir;
  const std::string key_file = dir.Sub("2026-11.key");
  ASSERT_TRUE(WriteNewKeyFile(key_file).ok());
  auto ring = Keyring::Load({key_file});
  ASSERT_TRUE(ring.ok());
  std::vector<v1::ChangeEvent> cases = {
      RowEvent(v1::OP_INSERT, {{"id", true}, {"v", false}}, {"1", "x"}),
      RowEvent(v1::OP_UPDATE, {{"t", true}, {"v", false}, {"n", true}}, {"acme", "x", "42"}),
      RowEvent(v1::OP_DELETE, {{"id", true}}, {"4"}),
      RowEvent(v1::OP_INSERT, {{"a", false}}, {"1"})};
  for (const v1::ChangeEvent& clear : cases) {
    v1::ChangeEvent sealed = clear;
    ASSERT_TRUE(ring->Seal(sealed).ok());
    ASSERT_TRUE(sealed.has_sealed());
    SpoolRecord rec = ToSpoolRecord(sealed);
    auto r = ToKafkaRecord(rec);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->key, RecordKey(clear));
    EXPECT_EQ(r->value, rec.bytes);
    auto headers = Headers(*r);
    ASSERT_EQ(headers.size(), 5u);
    EXPECT_EQ(headers.back(), std::make_pair(std::string("key_id"), std::string("2026-11")));
  }
}

TEST(ToKafkaRecord, RejectsWhatTheFullParserRejects) {
  auto ev = RowEvent(v1::OP_INSERT, {{"id", true}, {"v", false}}, {"1", "x"});
  std::string bytes = ev.SerializeAsString();
  for (size_t n = 0; n < bytes.size(); ++n) {
    ExpectSameAsFullParse(SpoolRecord{7, bytes.substr(0, n)}, "cut at " + std::to_string(n));
  }
  auto bad_utf8 = RowEvent(v1::OP_INSERT, {{"id", true}, {"v", false}}, {"1", "\xc3\x28"});
  SpoolRecord bad_rec = ToSpoolRecord(bad_utf8);
  auto r = ToKafkaRecord(bad_rec);
  EXPECT_FALSE(r.ok()) << "invalid UTF-8 in a value the shipper does not use";
  ExpectSameAsFullParse(ToSpoolRecord(bad_utf8), "invalid UTF-8");
  ExpectSameAsFullParse(SpoolRecord{7, std::string(11, '\xff')}, "an overlong varint");
  ExpectSameAsFullParse(SpoolRecord{7, std::string("\x00\x01", 2)}, "field number 0");
  ExpectSameAsFullParse(SpoolRecord{7, std::string("\x0f\x01", 2)}, "wire type 7");
  // Protobuf reads a tag or a length in at most five bytes, however small its value.
  std::string seq7 = "\x08\x07";
  ExpectSameAsFullParse(SpoolRecord{7, seq7 + std::string("\x98\x80\x80\x80\x80\x00\x05", 7)},
                        "a tag in six bytes");
  ExpectSameAsFullParse(SpoolRecord{7, seq7 + std::string("\x98\x80\x80\x80\x00\x05", 6)},
                        "a tag in five bytes");
  ExpectSameAsFullParse(SpoolRecord{7, seq7 + std::string("\x7a\x81\x80\x80\x80\x80\x00\x41", 8)},
                        "a length in six bytes");
  ExpectSameAsFullParse(SpoolRecord{7, seq7 + std::string("\x7a\x81\x80\x80\x80\x00\x41", 7)},
                        "a length in five bytes");
}

// --- KafkaProducer::Create ---------------------------------------------------------------------

Result<std::unique_ptr<KafkaProducer>> CreateWith(std::vector<std::string> properties) {
  ProducerConfig config;
  config.brokers = "127.0.0.1:1";  // never contacted: Create does not connect
  config.topic = "t";
  config.properties = std::move(properties);
  return KafkaProducer::Create(config, [](uint64_t, std::string_view) {});
}

TEST(KafkaProducerCreate, AcceptsValidProperties) {
  auto p = CreateWith({"security.protocol=plaintext", "sasl.password=hunter2", "linger.ms=20"});
  EXPECT_TRUE(p.ok()) << p.status().ToString();
}

TEST(KafkaProducerCreate, RejectsMissingBrokersOrTopic) {
  ProducerConfig config;
  config.topic = "t";
  auto p = KafkaProducer::Create(config, [](uint64_t, std::string_view) {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  config.brokers = "127.0.0.1:1";
  config.topic = "";
  EXPECT_FALSE(KafkaProducer::Create(config, [](uint64_t, std::string_view) {}).ok());
}

TEST(KafkaProducerCreate, RejectsAnUnknownPropertyNamingIt) {
  auto p = CreateWith({"no.such.thing=1"});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("no.such.thing"), std::string::npos) << p.status().ToString();
  EXPECT_NE(p.status().message().find("--kafka-property"), std::string::npos)
      << p.status().ToString();
}

TEST(KafkaProducerCreate, RejectsAMalformedProperty) {
  for (const std::string& bad : {std::string("linger.ms"), std::string("=5")}) {
    auto p = CreateWith({bad});
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(p.status().message().find("key=value"), std::string::npos) << p.status().ToString();
  }
}

TEST(KafkaProducerCreate, AnUnknownKeyDoesNotEchoTheSecretValue) {
  for (const std::string& bad :
       {std::string("sasl.pasword=hunter2"), std::string("sasl.password.typo=hunter2"),
        std::string(" sasl.password=hunter2")}) {
    auto p = CreateWith({bad});
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(p.status().ToString().find("hunter2"), std::string::npos) << p.status().ToString();
  }
}

// A value typed with ':' or ' ' instead of '=' is still a secret; the whole argument must not be
// repeated back.
TEST(KafkaProducerCreate, AMalformedPropertyDoesNotEchoTheSecretValue) {
  for (const std::string& bad :
       {std::string("sasl.password:hunter2"), std::string("sasl.password hunter2")}) {
    auto p = CreateWith({bad});
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(p.status().ToString().find("hunter2"), std::string::npos) << p.status().ToString();
  }
}

// librdkafka's own message for an invalid value quotes the value; the producer must not pass it on.
TEST(KafkaProducerCreate, AnInvalidValueIsNotEchoed) {
  auto p = CreateWith({"security.protocol=hunter2"});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("security.protocol"), std::string::npos)
      << p.status().ToString();
  EXPECT_EQ(p.status().ToString().find("hunter2"), std::string::npos) << p.status().ToString();
}

}  // namespace
}  // namespace lifeline::shipper
