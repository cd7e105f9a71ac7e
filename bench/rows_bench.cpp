// `gapcheck rows` (DiffRows) against its anchor, an md5 of every row's text in key order on both
// sides at once, on two local clusters holding the same large table with ten planted differences.
#include <signal.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <pqxx/pqxx>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/allocator.h"
#include "common/local_postgres.h"
#include "gapcheck/row_diff.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr char kDatabase[] = "app";
constexpr int64_t kLoadChunk = 500'000;
// string_agg cannot build a value over 1 GB: above this many rows the anchor digests key ranges.
constexpr int64_t kAnchorRowsPerPart = 1'000'000;
constexpr double kGoalBytesShare = 0.01;

struct Flags {
  int64_t rows = 1'000'000;
  int rounds = 3;
  int segments = 32;
  int64_t fetch_below = 512;
  std::string dir;
  std::string json;
};

struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void Fail(const std::string& what) {
  throw BenchError(what);
}

void Must(const lifeline::Status& st, const std::string& what) {
  if (!st.ok()) Fail(what + ": " + st.ToString());
}

template <typename T>
T Must(lifeline::Result<T> r, const std::string& what) {
  if (!r.ok()) Fail(what + ": " + r.status().ToString());
  return std::move(r).value();
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Rows i in [from, to] of the reference table, the same on every cluster (row i: id md5('r'||i)).
std::string LoadRows(int64_t from, int64_t to) {
  return "INSERT INTO emergency_requests (id, customer_name, phone_number, location_address, "
         "location_coordinates, vehicle_make_model, tyre_issue, status, technician_id, notes, "
         "created_at, updated_at, completed_at) "
         "SELECT md5('r' || i)::uuid, 'Customer ' || i, '+44 7700 ' || lpad((i % 1000000)::text, "
         "6, '0'), CASE WHEN i % 97 = 0 THEN NULL ELSE i || ' High Street, Leeds LS1' END, "
         "ST_SetSRID(ST_MakePoint(-1.5 + (i % 1000) * 0.001, 53.8 + (i % 700) * 0.001), "
         "4326)::geography, (ARRAY['Ford Focus','VW Golf','Vauxhall Corsa'])[1 + i % 3], "
         "(ARRAY['flat','puncture','blowout','valve','locking_nut','other'])[1 + i % 6]"
         "::emergency_issue_type, "
         "(ARRAY['pending','assigned','en_route','completed','cancelled'])[1 + i % 5]"
         "::emergency_status, CASE WHEN i % 3 = 0 THEN md5('t' || i % 50)::uuid END, "
         "jsonb_build_object('channel', 'app', 'priority', i % 3, 'note', 'left rear ' || i), "
         "timestamptz '2024-03-01 00:00:00+00' + i * interval '1.000001 second', "
         "timestamptz '2024-03-01 00:05:00+00' + i * interval '1 second', "
         "CASE WHEN i % 5 = 3 THEN timestamptz '2024-03-02 00:00:00+00' + i * interval '1 second' "
         "END FROM generate_series(" +
         std::to_string(from) + ", " + std::to_string(to) + ") i";
}

// The ten planted differences: SQL run on the target, and what DiffRows must report.
struct Planted {
  std::string sql;
  std::set<std::string> missing;                              // row numbers i
  std::set<std::string> extra;                                // literal uuids
  std::map<std::string, std::vector<std::string>> different;  // row number -> columns
};

Planted PlantDifferences(int64_t rows) {
  auto row = [&](double share) { return std::to_string(std::max<int64_t>(1, rows * share)); };
  Planted p;
  const std::string d1 = row(0.05), d2 = row(0.5), d3 = row(0.95);
  const std::string u1 = row(0.1), u2 = row(0.3), u3 = row(0.6), u4 = row(0.7), u5 = row(0.9);
  p.missing = {d1, d2, d3};
  p.extra = {"00000000-0000-4000-8000-00000000e001", "ffffffff-ffff-4fff-bfff-ffffffffe002"};
  p.different = {{u1, {"status"}},
                 {u2, {"updated_at"}},
                 {u3, {"notes"}},
                 {u4, {"location_address"}},
                 {u5, {"customer_name"}}};
  auto id = [](const std::string& i) { return "md5('r' || " + i + ")::uuid"; };
  p.sql =
      "DELETE FROM emergency_requests WHERE id IN (" + id(d1) + ", " + id(d2) + ", " + id(d3) +
      "); INSERT INTO emergency_requests (id, customer_name, phone_number) VALUES ('" +
      *p.extra.begin() + "', 'Extra one', '1'), ('" + *p.extra.rbegin() +
      "', 'Extra two', '2'); "
      "UPDATE emergency_requests SET status = CASE WHEN status = 'cancelled' THEN "
      "'pending'::emergency_status ELSE 'cancelled' END WHERE id = " +
      id(u1) +
      "; UPDATE emergency_requests SET updated_at = updated_at + interval '1 microsecond' "
      "WHERE id = " +
      id(u2) +
      "; UPDATE emergency_requests SET notes = notes || '{\"priority\": 9}' WHERE id = " + id(u3) +
      "; UPDATE emergency_requests SET location_address = CASE WHEN location_address IS NULL "
      "THEN '' ELSE NULL END WHERE id = " +
      id(u4) +
      "; UPDATE emergency_requests SET customer_name = customer_name || ' é' WHERE id = " + id(u5);
  return p;
}

// Runs `sql` on both clusters at once, each on a fresh connection; returns each side's first
// value. The clock includes the connections, as DiffRows' does.
std::pair<std::string, std::string> OnBothAtOnce(const lifeline::LocalPostgres& a,
                                                 const lifeline::LocalPostgres& b,
                                                 const std::string& sql) {
  std::string out[2];
  std::string err[2];
  auto run = [&](const lifeline::LocalPostgres& pg, int i) {
    try {
      pqxx::connection c(pg.ConnInfo(kDatabase));
      pqxx::nontransaction tx(c);
      pqxx::result r = tx.exec(sql);
      out[i] = r[0][0].is_null() ? "" : r[0][0].c_str();
    } catch (const std::exception& e) {
      err[i] = e.what();
    }
  };
  std::thread t([&] { run(b, 1); });
  run(a, 0);
  t.join();
  for (const auto& e : err) {
    if (!e.empty()) Fail("anchor query failed: " + e);
  }
  return {out[0], out[1]};
}

std::string AnchorSql(int64_t rows) {
  const int64_t parts = (rows + kAnchorRowsPerPart - 1) / kAnchorRowsPerPart;
  if (parts <= 1) {
    return "SELECT md5(string_agg(t::text, '' ORDER BY id)) FROM emergency_requests t";
  }
  // Key ranges by the uuid's first byte, each digested in key order, then digested in range order.
  return "SELECT md5(string_agg(d, '' ORDER BY p)) FROM (SELECT get_byte(uuid_send(t.id), 0) * " +
         std::to_string(parts) +
         " / 256 AS p, md5(string_agg(t::text, '' ORDER BY t.id)) AS d FROM emergency_requests t "
         "GROUP BY 1) s";
}

struct Timings {
  std::vector<double> diff, diff_md5, anchor, hashtext_sum;
};

lifeline::gapcheck::RowDiffReport TimedDiff(const Flags& f, const lifeline::LocalPostgres& source,
                                            const lifeline::LocalPostgres& target,
                                            const std::string& row_hash, double* seconds) {
  lifeline::gapcheck::RowDiffOptions o;
  o.source = source.ConnInfo(kDatabase);
  o.target = target.ConnInfo(kDatabase);
  o.segments_per_level = f.segments;
  o.fetch_below_rows = f.fetch_below;
  o.row_hash = row_hash;
  const auto start = Clock::now();
  auto r = lifeline::gapcheck::DiffRows(o);
  *seconds = Seconds(start);
  return Must(std::move(r), "DiffRows (" + row_hash + ")");
}

// Every planted difference found, nothing else.
void Check(const lifeline::gapcheck::RowDiffReport& r, const Planted& p,
           const std::map<std::string, std::string>& id_of_row, const std::string& what) {
  std::set<std::string> missing, extra, expect_missing;
  for (const auto& d : r.missing) missing.insert(d.key[0]);
  for (const auto& d : r.extra) extra.insert(d.key[0]);
  for (const auto& i : p.missing) expect_missing.insert(id_of_row.at(i));
  std::map<std::string, std::vector<std::string>> different, expect_different;
  for (const auto& d : r.different) different[d.key[0]] = d.columns;
  for (const auto& [i, cols] : p.different) expect_different[id_of_row.at(i)] = cols;
  if (missing != expect_missing || extra != p.extra || different != expect_different) {
    Fail(what + " did not report exactly the 10 planted differences: " +
         std::to_string(r.missing.size()) + " missing, " + std::to_string(r.extra.size()) +
         " extra, " + std::to_string(r.different.size()) + " different");
  }
}

int64_t PeakRssKb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

int Main(const Flags& f) {
  std::string dir = f.dir;
  const bool own_dir = dir.empty();
  if (own_dir) {
    char tmpl[] = "/tmp/rows-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) Fail("cannot create a temporary directory");
    dir = tmpl;
  }
  std::error_code ec;
  fs::permissions(dir,
                  fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                      fs::perms::others_read | fs::perms::others_exec,
                  ec);
  std::printf("%lld rows per side, 10 planted differences, %d round(s), in %s\n",
              static_cast<long long>(f.rows), f.rounds, dir.c_str());
  std::fflush(stdout);

  auto start_cluster = [&](const std::string& name) {
    lifeline::LocalPostgresOptions opts;
    opts.name = name;
    opts.parent_dir = dir;
    opts.settings = {"max_wal_size = 8GB", "checkpoint_timeout = 30min", "autovacuum = off"};
    auto pg = Must(lifeline::LocalPostgres::Create(opts), "starting PostgreSQL " + name);
    Must(pg->CreateDatabase(kDatabase), "creating database on " + name);
    Must(pg->PsqlFile(LIFELINE_SOURCE_DIR "/scripts/sql/reference_schema.sql", kDatabase),
         "loading the reference schema on " + name);
    return pg;
  };
  auto source = start_cluster("rows-source");
  auto target = start_cluster("rows-target");

  const auto load_start = Clock::now();
  std::string load_error[2];
  auto load = [&](lifeline::LocalPostgres& pg, int side) {
    for (int64_t from = 1; from <= f.rows; from += kLoadChunk) {
      auto r = pg.Psql(LoadRows(from, std::min(f.rows, from + kLoadChunk - 1)), kDatabase);
      if (!r.ok()) {
        load_error[side] = r.status().ToString();
        return;
      }
    }
    auto r = pg.Psql("VACUUM ANALYZE emergency_requests", kDatabase);
    if (!r.ok()) load_error[side] = r.status().ToString();
  };
  std::thread t([&] { load(*target, 1); });
  load(*source, 0);
  t.join();
  for (const auto& e : load_error) {
    if (!e.empty()) Fail("loading rows: " + e);
  }
  const Planted planted = PlantDifferences(f.rows);
  Must(target->Psql(planted.sql + "; VACUUM ANALYZE emergency_requests", kDatabase).status(),
       "planting differences");
  std::map<std::string, std::string> id_of_row;
  for (const auto* set : {&planted.missing}) {
    for (const auto& i : *set) {
      id_of_row[i] = Must(source->Psql("SELECT md5('r' || " + i + ")::uuid", kDatabase), "id");
    }
  }
  for (const auto& [i, cols] : planted.different) {
    id_of_row[i] = Must(source->Psql("SELECT md5('r' || " + i + ")::uuid", kDatabase), "id");
  }
  for (auto& [i, id] : id_of_row) {
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  }
  const int64_t table_bytes = std::stoll(
      Must(source->Psql("SELECT pg_table_size('emergency_requests')", kDatabase), "table size"));
  std::printf("loaded in %.1f s; source table %.1f MB (heap and TOAST)\n", Seconds(load_start),
              table_bytes / 1e6);
  std::fflush(stdout);

  // Each round: DiffRows, the anchor, DiffRows with md5 row hashes, the hashtext sum; the order
  // rotates so no method always follows the same one.
  Timings tm;
  lifeline::gapcheck::RowDiffReport last;
  const std::string anchor_sql = AnchorSql(f.rows);
  const std::string hashtext_sql = "SELECT sum(hashtext(t::text)) FROM emergency_requests t";
  std::string anchor_digest[2];
  for (int round = 1; round <= f.rounds; ++round) {
    std::vector<std::function<void()>> steps = {
        [&] {
          double s = 0;
          last = TimedDiff(f, *source, *target, "hashtext", &s);
          Check(last, planted, id_of_row, "DiffRows");
          tm.diff.push_back(s);
          std::printf(
              "  round %d: DiffRows (hashtext) %.2f s, %d levels, %lld rows fetched, "
              "%llu bytes\n",
              round, s, last.levels, static_cast<long long>(last.rows_fetched),
              static_cast<unsigned long long>(last.bytes_received));
        },
        [&] {
          const auto start = Clock::now();
          auto [a, b] = OnBothAtOnce(*source, *target, anchor_sql);
          tm.anchor.push_back(Seconds(start));
          anchor_digest[0] = a;
          anchor_digest[1] = b;
          std::printf("  round %d: md5 string_agg anchor %.2f s (%s)\n", round, tm.anchor.back(),
                      a == b ? "equal" : "differ");
        },
        [&] {
          double s = 0;
          auto r = TimedDiff(f, *source, *target, "md5", &s);
          Check(r, planted, id_of_row, "DiffRows (md5)");
          tm.diff_md5.push_back(s);
          std::printf("  round %d: DiffRows (md5) %.2f s\n", round, s);
        },
        [&] {
          const auto start = Clock::now();
          OnBothAtOnce(*source, *target, hashtext_sql);
          tm.hashtext_sum.push_back(Seconds(start));
          std::printf("  round %d: sum(hashtext(t::text)) %.2f s\n", round, tm.hashtext_sum.back());
        }};
    std::rotate(steps.begin(), steps.begin() + (round - 1) % steps.size(), steps.end());
    for (auto& step : steps) step();
    std::fflush(stdout);
  }
  if (anchor_digest[0] == anchor_digest[1]) Fail("the anchor did not see the differences");

  const double diff = Median(tm.diff), anchor = Median(tm.anchor);
  const double diff_md5 = Median(tm.diff_md5), hashtext = Median(tm.hashtext_sum);
  const double share = static_cast<double>(last.bytes_received) / static_cast<double>(table_bytes);
  const int64_t rss_kb = PeakRssKb();
  const bool met = diff <= anchor && share < kGoalBytesShare;
  std::printf(
      "median: DiffRows %.2f s | DiffRows (md5 row hash) %.2f s | md5 string_agg anchor "
      "%.2f s | sum(hashtext) %.2f s\n",
      diff, diff_md5, anchor, hashtext);
  std::printf(
      "DiffRows / anchor %.2f; bytes received %llu = %.4f%% of the table; %d levels, "
      "%lld rows fetched; peak RSS %.1f MiB; goal (<= anchor, < 1%% bytes, all 10 found) "
      "%s\n",
      diff / anchor, static_cast<unsigned long long>(last.bytes_received), share * 100, last.levels,
      static_cast<long long>(last.rows_fetched), rss_kb / 1024.0, met ? "met" : "NOT met");

  if (!f.json.empty()) {
    std::ofstream out(f.json);
    auto list = [](const std::vector<double>& v) {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
      return s + "]";
    };
    out << "{\n  \"rows\": " << f.rows << ",\n  \"rounds\": " << f.rounds
        << ",\n  \"segments_per_level\": " << f.segments
        << ",\n  \"fetch_below_rows\": " << f.fetch_below << ",\n  \"table_bytes\": " << table_bytes
        << ",\n  \"diff_seconds\": " << list(tm.diff)
        << ",\n  \"diff_md5_seconds\": " << list(tm.diff_md5)
        << ",\n  \"anchor_seconds\": " << list(tm.anchor)
        << ",\n  \"hashtext_sum_seconds\": " << list(tm.hashtext_sum)
        << ",\n  \"ratio_diff_to_anchor\": " << diff / anchor
        << ",\n  \"bytes_received\": " << last.bytes_received << ",\n  \"bytes_share\": " << share
        << ",\n  \"levels\": " << last.levels << ",\n  \"rows_fetched\": " << last.rows_fetched
        << ",\n  \"differences_found\": "
        << last.missing.size() + last.extra.size() + last.different.size()
        << ",\n  \"peak_rss_kb\": " << rss_kb << ",\n  \"goal_met\": " << (met ? "true" : "false")
        << "\n}\n";
  }
  source.reset();
  target.reset();
  if (own_dir) fs::remove_all(dir, ec);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  lifeline::SetAllocatorThresholds();
  Flags f;
  CLI::App app{"gapcheck rows (DiffRows) against an md5 of both sides' rows in key order",
               "rows_bench"};
  app.add_option("--rows", f.rows, "Rows in the table on each side")->capture_default_str();
  app.add_option("--rounds", f.rounds, "Rounds (each times every method once)")
      ->capture_default_str();
  app.add_option("--segments", f.segments, "DiffRows segments per level")->capture_default_str();
  app.add_option("--fetch-below", f.fetch_below, "DiffRows fetch-below rows")
      ->capture_default_str();
  app.add_option("--dir", f.dir, "Where the clusters go (default: a temp dir, removed)");
  app.add_option("--json", f.json, "Also write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);
  if (f.rows < 100 || f.rounds < 1) {
    std::cerr << "rows_bench: --rows must be at least 100 and --rounds at least 1\n";
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  try {
    return Main(f);
  } catch (const BenchError& e) {
    std::cerr << "rows_bench: " << e.what() << "\n";
    return 1;
  }
}
