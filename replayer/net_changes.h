// The net change of each row over a batch of one table's changes. Only a target transaction's
// end state is ever visible, so a row inserted, updated and deleted within one batch needs one
// row operation on the target, not three (Debezium's JDBC sink calls this its reduction buffer).
// Safe only where the table's rows are independent on the target, which
// Target::CheckRelation finds out (RelationOnTarget::independent_rows).
//
//   held for a row    then INSERT/SNAPSHOT     then UPDATE (same key)     then DELETE
//   (nothing)         upsert(new)              update(sent columns)       delete
//   upsert(r)         upsert(new)              upsert(r + sent columns)   delete
//   update(c)         upsert(new)              update(c + sent columns)   delete
//   delete            delete, upsert(new)      delete                     delete
//
// An UPDATE of a row already deleted in the batch changes nothing, as it would on the target;
// "delete, upsert" keeps the DELETE (through later upserts and updates), so that columns only
// the target has are reset as applying every change would reset them. A changed key, a NULL key or
// TRUNCATE is not netted: the caller applies what is held first, then that event as it is.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "lifeline/v1/change_event.pb.h"

namespace lifeline::replayer {

class NetChanges {
 public:
  // Takes `ev` into the net change of its row; false if it cannot: another relation than the
  // one held (take what is held, then try again), or an event that is never netted.
  // `column_types` are the relation's column types on the target, kept for TakeInto.
  bool TryAdd(const v1::ChangeEvent& ev, const std::vector<std::string>& column_types);

  // Hands each held row's net change to `apply` as a change event of the relation (DELETEs
  // first, then upserts, then updates by the columns they set, so that each kind goes in long
  // multi-row statements) with the relation's column types, and starts afresh.
  using Apply =
      std::function<Status(const v1::ChangeEvent&, const std::vector<std::string>& column_types)>;
  [[nodiscard]] Status TakeInto(const Apply& apply);

  // Events taken since the start, and row changes handed out for them: their difference is the
  // number of row operations the target was spared.
  uint64_t events_taken() const { return events_taken_; }
  uint64_t changes_given() const { return changes_given_; }

 private:
  enum class Net : char { kUpsert, kUpdate, kDelete };
  struct Held {
    Net net = Net::kUpsert;
    bool delete_first = false;  // kUpsert: a DELETE of the row comes before it
    uint64_t seq = 0;           // of the last event netted (for error messages)
    v1::Row row;  // kUpsert: the whole new row; kUpdate: sent columns, unchanged-TOAST elsewhere;
                  // kDelete: the key
  };
  Held& Find(const std::string& key, bool* fresh);

  v1::ChangeEvent relation_;  // empty: nothing held; else the relation of the rows held
  std::vector<std::string> column_types_;
  std::unordered_map<std::string, size_t> by_key_;  // key text -> index in held_
  std::vector<Held> held_;
  uint64_t events_taken_ = 0, changes_given_ = 0;
};

}  // namespace lifeline::replayer
