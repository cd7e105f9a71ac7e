// Tests the CopyBoth framing ('w', 'k', 'r'), the epoch conversions and the wire reader against
// hand-built bytes whose layout is spelled out byte by byte.
#include "capture/replication_messages.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace lifeline::capture {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

// 2024-01-02 03:04:05.123456 UTC.
constexpr int64_t kUnixUs = 1704164645123456;
constexpr int64_t kPgUs = 757479845123456;  // the same instant from 2000-01-01

std::string Bytes(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

std::string BigEndian64(uint64_t v) {
  std::string s;
  for (int i = 7; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}

TEST(EpochConversionTest, ShiftsByThirtyYears) {
  EXPECT_EQ(PgEpochToUnixMicros(0), 946684800000000);  // 2000-01-01T00:00:00Z
  EXPECT_EQ(UnixToPgEpochMicros(946684800000000), 0);
  EXPECT_EQ(UnixToPgEpochMicros(0), -946684800000000);
  EXPECT_EQ(PgEpochToUnixMicros(kPgUs), kUnixUs);
  EXPECT_EQ(UnixToPgEpochMicros(kUnixUs), kPgUs);
  static_assert(PgEpochToUnixMicros(UnixToPgEpochMicros(kUnixUs)) == kUnixUs);
}

TEST(EpochConversionTest, SaturatesInsteadOfOverflowing) {
  // PostgreSQL's 'infinity' and '-infinity' stay infinite.
  EXPECT_EQ(PgEpochToUnixMicros(kInt64Max), kInt64Max);
  EXPECT_EQ(PgEpochToUnixMicros(kInt64Min), kInt64Min);
  EXPECT_EQ(UnixToPgEpochMicros(kInt64Max), kInt64Max);
  EXPECT_EQ(UnixToPgEpochMicros(kInt64Min), kInt64Min);
  EXPECT_EQ(PgEpochToUnixMicros(kInt64Max - 1), kInt64Max);
  EXPECT_EQ(UnixToPgEpochMicros(kInt64Min + 1), kInt64Min);
  EXPECT_EQ(PgEpochToUnixMicros(kInt64Min + 1), kInt64Min + 1 + 946684800000000);
}

TEST(StandbyStatusUpdateTest, ExactByteLayout) {
  StandbyStatusUpdate update;
  update.write_lsn = 0x0000000101020304;
  update.flush_lsn = 0x0000000101020300;
  update.apply_lsn = 0x00000000000000ff;
  update.client_time_us = kUnixUs;
  update.reply_requested = true;
  std::string expected = "r";
  expected += Bytes({0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04});  // write
  expected += Bytes({0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x03, 0x00});  // flush
  expected += Bytes({0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff});  // apply
  expected += Bytes({0x00, 0x02, 0xb0, 0xec, 0x85, 0x17, 0xd5, 0x80});  // client time, pg epoch
  expected += Bytes({0x01});
  std::string encoded = EncodeStandbyStatusUpdate(update);
  ASSERT_EQ(encoded.size(), 34u);
  EXPECT_EQ(encoded, expected);
  EXPECT_EQ(encoded.substr(25, 8), Bytes({0x00, 0x02, 0xb0, 0xec, 0x85, 0x17, 0xd5, 0x80}));

  update.reply_requested = false;
  EXPECT_EQ(EncodeStandbyStatusUpdate(update).back(), '\0');
}

TEST(StandbyStatusUpdateTest, RoundTrips) {
  for (bool reply : {false, true}) {
    StandbyStatusUpdate update{0xfedcba9876543210, 0x1549dc8, 0, kUnixUs, reply};
    Result<StandbyStatusUpdate> parsed =
        ParseStandbyStatusUpdate(EncodeStandbyStatusUpdate(update));
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(*parsed, update);
  }
}

TEST(StandbyStatusUpdateTest, ParseRejectsTruncatedTrailingAndWrongType) {
  std::string encoded = EncodeStandbyStatusUpdate({1, 2, 3, kUnixUs, false});
  for (size_t len = 0; len < encoded.size(); ++len) {
    Result<StandbyStatusUpdate> r = ParseStandbyStatusUpdate(encoded.substr(0, len));
    ASSERT_FALSE(r.ok()) << len;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  }
  EXPECT_FALSE(ParseStandbyStatusUpdate(encoded + "x").ok());
  encoded[0] = 'k';
  Result<StandbyStatusUpdate> r = ParseStandbyStatusUpdate(encoded);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "Standby status update: type byte is 'k' (0x6b), expected 'r', at byte offset 0");
}

// 'w' | start 0/1549D48 | end 0/1549DC8 | send time | payload "B..."
std::string XLogDataBytes(std::string_view payload) {
  std::string s = "w";
  s += Bytes({0, 0, 0, 0, 0x01, 0x54, 0x9d, 0x48});
  s += Bytes({0, 0, 0, 0, 0x01, 0x54, 0x9d, 0xc8});
  s += BigEndian64(static_cast<uint64_t>(kPgUs));
  s += payload;
  return s;
}

TEST(XLogDataTest, ParsesHandBuiltBytes) {
  const std::string payload = Bytes({'B', 0, 0, 0, 0, 1, 0x54, 0x9d, 0x98});
  const std::string bytes = XLogDataBytes(payload);
  Result<XLogData> r = ParseXLogData(bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->wal_start, 0x1549D48u);
  EXPECT_EQ(r->wal_end, 0x1549DC8u);
  EXPECT_EQ(r->send_time_us, kUnixUs);
  EXPECT_EQ(r->payload, payload);
  EXPECT_EQ(r->payload.data(), bytes.data() + 25) << "payload must alias the buffer";
}

TEST(XLogDataTest, EmptyPayloadIsAllowed) {
  Result<XLogData> r = ParseXLogData(XLogDataBytes(""));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->payload.empty());
}

TEST(XLogDataTest, TruncatedHeaderFails) {
  const std::string bytes = XLogDataBytes("");
  for (size_t len = 0; len < bytes.size(); ++len) {
    Result<XLogData> r = ParseXLogData(bytes.substr(0, len));
    ASSERT_FALSE(r.ok()) << len;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  }
  Result<XLogData> r = ParseXLogData(bytes.substr(0, 20));
  EXPECT_EQ(r.status().message(),
            "XLogData: truncated: send time needs 8 bytes at byte offset 17 but only 3 remain");
}

// 'k' | server WAL end 0/1549DC8 | send time | reply requested
std::string KeepaliveBytes(int reply) {
  std::string s = "k";
  s += Bytes({0, 0, 0, 0, 0x01, 0x54, 0x9d, 0xc8});
  s += BigEndian64(static_cast<uint64_t>(kPgUs));
  s += Bytes({reply});
  return s;
}

TEST(PrimaryKeepaliveTest, ParsesHandBuiltBytes) {
  Result<PrimaryKeepalive> r = ParsePrimaryKeepalive(KeepaliveBytes(1));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->wal_end, 0x1549DC8u);
  EXPECT_EQ(r->send_time_us, kUnixUs);
  EXPECT_TRUE(r->reply_requested);

  r = ParsePrimaryKeepalive(KeepaliveBytes(0));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->reply_requested);
}

TEST(PrimaryKeepaliveTest, TruncatedOrTrailingFails) {
  const std::string bytes = KeepaliveBytes(1);
  ASSERT_EQ(bytes.size(), 18u);
  for (size_t len = 0; len < bytes.size(); ++len) {
    Result<PrimaryKeepalive> r = ParsePrimaryKeepalive(bytes.substr(0, len));
    ASSERT_FALSE(r.ok()) << len;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  }
  Result<PrimaryKeepalive> r = ParsePrimaryKeepalive(bytes + "zz");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "Primary keepalive: 2 trailing bytes after the end of the message at byte offset 18");
}

TEST(ServerReplicationMessageTest, DispatchesOnTypeByte) {
  const std::string xlog = XLogDataBytes("I");  // outlives the payload view into it
  Result<ServerReplicationMessage> w = ParseServerReplicationMessage(xlog);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_TRUE(std::holds_alternative<XLogData>(*w));
  EXPECT_EQ(std::get<XLogData>(*w).payload, "I");

  Result<ServerReplicationMessage> k = ParseServerReplicationMessage(KeepaliveBytes(0));
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  ASSERT_TRUE(std::holds_alternative<PrimaryKeepalive>(*k));

  EXPECT_EQ(ParseServerReplicationMessage(XLogDataBytes("").substr(0, 9)).status().code(),
            StatusCode::kCorruption);
}

TEST(ServerReplicationMessageTest, RejectsEmptyAndUnknownTypes) {
  Result<ServerReplicationMessage> r = ParseServerReplicationMessage("");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);

  // 'r' travels client to server only.
  r = ParseServerReplicationMessage(EncodeStandbyStatusUpdate({}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "replication CopyData: unknown message type 'r' (0x72) at byte offset 0, expected "
            "'w' or 'k'");
  r = ParseServerReplicationMessage(std::string(1, '\x80'));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("(0x80)"), std::string::npos);
}

TEST(WireReaderTest, ReadsBigEndianAndSignedValues) {
  std::string bytes = Bytes({0xff, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff});
  bytes += BigEndian64(0x0102030405060708);
  bytes += std::string("ab\0", 3);
  WireReader in(bytes);
  EXPECT_EQ(*in.ReadInt16("a"), -1);
  EXPECT_EQ(*in.ReadUint8("b"), 0xfe);
  EXPECT_EQ(*in.ReadUint32("c"), 0x80000000u);
  EXPECT_EQ(*in.ReadInt32("d"), -1);
  EXPECT_EQ(in.offset(), 11u);
  EXPECT_EQ(*in.ReadUint64("e"), 0x0102030405060708u);
  EXPECT_EQ(*in.ReadCString("f"), "ab");
  EXPECT_EQ(in.remaining(), 0u);
  EXPECT_TRUE(in.ExpectEnd().ok());
}

TEST(WireReaderTest, ErrorsNameFieldAndOffset) {
  WireReader in(std::string_view("xyz", 3));
  ASSERT_TRUE(in.ReadUint8("tag").ok());
  Result<uint32_t> u = in.ReadUint32("relation oid");
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(u.status().message(),
            "truncated: relation oid needs 4 bytes at byte offset 1 but only 2 remain");
  EXPECT_EQ(in.offset(), 1u) << "a failed read consumes nothing";

  Result<std::string_view> s = in.ReadCString("name");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), "truncated: string name at byte offset 1 has no terminating NUL");
  EXPECT_FALSE(in.ReadBytes(3, "blob").ok());
  EXPECT_EQ(*in.ReadBytes(2, "blob"), "yz");
  EXPECT_FALSE(in.ReadInt64("more").ok());
  EXPECT_TRUE(in.ExpectEnd().ok());
}

}  // namespace
}  // namespace lifeline::capture
