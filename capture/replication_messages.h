// Byte-level framing of the streaming-replication CopyBoth sub-protocol (XLogData, Primary
// keepalive, Standby status update) and the bounds-checked big-endian reader that pgoutput shares.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <variant>

#include "common/status.h"

namespace lifeline::capture {

// PostgreSQL counts timestamps in microseconds from 2000-01-01 00:00:00 UTC; lifeline counts them
// from the UNIX epoch. Every `*_us` field in lifeline::capture structs is UNIX-epoch microseconds;
// conversion happens only where bytes are read or written.
inline constexpr int64_t kPgEpochUnixMicros = 946'684'800'000'000;

// Saturating, so PostgreSQL's +/-infinity (INT64_MAX / INT64_MIN) stay infinite and no input can
// overflow.
constexpr int64_t PgEpochToUnixMicros(int64_t pg_us) {
  if (pg_us > std::numeric_limits<int64_t>::max() - kPgEpochUnixMicros) {
    return std::numeric_limits<int64_t>::max();
  }
  if (pg_us == std::numeric_limits<int64_t>::min()) return pg_us;
  return pg_us + kPgEpochUnixMicros;
}

constexpr int64_t UnixToPgEpochMicros(int64_t unix_us) {
  if (unix_us < std::numeric_limits<int64_t>::min() + kPgEpochUnixMicros) {
    return std::numeric_limits<int64_t>::min();
  }
  if (unix_us == std::numeric_limits<int64_t>::max()) return unix_us;
  return unix_us - kPgEpochUnixMicros;
}

// Reads the replication protocol's network-order integers and NUL-terminated strings from a
// buffer it does not own. Every read is bounds-checked; errors are Status::Corruption naming the
// field and the byte offset, for the caller to prefix with the message type.
class WireReader {
 public:
  explicit WireReader(std::string_view bytes) : bytes_(bytes) {}

  size_t offset() const { return offset_; }
  size_t remaining() const { return bytes_.size() - offset_; }

  [[nodiscard]] Result<uint8_t> ReadUint8(std::string_view field);
  [[nodiscard]] Result<int16_t> ReadInt16(std::string_view field);
  [[nodiscard]] Result<uint32_t> ReadUint32(std::string_view field);
  [[nodiscard]] Result<int32_t> ReadInt32(std::string_view field);
  [[nodiscard]] Result<uint64_t> ReadUint64(std::string_view field);
  [[nodiscard]] Result<int64_t> ReadInt64(std::string_view field);
  // The returned view aliases the reader's buffer.
  [[nodiscard]] Result<std::string_view> ReadBytes(size_t count, std::string_view field);
  // Without the terminating NUL, which is consumed.
  [[nodiscard]] Result<std::string_view> ReadCString(std::string_view field);
  // A message that decodes but leaves bytes over is as corrupt as a truncated one.
  [[nodiscard]] Status ExpectEnd() const;

 private:
  [[nodiscard]] Result<uint64_t> ReadBigEndian(size_t width, std::string_view field);

  std::string_view bytes_;
  size_t offset_ = 0;
};

// XLogData, server -> client; the payload is one pgoutput message.
//
//   0      1          9          17         25
//   +------+----------+----------+----------+------------ - -
//   | 'w'  | wal_start| wal_end  | send_time| payload ...
//   +------+----------+----------+----------+------------ - -
//    Byte1   Int64      Int64      Int64      rest of the CopyData
struct XLogData {
  uint64_t wal_start = 0;  // LSN of the payload's start
  uint64_t wal_end = 0;    // server's current end of WAL
  int64_t send_time_us = 0;
  // Aliases the buffer given to the parser, which must outlive it (never a temporary string).
  std::string_view payload;
};

// Primary keepalive, server -> client; exactly 18 bytes.
//
//   0      1          9          17     18
//   +------+----------+----------+------+
//   | 'k'  | wal_end  | send_time| reply|
//   +------+----------+----------+------+
//    Byte1   Int64      Int64      Byte1 (1 = reply now or be disconnected)
struct PrimaryKeepalive {
  uint64_t wal_end = 0;
  int64_t send_time_us = 0;
  bool reply_requested = false;
};

// Standby status update, client -> server; exactly 34 bytes.
//
//   0      1          9          17         25           33     34
//   +------+----------+----------+----------+------------+------+
//   | 'r'  | write_lsn| flush_lsn| apply_lsn| client_time| reply|
//   +------+----------+----------+----------+------------+------+
//    Byte1   Int64      Int64      Int64      Int64        Byte1
//
// The server may recycle WAL up to flush_lsn, so it must only cover what is durably spooled.
// client_time is PostgreSQL-epoch microseconds on the wire; the struct holds UNIX-epoch.
struct StandbyStatusUpdate {
  uint64_t write_lsn = 0;
  uint64_t flush_lsn = 0;
  uint64_t apply_lsn = 0;
  int64_t client_time_us = 0;
  bool reply_requested = false;

  bool operator==(const StandbyStatusUpdate&) const = default;
};

using ServerReplicationMessage = std::variant<XLogData, PrimaryKeepalive>;

// Parses the body of one CopyData message received in CopyBoth mode.
[[nodiscard]] Result<ServerReplicationMessage> ParseServerReplicationMessage(
    std::string_view copy_data);
[[nodiscard]] Result<XLogData> ParseXLogData(std::string_view copy_data);
[[nodiscard]] Result<PrimaryKeepalive> ParsePrimaryKeepalive(std::string_view copy_data);

// The body of the CopyData message to send; cannot fail.
std::string EncodeStandbyStatusUpdate(const StandbyStatusUpdate& update);
// The inverse, for tests and fake servers.
[[nodiscard]] Result<StandbyStatusUpdate> ParseStandbyStatusUpdate(std::string_view copy_data);

}  // namespace lifeline::capture
