// Per-bucket counts: one grouped count per side (both sides at once), the stream's inserts bucketed
// by the row's own time column, empty runs judged against the hour around them, and the plan's
// integrity summary.
#include "gapcheck/buckets.h"

#include <future>
#include <pqxx/pqxx>
#include <unordered_set>

#include "capture/source_catalog.h"
#include "common/event_format.h"
#include "common/postgres.h"
#include "gapcheck/stream_scan.h"

namespace lifeline::gapcheck {
namespace {

using capture::ParseTableNames;
using capture::TableName;

constexpr int64_t kHourUs = 3'600'000'000;

std::string SinceLiteral(int64_t us) {
  return "('epoch'::timestamptz + " + std::to_string(us) + " * interval '1 microsecond')";
}

struct SideCounts {
  std::map<int64_t, int64_t> per_bucket;  // bucket index -> rows
  std::optional<IntegritySummary> integrity;
};

Result<SideCounts> CountSide(const std::string& side, const std::string& conninfo,
                             const std::string& password, const TableName& table,
                             const std::string& time_column, int64_t from_us, int64_t to_us,
                             int64_t bucket_us) {
  return GuardPostgres("counting rows per bucket on the " + side, [&]() -> Result<SideCounts> {
    pqxx::connection conn(ConnInfoWithPassword(conninfo, password));
    pqxx::nontransaction tx(conn);
    auto cols = tx.exec_params(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND "
        "NOT attisdropped",
        table.Qualified());
    std::unordered_set<std::string> names;
    for (const auto& r : cols) names.insert(r[0].as<std::string>());
    if (names.empty()) {
      return Status::NotFound("table " + table.Display() + " does not exist on the " + side + " (" +
                              conn.dbname() + "): pass --table schema.name");
    }
    if (!names.count(time_column)) {
      return Status::InvalidArgument("table " + table.Display() + " on the " + side +
                                     " has no column '" + time_column +
                                     "': pass --time-column with a timestamp column");
    }
    std::string range = QuoteIdent(time_column) + " >= " + SinceLiteral(from_us) + " AND " +
                        QuoteIdent(time_column) + " < " + SinceLiteral(to_us);
    SideCounts out;
    auto rows = tx.exec("SELECT floor((extract(epoch FROM " + QuoteIdent(time_column) +
                        ") * 1000000 - " + std::to_string(from_us) + ") / " +
                        std::to_string(bucket_us) + ")::bigint, count(*) FROM " +
                        table.Qualified() + " WHERE " + range + " GROUP BY 1");
    for (const auto& r : rows) out.per_bucket[r[0].as<int64_t>()] = r[1].as<int64_t>();
    if (names.count("status")) {
      IntegritySummary s;
      std::string completion =
          names.count("completed_at")
              ? "avg(extract(epoch FROM (completed_at - " + QuoteIdent(time_column) + ")) / 60)"
              : "NULL::numeric";
      auto by =
          tx.exec("SELECT status::text, count(*), " + completion + " FROM " + table.Qualified() +
                  " WHERE " + range + " GROUP BY GROUPING SETS ((status), ()) ORDER BY 1");
      for (const auto& r : by) {
        if (r[0].is_null()) {
          s.total = r[1].as<int64_t>();
          if (!r[2].is_null()) s.mean_completion_minutes = r[2].as<double>();
        } else {
          s.by_status[r[0].as<std::string>()] = r[1].as<int64_t>();
        }
      }
      out.integrity = s;
    }
    return out;
  });
}

// Rows created per bucket according to the stream: insert and snapshot events of the table,
// bucketed by the time column of their row image, each seq once.
Result<std::map<int64_t, int64_t>> CountStream(const GapcheckOptions& options,
                                               const TableName& table, int64_t from_us,
                                               int64_t to_us, int64_t bucket_us) {
  std::map<int64_t, int64_t> counts;
  std::unordered_set<uint64_t> seen;
  std::string sealed_key;  // of an event whose rows no key file opened
  StreamScanOptions scan;
  scan.stream = options.stream;
  scan.visit = [&](const StreamPosition&, const v1::ChangeEvent& ev) {
    if (ev.op() != v1::OP_INSERT && ev.op() != v1::OP_SNAPSHOT) return;
    if (ev.relation().schema() != table.schema || ev.relation().table() != table.table) return;
    if (ev.has_sealed()) {
      if (sealed_key.empty()) sealed_key = ev.sealed().key_id();
      return;
    }
    int index = -1;
    for (int i = 0; i < ev.relation().columns_size(); ++i) {
      if (ev.relation().columns(i).name() == options.time_column) index = i;
    }
    if (index < 0 || index >= ev.after().values_size()) return;
    const auto& value = ev.after().values(index);
    if (!value.has_text()) return;
    Result<int64_t> at = ParseTimestampUs(value.text());
    if (!at.ok() || *at < from_us || *at >= to_us) return;
    if (!seen.insert(ev.seq()).second) return;
    ++counts[(*at - from_us) / bucket_us];
  };
  LIFELINE_ASSIGN_OR_RETURN(StreamReport ignored, ScanStream(scan));
  (void)ignored;
  if (!sealed_key.empty()) {
    return Status::FailedPrecondition(
        "the stream's rows are sealed (key id '" + sealed_key +
        "'): counting them needs the key; pass its file with --encryption-key-file");
  }
  return counts;
}

Result<int64_t> PrimaryNowUs(const GapcheckOptions& options) {
  return GuardPostgres("reading the primary's clock", [&]() -> Result<int64_t> {
    pqxx::connection conn(ConnInfoWithPassword(options.source, options.source_password));
    pqxx::nontransaction tx(conn);
    return tx.exec1("SELECT (extract(epoch FROM now()) * 1000000)::bigint")[0].as<int64_t>();
  });
}

// Runs of empty buckets on one side, inside clock hours where the primary had rows in at least
// half the buckets. The bucket holding "now" is still filling and is left out.
void FindEmptyRuns(BucketReport* report, const std::string& side, bool primary) {
  std::map<int64_t, std::pair<int64_t, int64_t>> hours;  // hour -> (buckets, non-empty)
  for (const Bucket& b : report->buckets) {
    auto& h = hours[b.start_us / kHourUs];
    ++h.first;
    if (b.primary > 0) ++h.second;
  }
  auto busy = [&](int64_t start_us) {
    const auto& h = hours[start_us / kHourUs];
    return h.first >= 4 && h.second * 2 >= h.first;
  };
  const size_t usable = report->buckets.empty() ? 0 : report->buckets.size() - 1;
  size_t i = 0;
  while (i < usable) {
    const Bucket& b = report->buckets[i];
    int64_t n = primary ? b.primary : b.standby;
    if (n != 0 || !busy(b.start_us)) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j + 1 < usable &&
           (primary ? report->buckets[j + 1].primary : report->buckets[j + 1].standby) == 0 &&
           busy(report->buckets[j + 1].start_us)) {
      ++j;
    }
    report->empty_runs.push_back(
        {side, b.start_us, report->buckets[j].start_us, static_cast<int64_t>(j - i + 1)});
    i = j + 1;
  }
}

}  // namespace

Result<BucketReport> CountBuckets(const GapcheckOptions& options) {
  if (options.source.empty() || options.target.empty()) {
    return Status::InvalidArgument(
        "gapcheck buckets needs --source CONNINFO (the primary) and --target CONNINFO (the "
        "standby)");
  }
  if (options.bucket_ms <= 0 || options.since_ms <= 0) {
    return Status::InvalidArgument("--bucket and --since must be positive durations, e.g. 1m, 2h");
  }
  LIFELINE_ASSIGN_OR_RETURN(std::vector<TableName> tables, ParseTableNames({options.table}));
  const TableName& table = tables.front();

  BucketReport report;
  report.table = table.Display();
  report.time_column = options.time_column;
  report.bucket_us = options.bucket_ms * 1000;
  LIFELINE_ASSIGN_OR_RETURN(int64_t now_us, PrimaryNowUs(options));
  int64_t since_us = now_us - options.since_ms * 1000;
  report.from_us = since_us - (since_us % report.bucket_us);
  report.to_us = now_us;

  auto primary = std::async(std::launch::async, [&] {
    return CountSide("primary", options.source, options.source_password, table, options.time_column,
                     report.from_us, report.to_us, report.bucket_us);
  });
  auto standby = std::async(std::launch::async, [&] {
    return CountSide("standby", options.target, options.target_password, table, options.time_column,
                     report.from_us, report.to_us, report.bucket_us);
  });
  Result<SideCounts> p = primary.get();
  Result<SideCounts> s = standby.get();
  LIFELINE_RETURN_IF_ERROR(p.status());
  LIFELINE_RETURN_IF_ERROR(s.status());
  std::optional<std::map<int64_t, int64_t>> stream;
  if (options.stream.given()) {
    LIFELINE_ASSIGN_OR_RETURN(
        stream, CountStream(options, table, report.from_us, report.to_us, report.bucket_us));
  }
  report.primary_integrity = p->integrity;
  report.standby_integrity = s->integrity;

  const int64_t n = (report.to_us - report.from_us + report.bucket_us - 1) / report.bucket_us;
  for (int64_t i = 0; i < n; ++i) {
    Bucket b;
    b.start_us = report.from_us + i * report.bucket_us;
    if (auto it = p->per_bucket.find(i); it != p->per_bucket.end()) b.primary = it->second;
    if (auto it = s->per_bucket.find(i); it != s->per_bucket.end()) b.standby = it->second;
    if (stream) {
      auto it = stream->find(i);
      b.stream = it == stream->end() ? 0 : it->second;
    }
    b.differs = b.primary != b.standby;
    if (b.differs) ++report.differing_buckets;
    report.buckets.push_back(b);
  }
  FindEmptyRuns(&report, "primary", true);
  FindEmptyRuns(&report, "standby", false);
  return report;
}

}  // namespace lifeline::gapcheck
