// Capture's decode-and-spool throughput against its anchor, pg_recvlogical (PostgreSQL's own
// pgoutput receiver, writing to /dev/null), draining the same changes from twin slots in one run.
#include <httplib.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/local_postgres.h"
#include "common/lsn.h"
#include "common/spool.h"
#include "common/subprocess.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using lifeline::Lsn;

// The goal capture is held to: at least this fraction of pg_recvlogical's changes/s.
constexpr double kGoalRatio = 0.8;
// Every load transaction is 4 INSERTs, 4 UPDATEs and 2 DELETEs of single rows.
constexpr uint64_t kTxnChanges = 10;
// Transactions per psql call while generating the load (each call stays well inside its timeout).
constexpr uint64_t kTxnsPerLoadCall = 5000;
constexpr auto kPoll = std::chrono::milliseconds(10);
constexpr char kDatabase[] = "app";
constexpr char kPublication[] = "lifeline";

struct Flags {
  uint64_t changes = 500'000;
  bool quick = false;
  int rounds = 1;
  std::string lifeline = LIFELINE_BINARY;
  std::string dir;
  std::string json;
  bool keep = false;
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

std::atomic<bool> g_interrupted{false};

extern "C" void OnSignal(int) {
  g_interrupted = true;
}

void CheckInterrupted() {
  if (g_interrupted) Fail("interrupted");
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string Tail(const std::string& path, size_t n = 3000) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() <= n ? text : text.substr(text.size() - n);
}

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// ---- /proc sampling -------------------------------------------------------------------------

struct ProcSample {
  bool ok = false;
  int ppid = 0;
  double cpu_seconds = 0;  // utime + stime
  uint64_t start_ticks = 0;
};

ProcSample SampleProc(pid_t pid) {
  ProcSample s;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return s;
  size_t close = line.rfind(')');
  if (close == std::string::npos) return s;
  std::istringstream fields(line.substr(close + 2));
  std::vector<std::string> f;  // f[0] is field 3 (state)
  for (std::string x; fields >> x;) f.push_back(x);
  if (f.size() < 20) return s;
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  s.ppid = std::stoi(f[1]);
  s.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;
  s.start_ticks = std::stoull(f[19]);
  s.ok = true;
  return s;
}

// VmHWM (peak resident set) in KiB, or 0.
uint64_t PeakRssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

// The postmaster's walsender children (they decode the WAL for either receiver).
std::set<pid_t> Walsenders(int postmaster_pid) {
  std::set<pid_t> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = std::stoi(name);
    ProcSample s = SampleProc(pid);
    if (!s.ok || s.ppid != postmaster_pid) continue;
    std::ifstream in("/proc/" + name + "/cmdline");
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmd.find("walsender") != std::string::npos) out.insert(pid);
  }
  return out;
}

// Follows the walsender that serves the receiver under test: one that was not there before it.
class WalsenderWatch {
 public:
  WalsenderWatch(int postmaster_pid)
      : postmaster_pid_(postmaster_pid), before_(Walsenders(postmaster_pid)) {}
  void Sample() {
    if (pid_ <= 0) {
      for (pid_t p : Walsenders(postmaster_pid_)) {
        if (!before_.contains(p)) pid_ = p;
      }
      if (pid_ <= 0) return;
    }
    ProcSample s = SampleProc(pid_);
    if (s.ok && s.ppid == postmaster_pid_) cpu_seconds_ = s.cpu_seconds;
  }
  double cpu_seconds() const { return cpu_seconds_; }

 private:
  int postmaster_pid_;
  std::set<pid_t> before_;
  pid_t pid_ = -1;
  double cpu_seconds_ = 0;
};

double ChildrenCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_CHILDREN, &ru);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

// ---- the source -----------------------------------------------------------------------------

std::string Psql(const lifeline::LocalPostgres& pg, const std::string& sql) {
  return Trim(Must(pg.Psql(sql, kDatabase), "psql"));
}

Lsn QueryLsn(const lifeline::LocalPostgres& pg, const std::string& sql) {
  std::string text = Psql(pg, sql);
  return Must(Lsn::Parse(text), "parsing LSN '" + text + "'");
}

// Rows of load transaction t are numbered 4t..4t+3 and keyed md5(k)::uuid. Transaction t inserts
// its own four rows, updates the four of t-1 and deletes two of t-2, so every statement touches
// exactly the rows it names and each transaction is exactly 10 changes (from t = 2 on).
std::string InsertRows(const std::string& first_k, const std::string& last_k) {
  return "INSERT INTO emergency_requests (id, customer_name, phone_number, location_address,\n"
         "    location_coordinates, vehicle_make_model, tyre_issue, status, notes)\n"
         "  SELECT md5(k::text)::uuid,\n"
         "    'Customer ' || k || ' ' || substr(md5(random()::text), 1, 8),\n"
         "    '+44 7' || lpad((k % 1000000000)::text, 9, '0'),\n"
         "    (k % 200 + 1) || ' ' || (ARRAY['High Street', 'Station Road', 'Church Lane',\n"
         "      'Victoria Road', 'Mill Lane'])[k % 5 + 1] || ', ' || (ARRAY['Leeds', 'York',\n"
         "      'Bristol', 'Derby', 'Bath'])[k % 5 + 1] || ' ' || (k % 30),\n"
         "    ST_SetSRID(ST_MakePoint(-2.5 + random() * 2, 51 + random() * 3), 4326)::geography,\n"
         "    (ARRAY['Ford Focus', 'Vauxhall Corsa', 'VW Golf', 'Toyota Yaris',\n"
         "      'Nissan Qashqai'])[k % 5 + 1] || ' ' || (2005 + k % 19),\n"
         "    (ARRAY['flat', 'puncture', 'blowout', 'valve', 'locking_nut',\n"
         "      'other'])[k % 6 + 1]::emergency_issue_type,\n"
         "    'pending',\n"
         "    jsonb_build_object('channel', 'app', 'priority', k % 3, 'note',\n"
         "      'Driver reports ' || substr(md5(k::text), 1, 24), 'tags',\n"
         "      jsonb_build_array('motorway', 'night'))\n"
         "  FROM generate_series(" +
         first_k + ", " + last_k + ") AS k;\n";
}

std::string LoadSql(uint64_t first_txn, uint64_t last_txn) {
  return "DO $$\nDECLARE t bigint;\nBEGIN\n  FOR t IN " + std::to_string(first_txn) + ".." +
         std::to_string(last_txn) + " LOOP\n" + InsertRows("4 * t", "4 * t + 3") +
         "    UPDATE emergency_requests SET status = 'assigned',\n"
         "        technician_id = md5((t % 997)::text)::uuid,\n"
         "        notes = notes || jsonb_build_object('eta_min', 10 + t % 50),\n"
         "        updated_at = now()\n"
         "      WHERE id IN (SELECT md5(k::text)::uuid FROM generate_series(4 * t - 4, 4 * t - 1)"
         " AS k);\n"
         "    DELETE FROM emergency_requests\n"
         "      WHERE id IN (SELECT md5(k::text)::uuid FROM generate_series(4 * t - 8, 4 * t - 7)"
         " AS k);\n"
         "    COMMIT;\n  END LOOP;\nEND\n$$;\n";
}

// ---- the two receivers ----------------------------------------------------------------------

struct Run {
  double seconds = 0;
  double client_cpu_seconds = 0;
  uint64_t client_peak_rss_kb = 0;  // capture only
  double walsender_cpu_seconds = 0;
  double first_event_seconds = 0;  // capture only: start until the first batch is spooled
};

struct Round {
  std::string dir;
  std::string capture_slot;
  std::string recv_slot;
  std::string spool;
  uint64_t baseline_seq = 0;  // the seeded rows, spooled by capture's initial snapshot
  Lsn start_lsn;
  Lsn end_lsn;
  double load_seconds = 0;
  Run capture;
  Run recv;
  bool capture_first = false;
};

lifeline::CommandSpec CaptureSpec(const Flags& f, const lifeline::LocalPostgres& pg, const Round& r,
                                  int metrics_port) {
  lifeline::CommandSpec spec;
  spec.argv = {f.lifeline,
               "capture",
               "--source",
               pg.ConnInfo(kDatabase),
               "--spool",
               r.spool,
               "--slot",
               r.capture_slot,
               "--publication",
               kPublication,
               "--heartbeat-interval",
               "1h"};
  if (metrics_port > 0) {
    spec.argv.insert(spec.argv.end(),
                     {"--metrics-addr", "127.0.0.1:" + std::to_string(metrics_port)});
  }
  return spec;
}

void StopCapture(lifeline::ChildProcess& child, const std::string& log) {
  auto code = child.Stop(SIGTERM, std::chrono::seconds(60));
  if (!code.ok()) Fail("capture did not stop on SIGTERM: " + code.status().ToString());
  if (*code != 0)
    Fail("capture exited " + std::to_string(*code) + "; log " + log + ":\n" + Tail(log));
}

// First start: capture makes its slot and publication and spools the (seed) snapshot.
void InitialCapture(const Flags& f, const lifeline::LocalPostgres& pg, Round& r) {
  std::string log = r.dir + "/capture-initial.log";
  auto child =
      Must(lifeline::ChildProcess::Start(CaptureSpec(f, pg, r, 0), log), "starting " + f.lifeline);
  auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Tail(log, 1 << 20).find("streaming from slot") == std::string::npos) {
    CheckInterrupted();
    if (!child.running())
      Fail("capture exited during its first start; log " + log + ":\n" + Tail(log));
    if (Clock::now() > deadline) Fail("capture did not start streaming in 120 s; log " + log);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  StopCapture(child, log);
  auto spool = Must(lifeline::Spool::OpenForRead(r.spool), "opening " + r.spool);
  if (spool->GetProperty("snapshot.done").empty()) Fail("capture's snapshot is not marked done");
  r.baseline_seq = spool->last_complete_seq();
}

uint64_t EventsSpooled(httplib::Client& http) {
  auto res = http.Get("/metrics");
  if (!res || res->status != 200) return 0;
  static const std::string kName = "lifeline_capture_events_spooled_total ";
  size_t at = res->body.find("\n" + kName);
  if (at == std::string::npos) return 0;
  return std::strtoull(res->body.c_str() + at + 1 + kName.size(), nullptr, 10);
}

// Restarts capture on its spool and times it until all load changes are synced in the spool
// (its events_spooled counter, which moves only after a synced Append, reaches the count).
Run TimeCapture(const Flags& f, const lifeline::LocalPostgres& pg, Round& r) {
  std::string log = r.dir + "/capture.log";
  int port = Must(lifeline::PickFreePort(), "picking a port");
  httplib::Client http("127.0.0.1", port);
  http.set_connection_timeout(std::chrono::milliseconds(200));
  http.set_read_timeout(std::chrono::seconds(2));
  WalsenderWatch walsender(pg.postmaster_pid());
  Run run;
  auto timeout = std::chrono::seconds(120 + f.changes / 1000);
  auto start = Clock::now();
  auto child =
      Must(lifeline::ChildProcess::Start(CaptureSpec(f, pg, r, port), log), "starting capture");
  while (true) {
    CheckInterrupted();
    if (!child.running()) Fail("capture exited while draining; log " + log + ":\n" + Tail(log));
    if (Clock::now() - start > timeout) Fail("capture did not drain the load in time; log " + log);
    uint64_t n = EventsSpooled(http);
    auto now = Clock::now();
    walsender.Sample();
    if (n > 0 && run.first_event_seconds == 0) run.first_event_seconds = Seconds(now - start);
    if (n >= f.changes) {
      run.seconds = Seconds(now - start);
      ProcSample s = SampleProc(child.pid());
      run.client_cpu_seconds = s.cpu_seconds;
      run.client_peak_rss_kb = PeakRssKb(child.pid());
      if (n != f.changes)
        Fail("capture spooled " + std::to_string(n) + " events, expected " +
             std::to_string(f.changes));
      break;
    }
    std::this_thread::sleep_for(kPoll);
  }
  run.walsender_cpu_seconds = walsender.cpu_seconds();
  StopCapture(child, log);
  // What the spool holds must be exactly the load: every change once, the last commit in range.
  auto spool = Must(lifeline::Spool::OpenForRead(r.spool), "opening " + r.spool);
  if (spool->last_complete_seq() != r.baseline_seq + f.changes) {
    Fail("spool ends at seq " + std::to_string(spool->last_complete_seq()) + ", expected " +
         std::to_string(r.baseline_seq + f.changes));
  }
  Lsn last = spool->last_complete_commit_lsn();
  if (last <= r.start_lsn || last > r.end_lsn) {
    Fail("spool's last commit LSN " + last.ToString() + " is outside the load (" +
         r.start_lsn.ToString() + " .. " + r.end_lsn.ToString() + ")");
  }
  return run;
}

// pg_recvlogical on the twin slot, to the load's end LSN (where it exits by itself).
Run TimeRecvLogical(const Flags& f, const std::string& bin, const lifeline::LocalPostgres& pg,
                    Round& r) {
  std::string log = r.dir + "/pg_recvlogical.log";
  lifeline::CommandSpec spec;
  spec.argv = {bin + "/pg_recvlogical",
               "-d",
               pg.ConnInfo(kDatabase),
               "--slot",
               r.recv_slot,
               "--start",
               "--endpos",
               r.end_lsn.ToString(),
               "--no-loop",
               "--plugin",
               "pgoutput",
               "-o",
               "proto_version=1",
               "-o",
               std::string("publication_names=") + kPublication,
               "-o",
               "messages=true",
               "-f",
               "/dev/null"};
  WalsenderWatch walsender(pg.postmaster_pid());
  Run run;
  auto timeout = std::chrono::seconds(120 + f.changes / 1000);
  double cpu_before = ChildrenCpuSeconds();
  auto start = Clock::now();
  auto child = Must(lifeline::ChildProcess::Start(spec, log), "starting pg_recvlogical");
  while (child.running()) {
    CheckInterrupted();
    if (Clock::now() - start > timeout) Fail("pg_recvlogical did not reach its end LSN in time");
    walsender.Sample();
    std::this_thread::sleep_for(kPoll);
  }
  run.seconds = Seconds(Clock::now() - start);
  run.client_cpu_seconds = ChildrenCpuSeconds() - cpu_before;
  run.walsender_cpu_seconds = walsender.cpu_seconds();
  int code = Must(child.Wait(std::chrono::seconds(1)), "pg_recvlogical");
  if (code != 0) Fail("pg_recvlogical exited " + std::to_string(code) + ":\n" + Tail(log));
  return run;
}

// Drops a slot once its walsender has let go of it.
void DropSlot(const lifeline::LocalPostgres& pg, const std::string& slot) {
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (true) {
    auto r = pg.Psql("SELECT pg_drop_replication_slot('" + slot + "')", kDatabase);
    if (r.ok()) return;
    if (Clock::now() > deadline) Fail("cannot drop slot " + slot + ": " + r.status().ToString());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void RunRound(const Flags& f, const std::string& bin, const lifeline::LocalPostgres& pg, int n,
              Round& r) {
  r.dir = f.dir + "/round-" + std::to_string(n);
  fs::create_directories(r.dir);
  r.capture_slot = "lifeline_r" + std::to_string(n);
  r.recv_slot = "recv_r" + std::to_string(n);
  r.spool = r.dir + "/spool";
  r.capture_first = n % 2 == 0;

  // Seed transactions 0 and 1, so that transaction 2 on has rows to update and delete.
  Psql(pg, "TRUNCATE emergency_requests;\n" + InsertRows("0", "7"));
  InitialCapture(f, pg, r);
  Psql(pg, "SELECT pg_create_logical_replication_slot('" + r.recv_slot + "', 'pgoutput')");

  uint64_t txns = f.changes / kTxnChanges;
  r.start_lsn = QueryLsn(pg, "SELECT pg_current_wal_lsn()");
  auto load_start = Clock::now();
  for (uint64_t t = 2; t < txns + 2; t += kTxnsPerLoadCall) {
    CheckInterrupted();
    Psql(pg, LoadSql(t, std::min(txns + 2, t + kTxnsPerLoadCall) - 1));
  }
  r.load_seconds = Seconds(Clock::now() - load_start);
  r.end_lsn = QueryLsn(pg, "SELECT pg_current_wal_lsn()");
  // Nothing else writes from here on; a checkpoint now keeps one out of the timed drains.
  Psql(pg, "CHECKPOINT");
  std::printf(
      "round %d: %llu changes in %llu transactions generated in %.1f s, WAL %s .. %s "
      "(%.1f MB)\n",
      n, static_cast<unsigned long long>(f.changes), static_cast<unsigned long long>(txns),
      r.load_seconds, r.start_lsn.ToString().c_str(), r.end_lsn.ToString().c_str(),
      static_cast<double>(r.end_lsn.value() - r.start_lsn.value()) / 1e6);
  std::fflush(stdout);

  auto report = [&](const char* name, const Run& run) {
    std::printf(
        "  round %d %-15s %7.2f s %9.0f changes/s  client CPU %6.2f s  walsender CPU "
        "%6.2f s\n",
        n, name, run.seconds, static_cast<double>(f.changes) / run.seconds, run.client_cpu_seconds,
        run.walsender_cpu_seconds);
    std::fflush(stdout);
  };
  for (int side = 0; side < 2; ++side) {
    // PostgreSQL runs with fsync = off: the load's dirty pages would otherwise be written back
    // inside capture's first spool fsyncs (ext4 ordered mode), a cost pg_recvlogical never sees.
    sync();
    if ((side == 0) == r.capture_first) {
      r.capture = TimeCapture(f, pg, r);
      report("capture", r.capture);
    } else {
      r.recv = TimeRecvLogical(f, bin, pg, r);
      report("pg_recvlogical", r.recv);
      // pg_recvlogical confirms what it received on exit: all of the load.
      Lsn confirmed = QueryLsn(pg,
                               "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE "
                               "slot_name = '" +
                                   r.recv_slot + "'");
      if (confirmed < r.end_lsn) {
        Fail("pg_recvlogical confirmed only " + confirmed.ToString() + " of " +
             r.end_lsn.ToString());
      }
    }
  }
  DropSlot(pg, r.capture_slot);
  DropSlot(pg, r.recv_slot);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Summary {
  double capture_seconds = 0;
  double recv_seconds = 0;
  double capture_cps = 0;
  double recv_cps = 0;
  double ratio = 0;
  double capture_cpu_per_1000 = 0;  // seconds
  double recv_cpu_per_1000 = 0;
  uint64_t capture_peak_rss_kb = 0;
  bool met = false;
};

Summary Summarize(const Flags& f, const std::vector<Round>& rounds) {
  std::vector<double> cap, recv, cap_cpu, recv_cpu;
  Summary s;
  for (const auto& r : rounds) {
    cap.push_back(r.capture.seconds);
    recv.push_back(r.recv.seconds);
    cap_cpu.push_back(r.capture.client_cpu_seconds);
    recv_cpu.push_back(r.recv.client_cpu_seconds);
    s.capture_peak_rss_kb = std::max(s.capture_peak_rss_kb, r.capture.client_peak_rss_kb);
  }
  double changes = static_cast<double>(f.changes);
  s.capture_seconds = Median(cap);
  s.recv_seconds = Median(recv);
  s.capture_cps = changes / s.capture_seconds;
  s.recv_cps = changes / s.recv_seconds;
  s.ratio = s.capture_cps / s.recv_cps;
  s.capture_cpu_per_1000 = Median(cap_cpu) / changes * 1000;
  s.recv_cpu_per_1000 = Median(recv_cpu) / changes * 1000;
  s.met = s.ratio >= kGoalRatio;
  return s;
}

void WriteJson(const std::string& path, const Flags& f, const std::vector<Round>& rounds,
               const Summary& s) {
  std::ofstream out(path);
  if (!out) Fail("cannot write " + path);
  auto side = [&](const char* name, auto pick, double cps, double cpu_per_1000) {
    out << "  \"" << name << "\": {\"seconds\": [";
    for (size_t i = 0; i < rounds.size(); ++i) out << (i ? ", " : "") << pick(rounds[i]).seconds;
    out << "], \"client_cpu_seconds\": [";
    for (size_t i = 0; i < rounds.size(); ++i) {
      out << (i ? ", " : "") << pick(rounds[i]).client_cpu_seconds;
    }
    out << "], \"walsender_cpu_seconds\": [";
    for (size_t i = 0; i < rounds.size(); ++i) {
      out << (i ? ", " : "") << pick(rounds[i]).walsender_cpu_seconds;
    }
    out << "], \"changes_per_second\": " << cps
        << ", \"cpu_seconds_per_1000_changes\": " << cpu_per_1000;
  };
  out << "{\n  \"benchmark\": \"capture_decode_and_spool\",\n  \"changes\": " << f.changes
      << ",\n  \"changes_per_transaction\": " << kTxnChanges << ",\n  \"rounds\": " << rounds.size()
      << ",\n  \"load\": [";
  for (size_t i = 0; i < rounds.size(); ++i) {
    const Round& r = rounds[i];
    out << (i ? ", " : "") << "{\"seconds\": " << r.load_seconds << ", \"start_lsn\": \""
        << r.start_lsn.ToString() << "\", \"end_lsn\": \"" << r.end_lsn.ToString()
        << "\", \"wal_bytes\": " << (r.end_lsn.value() - r.start_lsn.value())
        << ", \"capture_first\": " << (r.capture_first ? "true" : "false") << "}";
  }
  out << "],\n";
  side(
      "capture", [](const Round& r) -> const Run& { return r.capture; }, s.capture_cps,
      s.capture_cpu_per_1000);
  out << ", \"first_event_seconds\": [";
  for (size_t i = 0; i < rounds.size(); ++i) {
    out << (i ? ", " : "") << rounds[i].capture.first_event_seconds;
  }
  out << "], \"peak_rss_kb\": " << s.capture_peak_rss_kb << "},\n";
  side(
      "pg_recvlogical", [](const Round& r) -> const Run& { return r.recv; }, s.recv_cps,
      s.recv_cpu_per_1000);
  out << "},\n  \"ratio\": " << s.ratio << ",\n  \"goal\": {\"min_ratio\": " << kGoalRatio
      << ", \"met\": " << (s.met ? "true" : "false") << "}\n}\n";
}

int Main(Flags& f) {
  std::string bin = Must(lifeline::PostgresBinDir(), "PostgreSQL");
  if (access(f.lifeline.c_str(), X_OK) != 0) Fail("no lifeline binary at " + f.lifeline);
  bool own_dir = f.dir.empty();
  if (own_dir) {
    char tmpl[] = "/tmp/lifeline-capture-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) Fail("cannot create a directory in /tmp");
    f.dir = tmpl;
  } else {
    std::error_code ec;
    fs::create_directories(f.dir, ec);
    if (ec) Fail("cannot create " + f.dir + ": " + ec.message());
  }
  // The cluster inside it runs as the `postgres` OS user when we are root.
  std::error_code ec;
  fs::permissions(f.dir,
                  fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                      fs::perms::others_read | fs::perms::others_exec,
                  ec);
  std::printf(
      "%llu changes (transactions of %llu: 4 INSERT, 4 UPDATE, 2 DELETE), %d round(s), "
      "in %s\n",
      static_cast<unsigned long long>(f.changes), static_cast<unsigned long long>(kTxnChanges),
      f.rounds, f.dir.c_str());
  std::fflush(stdout);

  std::vector<Round> rounds(static_cast<size_t>(f.rounds));
  bool ok = false;
  try {
    lifeline::LocalPostgresOptions opts;
    opts.name = "capture-bench";
    opts.parent_dir = f.dir;
    // No checkpoint or autovacuum lands inside a timed drain.
    opts.settings = {"max_wal_size = 4GB", "checkpoint_timeout = 30min", "autovacuum = off"};
    auto pg = Must(lifeline::LocalPostgres::Create(opts), "starting PostgreSQL");
    if (f.keep) pg->set_keep(true);
    Must(pg->CreateDatabase(kDatabase), "creating database");
    Must(pg->PsqlFile(LIFELINE_SOURCE_DIR "/scripts/sql/reference_schema.sql", kDatabase),
         "loading the reference schema");
    for (int n = 1; n <= f.rounds; ++n) RunRound(f, bin, *pg, n, rounds[n - 1]);
    ok = true;
  } catch (const BenchError& e) {
    std::cerr << "capture_bench: " << e.what() << "\n(logs kept in " << f.dir << ")\n";
  }
  if (!ok) return 1;

  Summary s = Summarize(f, rounds);
  std::printf("median: capture %.0f changes/s | pg_recvlogical %.0f changes/s\n", s.capture_cps,
              s.recv_cps);
  std::printf("capture CPU %.3f s per 1000 changes (pg_recvlogical %.3f s), peak RSS %.1f MiB\n",
              s.capture_cpu_per_1000, s.recv_cpu_per_1000, s.capture_peak_rss_kb / 1024.0);
  std::printf("ratio capture/pg_recvlogical %.2f; goal (>= %.1fx) %s\n", s.ratio, kGoalRatio,
              s.met ? "met" : "NOT met");
  if (!f.json.empty()) WriteJson(f.json, f, rounds, s);
  if (own_dir && !f.keep) {
    std::error_code ec;
    fs::remove_all(f.dir, ec);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"Capture decode-and-spool throughput against pg_recvlogical on the same changes",
               "capture_bench"};
  app.add_option("--changes", f.changes, "Changes in the load (a multiple of 10)")
      ->capture_default_str();
  app.add_flag("--quick", f.quick, "50,000 changes instead (unless --changes is given)");
  app.add_option("--rounds", f.rounds, "Rounds, each with a fresh load, slots and spool")
      ->capture_default_str();
  app.add_option("--lifeline", f.lifeline, "The lifeline binary")->capture_default_str();
  app.add_option("--dir", f.dir, "Where the cluster, spools and logs go (default: a temp dir)");
  app.add_option("--json", f.json, "Also write the results as JSON to this file");
  app.add_flag("--keep", f.keep, "Keep the directory and the cluster's files afterwards");
  CLI11_PARSE(app, argc, argv);
  if (f.quick && app.count("--changes") == 0) f.changes = 50'000;
  if (f.changes == 0 || f.changes % kTxnChanges != 0 || f.rounds < 1) {
    std::cerr << "capture_bench: --changes must be a positive multiple of 10, --rounds > 0\n";
    return 2;
  }
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  try {
    return Main(f);
  } catch (const BenchError& e) {
    std::cerr << "capture_bench: " << e.what() << "\n";
    return 1;
  }
}
