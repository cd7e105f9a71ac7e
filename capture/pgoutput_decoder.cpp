// Decodes pgoutput protocol version 1 messages ("Logical Replication Message Formats" in the
// PostgreSQL 15 manual) and keeps the relation cache with per-oid schema versions.
#include "capture/pgoutput_decoder.h"

#include <utility>

#include "capture/replication_messages.h"

namespace lifeline::capture {

namespace {

using RelationCache = std::unordered_map<uint32_t, PgOutputDecoder::CachedRelation>;

std::string At(size_t offset) {
  return " at byte offset " + std::to_string(offset);
}

std::string_view MessageName(char type) {
  switch (type) {
    case 'B':
      return "Begin";
    case 'C':
      return "Commit";
    case 'O':
      return "Origin";
    case 'R':
      return "Relation";
    case 'Y':
      return "Type";
    case 'I':
      return "Insert";
    case 'U':
      return "Update";
    case 'D':
      return "Delete";
    case 'T':
      return "Truncate";
    case 'M':
      return "Message";
    default:
      return {};
  }
}

std::string DescribeByte(uint8_t b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  if (b >= 0x20 && b < 0x7f) {
    s += '\'';
    s += static_cast<char>(b);
    s += "' ";
  }
  s += "(0x";
  s += kHex[b >> 4];
  s += kHex[b & 0xf];
  s += ')';
  return s;
}

std::string QualifiedName(const RelationMessage& r) {
  return r.schema + "." + r.table;
}

// Row messages are meaningless without the Relation message that defines their columns.
Result<const RelationMessage*> RequireRelation(const RelationCache& cache, uint32_t oid,
                                               size_t offset) {
  auto it = cache.find(oid);
  if (it == cache.end()) {
    return Status::Corruption("relation " + std::to_string(oid) +
                              " is unknown (no Relation message seen)" + At(offset));
  }
  return &it->second.relation;
}

// Reads into `tuple`, reusing its values' text buffers.
Status ReadTupleDataInto(WireReader& in, const RelationMessage& relation, std::string_view which,
                         TupleData* tuple) {
  const size_t count_offset = in.offset();
  LIFELINE_ASSIGN_OR_RETURN(int16_t count, in.ReadInt16("tuple column count"));
  if (count < 0 || static_cast<size_t>(count) != relation.columns.size()) {
    return Status::Corruption(std::string(which) + " tuple has " + std::to_string(count) +
                              " columns but relation " + std::to_string(relation.relation_oid) +
                              " (" + QualifiedName(relation) + ") has " +
                              std::to_string(relation.columns.size()) + At(count_offset));
  }
  tuple->resize(relation.columns.size());  // bounded by the cached relation, not by the input
  for (size_t i = 0; i < relation.columns.size(); ++i) {
    const RelationColumn& column = relation.columns[i];
    const size_t kind_offset = in.offset();
    LIFELINE_ASSIGN_OR_RETURN(uint8_t kind, in.ReadUint8("column value kind"));
    TupleValue& value = (*tuple)[i];
    value.text.clear();
    switch (kind) {
      case 'n':
        value.kind = TupleValueKind::kNull;
        break;
      case 'u':
        value.kind = TupleValueKind::kUnchangedToast;
        break;
      case 't': {
        value.kind = TupleValueKind::kText;
        const size_t length_offset = in.offset();
        LIFELINE_ASSIGN_OR_RETURN(int32_t length, in.ReadInt32("column value length"));
        if (length < 0) {
          return Status::Corruption("column \"" + column.name + "\" has negative length " +
                                    std::to_string(length) + At(length_offset));
        }
        if (static_cast<size_t>(length) > in.remaining()) {
          return Status::Corruption(
              "column \"" + column.name + "\" has length " + std::to_string(length) + " but only " +
              std::to_string(in.remaining()) + " bytes remain" + At(length_offset));
        }
        LIFELINE_ASSIGN_OR_RETURN(std::string_view text,
                                  in.ReadBytes(static_cast<size_t>(length), "column value"));
        value.text.assign(text);
        break;
      }
      case 'b':
        return Status::Corruption("column \"" + column.name +
                                  "\" is in binary format, which lifeline never requests" +
                                  At(kind_offset));
      default:
        return Status::Corruption("column \"" + column.name + "\" has unknown value kind " +
                                  DescribeByte(kind) + At(kind_offset));
    }
  }
  return Status::Ok();
}

// Reads the submessage byte that precedes a tuple and checks it is one of `allowed`.
Result<char> ReadTupleTag(WireReader& in, std::string_view allowed) {
  const size_t offset = in.offset();
  LIFELINE_ASSIGN_OR_RETURN(uint8_t tag, in.ReadUint8("tuple tag"));
  if (allowed.find(static_cast<char>(tag)) == std::string_view::npos) {
    std::string expected;
    for (char c : allowed) {
      if (!expected.empty()) expected += " or ";
      expected += '\'';
      expected += c;
      expected += '\'';
    }
    return Status::Corruption("tuple tag is " + DescribeByte(tag) + ", expected " + expected +
                              At(offset));
  }
  return static_cast<char>(tag);
}

Result<BeginMessage> DecodeBegin(WireReader& in) {
  BeginMessage m;
  LIFELINE_ASSIGN_OR_RETURN(m.final_lsn, in.ReadUint64("final LSN"));
  LIFELINE_ASSIGN_OR_RETURN(int64_t commit_time, in.ReadInt64("commit timestamp"));
  m.commit_time_us = PgEpochToUnixMicros(commit_time);
  LIFELINE_ASSIGN_OR_RETURN(m.xid, in.ReadUint32("xid"));
  return m;
}

Result<CommitMessage> DecodeCommit(WireReader& in) {
  CommitMessage m;
  LIFELINE_ASSIGN_OR_RETURN(m.flags, in.ReadUint8("flags"));
  LIFELINE_ASSIGN_OR_RETURN(m.commit_lsn, in.ReadUint64("commit LSN"));
  LIFELINE_ASSIGN_OR_RETURN(m.end_lsn, in.ReadUint64("end LSN"));
  LIFELINE_ASSIGN_OR_RETURN(int64_t commit_time, in.ReadInt64("commit timestamp"));
  m.commit_time_us = PgEpochToUnixMicros(commit_time);
  return m;
}

Result<OriginMessage> DecodeOrigin(WireReader& in) {
  OriginMessage m;
  LIFELINE_ASSIGN_OR_RETURN(m.commit_lsn, in.ReadUint64("origin commit LSN"));
  LIFELINE_ASSIGN_OR_RETURN(std::string_view name, in.ReadCString("origin name"));
  m.name = std::string(name);
  return m;
}

Result<RelationMessage> DecodeRelation(WireReader& in) {
  RelationMessage m;
  LIFELINE_ASSIGN_OR_RETURN(m.relation_oid, in.ReadUint32("relation oid"));
  LIFELINE_ASSIGN_OR_RETURN(std::string_view schema, in.ReadCString("namespace"));
  m.schema = std::string(schema);
  LIFELINE_ASSIGN_OR_RETURN(std::string_view table, in.ReadCString("relation name"));
  m.table = std::string(table);
  const size_t identity_offset = in.offset();
  LIFELINE_ASSIGN_OR_RETURN(uint8_t identity, in.ReadUint8("replica identity"));
  if (identity != 'd' && identity != 'n' && identity != 'f' && identity != 'i') {
    return Status::Corruption("replica identity " + DescribeByte(identity) +
                              " is not one of 'd', 'n', 'f', 'i'" + At(identity_offset));
  }
  m.replica_identity = static_cast<char>(identity);
  const size_t count_offset = in.offset();
  LIFELINE_ASSIGN_OR_RETURN(int16_t count, in.ReadInt16("column count"));
  if (count < 0) {
    return Status::Corruption("negative column count " + std::to_string(count) + At(count_offset));
  }
  for (int16_t i = 0; i < count; ++i) {
    RelationColumn column;
    LIFELINE_ASSIGN_OR_RETURN(uint8_t flags, in.ReadUint8("column flags"));
    column.key = (flags & 1) != 0;
    LIFELINE_ASSIGN_OR_RETURN(std::string_view name, in.ReadCString("column name"));
    column.name = std::string(name);
    LIFELINE_ASSIGN_OR_RETURN(column.type_oid, in.ReadUint32("column type oid"));
    LIFELINE_ASSIGN_OR_RETURN(column.type_modifier, in.ReadInt32("column type modifier"));
    m.columns.push_back(std::move(column));
  }
  return m;
}

Result<TypeMessage> DecodeType(WireReader& in) {
  TypeMessage m;
  LIFELINE_ASSIGN_OR_RETURN(m.type_oid, in.ReadUint32("type oid"));
  LIFELINE_ASSIGN_OR_RETURN(std::string_view schema, in.ReadCString("namespace"));
  m.schema = std::string(schema);
  LIFELINE_ASSIGN_OR_RETURN(std::string_view name, in.ReadCString("type name"));
  m.name = std::string(name);
  return m;
}

Status DecodeInsertInto(WireReader& in, const RelationCache& cache, InsertMessage* m) {
  const size_t oid_offset = in.offset();
  LIFELINE_ASSIGN_OR_RETURN(m->relation_oid, in.ReadUint32("relation oid"));
  LIFELINE_ASSIGN_OR_RETURN(const RelationMessage* relation,
                            RequireRelation(cache, m->relation_oid, oid_offset));
  LIFELINE_RETURN_IF_ERROR(ReadTupleTag(in, "N").status());
  return ReadTupleDataInto(in, *relation, "new", &m->new_tuple);
}

Status DecodeUpdateInto(WireReader& in, const RelationCache& cache, UpdateMessage* m) {
  const size_t oid_offset = in.offset();
  LIFELINE_ASSIGN_OR_RETURN(m->relation_oid, in.ReadUint32("relation oid"));
  LIFELINE_ASSIGN_OR_RETURN(const RelationMessage* relation,
                            RequireRelation(cache, m->relation_oid, oid_offset));
  LIFELINE_ASSIGN_OR_RETURN(char tag, ReadTupleTag(in, "KON"));
  if (tag != 'N') {
    m->old_kind = tag;
    LIFELINE_RETURN_IF_ERROR(ReadTupleDataInto(in, *relation, "old", &m->old_tuple));
    LIFELINE_RETURN_IF_ERROR(ReadTupleTag(in, "N").status());
  } else {
    m->old_kind = 0;
    m->old_tuple.clear();
  }
  return ReadTupleDataInto(in, *relation, "new", &m->new_tuple);
}

Status DecodeDeleteInto(WireReader& in, const RelationCache& cache, DeleteMessage* m) {
  const size_t oid_offset = in.offset();
  LIFELINE_ASSIGN_OR_RETURN(m->relation_oid, in.ReadUint32("relation oid"));
  LIFELINE_ASSIGN_OR_RETURN(const RelationMessage* relation,
                            RequireRelation(cache, m->relation_oid, oid_offset));
  LIFELINE_ASSIGN_OR_RETURN(m->old_kind, ReadTupleTag(in, "KO"));
  return ReadTupleDataInto(in, *relation, "old", &m->old_tuple);
}

Result<InsertMessage> DecodeInsert(WireReader& in, const RelationCache& cache) {
  InsertMessage m;
  LIFELINE_RETURN_IF_ERROR(DecodeInsertInto(in, cache, &m));
  return m;
}

Result<UpdateMessage> DecodeUpdate(WireReader& in, const RelationCache& cache) {
  UpdateMessage m;
  LIFELINE_RETURN_IF_ERROR(DecodeUpdateInto(in, cache, &m));
  return m;
}

Result<DeleteMessage> DecodeDelete(WireReader& in, const RelationCache& cache) {
  DeleteMessage m;
  LIFELINE_RETURN_IF_ERROR(DecodeDeleteInto(in, cache, &m));
  return m;
}

// Decodes a row message into `out`, reusing its buffers when it already holds that kind.
template <typename Message, typename DecodeFn>
Status DecodeRowInto(WireReader& in, const RelationCache& cache, PgOutputMessage* out,
                     DecodeFn decode) {
  if (!std::holds_alternative<Message>(*out)) out->emplace<Message>();
  LIFELINE_RETURN_IF_ERROR(decode(in, cache, &std::get<Message>(*out)));
  return in.ExpectEnd();
}

Result<TruncateMessage> DecodeTruncate(WireReader& in, const RelationCache& cache) {
  TruncateMessage m;
  const size_t count_offset = in.offset();
  LIFELINE_ASSIGN_OR_RETURN(int32_t count, in.ReadInt32("relation count"));
  if (count < 0) {
    return Status::Corruption("negative relation count " + std::to_string(count) +
                              At(count_offset));
  }
  LIFELINE_ASSIGN_OR_RETURN(m.options, in.ReadUint8("options"));
  // Checked before reserving so a corrupt count cannot demand a huge allocation.
  if (static_cast<size_t>(count) > in.remaining() / 4) {
    return Status::Corruption("relation count " + std::to_string(count) + " needs " +
                              std::to_string(static_cast<uint64_t>(count) * 4) +
                              " bytes but only " + std::to_string(in.remaining()) + " remain" +
                              At(count_offset));
  }
  m.relation_oids.reserve(static_cast<size_t>(count));
  for (int32_t i = 0; i < count; ++i) {
    const size_t oid_offset = in.offset();
    LIFELINE_ASSIGN_OR_RETURN(uint32_t oid, in.ReadUint32("relation oid"));
    LIFELINE_RETURN_IF_ERROR(RequireRelation(cache, oid, oid_offset).status());
    m.relation_oids.push_back(oid);
  }
  return m;
}

Result<LogicalMessage> DecodeLogicalMessage(WireReader& in) {
  LogicalMessage m;
  const size_t flags_offset = in.offset();
  LIFELINE_ASSIGN_OR_RETURN(uint8_t flags, in.ReadUint8("flags"));
  if ((flags & ~1u) != 0) {
    return Status::Corruption("unknown flags " + DescribeByte(flags) + At(flags_offset));
  }
  m.transactional = (flags & 1) != 0;
  LIFELINE_ASSIGN_OR_RETURN(m.lsn, in.ReadUint64("LSN"));
  LIFELINE_ASSIGN_OR_RETURN(std::string_view prefix, in.ReadCString("prefix"));
  m.prefix = std::string(prefix);
  const size_t length_offset = in.offset();
  LIFELINE_ASSIGN_OR_RETURN(int32_t length, in.ReadInt32("content length"));
  if (length < 0) {
    return Status::Corruption("negative content length " + std::to_string(length) +
                              At(length_offset));
  }
  if (static_cast<size_t>(length) > in.remaining()) {
    return Status::Corruption("content length " + std::to_string(length) + " but only " +
                              std::to_string(in.remaining()) + " bytes remain" + At(length_offset));
  }
  LIFELINE_ASSIGN_OR_RETURN(std::string_view content,
                            in.ReadBytes(static_cast<size_t>(length), "content"));
  m.content = std::string(content);
  return m;
}

// Decodes the body after the type byte, then insists nothing is left over.
template <typename Message>
Result<PgOutputMessage> Finish(WireReader& in, Result<Message> decoded) {
  if (!decoded.ok()) return decoded.status();
  LIFELINE_RETURN_IF_ERROR(in.ExpectEnd());
  return PgOutputMessage(std::move(decoded).value());
}

}  // namespace

Result<PgOutputMessage> PgOutputDecoder::Decode(std::string_view payload) {
  if (payload.empty()) {
    return Status::Corruption("pgoutput: empty message, expected a type byte at byte offset 0");
  }
  const char type = payload[0];
  const std::string_view name = MessageName(type);
  if (name.empty()) {
    return Status::Corruption("pgoutput: unknown message type " +
                              DescribeByte(static_cast<uint8_t>(type)) +
                              " at byte offset 0 (only protocol version 1 is supported)");
  }
  WireReader in(payload);
  (void)in.ReadUint8("message type").value();  // non-empty: checked above

  Result<PgOutputMessage> decoded = Status::Internal("unreachable");
  switch (type) {
    case 'B':
      decoded = Finish(in, DecodeBegin(in));
      break;
    case 'C':
      decoded = Finish(in, DecodeCommit(in));
      break;
    case 'O':
      decoded = Finish(in, DecodeOrigin(in));
      break;
    case 'R':
      decoded = Finish(in, DecodeRelation(in));
      break;
    case 'Y':
      decoded = Finish(in, DecodeType(in));
      break;
    case 'I':
      decoded = Finish(in, DecodeInsert(in, relations_));
      break;
    case 'U':
      decoded = Finish(in, DecodeUpdate(in, relations_));
      break;
    case 'D':
      decoded = Finish(in, DecodeDelete(in, relations_));
      break;
    case 'T':
      decoded = Finish(in, DecodeTruncate(in, relations_));
      break;
    case 'M':
      decoded = Finish(in, DecodeLogicalMessage(in));
      break;
  }
  if (!decoded.ok()) return decoded.status().WithContext("pgoutput " + std::string(name));

  // The cache changes only once the whole Relation message has decoded.
  if (const auto* relation = std::get_if<RelationMessage>(&decoded.value())) {
    auto [it, inserted] =
        relations_.try_emplace(relation->relation_oid, CachedRelation{*relation, 1});
    if (!inserted && !(it->second.relation == *relation)) {
      it->second.relation = *relation;
      ++it->second.schema_version;
    }
  }
  return decoded;
}

Status PgOutputDecoder::DecodeInto(std::string_view payload, PgOutputMessage* message) {
  const char type = payload.empty() ? '\0' : payload[0];
  if (type != 'I' && type != 'U' && type != 'D') {
    LIFELINE_ASSIGN_OR_RETURN(*message, Decode(payload));
    return Status::Ok();
  }
  WireReader in(payload);
  (void)in.ReadUint8("message type").value();  // non-empty: checked above
  Status st;
  switch (type) {
    case 'I':
      st = DecodeRowInto<InsertMessage>(in, relations_, message, DecodeInsertInto);
      break;
    case 'U':
      st = DecodeRowInto<UpdateMessage>(in, relations_, message, DecodeUpdateInto);
      break;
    default:
      st = DecodeRowInto<DeleteMessage>(in, relations_, message, DecodeDeleteInto);
      break;
  }
  if (!st.ok()) return st.WithContext("pgoutput " + std::string(MessageName(type)));
  return Status::Ok();
}

const PgOutputDecoder::CachedRelation* PgOutputDecoder::FindRelation(uint32_t relation_oid) const {
  auto it = relations_.find(relation_oid);
  return it == relations_.end() ? nullptr : &it->second;
}

}  // namespace lifeline::capture
