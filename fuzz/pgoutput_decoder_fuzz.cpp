// libFuzzer target for what capture reads off the replication connection: the CopyBoth framing
// (XLogData, keepalive, standby status update) and the pgoutput decoder with its relation cache.
//
// An input is a stream of messages, each behind a 2-byte big-endian length (the last one may run
// to the end of the input), so Relation messages can precede the rows that need them:
//
//   +--------+-----------+--------+-----------+- - -
//   | len u16| message   | len u16| message   |
//   +--------+-----------+--------+-----------+- - -
//
// A message that parses as XLogData is decoded by its payload, as capture does; any other is
// decoded as a bare pgoutput payload. Besides "no crash", the target checks what the headers
// promise: errors are Corruption naming the message and a byte offset, a failed Decode leaves the
// relation cache unchanged, row tuples have one value per column, DecodeInto agrees with Decode,
// and a parsed standby status update encodes back to what parses the same.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "capture/pgoutput_decoder.h"
#include "capture/replication_messages.h"
#include "fuzz/fuzz_check.h"

namespace lifeline::capture {
namespace {

using fuzz::Check;
using fuzz::Fail;

void CheckCorruption(const Status& st, std::string_view where) {
  Check(st.code() == StatusCode::kCorruption,
        std::string(where) + " failed with a code other than Corruption: " + st.ToString());
  Check(st.message().find("byte offset") != std::string::npos || where == "ParseServer",
        std::string(where) + " error names no byte offset: " + st.message());
}

// What the decoder's relation cache must hold, kept beside it.
using Mirror = std::map<uint32_t, PgOutputDecoder::CachedRelation>;

void CheckCache(const PgOutputDecoder& decoder, const Mirror& mirror) {
  for (const auto& [oid, want] : mirror) {
    const auto* got = decoder.FindRelation(oid);
    Check(got != nullptr, "relation " + std::to_string(oid) + " left the cache");
    Check(got->relation == want.relation && got->schema_version == want.schema_version,
          "relation " + std::to_string(oid) + " differs from the last Relation message decoded");
  }
}

void CheckTuple(const TupleData& tuple, const Mirror& mirror, uint32_t oid) {
  auto it = mirror.find(oid);
  Check(it != mirror.end(), "a row message of uncached relation " + std::to_string(oid));
  Check(tuple.size() == it->second.relation.columns.size(), "tuple width differs from relation");
  for (const TupleValue& v : tuple) {
    Check(v.kind == TupleValueKind::kText || v.text.empty(), "a non-text value carries text");
  }
}

void CheckRows(const PgOutputMessage& m, const Mirror& mirror) {
  if (const auto* i = std::get_if<InsertMessage>(&m)) {
    CheckTuple(i->new_tuple, mirror, i->relation_oid);
  } else if (const auto* u = std::get_if<UpdateMessage>(&m)) {
    CheckTuple(u->new_tuple, mirror, u->relation_oid);
    Check(u->old_kind == 0 || u->old_kind == 'K' || u->old_kind == 'O', "bad update old kind");
    if (u->old_kind != 0) CheckTuple(u->old_tuple, mirror, u->relation_oid);
  } else if (const auto* d = std::get_if<DeleteMessage>(&m)) {
    Check(d->old_kind == 'K' || d->old_kind == 'O', "bad delete old kind");
    CheckTuple(d->old_tuple, mirror, d->relation_oid);
  } else if (const auto* t = std::get_if<TruncateMessage>(&m)) {
    for (uint32_t oid : t->relation_oids) Check(mirror.count(oid) == 1, "truncate of unknown oid");
  }
}

// Row messages decoded with buffer reuse must equal a fresh decode.
bool SameRows(const PgOutputMessage& a, const PgOutputMessage& b) {
  if (a.index() != b.index()) return false;
  if (const auto* x = std::get_if<InsertMessage>(&a)) {
    const auto& y = std::get<InsertMessage>(b);
    return x->relation_oid == y.relation_oid && x->new_tuple == y.new_tuple;
  }
  if (const auto* x = std::get_if<UpdateMessage>(&a)) {
    const auto& y = std::get<UpdateMessage>(b);
    return x->relation_oid == y.relation_oid && x->old_kind == y.old_kind &&
           x->new_tuple == y.new_tuple && (x->old_kind == 0 || x->old_tuple == y.old_tuple);
  }
  if (const auto* x = std::get_if<DeleteMessage>(&a)) {
    const auto& y = std::get<DeleteMessage>(b);
    return x->relation_oid == y.relation_oid && x->old_kind == y.old_kind &&
           x->old_tuple == y.old_tuple;
  }
  return true;  // other kinds have no buffers to reuse
}

void CheckStandbyStatusUpdate(std::string_view bytes) {
  auto parsed = ParseStandbyStatusUpdate(bytes);
  if (!parsed.ok()) {
    CheckCorruption(parsed.status(), "ParseStandbyStatusUpdate");
    return;
  }
  auto again = ParseStandbyStatusUpdate(EncodeStandbyStatusUpdate(*parsed));
  Check(again.ok() && *again == *parsed, "standby status update does not survive encoding");
}

class Stream {
 public:
  void Feed(std::string_view message) {
    CheckStandbyStatusUpdate(message);
    std::string_view payload = message;
    auto framed = ParseServerReplicationMessage(message);
    if (framed.ok()) {
      if (const auto* x = std::get_if<XLogData>(&*framed)) {
        payload = x->payload;
      } else {
        return;  // a keepalive carries no pgoutput
      }
    } else {
      CheckCorruption(framed.status(), "ParseServer");
    }
    Decode(payload);
  }

 private:
  void Decode(std::string_view payload) {
    auto decoded = decoder_.Decode(payload);
    Status reused = reuse_decoder_.DecodeInto(payload, &reused_);
    Check(decoded.ok() == reused.ok(), "Decode and DecodeInto disagree on whether " +
                                           std::to_string(payload.size()) + " bytes decode");
    if (!decoded.ok()) {
      CheckCorruption(decoded.status(), "Decode");
      Check(decoded.status().message().starts_with("pgoutput"),
            "Decode error does not name the message: " + decoded.status().message());
      CheckCache(decoder_, mirror_);
      CheckCache(reuse_decoder_, mirror_);
      return;
    }
    if (const auto* r = std::get_if<RelationMessage>(&*decoded)) {
      auto [it, inserted] =
          mirror_.try_emplace(r->relation_oid, PgOutputDecoder::CachedRelation{*r, 1});
      if (!inserted && !(it->second.relation == *r)) {
        it->second.relation = *r;
        ++it->second.schema_version;
      }
    }
    CheckCache(decoder_, mirror_);
    CheckCache(reuse_decoder_, mirror_);
    CheckRows(*decoded, mirror_);
    Check(SameRows(*decoded, reused_), "DecodeInto with reused buffers differs from Decode");
  }

  PgOutputDecoder decoder_;
  PgOutputDecoder reuse_decoder_;
  PgOutputMessage reused_;
  Mirror mirror_;
};

}  // namespace
}  // namespace lifeline::capture

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  lifeline::capture::Stream stream;
  while (!in.empty()) {
    size_t length =
        in.size() < 2
            ? in.size()
            : (static_cast<size_t>(static_cast<uint8_t>(in[0])) << 8 | static_cast<uint8_t>(in[1]));
    in.remove_prefix(in.size() < 2 ? 0 : 2);
    length = std::min(length, in.size());
    stream.Feed(in.substr(0, length));
    in.remove_prefix(length);
    if (length == 0 && in.empty()) break;
  }
  return 0;
}
