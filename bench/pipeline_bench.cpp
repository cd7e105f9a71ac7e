// The whole pipeline against PostgreSQL's own logical replication, from the same primary in the
// same run: commit-to-applied lag at fixed rates (with and without a cross-region Kafka round
// trip), catch-up after a stop, and each daemon's peak memory and CPU per 1,000 changes.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/json_writer.h"
#include "common/local_postgres.h"
#include "common/shutdown.h"
#include "demo/pipeline.h"

namespace {

using lifeline::JsonWriter;
using lifeline::LocalPipeline;
using lifeline::LocalPostgres;
using lifeline::Lsn;
using lifeline::Status;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Flags {
  std::vector<double> rates = {500, 2000, 5000};
  std::vector<int> rtts = {0, 12};
  int seconds = 60;
  uint64_t catchup_changes = 500'000;
  bool quick = false;
  std::string json;
};

struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void Check(const Status& st, const std::string& what) {
  if (!st.ok()) throw BenchError(what + ": " + st.ToString());
}

std::string Sql(const LocalPostgres& pg, const std::string& sql) {
  auto r = pg.Psql(sql, "app");
  Check(r.status(), sql.substr(0, 80));
  std::string s = *r;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Each applied row change records when its transaction began on the primary (updated_at = now()
// there) and when it was applied here; ENABLE ALWAYS so it fires for the subscription's apply
// worker as for the replayer (which runs with an empty search_path: hence the schema).
void InstallLagProbe(const LocalPostgres& pg) {
  Sql(pg,
      "CREATE TABLE lag_probe (updated_at timestamptz, applied_at timestamptz);"
      "CREATE FUNCTION lag_probe_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO "
      "public.lag_probe VALUES (NEW.updated_at, clock_timestamp()); RETURN NULL; END $$;"
      "CREATE TRIGGER lag_probe_trg AFTER INSERT OR UPDATE ON emergency_requests FOR EACH ROW "
      "EXECUTE FUNCTION lag_probe_fn();"
      "ALTER TABLE emergency_requests ENABLE ALWAYS TRIGGER lag_probe_trg");
}

struct Lag {
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  int64_t samples = 0;
};

Lag ReadLag(const LocalPostgres& pg) {
  std::string r = Sql(pg,
                      "SELECT count(*) || ' ' || coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER "
                      "BY l), 0) || ' ' || coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY "
                      "l), 0) || ' ' || coalesce(max(l), 0) FROM (SELECT extract(epoch FROM "
                      "applied_at - updated_at) * 1000 AS l FROM lag_probe) s");
  Lag lag;
  std::istringstream in(r);
  in >> lag.samples >> lag.p50_ms >> lag.p99_ms >> lag.max_ms;
  return lag;
}

// Peak resident memory (kB) and CPU seconds of a process, from /proc.
struct ProcessUse {
  int64_t peak_rss_kb = 0;
  double cpu_seconds = 0;
};

ProcessUse ReadProcess(int pid) {
  ProcessUse u;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) u.peak_rss_kb = std::stoll(line.substr(6));
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  if (close != std::string::npos) {
    std::istringstream in(text.substr(close + 2));
    std::string field;
    std::vector<std::string> fields;
    while (in >> field) fields.push_back(field);
    if (fields.size() > 13) {
      u.cpu_seconds = static_cast<double>(std::stoll(fields[11]) + std::stoll(fields[12])) /
                      static_cast<double>(sysconf(_SC_CLK_TCK));
    }
  }
  return u;
}

std::unique_ptr<LocalPostgres> NativeSubscriber(LocalPipeline& p, bool enabled) {
  lifeline::LocalPostgresOptions o;
  o.name = "native";
  o.parent_dir = p.workdir();
  auto pg = LocalPostgres::Create(o);
  Check(pg.status(), "native subscriber cluster");
  Check((*pg)->CreateDatabase("app"), "native database");
  Check((*pg)->PsqlFile(std::string(LIFELINE_SOURCE_DIR) + "/scripts/sql/reference_schema.sql",
                        "app"),
        "reference schema");
  Sql(p.primary(), "CREATE PUBLICATION native_pub FOR TABLE emergency_requests");
  Sql(**pg, "CREATE SUBSCRIPTION native_sub CONNECTION '" + p.primary().ConnInfo("app") +
                "' PUBLICATION native_pub WITH (copy_data = false, enabled = " +
                (enabled ? "true" : "false") + ")");
  return std::move(pg).value();
}

// The native subscription has applied and confirmed everything up to `lsn`.
bool NativeCaughtUp(const LocalPostgres& primary, const std::string& lsn) {
  auto r =
      primary.Psql("SELECT coalesce(confirmed_flush_lsn >= '" + lsn +
                       "'::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = 'native_sub'",
                   "app");
  return r.ok() && r->find('t') != std::string::npos;
}

bool WaitUntil(const std::function<bool()>& done, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return false;
}

std::unique_ptr<LocalPipeline> NewPipeline(int rtt_ms, int partitions = 1) {
  lifeline::PipelineOptions o;
  o.rtt_ms = rtt_ms;
  o.topic_partitions = partitions;
  o.audit_table = "";  // native replication writes no audit trail either
  o.heartbeat_interval = "200ms";
  o.lifeline_binary = LIFELINE_BINARY;
  auto p = LocalPipeline::Create(o);
  Check(p.status(), "pipeline");
  return std::move(p).value();
}

void LagRuns(const Flags& f, JsonWriter& w) {
  w.Key("lag").BeginArray();
  for (int rtt : f.rtts) {
    auto p = NewPipeline(rtt);
    auto native = NativeSubscriber(*p, true);
    InstallLagProbe(p->standby());
    InstallLagProbe(*native);
    Check(p->StartCapture(), "capture");
    Check(p->StartReplay(), "replay");
    // Ready when the replayer applied a heartbeat.
    if (!WaitUntil([&] { return p->Applied().seq > 0; }, milliseconds(60'000))) {
      throw BenchError("the pipeline did not start within 60 s");
    }
    for (double rate : f.rates) {
      Sql(p->standby(), "TRUNCATE lag_probe");
      Sql(*native, "TRUNCATE lag_probe");
      ProcessUse cap0 = ReadProcess(p->capture_pid());
      ProcessUse rep0 = ReadProcess(p->replay_pid());
      uint64_t changes0 = p->changes_committed();
      auto t0 = Clock::now();
      p->StartLoad(rate, f.seconds * 1000LL);
      auto load = p->WaitLoad();
      Check(load.status(), "load");
      double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      auto end = p->PrimaryWalLsn();
      Check(end.status(), "primary WAL position");
      bool ok = p->WaitApplied(*end, milliseconds(f.quick ? 60'000 : 300'000),
                               lifeline::StopRequested()) &&
                WaitUntil([&] { return NativeCaughtUp(p->primary(), end->ToString()); },
                          milliseconds(f.quick ? 60'000 : 300'000));
      if (!ok) {
        auto slot = p->primary().Psql(
            "SELECT slot_name, active, confirmed_flush_lsn FROM pg_replication_slots", "app");
        throw BenchError("a standby did not catch up to " + end->ToString() +
                         " within 300 s: lifeline applied " + p->Applied().lsn.ToString() +
                         "; slots " + (slot.ok() ? *slot : slot.status().ToString()));
      }
      uint64_t changes = p->changes_committed() - changes0;
      ProcessUse cap = ReadProcess(p->capture_pid());
      ProcessUse rep = ReadProcess(p->replay_pid());
      Lag ours = ReadLag(p->standby());
      Lag theirs = ReadLag(*native);
      double per_k = changes > 0 ? 1000.0 / static_cast<double>(changes) : 0;
      std::printf(
          "lag rtt=%2d ms rate=%5.0f/s (achieved %6.0f/s): lifeline p50 %7.1f p99 %7.1f max %7.1f "
          "ms | native p50 %7.1f p99 %7.1f max %7.1f ms | p99 ratio %.2f\n",
          rtt, rate, static_cast<double>(changes) / secs, ours.p50_ms, ours.p99_ms, ours.max_ms,
          theirs.p50_ms, theirs.p99_ms, theirs.max_ms,
          theirs.p99_ms > 0 ? ours.p99_ms / theirs.p99_ms : 0);
      std::printf(
          "    capture peak RSS %lld MB, %.3f CPU s/1000 changes | replayer %lld MB, %.3f\n",
          static_cast<long long>(cap.peak_rss_kb / 1024),
          (cap.cpu_seconds - cap0.cpu_seconds) * per_k,
          static_cast<long long>(rep.peak_rss_kb / 1024),
          (rep.cpu_seconds - rep0.cpu_seconds) * per_k);
      std::fflush(stdout);
      w.BeginObject().Field("rtt_ms", rtt).Field("rate", rate);
      w.Field("achieved_rate", static_cast<double>(changes) / secs).Field("changes", changes);
      w.Key("lifeline").BeginObject().Field("p50_ms", ours.p50_ms).Field("p99_ms", ours.p99_ms);
      w.Field("max_ms", ours.max_ms).Field("samples", ours.samples).EndObject();
      w.Key("native").BeginObject().Field("p50_ms", theirs.p50_ms);
      w.Field("p99_ms", theirs.p99_ms).Field("max_ms", theirs.max_ms);
      w.Field("samples", theirs.samples).EndObject();
      w.Field("p99_ratio", theirs.p99_ms > 0 ? ours.p99_ms / theirs.p99_ms : 0);
      w.Field("capture_peak_rss_mb", static_cast<double>(cap.peak_rss_kb) / 1024);
      w.Field("capture_cpu_s_per_1000", (cap.cpu_seconds - cap0.cpu_seconds) * per_k);
      w.Field("replayer_peak_rss_mb", static_cast<double>(rep.peak_rss_kb) / 1024);
      w.Field("replayer_cpu_s_per_1000", (rep.cpu_seconds - rep0.cpu_seconds) * per_k);
      w.EndObject();
    }
    p->StopReplay();
    p->StopCapture();
  }
  w.EndArray();
}

// Changes written while both replications are stopped; then both start at the same moment.
void CatchUp(const Flags& f, JsonWriter& w) {
  // 64 partitions, so devkafka holds the whole backlog (as in apply_bench).
  auto p = NewPipeline(0, 64);
  auto native = NativeSubscriber(*p, false);
  Check(p->StartCapture(), "capture");
  Check(p->StartReplay(), "replay");
  if (!WaitUntil([&] { return p->Applied().seq > 0; }, milliseconds(60'000))) {
    throw BenchError("the pipeline did not start within 60 s");
  }
  p->StopReplay();
  p->StopCapture();
  // Transactions of 5 inserts and 5 updates, committed one by one in a procedure.
  const uint64_t txns = f.catchup_changes / 10;
  Sql(p->primary(),
      "CREATE PROCEDURE bench_load(n int) LANGUAGE plpgsql AS $$ DECLARE ids uuid[]; BEGIN FOR i "
      "IN 1..n LOOP WITH ins AS (INSERT INTO emergency_requests (customer_name, phone_number, "
      "location_address) SELECT 'caller ' || i, '+44 7700 900' || g, 'Junction ' || g || ' M' "
      "|| (i % 60) FROM generate_series(1, 5) g RETURNING id) SELECT array_agg(id) INTO ids FROM "
      "ins; UPDATE emergency_requests SET status = 'assigned', updated_at = now() WHERE id = "
      "ANY(ids); COMMIT; END LOOP; END $$");
  auto w0 = Clock::now();
  // Custom plans: a generic plan made while the table is empty scans it whole for every UPDATE,
  // and the load would grow quadratically with the number of changes.
  Sql(p->primary(),
      "SET plan_cache_mode = force_custom_plan; CALL bench_load(" + std::to_string(txns) + ")");
  double write_s = std::chrono::duration<double>(Clock::now() - w0).count();
  std::string end = Sql(p->primary(), "SELECT pg_current_wal_lsn()");
  Lsn end_lsn = *Lsn::Parse(end);

  auto t0 = Clock::now();
  Check(p->StartCapture(), "capture");
  Check(p->StartReplay(), "replay");
  Sql(*native, "ALTER SUBSCRIPTION native_sub ENABLE");
  double ours = -1, theirs = -1;
  auto deadline = Clock::now() + milliseconds(1'800'000);
  while ((ours < 0 || theirs < 0) && Clock::now() < deadline) {
    if (ours < 0 && p->Applied().lsn >= end_lsn) {
      ours = std::chrono::duration<double>(Clock::now() - t0).count();
    }
    if (ours < 0 && !p->replay_running()) {
      throw BenchError("the replayer exited during the catch-up; its log: " + p->workdir() +
                       "/replay.log");
    }
    if (theirs < 0 && NativeCaughtUp(p->primary(), end)) {
      theirs = std::chrono::duration<double>(Clock::now() - t0).count();
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  if (ours < 0 || theirs < 0) {
    throw BenchError(std::string("catch-up did not finish within 30 minutes: ") +
                     (ours < 0 ? "lifeline had applied through " + p->Applied().lsn.ToString()
                               : std::string("lifeline finished")) +
                     (theirs < 0 ? ", native had not confirmed " : ", native confirmed ") + end);
  }
  bool equal = p->Digest(p->primary()) == p->Digest(p->standby()) &&
               p->Digest(p->primary()) == p->Digest(*native);
  std::printf(
      "catch-up of %llu changes (written in %.1f s): lifeline %.1f s (%.0f changes/s), native "
      "%.1f s (%.0f changes/s), ratio %.2f; all three equal: %s\n",
      static_cast<unsigned long long>(txns * 10), write_s, ours,
      static_cast<double>(txns * 10) / ours, theirs, static_cast<double>(txns * 10) / theirs,
      theirs / ours, equal ? "yes" : "NO");
  w.Key("catch_up").BeginObject().Field("changes", txns * 10).Field("lifeline_seconds", ours);
  w.Field("native_seconds", theirs).Field("ratio", theirs / ours).Field("equal", equal);
  w.EndObject();
  if (!equal) throw BenchError("after catch-up the standbys differ from the primary");
  p->StopReplay();
  p->StopCapture();
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"Pipeline lag and catch-up against PostgreSQL's own logical replication",
               "pipeline_bench"};
  app.add_option("--rates", f.rates, "Changes per second of each lag run")->delimiter(',');
  app.add_option("--rtt-ms", f.rtts, "Kafka round trips to run the lag at")->delimiter(',');
  app.add_option("--seconds", f.seconds, "Seconds of load per rate")->capture_default_str();
  app.add_option("--catchup-changes", f.catchup_changes, "Changes written while stopped")
      ->capture_default_str();
  app.add_flag("--quick", f.quick, "10 s per rate at 500 and 2,000/s, 20,000 catch-up changes");
  app.add_option("--json", f.json, "Also write the results as JSON here");
  CLI11_PARSE(app, argc, argv);
  if (f.quick) {
    if (app.count("--rates") == 0) f.rates = {500, 2000};
    if (app.count("--rtt-ms") == 0) f.rtts = {0};
    if (app.count("--seconds") == 0) f.seconds = 10;
    if (app.count("--catchup-changes") == 0) f.catchup_changes = 20'000;
  }
  try {
    JsonWriter w;
    w.BeginObject().Field("seconds_per_rate", f.seconds);
    LagRuns(f, w);
    CatchUp(f, w);
    w.EndObject();
    if (!f.json.empty()) std::ofstream(f.json) << w.str() << "\n";
  } catch (const BenchError& e) {
    std::cerr << "pipeline_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
