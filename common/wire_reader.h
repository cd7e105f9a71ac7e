// A cursor over protobuf's wire format, for reading a few fields of a serialized ChangeEvent in
// place where building the whole message would cost more than the work itself (the shipper's
// record fill, the replayer's merge of partitions).
#pragma once

#include <google/protobuf/stubs/common.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace lifeline {

// Wire types of the protobuf encoding.
inline constexpr int kVarint = 0;
inline constexpr int kFixed64 = 1;
inline constexpr int kLengthDelimited = 2;
inline constexpr int kFixed32 = 5;

// A cursor over protobuf wire format; every read fails (returns false) rather than run past the
// end. It knows nothing of groups (never written by lifeline); meeting one fails the scan.
class WireReader {
 public:
  explicit WireReader(std::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}

  bool done() const { return p_ == end_; }

  bool Varint(uint64_t* v) {
    // Tags and lengths of small fields take one byte: most varints read here.
    if (p_ != end_ && static_cast<uint8_t>(*p_) < 0x80) {
      *v = static_cast<uint8_t>(*p_++);
      return true;
    }
    uint64_t out = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (p_ == end_) return false;
      auto b = static_cast<uint8_t>(*p_++);
      out |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *v = out;
        return true;
      }
    }
    return false;  // more than 10 bytes
  }

  bool Tag(uint32_t* field, int* wire_type) {
    uint64_t tag = 0;
    if (!Varint(&tag) || tag > UINT32_MAX || (tag >> 3) == 0) return false;
    *field = static_cast<uint32_t>(tag >> 3);
    *wire_type = static_cast<int>(tag & 7);
    return true;
  }

  bool Bytes(std::string_view* out) {
    uint64_t n = 0;
    if (!Varint(&n) || n > static_cast<uint64_t>(end_ - p_) || n > INT32_MAX) return false;
    *out = std::string_view(p_, n);
    p_ += n;
    return true;
  }

  // A proto3 string: valid UTF-8, as the full parser insists. ASCII (most text here) is, so only
  // other text takes the full check.
  bool Text(std::string_view* out) {
    if (!Bytes(out)) return false;
    return IsAscii(*out) || google::protobuf::internal::IsStructurallyValidUTF8(
                                out->data(), static_cast<int>(out->size()));
  }

  bool Skip(int wire_type) {
    uint64_t v = 0;
    std::string_view s;
    switch (wire_type) {
      case kVarint:
        return Varint(&v);
      case kFixed64:
        return Advance(8);
      case kLengthDelimited:
        return Bytes(&s);
      case kFixed32:
        return Advance(4);
      default:
        return false;
    }
  }

 private:
  // Eight bytes at a time: the text of a row is most of an event's bytes.
  static bool IsAscii(std::string_view s) {
    const char* p = s.data();
    size_t n = s.size();
    uint64_t high = 0;
    for (; n >= 8; p += 8, n -= 8) {
      uint64_t word;
      std::memcpy(&word, p, 8);
      high |= word;
    }
    for (; n > 0; ++p, --n) high |= static_cast<uint8_t>(*p);
    return (high & 0x8080808080808080ull) == 0;
  }

  bool Advance(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    p_ += n;
    return true;
  }

  const char* p_;
  const char* end_;
};

// Calls on_field(reader, field, wire_type) for each field of a message; on_field consumes the
// field's payload and returns false on malformed input. A known field number with an unexpected
// wire type is an unknown field to protobuf, so callers skip it.
template <typename OnField>
bool ScanMessage(std::string_view bytes, OnField on_field) {
  WireReader r(bytes);
  while (!r.done()) {
    uint32_t field = 0;
    int wire_type = 0;
    if (!r.Tag(&field, &wire_type) || !on_field(r, field, wire_type)) return false;
  }
  return true;
}

}  // namespace lifeline
