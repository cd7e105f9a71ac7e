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
    // Longer ones (LSNs, times, seqs) are decoded from one 8-byte load without a loop.
    if (end_ - p_ >= 8) {
      uint64_t word = Load64(p_);
      uint64_t last = ~word & 0x8080808080808080ull;  // high bit clear: a varint's last byte
      if (last != 0) {
        int bits = __builtin_ctzll(last) + 1;  // through the last byte
        if (bits < 64) word &= (uint64_t{1} << bits) - 1;
        // Drop each byte's continuation bit by packing 7-bit groups into 14, 28, then 56 bits.
        word = ((word & 0x7f007f007f007f00ull) >> 1) | (word & 0x007f007f007f007full);
        word = ((word & 0x3fff00003fff0000ull) >> 2) | (word & 0x00003fff00003fffull);
        word = ((word & 0x0fffffff00000000ull) >> 4) | (word & 0x000000000fffffffull);
        *v = word;
        p_ += bits / 8;
        return true;
      }
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

  // Protobuf reads tags and lengths in at most five bytes: a longer encoding, even of a small
  // value, makes the whole message malformed to it, so it fails here too.
  static constexpr ptrdiff_t kMaxTagOrLengthBytes = 5;

  bool Tag(uint32_t* field, int* wire_type) {
    const char* start = p_;
    uint64_t tag = 0;
    if (!Varint(&tag) || p_ - start > kMaxTagOrLengthBytes || tag > UINT32_MAX || (tag >> 3) == 0) {
      return false;
    }
    *field = static_cast<uint32_t>(tag >> 3);
    *wire_type = static_cast<int>(tag & 7);
    return true;
  }

  bool Bytes(std::string_view* out) {
    const char* start = p_;
    uint64_t n = 0;
    if (!Varint(&n) || p_ - start > kMaxTagOrLengthBytes || n > static_cast<uint64_t>(end_ - p_) ||
        n > INT32_MAX) {
      return false;
    }
    *out = std::string_view(p_, n);
    p_ += n;
    return true;
  }

  // A proto3 string: valid UTF-8, as the full parser insists. ASCII (most text here) is, so only
  // other text takes the full check. Inlined into the scans: a row's values are a few calls each.
  [[gnu::always_inline]] bool Text(std::string_view* out) {
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
  static uint64_t Load64(const char* p) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    return word;
  }

  // Whole words, four at a time: the text of a row is most of an event's bytes. A tail shorter
  // than a word is read as the text's last eight bytes, overlapping bytes already checked.
  static bool IsAscii(std::string_view s) {
    const char* p = s.data();
    size_t n = s.size();
    if (n < 8) {
      uint32_t high = 0;
      if (n >= 4) {
        uint32_t a, b;
        std::memcpy(&a, p, 4);
        std::memcpy(&b, p + n - 4, 4);
        high = a | b;
      } else if (n > 0) {
        high = static_cast<uint8_t>(p[0]) | static_cast<uint8_t>(p[n / 2]) |
               static_cast<uint8_t>(p[n - 1]);
      }
      return (high & 0x80808080u) == 0;
    }
    const char* last = p + n - 8;
    uint64_t a = Load64(last), b = 0, c = 0, d = 0;
    for (; n >= 32; p += 32, n -= 32) {
      a |= Load64(p);
      b |= Load64(p + 8);
      c |= Load64(p + 16);
      d |= Load64(p + 24);
    }
    for (; n >= 8; p += 8, n -= 8) a |= Load64(p);
    return ((a | b | c | d) & 0x8080808080808080ull) == 0;
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
