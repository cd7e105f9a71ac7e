// Spool append throughput against its anchor, plain RocksDB puts of the same bytes with the same
// sync policy (one synced WriteBatch per batch), measured side by side in one run.
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#include <stdlib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <span>
#include <string>
#include <vector>

#include "common/allocator.h"
#include "common/spool.h"
#include "common/spool_options.h"
#include "tests/support/sample_events.h"

namespace {

namespace fs = std::filesystem;
using lifeline::v1::ChangeEvent;
using Clock = std::chrono::steady_clock;

// The goal the spool is held to on this kind of machine.
constexpr double kGoalRatio = 0.8;
constexpr double kGoalEventsPerSecond = 100'000;
// Capture hands the spool whole transactions; five events each is a typical small OLTP write.
constexpr uint32_t kEventsPerTxn = 5;

struct Flags {
  uint64_t events = 1'000'000;
  size_t batch = 1000;
  size_t event_bytes = 400;
  int rounds = 3;
  std::string dir;
  std::string json;
};

struct Side {
  std::vector<double> seconds;  // one per round

  double Median() const {
    std::vector<double> s = seconds;
    std::sort(s.begin(), s.end());
    size_t n = s.size();
    return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  }
};

[[noreturn]] void Fail(const std::string& what) {
  std::cerr << "spool_bench: " << what << "\n";
  std::exit(1);
}

void Check(const rocksdb::Status& s, const std::string& what) {
  if (!s.ok()) Fail(what + ": " + s.ToString());
}

std::string SeqKey(uint64_t seq) {
  std::string k(8, '\0');
  for (int i = 7; i >= 0; --i, seq >>= 8) k[i] = static_cast<char>(seq & 0xff);
  return k;
}

// The spool's own options, so the two sides differ only in what the spool adds on top of RocksDB.
rocksdb::Options PlainOptions() {
  rocksdb::Options o = lifeline::SpoolRocksOptions();
  o.create_if_missing = true;
  return o;
}

double TimeSpool(const std::string& dir, std::span<ChangeEvent> events, size_t batch,
                 uint64_t expect_bytes) {
  auto spool = lifeline::Spool::OpenForWrite(dir);
  if (!spool.ok()) Fail(spool.status().ToString());
  auto start = Clock::now();
  for (size_t i = 0; i < events.size(); i += batch) {
    auto r = (*spool)->Append(events.subspan(i, std::min(batch, events.size() - i)));
    if (!r.ok()) Fail(r.status().ToString());
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  // Both sides must have written the same bytes for the comparison to mean anything.
  auto stats = (*spool)->Stats();
  if (stats.events != events.size() || stats.bytes != expect_bytes) {
    Fail("spool holds " + std::to_string(stats.events) + " events / " +
         std::to_string(stats.bytes) + " bytes, expected " + std::to_string(events.size()) + " / " +
         std::to_string(expect_bytes));
  }
  return secs;
}

double TimePlain(const std::string& dir, const std::vector<std::string>& values, size_t batch) {
  std::vector<std::string> keys;
  keys.reserve(values.size());
  for (size_t i = 0; i < values.size(); ++i) keys.push_back(SeqKey(i + 1));
  rocksdb::DB* raw = nullptr;
  Check(rocksdb::DB::Open(PlainOptions(), dir, &raw), "opening " + dir);
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto start = Clock::now();
  for (size_t i = 0; i < values.size(); i += batch) {
    rocksdb::WriteBatch wb;
    size_t end = std::min(values.size(), i + batch);
    for (size_t j = i; j < end; ++j) Check(wb.Put(keys[j], values[j]), "batching");
    Check(db->Write(wo, &wb), "writing to " + dir);
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void RemoveDir(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
}

void WriteJson(const std::string& path, const Flags& f, double mean_bytes, const Side& spool,
               const Side& plain, uint64_t total_bytes) {
  std::ofstream out(path);
  if (!out) Fail("cannot write " + path);
  auto side = [&](const char* name, const Side& s) {
    double median = s.Median();
    out << "  \"" << name << "\": {\"seconds\": [";
    for (size_t i = 0; i < s.seconds.size(); ++i) out << (i ? ", " : "") << s.seconds[i];
    out << "], \"median_seconds\": " << median
        << ", \"events_per_second\": " << static_cast<double>(f.events) / median
        << ", \"mb_per_second\": " << static_cast<double>(total_bytes) / median / 1e6 << "},\n";
  };
  double ratio = plain.Median() / spool.Median();
  double eps = static_cast<double>(f.events) / spool.Median();
  out << "{\n  \"benchmark\": \"spool_append\",\n  \"events\": " << f.events
      << ",\n  \"batch\": " << f.batch << ",\n  \"event_bytes\": " << f.event_bytes
      << ",\n  \"mean_event_bytes\": " << mean_bytes << ",\n  \"rounds\": " << f.rounds << ",\n";
  side("spool", spool);
  side("plain_rocksdb", plain);
  out << "  \"ratio\": " << ratio << ",\n  \"goal\": {\"min_ratio\": " << kGoalRatio
      << ", \"min_events_per_second\": " << kGoalEventsPerSecond
      << ", \"met\": " << (ratio >= kGoalRatio && eps >= kGoalEventsPerSecond ? "true" : "false")
      << "}\n}\n";
}

}  // namespace

int main(int argc, char** argv) {
  lifeline::SetAllocatorThresholds();
  Flags f;
  CLI::App app{"Spool append throughput against plain RocksDB puts of the same bytes",
               "spool_bench"};
  app.add_option("--events", f.events, "Events appended per round")->capture_default_str();
  app.add_option("--batch", f.batch, "Events per Append (one fsync each)")->capture_default_str();
  app.add_option("--event-bytes", f.event_bytes, "Approximate serialized size of an event")
      ->capture_default_str();
  app.add_option("--rounds", f.rounds, "Rounds per side, alternated")->capture_default_str();
  app.add_option("--dir", f.dir, "Where the databases go (default: a temporary directory)");
  app.add_option("--json", f.json, "Also write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);
  if (f.events == 0 || f.batch == 0 || f.rounds < 1)
    Fail("--events, --batch, --rounds must be > 0");

  bool own_dir = f.dir.empty();
  if (own_dir) {
    char tmpl[] = "/tmp/lifeline-spool-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) Fail("cannot create a directory in /tmp");
    f.dir = tmpl;
  } else {
    std::error_code ec;
    fs::create_directories(f.dir, ec);
    if (ec) Fail("cannot create " + f.dir + ": " + ec.message());
  }

  // Everything both sides write is built before any clock starts. Each spool round gets fresh
  // events, as capture hands them over: no seq, no prev_hash allocated yet.
  auto make_events = [&f] {
    std::vector<ChangeEvent> events;
    events.reserve(f.events);
    for (uint64_t i = 0; i < f.events; ++i) {
      auto xid = static_cast<uint32_t>(1000 + i / kEventsPerTxn);
      auto index = static_cast<uint32_t>(i % kEventsPerTxn);
      auto count = static_cast<uint32_t>(std::min<uint64_t>(kEventsPerTxn, f.events - (i - index)));
      events.push_back(lifeline::testing::SampleEvent(xid, index, count, f.event_bytes));
    }
    return events;
  };
  // The plain side's values are the very bytes the spool stores: the event with its seq and a
  // 32-byte prev_hash.
  std::vector<std::string> values(f.events);
  uint64_t total_bytes = 0;
  const std::string hash(32, '\x5a');
  for (uint64_t i = 0; auto& ev : make_events()) {
    ev.set_seq(i + 1);
    ev.set_prev_hash(hash);
    ev.SerializeToString(&values[i]);
    total_bytes += values[i].size();
    ++i;
  }
  double mean_bytes = static_cast<double>(total_bytes) / static_cast<double>(f.events);
  std::printf("%llu events of %.1f bytes (%.1f MB) in batches of %zu, %d rounds per side, in %s\n",
              static_cast<unsigned long long>(f.events), mean_bytes, total_bytes / 1e6, f.batch,
              f.rounds, f.dir.c_str());

  // Alternating the sides spreads disk and background-compaction noise over both.
  Side spool, plain;
  auto report = [&](const char* name, int round, double secs) {
    std::printf("  round %d %-14s %8.3f s %10.0f events/s %7.1f MB/s\n", round, name, secs,
                static_cast<double>(f.events) / secs, total_bytes / secs / 1e6);
    std::fflush(stdout);
  };
  for (int r = 1; r <= f.rounds; ++r) {
    std::string sdir = f.dir + "/spool-" + std::to_string(r);
    {
      std::vector<ChangeEvent> events = make_events();
      spool.seconds.push_back(TimeSpool(sdir, events, f.batch, total_bytes));
    }
    RemoveDir(sdir);
    report("spool", r, spool.seconds.back());
    std::string pdir = f.dir + "/plain-" + std::to_string(r);
    plain.seconds.push_back(TimePlain(pdir, values, f.batch));
    RemoveDir(pdir);
    report("plain rocksdb", r, plain.seconds.back());
  }
  if (own_dir) RemoveDir(f.dir);

  double ratio = plain.Median() / spool.Median();
  double eps = static_cast<double>(f.events) / spool.Median();
  std::printf("median: spool %.0f events/s %.1f MB/s | plain rocksdb %.0f events/s %.1f MB/s\n",
              eps, total_bytes / spool.Median() / 1e6,
              static_cast<double>(f.events) / plain.Median(), total_bytes / plain.Median() / 1e6);
  bool met = ratio >= kGoalRatio && eps >= kGoalEventsPerSecond;
  std::printf("ratio spool/plain %.2f; goal (>= %.1fx plain and >= %.0f events/s) %s\n", ratio,
              kGoalRatio, kGoalEventsPerSecond, met ? "met" : "NOT met");
  if (!f.json.empty()) WriteJson(f.json, f, mean_bytes, spool, plain, total_bytes);
  return 0;
}
