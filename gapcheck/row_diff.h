// Row-level diff of one table between primary and standby by primary key, in the manner of
// data-diff: the key space is split into segments whose row count and hash aggregate are computed
// in SQL on both sides at once; only segments that differ are split further, and only small
// differing segments are fetched row by row.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"

namespace lifeline::gapcheck {

struct RowDiffOptions {
  std::string source;  // conninfo of the primary
  std::string source_password;
  std::string target;  // conninfo of the standby
  std::string target_password;
  std::string table = "public.emergency_requests";  // schema.name
  std::string where;  // an SQL condition applied on both sides; empty: none
  int segments_per_level = 32;
  int64_t fetch_below_rows = 512;  // a differing segment this small is fetched row by row
  // How a row's text is hashed in SQL: "hashtext" (hashtextextended, 64 bits) or "md5" (its
  // first 64 bits; slower, for comparison in the benchmark).
  std::string row_hash = "hashtext";
  // Called after each level: level number, segments compared, segments that differ.
  std::function<void(int level, int64_t compared, int64_t differing)> progress;
};

// A row by its primary key: values in key_columns order, as text.
struct RowDifference {
  std::vector<std::string> key;
  std::vector<std::string> columns;  // for a differing row: the columns whose values differ
};

// A top-level segment of the key space, for the report's chart.
struct SegmentSummary {
  std::string from_key;  // display text of the first key (inclusive), empty: open
  std::string to_key;    // display text of the bound (exclusive), empty: open
  int64_t source_rows = 0;
  int64_t target_rows = 0;
  int64_t differences = 0;  // rows missing, extra or different inside it
};

struct RowDiffReport {
  std::string table;
  std::vector<std::string> key_columns;
  std::vector<std::string> columns;
  int64_t source_rows = 0;
  int64_t target_rows = 0;
  std::vector<RowDifference> missing;    // on the primary, not on the standby
  std::vector<RowDifference> extra;      // on the standby, not on the primary
  std::vector<RowDifference> different;  // on both, with differing values
  std::vector<SegmentSummary> segments;
  int levels = 0;               // round trips of segment checksums (each to both sides at once)
  int64_t rows_fetched = 0;     // rows fetched for comparison, both sides
  uint64_t bytes_received = 0;  // result bytes received from both databases
  double seconds = 0;
  // What the reader should know about how the comparison was made (e.g. a key collation that
  // differs between the sides, compared in byte order instead).
  std::vector<std::string> notes;
  bool clean() const { return missing.empty() && extra.empty() && different.empty(); }
};

// Compares the table on both sides. A table without a primary key, a missing table, a key or
// column set that differs between the sides, or a `where` that does not parse is an error
// (InvalidArgument, naming the table and the fix, or PostgreSQL's own message for `where`).
[[nodiscard]] Result<RowDiffReport> DiffRows(const RowDiffOptions& options);

}  // namespace lifeline::gapcheck
