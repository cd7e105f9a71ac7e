// The transform step of capture: turns decoded pgoutput messages into ChangeEvents, one
// transaction at a time, without holding a transaction in memory. The last event of each
// transaction is held back until its Commit arrives so that it can be marked last_in_txn.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "capture/pgoutput_decoder.h"
#include "common/status.h"
#include "lifeline/v1/change_event.pb.h"

namespace lifeline::capture {

inline constexpr char kHeartbeatPrefix[] = "lifeline.heartbeat";

// format_type(oid, typmod) on the source, for column type names.
using TypeNameLookup = std::function<std::string(uint32_t type_oid, int32_t type_modifier)>;

class ChangeBuilder {
 public:
  ChangeBuilder(v1::Source source, TypeNameLookup type_names);

  // Transactions whose commit LSN is at or below this were spooled already; they are dropped
  // whole (a restart re-sends them).
  void set_skip_through_commit_lsn(uint64_t lsn) { skip_through_ = lsn; }

  // Feeds one message decoded at WAL position `wal_start`; finished events go to `out`.
  [[nodiscard]] Status Apply(const PgOutputMessage& message, const PgOutputDecoder& decoder,
                             uint64_t wal_start, std::vector<v1::ChangeEvent>* out);

  bool in_transaction() const { return in_txn_; }
  // Commit LSN of the last transaction whose events were all handed out (0: none yet).
  uint64_t last_commit_lsn() const { return last_commit_lsn_; }
  uint64_t transactions_skipped() const { return skipped_; }

  // The v1::Relation for a decoded relation (cached per oid and schema version). Shared with the
  // snapshot reader so both describe a table the same way.
  static void FillRow(const TupleData& tuple, v1::Row* row);

 private:
  const v1::Relation& RelationFor(const PgOutputDecoder::CachedRelation& cached);
  [[nodiscard]] Status StartEvent(v1::Op op, uint32_t relation_oid, const PgOutputDecoder& decoder,
                                  uint64_t wal_start, std::vector<v1::ChangeEvent>* out,
                                  v1::ChangeEvent** ev);
  void Emit(v1::ChangeEvent ev, std::vector<v1::ChangeEvent>* out);

  v1::Source source_;
  TypeNameLookup type_names_;
  uint64_t skip_through_ = 0;
  bool in_txn_ = false;
  bool skipping_ = false;
  uint32_t xid_ = 0;
  uint64_t commit_lsn_ = 0;
  int64_t commit_time_us_ = 0;
  uint32_t index_ = 0;
  uint64_t last_commit_lsn_ = 0;
  uint64_t skipped_ = 0;
  std::optional<v1::ChangeEvent> held_;
  struct RelationEntry {
    uint32_t schema_version = 0;
    v1::Relation relation;
  };
  std::unordered_map<uint32_t, RelationEntry> relations_;
};

}  // namespace lifeline::capture
