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

// What decides a statement's text besides its kind: the relation (by oid, schema version and
// name) and which of its columns the row sends (bit i: column i has a value, or for a key column
// of an UPDATE's old key, is NULL). Relations of more than 64 columns have no shape.
struct StatementShape {
  uint32_t relation_oid = 0, schema_version = 0;
  char kind = 0;  // 'U' upsert, 'D' delete, 'S' update, 'V' update of a run (from a value list)
  uint64_t columns = 0;
  uint64_t null_keys = 0;  // UPDATE: key columns whose old value is NULL (IS NULL, no parameter)
  const std::string* schema = nullptr;  // the event's own strings: compared, never kept
  const std::string* table = nullptr;
  bool SameAs(const StatementShape& o, const std::string& o_schema,
              const std::string& o_table) const;
};

// Statement texts already built, by shape: a stream repeats a few shapes millions of times, and
// quoting every column name again for each row costs more than the row's values.
class ShapeCache {
 public:
  // The text of `shape`, built by `build` the first time it is asked for; valid until the next
  // call.
  template <typename Build>
  const std::string& Text(const StatementShape& shape, Build&& build) {
    for (const Entry& e : entries_) {
      if (shape.SameAs(e.shape, e.schema, e.table)) return e.sql;
    }
    if (entries_.size() >= kMaxShapes) entries_.clear();
    Entry& e = entries_.emplace_back();
    e.shape = shape;
    e.schema = *shape.schema;
    e.table = *shape.table;
    e.shape.schema = e.shape.table = nullptr;
    e.sql = build();
    return e.sql;
  }

 private:
  static constexpr size_t kMaxShapes = 64;
  struct Entry {
    StatementShape shape;
    std::string schema, table, sql;
  };
  std::vector<Entry> entries_;
};

// The statement applying `ev`. Empty sql for events that change no rows (heartbeat, marker).
// INSERT and SNAPSHOT are upserts on the key; UPDATE sets only the columns sent (never an
// unchanged-TOAST column) and finds the row by its old key when the key changed. With `shapes`,
// texts of shapes seen before are reused.
[[nodiscard]] Result<Statement> ApplyStatement(const v1::ChangeEvent& ev,
                                               ShapeCache* shapes = nullptr);

// INSERT ... ON CONFLICT DO NOTHING of a row image as SQL text ending in ';' (for --only-missing).
[[nodiscard]] Result<std::string> InsertIfMissingStatement(const v1::ChangeEvent& ev,
                                                           const v1::Row& row);

// The key of the event's row as "col=value,..." text (for maps and reports).
std::string RowKeyText(const v1::ChangeEvent& ev);

// Consecutive upserts (INSERT, SNAPSHOT), UPDATEs or DELETEs of one table with the same columns,
// applied as multi-row statements: the target runs one statement per run instead of one per row.
// A key already in the run ends it, so every row is still changed in stream order. UPDATEs join
// a run only when their key did not change and `column_types` (the target's type of each column,
// Target::CheckRelation) is given: the run is
//   UPDATE t SET c = v.c, ... FROM (VALUES ($1::type, ...), ...) AS v(k, c, ...) WHERE t.k = v.k
// and a value list needs its types spelled out, where a single row's parameters take them from
// the columns they are assigned to.
class StatementRun {
 public:
  // Adds `ev` if it can join the run; false if it cannot (apply the run first, then the event).
  bool TryAdd(const v1::ChangeEvent& ev, const std::vector<std::string>* column_types = nullptr);
  // Appends the run to `out` and starts afresh. Runs of up to 16 rows go as one statement; longer
  // ones in pieces of power-of-two sizes, so a table has few statement shapes to prepare.
  void TakeInto(std::vector<Statement>* out);
  size_t rows() const { return rows_; }

 private:
  StatementShape shape_;  // kind 0: no run
  std::string schema_, table_;
  std::string head_, tail_;
  size_t width_ = 0;                // parameters per row
  std::vector<std::string> types_;  // 'V' runs: the cast of each parameter of a row
  Statement values_;                // the rows' parameters, row after row
  std::unordered_set<std::string> keys_;
  size_t rows_ = 0;
};

}  // namespace lifeline::replayer
