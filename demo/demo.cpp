// Orchestrates the local pipeline for `lifeline demo` and judges it against the load's ledger.
#include "demo/demo.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "common/event_format.h"
#include "common/local_postgres.h"
#include "common/shutdown.h"
#include "common/spool.h"
#include "common/subprocess.h"
#include "demo/load_generator.h"

namespace lifeline {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string SelfExe() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("lifeline") : p.string();
}

std::string ReferenceSchemaPath() {
  // Installed next to the binary's source tree: <repo>/build/cli/lifeline -> <repo>/scripts/sql.
  fs::path exe = SelfExe();
  for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.parent_path();
       dir = dir.parent_path()) {
    fs::path candidate = dir / "scripts/sql/reference_schema.sql";
    if (fs::exists(candidate)) return candidate.string();
  }
  return "scripts/sql/reference_schema.sql";
}

int64_t NowUnixMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The ids of requests whose creation reached the spool (as a snapshot row or an insert).
std::set<std::string> SpooledRequestIds(Spool& spool) {
  std::set<std::string> ids;
  uint64_t next = 1;
  while (true) {
    auto batch = spool.Read(next, 10'000);
    if (!batch.ok() || batch->empty()) break;
    for (const auto& rec : *batch) {
      next = rec.seq + 1;
      auto ev = ParseEvent(rec);
      if (!ev.ok() || ev->relation().table() != "emergency_requests") continue;
      if (ev->op() != v1::OP_INSERT && ev->op() != v1::OP_SNAPSHOT) continue;
      const auto& cols = ev->relation().columns();
      for (int i = 0; i < cols.size() && i < ev->after().values_size(); ++i) {
        if (cols[i].name() == "id") ids.insert(ev->after().values(i).text());
      }
    }
  }
  return ids;
}

}  // namespace

Status RunDemo(const DemoOptions& options) {
  const std::atomic<bool>& stop = StopRequested();
  bool json = options.format == "json";
  if (!json && options.format != "text") {
    return Status::InvalidArgument("unknown --format '" + options.format + "': use text or json");
  }
  std::string workdir = options.workdir;
  if (workdir.empty()) {
    std::string tmpl = "/tmp/lifeline-demo-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) return Status::IOError("cannot create a work directory");
    workdir = tmpl;
  }
  fs::create_directories(workdir);
  fs::permissions(workdir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                               fs::perms::others_read | fs::perms::others_exec);
  FILE* out = json ? stderr : stdout;  // with --format json, stdout carries only the summary
  std::fprintf(out,
               "lifeline demo: primary PostgreSQL -> capture -> spool, %0.f changes/s for %lld s\n"
               "(the shipper, replayer and gapcheck stages join this demo as they land)\n"
               "work directory: %s\n",
               options.rate, static_cast<long long>(options.duration_ms / 1000), workdir.c_str());

  LocalPostgresOptions pg_options;
  pg_options.name = "primary";
  pg_options.parent_dir = workdir;
  LIFELINE_ASSIGN_OR_RETURN(auto primary, LocalPostgres::Create(pg_options));
  primary->set_keep(options.keep);
  LIFELINE_RETURN_IF_ERROR(primary->CreateDatabase("app"));
  LIFELINE_RETURN_IF_ERROR(primary->PsqlFile(ReferenceSchemaPath(), "app"));
  std::fprintf(out, "primary on 127.0.0.1:%d with the reference schema (PostGIS)\n",
               primary->port());

  std::string spool_dir = workdir + "/spool";
  CommandSpec capture_spec;
  capture_spec.argv = {SelfExe(),
                       "capture",
                       "--source",
                       primary->ConnInfo("app"),
                       "--spool",
                       spool_dir,
                       "--heartbeat-interval",
                       "500ms"};
  LIFELINE_ASSIGN_OR_RETURN(ChildProcess capture,
                            ChildProcess::Start(capture_spec, workdir + "/capture.log"));
  std::fprintf(out, "capture running (pid %d), log %s/capture.log\n", capture.pid(),
               workdir.c_str());

  LoadOptions load;
  load.target = primary->ConnInfo("app");
  load.rate = options.rate;
  load.duration_ms = options.duration_ms;
  load.ledger_path = workdir + "/ledger.txt";
  std::atomic<uint64_t> committed{0};
  Result<LoadReport> load_result = Status::Internal("load did not run");
  std::thread load_thread([&] { load_result = RunLoad(load, stop, &committed); });

  bool tty = isatty(fileno(out)) != 0;
  auto started = Clock::now();
  auto last_print = started;
  uint64_t last_committed = 0, last_seq = 0;
  std::unique_ptr<Spool> reader;
  bool load_done = false;
  while (!load_done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    load_done =
        Clock::now() - started > std::chrono::milliseconds(options.duration_ms) || stop.load();
    if (!capture.running()) break;
    if (!reader) {
      auto r = Spool::OpenForRead(spool_dir);
      if (r.ok()) reader = std::move(r).value();
    }
    if (Clock::now() - last_print < std::chrono::seconds(tty ? 1 : 5)) continue;
    double secs = std::chrono::duration<double>(Clock::now() - last_print).count();
    last_print = Clock::now();
    uint64_t seq = 0;
    double lag = 0;
    if (reader && reader->Refresh().ok()) {
      SpoolStats st = reader->Stats();
      seq = st.last_seq;
      if (st.last_commit_time_us > 0) lag = (NowUnixMicros() - st.last_commit_time_us) / 1e6;
    }
    uint64_t c = committed.load();
    std::fprintf(out,
                 "%s%5.0fs  committed %8llu changes %6.0f/s | spooled seq %8llu %6.0f/s | "
                 "capture lag %5.2f s%s",
                 tty ? "\r" : "", std::chrono::duration<double>(Clock::now() - started).count(),
                 static_cast<unsigned long long>(c), (c - last_committed) / secs,
                 static_cast<unsigned long long>(seq), (seq - last_seq) / secs, lag,
                 tty ? "" : "\n");
    std::fflush(out);
    last_committed = c;
    last_seq = seq;
  }
  load_thread.join();
  if (tty) std::fprintf(out, "\n");
  if (!load_result.ok()) {
    capture.Stop(SIGTERM, std::chrono::seconds(30)).status().IgnoreError();
    return load_result.status().WithContext("load");
  }
  if (!capture.running()) {
    return Status::Internal("capture exited early; see " + workdir + "/capture.log");
  }

  // Wait until capture has spooled everything committed (a heartbeat after the last commit).
  auto end_lsn = primary->Psql("SELECT pg_current_wal_lsn()", "app");
  uint64_t target = 0;
  if (end_lsn.ok()) {
    std::string t = *end_lsn;
    while (!t.empty() && t.back() == '\n') t.pop_back();
    if (auto l = Lsn::Parse(t); l.ok()) target = l->value();
  }
  auto catch_up_started = Clock::now();
  while (reader && Clock::now() - catch_up_started < std::chrono::seconds(60)) {
    if (reader->Refresh().ok() && reader->last_complete_commit_lsn().value() > target) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  double catch_up_s = std::chrono::duration<double>(Clock::now() - catch_up_started).count();
  auto capture_exit = capture.Stop(SIGTERM, std::chrono::seconds(30));
  reader.reset();

  std::vector<std::string> ledger_ids;
  {
    std::ifstream in(load.ledger_path);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) ledger_ids.push_back(line);
    }
  }
  LIFELINE_ASSIGN_OR_RETURN(auto spool, Spool::OpenForRead(spool_dir));
  Status verified = spool->Verify();
  std::set<std::string> spooled = SpooledRequestIds(*spool);
  std::vector<std::string> lost;
  for (const auto& id : ledger_ids) {
    if (!spooled.count(id)) lost.push_back(id);
  }
  SpoolStats st = spool->Stats();
  const LoadReport& lr = *load_result;
  if (json) {
    std::string lost_json = "[";
    for (size_t i = 0; i < lost.size(); ++i) lost_json += (i ? "," : "") + JsonQuote(lost[i]);
    lost_json += "]";
    std::printf(
        "{\"stages\":[\"primary\",\"capture\",\"spool\"],\"changes_committed\":%llu,"
        "\"calls_committed\":%zu,\"calls_lost\":%zu,\"lost_ids\":%s,\"spool_events\":%llu,"
        "\"spool_last_seq\":%llu,\"spool_verified\":%s,\"catch_up_seconds\":%.3f,"
        "\"capture_exit_code\":%d,\"workdir\":%s}\n",
        static_cast<unsigned long long>(lr.changes), ledger_ids.size(), lost.size(),
        lost_json.c_str(), static_cast<unsigned long long>(st.events),
        static_cast<unsigned long long>(st.last_seq), verified.ok() ? "true" : "false", catch_up_s,
        capture_exit.ok() ? *capture_exit : -1, JsonQuote(workdir).c_str());
  } else {
    std::printf(
        "\nsummary\n  changes committed   %llu (%llu transactions, %llu failed)\n"
        "  calls committed     %zu (ledger %s/ledger.txt)\n"
        "  calls in the spool  %zu of them; lost %zu\n"
        "  spool               %llu events, seq %llu..%llu, %s\n"
        "  capture             caught up %.2f s after the load, stopped with exit code %d\n",
        static_cast<unsigned long long>(lr.changes),
        static_cast<unsigned long long>(lr.transactions),
        static_cast<unsigned long long>(lr.errors), ledger_ids.size(), workdir.c_str(),
        ledger_ids.size() - lost.size(), lost.size(), static_cast<unsigned long long>(st.events),
        static_cast<unsigned long long>(st.first_seq), static_cast<unsigned long long>(st.last_seq),
        verified.ok() ? "hash chain verified" : verified.ToString().c_str(), catch_up_s,
        capture_exit.ok() ? *capture_exit : -1);
    for (size_t i = 0; i < lost.size() && i < 20; ++i) std::printf("  LOST %s\n", lost[i].c_str());
  }
  spool.reset();
  if (!options.keep) {
    primary.reset();
    std::error_code ec;
    fs::remove_all(workdir, ec);
  } else {
    std::fprintf(out, "kept %s (cluster data directory, spool, logs, ledger)\n", workdir.c_str());
  }
  if (!verified.ok()) return verified;
  if (!lost.empty()) {
    return Status::Internal(std::to_string(lost.size()) + " committed call(s) missing from the " +
                            "spool, first " + lost.front());
  }
  if (!capture_exit.ok() || *capture_exit != 0) {
    return Status::Internal("capture did not stop cleanly; see its log");
  }
  return Status::Ok();
}

}  // namespace lifeline
