// Orchestrates the local pipeline for `lifeline demo` and judges it against the load's ledger.
#include "demo/demo.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "common/devkafka.h"
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

// Applied position of the replayer on the standby: last seq, commit LSN, commit time (us).
struct Applied {
  uint64_t seq = 0;
  uint64_t lsn = 0;
  int64_t commit_time_us = 0;
};

Applied ReadApplied(const LocalPostgres& standby) {
  Applied a;
  auto r = standby.Psql(
      "SELECT coalesce(max(last_seq), 0) || '|' || coalesce(max(last_commit_lsn), '0/0') || '|' "
      "|| coalesce((extract(epoch FROM max(last_commit_time)) * 1000000)::bigint, 0) FROM "
      "lifeline.replay_position",
      "app");
  if (!r.ok()) return a;
  unsigned long long seq = 0;
  long long t = 0;
  char lsn[64] = {0};
  if (std::sscanf(r->c_str(), "%llu|%63[^|]|%lld", &seq, lsn, &t) == 3) {
    a.seq = seq;
    if (auto l = Lsn::Parse(lsn); l.ok()) a.lsn = l->value();
    a.commit_time_us = t;
  }
  return a;
}

std::string Digest(const LocalPostgres& pg) {
  auto r = pg.Psql(
      "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY "
      "t.id)), '') FROM emergency_requests t",
      "app");
  std::string d = r.ok() ? *r : "";
  while (!d.empty() && d.back() == '\n') d.pop_back();
  return d;
}

std::set<std::string> RequestIds(const LocalPostgres& pg) {
  std::set<std::string> ids;
  auto r = pg.Psql("SELECT id FROM emergency_requests", "app");
  if (!r.ok()) return ids;
  std::istringstream in(*r);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) ids.insert(line);
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
               "lifeline demo: primary -> capture -> spool -> Kafka -> replay -> standby\n"
               "%0.f changes/s for %lld s, Kafka round trip %d ms; work directory %s\n",
               options.rate, static_cast<long long>(options.duration_ms / 1000), options.rtt_ms,
               workdir.c_str());

  auto make_cluster = [&](const char* name) -> Result<std::unique_ptr<LocalPostgres>> {
    LocalPostgresOptions o;
    o.name = name;
    o.parent_dir = workdir;
    LIFELINE_ASSIGN_OR_RETURN(auto pg, LocalPostgres::Create(o));
    pg->set_keep(options.keep);
    LIFELINE_RETURN_IF_ERROR(pg->CreateDatabase("app"));
    LIFELINE_RETURN_IF_ERROR(pg->PsqlFile(ReferenceSchemaPath(), "app"));
    return pg;
  };
  LIFELINE_ASSIGN_OR_RETURN(auto primary, make_cluster("primary"));
  LIFELINE_ASSIGN_OR_RETURN(auto standby, make_cluster("standby"));
  std::fprintf(out,
               "primary on 127.0.0.1:%d, standby on 127.0.0.1:%d (reference schema, PostGIS)\n",
               primary->port(), standby->port());

  LIFELINE_ASSIGN_OR_RETURN(auto kafka, DevKafkaCluster::Start(3));
  const std::string topic = "lifeline.events";
  LIFELINE_RETURN_IF_ERROR(kafka->CreateTopic(topic, 1, 3));
  if (options.rtt_ms > 0) LIFELINE_RETURN_IF_ERROR(kafka->SetRoundTripTime(-1, options.rtt_ms));
  std::fprintf(out, "devkafka: 3 brokers at %s\n", kafka->bootstrap_servers().c_str());

  std::string spool_dir = workdir + "/spool";
  CommandSpec capture_spec;
  capture_spec.argv = {SelfExe(),
                       "capture",
                       "--source",
                       primary->ConnInfo("app"),
                       "--spool",
                       spool_dir,
                       "--heartbeat-interval",
                       "500ms",
                       "--kafka-brokers",
                       kafka->bootstrap_servers(),
                       "--topic",
                       topic};
  LIFELINE_ASSIGN_OR_RETURN(ChildProcess capture,
                            ChildProcess::Start(capture_spec, workdir + "/capture.log"));
  CommandSpec replay_spec;
  replay_spec.argv = {SelfExe(),         "replay",
                      "--target",        standby->ConnInfo("app"),
                      "--kafka-brokers", kafka->bootstrap_servers(),
                      "--topic",         topic,
                      "--audit-table",   "public.emergency_requests_audit"};
  LIFELINE_ASSIGN_OR_RETURN(ChildProcess replay,
                            ChildProcess::Start(replay_spec, workdir + "/replay.log"));
  std::fprintf(out, "capture+shipper (pid %d) and replayer (pid %d) running; logs in %s\n",
               capture.pid(), replay.pid(), workdir.c_str());

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
  uint64_t last_committed = 0, last_seq = 0, last_shipped = 0, last_applied = 0;
  std::unique_ptr<Spool> reader;
  double max_lag = 0;
  bool load_done = false;
  while (!load_done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    load_done =
        Clock::now() - started > std::chrono::milliseconds(options.duration_ms) || stop.load();
    if (!capture.running() || !replay.running()) break;
    if (!reader) {
      auto r = Spool::OpenForRead(spool_dir);
      if (r.ok()) reader = std::move(r).value();
    }
    if (Clock::now() - last_print < std::chrono::seconds(tty ? 1 : 5)) continue;
    double secs = std::chrono::duration<double>(Clock::now() - last_print).count();
    last_print = Clock::now();
    uint64_t seq = 0, shipped = 0;
    if (reader && reader->Refresh().ok()) {
      SpoolStats st = reader->Stats();
      seq = st.last_seq;
      shipped = st.cursors.count("shipper") ? st.cursors.at("shipper") : 0;
    }
    Applied applied = ReadApplied(*standby);
    double lag = applied.commit_time_us > 0 ? (NowUnixMicros() - applied.commit_time_us) / 1e6 : 0;
    max_lag = std::max(max_lag, lag);
    uint64_t c = committed.load();
    std::fprintf(out,
                 "%s%4.0fs committed %6.0f/s | captured %6.0f/s | shipped %6.0f/s | applied "
                 "%6.0f/s | seq %llu | lag (RPO) %5.2f s%s",
                 tty ? "\r" : "", std::chrono::duration<double>(Clock::now() - started).count(),
                 (c - last_committed) / secs, (seq - last_seq) / secs,
                 (shipped - last_shipped) / secs, (applied.seq - last_applied) / secs,
                 static_cast<unsigned long long>(applied.seq), lag, tty ? "" : "\n");
    std::fflush(out);
    last_committed = c;
    last_seq = seq;
    last_shipped = shipped;
    last_applied = applied.seq;
  }
  load_thread.join();
  if (tty) std::fprintf(out, "\n");
  auto stop_daemons = [&] {
    auto r = replay.Stop(SIGTERM, std::chrono::seconds(30));
    auto c = capture.Stop(SIGTERM, std::chrono::seconds(30));
    return std::make_pair(r.ok() ? *r : -1, c.ok() ? *c : -1);
  };
  if (!load_result.ok()) {
    stop_daemons();
    return load_result.status().WithContext("load");
  }
  if (!capture.running() || !replay.running()) {
    stop_daemons();
    return Status::Internal("a daemon exited early; see " + workdir + "/capture.log and " +
                            workdir + "/replay.log");
  }

  // Until the standby has applied a heartbeat committed after everything the load committed.
  uint64_t target = 0;
  if (auto end_lsn = primary->Psql("SELECT pg_current_wal_lsn()", "app"); end_lsn.ok()) {
    std::string t = *end_lsn;
    while (!t.empty() && t.back() == '\n') t.pop_back();
    if (auto l = Lsn::Parse(t); l.ok()) target = l->value();
  }
  auto catch_up_started = Clock::now();
  while (Clock::now() - catch_up_started < std::chrono::seconds(120) && !stop.load()) {
    if (ReadApplied(*standby).lsn > target) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  double catch_up_s = std::chrono::duration<double>(Clock::now() - catch_up_started).count();
  auto [replay_exit, capture_exit] = stop_daemons();
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
  std::set<std::string> on_standby = RequestIds(*standby);
  std::vector<std::string> lost;
  for (const auto& id : ledger_ids) {
    if (!on_standby.count(id)) lost.push_back(id);
  }
  std::string primary_digest = Digest(*primary), standby_digest = Digest(*standby);
  bool equal = !primary_digest.empty() && primary_digest == standby_digest;
  SpoolStats st = spool->Stats();
  const LoadReport& lr = *load_result;
  if (json) {
    std::string lost_json = "[";
    for (size_t i = 0; i < lost.size(); ++i) lost_json += (i ? "," : "") + JsonQuote(lost[i]);
    lost_json += "]";
    std::printf(
        "{\"changes_committed\":%llu,\"calls_committed\":%zu,\"calls_lost\":%zu,"
        "\"lost_ids\":%s,\"standby_equals_primary\":%s,\"spool_events\":%llu,"
        "\"spool_last_seq\":%llu,\"spool_verified\":%s,\"max_lag_seconds\":%.3f,"
        "\"catch_up_seconds\":%.3f,\"capture_exit_code\":%d,\"replay_exit_code\":%d,"
        "\"workdir\":%s}\n",
        static_cast<unsigned long long>(lr.changes), ledger_ids.size(), lost.size(),
        lost_json.c_str(), equal ? "true" : "false", static_cast<unsigned long long>(st.events),
        static_cast<unsigned long long>(st.last_seq), verified.ok() ? "true" : "false", max_lag,
        catch_up_s, capture_exit, replay_exit, JsonQuote(workdir).c_str());
  } else {
    std::printf(
        "\nsummary\n  changes committed    %llu (%llu transactions, %llu failed)\n"
        "  calls committed      %zu (ledger %s/ledger.txt)\n"
        "  calls on the standby %zu of them; lost %zu\n"
        "  standby vs primary   %s (%s)\n"
        "  spool                %llu events, seq %llu..%llu, %s\n"
        "  lag                  at most %.2f s during the load; caught up %.2f s after it\n"
        "  daemons              capture exit %d, replay exit %d\n",
        static_cast<unsigned long long>(lr.changes),
        static_cast<unsigned long long>(lr.transactions),
        static_cast<unsigned long long>(lr.errors), ledger_ids.size(), workdir.c_str(),
        ledger_ids.size() - lost.size(), lost.size(), equal ? "identical" : "DIFFERENT",
        primary_digest.c_str(), static_cast<unsigned long long>(st.events),
        static_cast<unsigned long long>(st.first_seq), static_cast<unsigned long long>(st.last_seq),
        verified.ok() ? "hash chain verified" : verified.ToString().c_str(), max_lag, catch_up_s,
        capture_exit, replay_exit);
    for (size_t i = 0; i < lost.size() && i < 20; ++i) std::printf("  LOST %s\n", lost[i].c_str());
  }
  spool.reset();
  if (!options.keep) {
    primary.reset();
    standby.reset();
    std::error_code ec;
    fs::remove_all(workdir, ec);
  } else {
    std::fprintf(out, "kept %s (cluster data directories, spool, logs, ledger)\n", workdir.c_str());
  }
  if (!verified.ok()) return verified;
  if (!lost.empty()) {
    return Status::Internal(std::to_string(lost.size()) +
                            " committed call(s) missing on the standby, first " + lost.front());
  }
  if (!equal) return Status::Internal("the standby differs from the primary");
  if (capture_exit != 0 || replay_exit != 0) {
    return Status::Internal("a daemon did not stop cleanly; see its log in " + workdir);
  }
  return Status::Ok();
}

}  // namespace lifeline
