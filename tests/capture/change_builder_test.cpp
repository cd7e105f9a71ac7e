// The transform step: events carry their transaction's identity, the last one is marked at
// Commit, re-sent transactions are skipped whole, heartbeats become HEARTBEAT events.
#include "capture/change_builder.h"

#include <gtest/gtest.h>

#include <optional>

namespace lifeline::capture {
namespace {

class ChangeBuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A Relation message teaches the decoder relation 16400 (public.t: id int key, v text).
    std::string rel;
    rel += 'R';
    rel += std::string("\x00\x00\x40\x10", 4);
    rel += std::string("public\0", 7);
    rel += std::string("t\0", 2);
    rel += 'd';
    rel += std::string("\x00\x02", 2);
    rel += std::string("\x01id\0\x00\x00\x00\x17\xff\xff\xff\xff", 12);
    rel += std::string("\x00v\0\x00\x00\x00\x19\xff\xff\xff\xff", 11);
    Status st = Feed(rel);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  Status Feed(const std::string& bytes) {
    auto msg = decoder_.Decode(bytes);
    if (!msg.ok()) return msg.status();
    return builder_.Apply(*msg, decoder_, 0x1000, &out_);
  }

  static std::string Begin(uint64_t final_lsn, uint32_t xid) {
    std::string b = "B";
    for (int i = 7; i >= 0; --i) b += static_cast<char>((final_lsn >> (8 * i)) & 0xff);
    b += std::string(8, '\0');  // commit time (PG epoch)
    for (int i = 3; i >= 0; --i) b += static_cast<char>((xid >> (8 * i)) & 0xff);
    return b;
  }
  static std::string Commit(uint64_t lsn) {
    std::string c = "C";
    c += '\0';
    for (int k = 0; k < 2; ++k) {
      for (int i = 7; i >= 0; --i) c += static_cast<char>((lsn >> (8 * i)) & 0xff);
    }
    c += std::string(8, '\0');
    return c;
  }
  // Tuple data of (id, v); an empty optional is NULL.
  static std::string Tuple(const std::optional<std::string>& id,
                           const std::optional<std::string>& v) {
    std::string m = std::string("\x00\x02", 2);
    for (const auto& s : {id, v}) {
      if (!s) {
        m += 'n';
        continue;
      }
      m += 't';
      uint32_t n = static_cast<uint32_t>(s->size());
      for (int i = 3; i >= 0; --i) m += static_cast<char>((n >> (8 * i)) & 0xff);
      m += *s;
    }
    return m;
  }
  static std::string Update(const std::string& old_id, const std::string& id,
                            const std::optional<std::string>& v) {
    return "U" + std::string("\x00\x00\x40\x10", 4) + "K" + Tuple(old_id, std::nullopt) + "N" +
           Tuple(id, v);
  }
  static std::string Delete(const std::string& id) {
    return "D" + std::string("\x00\x00\x40\x10", 4) + "K" + Tuple(id, std::nullopt);
  }
  static std::string Heartbeat() {
    std::string msg = "M";
    msg += '\x01';
    msg += std::string(8, '\0');
    msg += std::string(kHeartbeatPrefix) + '\0';
    msg += std::string("\x00\x00\x00\x02", 4) + "hb";
    return msg;
  }
  static std::string Insert(const std::string& id, const std::string& v) {
    std::string m = "I";
    m += std::string("\x00\x00\x40\x10", 4);
    m += 'N';
    m += std::string("\x00\x02", 2);
    for (const auto& s : {id, v}) {
      m += 't';
      uint32_t n = static_cast<uint32_t>(s.size());
      for (int i = 3; i >= 0; --i) m += static_cast<char>((n >> (8 * i)) & 0xff);
      m += s;
    }
    return m;
  }

  static v1::Source MakeSource() {
    v1::Source s;
    s.set_system_id("42");
    s.set_slot_name("lifeline");
    return s;
  }

  v1::Source source_ = MakeSource();
  PgOutputDecoder decoder_;
  ChangeBuilder builder_{source_, [](uint32_t oid, int32_t) {
                           return oid == 23 ? std::string("integer") : std::string("text");
                         }};
  EventBatch out_;
};

TEST_F(ChangeBuilderTest, MarksTheLastEventOfATransactionAtCommit) {
  ASSERT_TRUE(Feed(Begin(0x5000, 700)).ok());
  ASSERT_TRUE(Feed(Insert("1", "a")).ok());
  ASSERT_TRUE(Feed(Insert("2", "b")).ok());
  EXPECT_EQ(out_.size(), 1u) << "the newest event waits for the Commit";
  EXPECT_TRUE(builder_.in_transaction());
  ASSERT_TRUE(Feed(Commit(0x5000)).ok());
  ASSERT_EQ(out_.size(), 2u);
  EXPECT_FALSE(out_[0].last_in_txn());
  EXPECT_TRUE(out_[1].last_in_txn());
  EXPECT_EQ(out_[1].txn_event_count(), 2u);
  EXPECT_EQ(out_[1].index_in_txn(), 1u);
  EXPECT_EQ(out_[0].xid(), 700u);
  EXPECT_EQ(out_[0].commit_lsn(), 0x5000u);
  EXPECT_EQ(out_[0].source().system_id(), "42");
  EXPECT_EQ(out_[0].relation().table(), "t");
  EXPECT_EQ(out_[0].relation().columns(0).type_name(), "integer");
  EXPECT_TRUE(out_[0].relation().columns(0).key());
  EXPECT_EQ(out_[0].after().values(1).text(), "a");
  EXPECT_EQ(builder_.last_commit_lsn(), 0x5000u);
}

TEST_F(ChangeBuilderTest, SkipsTransactionsAlreadySpooled) {
  builder_.set_skip_through_commit_lsn(0x5000);
  ASSERT_TRUE(Feed(Begin(0x5000, 700)).ok());
  ASSERT_TRUE(Feed(Insert("1", "a")).ok());
  ASSERT_TRUE(Feed(Commit(0x5000)).ok());
  EXPECT_TRUE(out_.empty());
  EXPECT_EQ(builder_.transactions_skipped(), 1u);
  ASSERT_TRUE(Feed(Begin(0x6000, 701)).ok());
  ASSERT_TRUE(Feed(Insert("2", "b")).ok());
  ASSERT_TRUE(Feed(Commit(0x6000)).ok());
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].xid(), 701u);
}

TEST_F(ChangeBuilderTest, HeartbeatMessagesBecomeHeartbeatEvents) {
  std::string msg = "M";
  msg += '\x01';
  msg += std::string(8, '\0');
  msg += std::string(kHeartbeatPrefix) + '\0';
  msg += std::string("\x00\x00\x00\x02", 4) + "hb";
  std::string other = "M";
  other += '\x01';
  other += std::string(8, '\0');
  other += std::string("someone.else\0", 13);
  other += std::string("\x00\x00\x00\x01", 4) + "x";
  ASSERT_TRUE(Feed(Begin(0x7000, 702)).ok());
  ASSERT_TRUE(Feed(other).ok());
  ASSERT_TRUE(Feed(msg).ok());
  ASSERT_TRUE(Feed(Commit(0x7000)).ok());
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].op(), v1::OP_HEARTBEAT);
  EXPECT_EQ(out_[0].message(), "hb");
  EXPECT_TRUE(out_[0].last_in_txn());
}

TEST_F(ChangeBuilderTest, RowChangeOutsideATransactionIsAnError) {
  Status st = Feed(Insert("1", "a"));
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_EQ(Feed(Commit(0x1)).code(), StatusCode::kCorruption);
}

// Event objects are reused batch after batch: an event built over a spent one carries nothing of
// it (no stale row image, relation, message, seq or hash), whatever the two were.
TEST_F(ChangeBuilderTest, ReusedEventsCarryNothingOfTheirPredecessors) {
  const std::string long_text(100'000, 'x');
  auto round = [&](bool first) {
    ASSERT_TRUE(Feed(Begin(first ? 0x5000 : 0x6000, first ? 700 : 701)).ok());
    if (first) {
      ASSERT_TRUE(Feed(Update("1", "2", long_text)).ok());
      ASSERT_TRUE(Feed(Heartbeat()).ok());
      ASSERT_TRUE(Feed(Delete("3")).ok());
      ASSERT_TRUE(Feed(Insert("4", "four")).ok());
    } else {
      ASSERT_TRUE(Feed(Heartbeat()).ok());
      ASSERT_TRUE(Feed(Insert("5", "five")).ok());
      ASSERT_TRUE(Feed(Update("5", "6", std::nullopt)).ok());
      ASSERT_TRUE(Feed(Delete("6")).ok());
    }
    ASSERT_TRUE(Feed(Commit(first ? 0x5000 : 0x6000)).ok());
    ASSERT_EQ(out_.size(), 4u);
  };
  round(true);
  // What the spool does to written events.
  for (auto& ev : out_.events()) {
    ev.set_seq(99);
    ev.set_prev_hash(std::string(32, '\x7f'));
  }
  EXPECT_EQ(out_[0].after().values(1).text(), long_text);
  out_.Reset();
  round(false);

  const auto& hb = out_[0];
  EXPECT_EQ(hb.op(), v1::OP_HEARTBEAT);
  EXPECT_FALSE(hb.has_relation());
  EXPECT_FALSE(hb.has_before());
  EXPECT_FALSE(hb.has_after());
  EXPECT_EQ(hb.message(), "hb");
  EXPECT_EQ(hb.xid(), 701u);

  const auto& ins = out_[1];
  EXPECT_EQ(ins.op(), v1::OP_INSERT);
  EXPECT_FALSE(ins.has_before());
  EXPECT_EQ(ins.after().values(0).text(), "5");
  EXPECT_EQ(ins.after().values(1).text(), "five");
  EXPECT_EQ(ins.relation().table(), "t");
  EXPECT_EQ(ins.relation().columns_size(), 2);
  EXPECT_TRUE(ins.message().empty());

  const auto& upd = out_[2];
  EXPECT_EQ(upd.op(), v1::OP_UPDATE);
  EXPECT_EQ(upd.before().values(0).text(), "5");
  EXPECT_TRUE(upd.before().values(1).null());
  EXPECT_EQ(upd.after().values(0).text(), "6");
  EXPECT_TRUE(upd.after().values(1).null());

  const auto& del = out_[3];
  EXPECT_EQ(del.op(), v1::OP_DELETE);
  EXPECT_FALSE(del.has_after());
  EXPECT_EQ(del.before().values(0).text(), "6");
  EXPECT_TRUE(del.last_in_txn());
  EXPECT_EQ(del.txn_event_count(), 4u);

  for (size_t i = 0; i < out_.size(); ++i) {
    EXPECT_EQ(out_[i].seq(), 0u) << i;
    EXPECT_TRUE(out_[i].prev_hash().empty()) << i;
    EXPECT_EQ(out_[i].index_in_txn(), static_cast<uint32_t>(i));
    EXPECT_EQ(out_[i].commit_lsn(), 0x6000u);
    EXPECT_EQ(out_[i].source().system_id(), "42");
    if (i < 3) {
      EXPECT_FALSE(out_[i].last_in_txn()) << i;
    }
  }
  // Equal to the same events built fresh, byte for byte.
  PgOutputDecoder decoder;
  ChangeBuilder fresh(source_, [](uint32_t oid, int32_t) {
    return oid == 23 ? std::string("integer") : std::string("text");
  });
  EventBatch fresh_out;
  std::string rel;
  rel += 'R';
  rel += std::string("\x00\x00\x40\x10", 4);
  rel += std::string("public\0", 7);
  rel += std::string("t\0", 2);
  rel += 'd';
  rel += std::string("\x00\x02", 2);
  rel += std::string("\x01id\0\x00\x00\x00\x17\xff\xff\xff\xff", 12);
  rel += std::string("\x00v\0\x00\x00\x00\x19\xff\xff\xff\xff", 11);
  for (const std::string& m : {rel, Begin(0x6000, 701), Heartbeat(), Insert("5", "five"),
                               Update("5", "6", std::nullopt), Delete("6"), Commit(0x6000)}) {
    auto msg = decoder.Decode(m);
    ASSERT_TRUE(msg.ok()) << msg.status().ToString();
    ASSERT_TRUE(fresh.Apply(*msg, decoder, 0x1000, &fresh_out).ok());
  }
  ASSERT_EQ(fresh_out.size(), out_.size());
  for (size_t i = 0; i < out_.size(); ++i) {
    EXPECT_EQ(out_[i].SerializeAsString(), fresh_out[i].SerializeAsString()) << "event " << i;
  }
}

}  // namespace
}  // namespace lifeline::capture
