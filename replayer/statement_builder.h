// The transform step of the replayer: a ChangeEvent becomes SQL for the target. Values travel as
// PostgreSQL's text form in standard string literals, so every type the source printed is read
// back by the target's own input function (uuid, enum, jsonb, numeric, arrays, bytea, geography).
// The target session runs with standard_conforming_strings = on.
#pragma once

#include <set>
#include <string>
#include <string_view>

#include "common/postgres.h"
#include "common/status.h"
#include "lifeline/v1/change_event.pb.h"

namespace lifeline::replayer {

// "schema"."table" of the event's relation.
std::string QualifiedTable(const v1::ChangeEvent& ev);

// The statement applying `ev`, ending in ';'. Empty for events that change no rows (heartbeat,
// marker). INSERT and SNAPSHOT are upserts on the key; UPDATE sets only the columns sent (never an
// unchanged-TOAST column) and finds the row by its old key when the key changed.
[[nodiscard]] Result<std::string> ApplyStatement(const v1::ChangeEvent& ev);

// INSERT ... ON CONFLICT DO NOTHING of a row image (for --only-missing).
[[nodiscard]] Result<std::string> InsertIfMissingStatement(const v1::ChangeEvent& ev,
                                                           const v1::Row& row);

// The key of the event's row as "col=value,..." text (for maps and reports).
std::string RowKeyText(const v1::ChangeEvent& ev);

}  // namespace lifeline::replayer

namespace lifeline::replayer {

// Consecutive upserts (INSERT, SNAPSHOT) or DELETEs of one table with the same columns, applied as
// one multi-row statement: the target parses and plans once per run instead of once per row. A
// key already in the run ends it, so every row is still changed in stream order.
class StatementRun {
 public:
  // Adds `ev` if it can join the run; false if it cannot (apply the run first, then the event).
  bool TryAdd(const v1::ChangeEvent& ev);
  // The run as one statement ending in ';' (empty if none), and starts afresh.
  std::string Take();
  size_t rows() const { return rows_; }

 private:
  std::string signature_;  // table, kind and columns; empty: no run
  std::string head_, tail_, values_;
  std::set<std::string> keys_;
  size_t rows_ = 0;
};

}  // namespace lifeline::replayer
