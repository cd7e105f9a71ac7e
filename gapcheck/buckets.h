// `gapcheck buckets`: rows per time bucket on the primary and the standby (and, with a stream, rows
// created according to the stream), flagging buckets that differ and runs of empty buckets inside
// busy hours; plus the recovery plan's integrity summary for both sides.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "gapcheck/gapcheck.h"

namespace lifeline::gapcheck {

struct Bucket {
  int64_t start_us = 0;  // bucket start, microseconds since the epoch (UTC)
  int64_t primary = 0;
  int64_t standby = 0;
  std::optional<int64_t> stream;  // rows created per the stream's insert/snapshot events
  bool differs = false;           // primary != standby, or stream given and != primary
};

// Buckets [first, last] with no rows on `side` inside an hour that is otherwise busy.
struct EmptyRun {
  std::string side;  // "primary" or "standby"
  int64_t from_us = 0;
  int64_t to_us = 0;  // start of the last empty bucket
  int64_t buckets = 0;
};

// The plan's "verify data integrity" query, on one side.
struct IntegritySummary {
  int64_t total = 0;
  std::map<std::string, int64_t> by_status;
  std::optional<double> mean_completion_minutes;
};

struct BucketReport {
  std::string table;
  std::string time_column;
  int64_t bucket_us = 0;
  int64_t from_us = 0;  // first bucket's start
  int64_t to_us = 0;    // end of the last bucket (exclusive): the primary's now
  std::vector<Bucket> buckets;
  std::vector<EmptyRun> empty_runs;
  std::optional<IntegritySummary> primary_integrity;  // absent when the table has no status column
  std::optional<IntegritySummary> standby_integrity;
  int64_t differing_buckets = 0;
  bool clean() const { return differing_buckets == 0; }
};

[[nodiscard]] Result<BucketReport> CountBuckets(const GapcheckOptions& options);

}  // namespace lifeline::gapcheck
