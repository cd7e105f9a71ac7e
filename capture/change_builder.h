// The transform step of capture: turns decoded pgoutput messages into ChangeEvents, one
// transaction at a time, without holding a transaction in memory. The last event of each
// transaction is held back until its Commit arrives so that it can be marked last_in_txn.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
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

// The events of one spool write. Its event objects outlive Reset and are overwritten by later
// events, so a steady stream reuses their strings and rows instead of allocating new ones.
class EventBatch {
 public:
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const v1::ChangeEvent& operator[](size_t i) const { return slots_[i]; }
  std::span<v1::ChangeEvent> events() { return {slots_.data(), size_}; }
  // Approximate payload bytes of the events (what the source sent for them).
  size_t bytes() const { return bytes_; }
  void add_bytes(size_t n) { bytes_ += n; }

  // Moves `ev` in as the newest event; `ev` is left holding a spent event to be overwritten.
  void Push(v1::ChangeEvent& ev);
  // Empties the batch, keeping its event objects for reuse.
  void Reset() {
    size_ = 0;
    bytes_ = 0;
  }

 private:
  std::vector<v1::ChangeEvent> slots_;
  size_t size_ = 0;
  size_t bytes_ = 0;
};

class ChangeBuilder {
 public:
  ChangeBuilder(v1::Source source, TypeNameLookup type_names);

  // Transactions whose commit LSN is at or below this were spooled already; they are dropped
  // whole (a restart re-sends them).
  void set_skip_through_commit_lsn(uint64_t lsn) { skip_through_ = lsn; }

  // Feeds one message decoded at WAL position `wal_start`; finished events go to `out`.
  [[nodiscard]] Status Apply(const PgOutputMessage& message, const PgOutputDecoder& decoder,
                             uint64_t wal_start, EventBatch* out);

  bool in_transaction() const { return in_txn_; }
  // Commit LSN of the last transaction whose events were all handed out (0: none yet).
  uint64_t last_commit_lsn() const { return last_commit_lsn_; }
  uint64_t transactions_skipped() const { return skipped_; }

  // Writes a decoded tuple into `row`, reusing the values (and their text buffers) it holds.
  static void FillRow(const TupleData& tuple, v1::Row* row);

 private:
  // The v1::Relation for a decoded relation (cached per oid and schema version).
  const v1::Relation& RelationFor(const PgOutputDecoder::CachedRelation& cached);
  [[nodiscard]] Status StartEvent(v1::Op op, uint32_t relation_oid, const PgOutputDecoder& decoder,
                                  uint64_t wal_start, EventBatch* out, v1::ChangeEvent** ev);
  v1::Row* TakeRow();

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
  // The newest event, held back until the next event or the Commit.
  v1::ChangeEvent held_;
  bool has_held_ = false;
  // Row images taken off spent events, to be filled again.
  std::vector<std::unique_ptr<v1::Row>> spare_rows_;
  struct RelationEntry {
    uint32_t schema_version = 0;
    v1::Relation relation;
  };
  std::unordered_map<uint32_t, RelationEntry> relations_;
};

}  // namespace lifeline::capture
