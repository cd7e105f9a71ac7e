// The protobuf wire-format cursor: varints of every length wherever they sit in the buffer (the
// one-load decode needs eight bytes ahead, the loop takes the rest), and the text check.
#include "common/wire_reader.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "lifeline/v1/change_event.pb.h"

namespace lifeline {
namespace {

std::string EncodeVarint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

// `v` in exactly `bytes` bytes: past its shortest form, zero groups with the continuation bit.
std::string EncodeVarintIn(uint64_t v, size_t bytes) {
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    uint8_t group = i < 10 ? static_cast<uint8_t>((v >> (7 * i)) & 0x7f) : 0;
    out.push_back(static_cast<char>(group | (i + 1 < bytes ? 0x80 : 0)));
  }
  return out;
}

// Values whose encodings take each length from 1 to 10 bytes, with the edges of each length.
std::vector<uint64_t> VarintSamples() {
  std::vector<uint64_t> values = {0, 1, 0x7f, ~uint64_t{0}, 1'764'000'000'000'000ull};
  for (int bits = 7; bits < 64; bits += 7) {
    values.push_back((uint64_t{1} << bits) - 1);
    values.push_back(uint64_t{1} << bits);
    values.push_back((uint64_t{1} << bits) | 0x55);
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200; ++i) values.push_back(rng() >> (rng() % 64));
  return values;
}

TEST(WireReaderTest, VarintsOfEveryLengthReadBackWhereverTheyEnd) {
  const std::string marker = EncodeVarint(300);
  for (uint64_t v : VarintSamples()) {
    std::string enc = EncodeVarint(v);
    // Then a two-byte marker and 0..12 bytes of other fields: near the end of the buffer the
    // one-load decode cannot run, and the bytes after the varint must not leak into it.
    for (size_t after = 0; after <= 12; ++after) {
      for (char filler : {'\x00', '\xff'}) {
        std::string buf = enc + marker + std::string(after, filler);
        WireReader r(buf);
        uint64_t got = 0, next = 0;
        ASSERT_TRUE(r.Varint(&got)) << v << " with " << after << " bytes after";
        EXPECT_EQ(got, v) << "encoded in " << enc.size() << " bytes, " << after << " after";
        ASSERT_TRUE(r.Varint(&next)) << "the marker after " << v;
        EXPECT_EQ(next, 300u) << "the varint " << v << " was not consumed exactly";
      }
    }
  }
}

TEST(WireReaderTest, VarintsAreReadInSequenceWithoutOverrunning) {
  std::vector<uint64_t> values = VarintSamples();
  std::string buf;
  for (uint64_t v : values) buf += EncodeVarint(v);
  WireReader r(buf);
  for (uint64_t v : values) {
    uint64_t got = 0;
    ASSERT_TRUE(r.Varint(&got));
    ASSERT_EQ(got, v);
  }
  EXPECT_TRUE(r.done());
}

TEST(WireReaderTest, TruncatedOrOverlongVarintsFail) {
  for (uint64_t v : VarintSamples()) {
    std::string enc = EncodeVarint(v);
    for (size_t n = 0; n < enc.size(); ++n) {
      WireReader r(std::string_view(enc.data(), n));
      uint64_t got = 0;
      EXPECT_FALSE(r.Varint(&got)) << v << " cut to " << n << " bytes";
    }
  }
  std::string overlong(11, '\x80');
  overlong.back() = '\x01';
  for (size_t tail = 0; tail <= 8; ++tail) {
    std::string buf = overlong + std::string(tail, '\x00');
    WireReader r(buf);
    uint64_t got = 0;
    EXPECT_FALSE(r.Varint(&got)) << "an 11-byte varint followed by " << tail << " bytes";
  }
}

// A length-delimited field holding `text`.
std::string TextField(const std::string& text) {
  return EncodeVarint(text.size()) + text;
}

TEST(WireReaderTest, TextAcceptsAsciiAndValidUtf8AndRejectsAnyBadByteAnywhere) {
  for (size_t len = 0; len <= 80; ++len) {
    std::string ascii(len, 'a');
    for (size_t i = 0; i < len; ++i) ascii[i] = static_cast<char>('!' + (i * 7) % 90);
    std::string_view out;
    std::string field = TextField(ascii);
    WireReader ok(field);
    ASSERT_TRUE(ok.Text(&out)) << "ASCII of " << len;
    EXPECT_EQ(out, ascii);
    for (size_t at = 0; at < len; ++at) {
      // A lone continuation byte at each position: never valid UTF-8.
      std::string bad = ascii;
      bad[at] = '\x80';
      std::string bad_field = TextField(bad);
      WireReader r(bad_field);
      EXPECT_FALSE(r.Text(&out)) << "0x80 at " << at << " of " << len;
      // A two-byte sequence in its place is valid.
      if (at + 1 < len) {
        std::string good = ascii;
        good[at] = '\xc3';
        good[at + 1] = '\xa9';
        std::string good_field = TextField(good);
        WireReader g(good_field);
        EXPECT_TRUE(g.Text(&out)) << "U+00E9 at " << at << " of " << len;
      }
    }
  }
}

TEST(WireReaderTest, FieldsPastTheEndFail) {
  std::string field = EncodeVarint(10) + "short";
  WireReader r(field);
  std::string_view out;
  EXPECT_FALSE(r.Bytes(&out));
  WireReader fixed(std::string_view("\x01\x02\x03", 3));
  EXPECT_FALSE(fixed.Skip(kFixed32));
}

// The shipper's scan must refuse whatever protobuf refuses (it falls back to the full parse only
// when the scan fails): a tag or a length takes at most five bytes there, however small.
TEST(WireReaderTest, TagsAndLengthsLongerThanFiveBytesFailAsInProtobuf) {
  for (size_t bytes = 1; bytes <= 10; ++bytes) {
    // ChangeEvent's field 15 (a string), holding "x"; once with the tag, once with the length
    // stretched to `bytes` bytes.
    std::string long_tag = EncodeVarintIn((15 << 3) | kLengthDelimited, bytes) + "\x01x";
    std::string long_length =
        EncodeVarint((15 << 3) | kLengthDelimited) + EncodeVarintIn(1, bytes) + "x";
    for (bool stretch_tag : {true, false}) {
      const std::string& message = stretch_tag ? long_tag : long_length;
      v1::ChangeEvent event;
      bool protobuf_reads = event.ParseFromString(message);
      WireReader r(message);
      uint32_t field = 0;
      int wire_type = 0;
      std::string_view text;
      bool reads = r.Tag(&field, &wire_type) && r.Text(&text) && r.done();
      EXPECT_EQ(protobuf_reads, bytes <= 5) << "protobuf, " << bytes << " bytes";
      EXPECT_EQ(reads, protobuf_reads)
          << (stretch_tag ? "tag" : "length") << " of " << bytes << " bytes";
      if (reads) {
        EXPECT_EQ(text, "x");
      }
    }
  }
}

}  // namespace
}  // namespace lifeline
