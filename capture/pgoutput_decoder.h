// Decodes the payload of one XLogData message from PostgreSQL's pgoutput plugin, protocol version
// 1, keeping the relation cache that row messages refer to by oid.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "common/status.h"

namespace lifeline::capture {

// Times (`*_us`) are UNIX-epoch microseconds; LSNs are raw 64-bit WAL positions.

struct RelationColumn {
  bool key = false;  // part of the replica identity (every column under REPLICA IDENTITY FULL)
  std::string name;
  uint32_t type_oid = 0;
  int32_t type_modifier = -1;

  bool operator==(const RelationColumn&) const = default;
};

// 'R': sent before the first row of a relation in a session and again after its definition may
// have changed.
struct RelationMessage {
  uint32_t relation_oid = 0;
  std::string schema;  // empty for pg_catalog
  std::string table;
  char replica_identity = 'd';  // 'd' default, 'n' nothing, 'f' full, 'i' index
  std::vector<RelationColumn> columns;

  bool operator==(const RelationMessage&) const = default;
};

enum class TupleValueKind {
  kNull,
  kUnchangedToast,  // an out-of-line value the change did not touch; the server does not resend it
  kText,            // binary ('b') is rejected: lifeline never asks for binary values
};

struct TupleValue {
  TupleValueKind kind = TupleValueKind::kNull;
  std::string text;  // only for kText

  bool operator==(const TupleValue&) const = default;
};

// One value per column of the relation, in the relation's column order.
using TupleData = std::vector<TupleValue>;

struct BeginMessage {
  uint64_t final_lsn = 0;  // LSN of the commit record
  int64_t commit_time_us = 0;
  uint32_t xid = 0;
};

struct CommitMessage {
  uint8_t flags = 0;  // currently always 0
  uint64_t commit_lsn = 0;
  uint64_t end_lsn = 0;  // end of the commit record: where a restart resumes
  int64_t commit_time_us = 0;
};

// Sent after Begin when the transaction was replayed from another node under a replication origin.
struct OriginMessage {
  uint64_t commit_lsn = 0;  // the commit LSN on the origin node
  std::string name;
};

// Sent before a Relation message that uses a non-built-in type (enum, domain, composite, ...).
struct TypeMessage {
  uint32_t type_oid = 0;
  std::string schema;
  std::string name;
};

struct InsertMessage {
  uint32_t relation_oid = 0;
  TupleData new_tuple;
};

struct UpdateMessage {
  uint32_t relation_oid = 0;
  // 0 when the server sent no old tuple (replica identity unchanged, not FULL); 'K' when the old
  // tuple holds the old replica-identity key (other columns kNull); 'O' for the whole old row.
  char old_kind = 0;
  TupleData old_tuple;
  TupleData new_tuple;
};

struct DeleteMessage {
  uint32_t relation_oid = 0;
  char old_kind = 'K';  // 'K' or 'O', as for UpdateMessage
  TupleData old_tuple;
};

struct TruncateMessage {
  static constexpr uint8_t kCascade = 1;
  static constexpr uint8_t kRestartIdentity = 2;
  uint8_t options = 0;
  std::vector<uint32_t> relation_oids;
};

// pg_logical_emit_message(); non-transactional ones arrive outside Begin/Commit.
struct LogicalMessage {
  bool transactional = false;
  uint64_t lsn = 0;
  std::string prefix;
  std::string content;
};

using PgOutputMessage =
    std::variant<BeginMessage, CommitMessage, OriginMessage, RelationMessage, TypeMessage,
                 InsertMessage, UpdateMessage, DeleteMessage, TruncateMessage, LogicalMessage>;

class PgOutputDecoder {
 public:
  struct CachedRelation {
    RelationMessage relation;
    // 1 for the first Relation message of an oid; +1 each time one arrives whose content differs
    // from the cached one. The server resends identical Relation messages after any relcache
    // invalidation, so only a real change bumps it.
    uint32_t schema_version = 0;
  };

  // Any malformed payload is Status::Corruption naming the message type, the problem and the byte
  // offset. A failed Decode leaves the relation cache unchanged.
  [[nodiscard]] Result<PgOutputMessage> Decode(std::string_view payload);

  // As Decode, into `message`: a row message (Insert, Update, Delete) decoded into a `message`
  // already holding that kind reuses its values' buffers, so a steady stream allocates little.
  // Errors as for Decode; `message` then holds a partly decoded message.
  [[nodiscard]] Status DecodeInto(std::string_view payload, PgOutputMessage* message);

  // nullptr if no Relation message for the oid has been decoded. Valid until the next Decode.
  const CachedRelation* FindRelation(uint32_t relation_oid) const;

 private:
  std::unordered_map<uint32_t, CachedRelation> relations_;
};

}  // namespace lifeline::capture
