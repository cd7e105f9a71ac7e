// Byte-level framing of the streaming-replication CopyBoth sub-protocol; see the layouts drawn in
// replication_messages.h.
#include "capture/replication_messages.h"

namespace lifeline::capture {

namespace {

constexpr char kXLogDataType = 'w';
constexpr char kPrimaryKeepaliveType = 'k';
constexpr char kStandbyStatusUpdateType = 'r';

void AppendBigEndian(std::string& out, uint64_t value, size_t width) {
  for (size_t i = width; i > 0; --i) {
    out.push_back(static_cast<char>((value >> (8 * (i - 1))) & 0xff));
  }
}

std::string DescribeTypeByte(uint8_t type) {
  std::string s;
  if (type >= 0x20 && type < 0x7f) {
    s += '\'';
    s += static_cast<char>(type);
    s += "' ";
  }
  static constexpr char kHex[] = "0123456789abcdef";
  s += "(0x";
  s += kHex[type >> 4];
  s += kHex[type & 0xf];
  s += ')';
  return s;
}

// Reads the leading type byte and insists on `expected`.
Status ExpectType(WireReader& in, char expected) {
  LIFELINE_ASSIGN_OR_RETURN(uint8_t type, in.ReadUint8("message type"));
  if (type != static_cast<uint8_t>(expected)) {
    return Status::Corruption("type byte is " + DescribeTypeByte(type) + ", expected '" + expected +
                              "', at byte offset 0");
  }
  return Status::Ok();
}

}  // namespace

Result<uint64_t> WireReader::ReadBigEndian(size_t width, std::string_view field) {
  if (remaining() < width) {
    return Status::Corruption("truncated: " + std::string(field) + " needs " +
                              std::to_string(width) + " bytes at byte offset " +
                              std::to_string(offset_) + " but only " + std::to_string(remaining()) +
                              " remain");
  }
  uint64_t value = 0;
  for (size_t i = 0; i < width; ++i) {
    value = (value << 8) | static_cast<uint8_t>(bytes_[offset_ + i]);
  }
  offset_ += width;
  return value;
}

Result<uint8_t> WireReader::ReadUint8(std::string_view field) {
  LIFELINE_ASSIGN_OR_RETURN(uint64_t v, ReadBigEndian(1, field));
  return static_cast<uint8_t>(v);
}

Result<int16_t> WireReader::ReadInt16(std::string_view field) {
  LIFELINE_ASSIGN_OR_RETURN(uint64_t v, ReadBigEndian(2, field));
  return static_cast<int16_t>(static_cast<uint16_t>(v));  // two's complement, defined in C++20
}

Result<uint32_t> WireReader::ReadUint32(std::string_view field) {
  LIFELINE_ASSIGN_OR_RETURN(uint64_t v, ReadBigEndian(4, field));
  return static_cast<uint32_t>(v);
}

Result<int32_t> WireReader::ReadInt32(std::string_view field) {
  LIFELINE_ASSIGN_OR_RETURN(uint64_t v, ReadBigEndian(4, field));
  return static_cast<int32_t>(static_cast<uint32_t>(v));
}

Result<uint64_t> WireReader::ReadUint64(std::string_view field) {
  return ReadBigEndian(8, field);
}

Result<int64_t> WireReader::ReadInt64(std::string_view field) {
  LIFELINE_ASSIGN_OR_RETURN(uint64_t v, ReadBigEndian(8, field));
  return static_cast<int64_t>(v);
}

Result<std::string_view> WireReader::ReadBytes(size_t count, std::string_view field) {
  if (remaining() < count) {
    return Status::Corruption("truncated: " + std::string(field) + " of " + std::to_string(count) +
                              " bytes at byte offset " + std::to_string(offset_) + " but only " +
                              std::to_string(remaining()) + " remain");
  }
  std::string_view out = bytes_.substr(offset_, count);
  offset_ += count;
  return out;
}

Result<std::string_view> WireReader::ReadCString(std::string_view field) {
  size_t nul = bytes_.find('\0', offset_);
  if (nul == std::string_view::npos) {
    return Status::Corruption("truncated: string " + std::string(field) + " at byte offset " +
                              std::to_string(offset_) + " has no terminating NUL");
  }
  std::string_view out = bytes_.substr(offset_, nul - offset_);
  offset_ = nul + 1;
  return out;
}

Status WireReader::ExpectEnd() const {
  if (remaining() == 0) return Status::Ok();
  return Status::Corruption(std::to_string(remaining()) +
                            " trailing bytes after the end of the message at byte offset " +
                            std::to_string(offset_));
}

Result<XLogData> ParseXLogData(std::string_view copy_data) {
  static constexpr std::string_view kName = "XLogData";
  WireReader in(copy_data);
  XLogData out;
  auto body = [&]() -> Status {
    LIFELINE_RETURN_IF_ERROR(ExpectType(in, kXLogDataType));
    LIFELINE_ASSIGN_OR_RETURN(out.wal_start, in.ReadUint64("WAL start"));
    LIFELINE_ASSIGN_OR_RETURN(out.wal_end, in.ReadUint64("WAL end"));
    LIFELINE_ASSIGN_OR_RETURN(int64_t send_time, in.ReadInt64("send time"));
    out.send_time_us = PgEpochToUnixMicros(send_time);
    LIFELINE_ASSIGN_OR_RETURN(out.payload, in.ReadBytes(in.remaining(), "payload"));
    return Status::Ok();
  };
  LIFELINE_RETURN_IF_ERROR(body().WithContext(kName));
  return out;
}

Result<PrimaryKeepalive> ParsePrimaryKeepalive(std::string_view copy_data) {
  static constexpr std::string_view kName = "Primary keepalive";
  WireReader in(copy_data);
  PrimaryKeepalive out;
  auto body = [&]() -> Status {
    LIFELINE_RETURN_IF_ERROR(ExpectType(in, kPrimaryKeepaliveType));
    LIFELINE_ASSIGN_OR_RETURN(out.wal_end, in.ReadUint64("WAL end"));
    LIFELINE_ASSIGN_OR_RETURN(int64_t send_time, in.ReadInt64("send time"));
    out.send_time_us = PgEpochToUnixMicros(send_time);
    // Any non-zero byte asks for a reply, as the server's own walreceiver reads it.
    LIFELINE_ASSIGN_OR_RETURN(uint8_t reply, in.ReadUint8("reply-requested flag"));
    out.reply_requested = reply != 0;
    return in.ExpectEnd();
  };
  LIFELINE_RETURN_IF_ERROR(body().WithContext(kName));
  return out;
}

Result<ServerReplicationMessage> ParseServerReplicationMessage(std::string_view copy_data) {
  if (copy_data.empty()) {
    return Status::Corruption("replication CopyData: empty message, expected a type byte");
  }
  switch (copy_data[0]) {
    case kXLogDataType: {
      LIFELINE_ASSIGN_OR_RETURN(XLogData x, ParseXLogData(copy_data));
      return ServerReplicationMessage(x);
    }
    case kPrimaryKeepaliveType: {
      LIFELINE_ASSIGN_OR_RETURN(PrimaryKeepalive k, ParsePrimaryKeepalive(copy_data));
      return ServerReplicationMessage(k);
    }
    default:
      return Status::Corruption("replication CopyData: unknown message type " +
                                DescribeTypeByte(static_cast<uint8_t>(copy_data[0])) +
                                " at byte offset 0, expected 'w' or 'k'");
  }
}

std::string EncodeStandbyStatusUpdate(const StandbyStatusUpdate& update) {
  std::string out;
  out.reserve(34);
  out.push_back(kStandbyStatusUpdateType);
  AppendBigEndian(out, update.write_lsn, 8);
  AppendBigEndian(out, update.flush_lsn, 8);
  AppendBigEndian(out, update.apply_lsn, 8);
  AppendBigEndian(out, static_cast<uint64_t>(UnixToPgEpochMicros(update.client_time_us)), 8);
  out.push_back(update.reply_requested ? 1 : 0);
  return out;
}

Result<StandbyStatusUpdate> ParseStandbyStatusUpdate(std::string_view copy_data) {
  static constexpr std::string_view kName = "Standby status update";
  WireReader in(copy_data);
  StandbyStatusUpdate out;
  auto body = [&]() -> Status {
    LIFELINE_RETURN_IF_ERROR(ExpectType(in, kStandbyStatusUpdateType));
    LIFELINE_ASSIGN_OR_RETURN(out.write_lsn, in.ReadUint64("write LSN"));
    LIFELINE_ASSIGN_OR_RETURN(out.flush_lsn, in.ReadUint64("flush LSN"));
    LIFELINE_ASSIGN_OR_RETURN(out.apply_lsn, in.ReadUint64("apply LSN"));
    LIFELINE_ASSIGN_OR_RETURN(int64_t client_time, in.ReadInt64("client time"));
    out.client_time_us = PgEpochToUnixMicros(client_time);
    LIFELINE_ASSIGN_OR_RETURN(uint8_t reply, in.ReadUint8("reply-requested flag"));
    out.reply_requested = reply != 0;
    return in.ExpectEnd();
  };
  LIFELINE_RETURN_IF_ERROR(body().WithContext(kName));
  return out;
}

}  // namespace lifeline::capture
