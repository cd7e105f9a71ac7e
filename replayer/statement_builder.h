// The transform step of the replayer: a ChangeEvent becomes a statement for the target. Values
// travel as parameters in PostgreSQL's text form, so every type the source printed is read back by
// the target's own input function (uuid, enum, jsonb, numeric, arrays, bytea, geography), and the
// target parses and plans each statement shape once per connection instead of once per row.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/postgres.h"
#include "common/status.h"
#include "lifeline/v1/change_event.pb.h"

namespace lifeline::replayer {

// One SQL statement with $1..$n placeholders (no trailing ';') and its parameters in text form.
struct Statement {
  std::string sql;              // empty: nothing to run
  std::string values;           // every parameter followed by '\0'
  std::vector<int32_t> starts;  // per parameter: where it starts in `values`; -1: NULL

  void AddText(std::string_view v);
  void AddNull();
  void Add(const v1::Value& v);  // its text, or NULL (never an unchanged-TOAST value)
  size_t params() const { return starts.size(); }
  // The parameter's text, or nullptr for NULL (for libpq).
  const char* param(size_t i) const { return starts[i] < 0 ? nullptr : values.data() + starts[i]; }
};

// "schema"."table" of the event's relation.
std::string QualifiedTable(const v1::ChangeEvent& ev);

// The statement applying `ev`. Empty sql for events that change no rows (heartbeat, marker).
// INSERT and SNAPSHOT are upserts on the key; UPDATE sets only the columns sent (never an
// unchanged-TOAST column) and finds the row by its old key when the key changed.
[[nodiscard]] Result<Statement> ApplyStatement(const v1::ChangeEvent& ev);

// INSERT ... ON CONFLICT DO NOTHING of a row image as SQL text ending in ';' (for --only-missing).
[[nodiscard]] Result<std::string> InsertIfMissingStatement(const v1::ChangeEvent& ev,
                                                           const v1::Row& row);

// The key of the event's row as "col=value,..." text (for maps and reports).
std::string RowKeyText(const v1::ChangeEvent& ev);

// Consecutive upserts (INSERT, SNAPSHOT) or DELETEs of one table with the same columns, applied as
// multi-row statements: the target runs one statement per run instead of one per row. A key
// already in the run ends it, so every row is still changed in stream order.
class StatementRun {
 public:
  // Adds `ev` if it can join the run; false if it cannot (apply the run first, then the event).
  bool TryAdd(const v1::ChangeEvent& ev);
  // Appends the run to `out` and starts afresh. Runs of up to 16 rows go as one statement; longer
  // ones in pieces of power-of-two sizes, so a table has few statement shapes to prepare.
  void TakeInto(std::vector<Statement>* out);
  size_t rows() const { return rows_; }

 private:
  std::string signature_;  // table, kind and columns; empty: no run
  std::string head_, tail_;
  size_t width_ = 0;  // parameters per row
  Statement values_;  // the rows' parameters, row after row
  std::unordered_set<std::string> keys_;
  size_t rows_ = 0;
};

}  // namespace lifeline::replayer
