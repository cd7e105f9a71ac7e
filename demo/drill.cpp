// The drills: each scenario starts a fresh local pipeline under load, injects its fault at a third
// of the load, recovers the way an operator (or systemd) would, and judges the outcome against the
// load's ledger, the standby's rows, and gapcheck's stream and rows reports.
#include "demo/drill.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <thread>

#include "common/event_format.h"
#include "common/json_writer.h"
#include "common/shutdown.h"
#include "demo/pipeline.h"
#include "gapcheck/row_diff.h"
#include "gapcheck/stream_scan.h"

namespace lifeline {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const std::vector<std::string>& Scenarios() {
  static const std::vector<std::string> all = {
      "capture-crash",   "replayer-crash", "kafka-outage", "primary-restart",
      "standby-restart", "region-loss",    "pitr"};
  return all;
}

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// One scenario's run: the pipeline, the clock, progress lines and the result being filled in.
class Drill {
 public:
  Drill(const DrillOptions& options, std::string scenario, FILE* out)
      : options_(options), out_(out), stop_(StopRequested()) {
    result_.scenario = std::move(scenario);
  }

  Result<DrillResult> Run();

 private:
  void Note(const std::string& line) {
    std::fprintf(out_, "  [%6.1fs] %s\n", SecondsSince(started_), line.c_str());
    std::fflush(out_);
    result_.notes.push_back(line);
  }
  void Fail(const std::string& why) {
    Note("FAIL: " + why);
    result_.failures.push_back(why);
  }
  bool Sleep(milliseconds d) { return !SleepUnlessStopped(stop_, d); }
  // The primary's WAL position now, then the time until the standby applied past it.
  bool WaitCaughtUp(milliseconds timeout, double* seconds = nullptr);
  // Samples the commit-to-applied lag until stopped, keeping the worst.
  void StartLagSampler();
  void StopLagSampler();

  Status CrashAndRestart(bool capture);
  Status KafkaOutage();
  Status PrimaryRestart();
  Status StandbyRestart();
  Status RegionLoss();
  Status PointInTimeRecovery();
  Status Chaos();
  void Judge(bool primary_intact);

  const DrillOptions& options_;
  FILE* out_;
  const std::atomic<bool>& stop_;
  DrillResult result_;
  std::unique_ptr<LocalPipeline> pipeline_;
  Clock::time_point started_ = Clock::now();       // the drill's start (progress lines)
  Clock::time_point load_started_ = Clock::now();  // the load's start (chaos schedules from it)
  std::thread lag_thread_;
  std::atomic<bool> lag_stop_{false};
  std::atomic<int64_t> max_lag_us_{0};
  std::atomic<bool> sample_lag_{true};
};

bool Drill::WaitCaughtUp(milliseconds timeout, double* seconds) {
  auto t = Clock::now();
  Result<Lsn> lsn = pipeline_->PrimaryWalLsn();
  if (!lsn.ok()) return false;
  bool ok = pipeline_->WaitApplied(*lsn, timeout, stop_);
  if (seconds) *seconds = SecondsSince(t);
  return ok;
}

void Drill::StartLagSampler() {
  lag_thread_ = std::thread([this] {
    while (!lag_stop_.load()) {
      if (sample_lag_.load()) {
        AppliedPosition a = pipeline_->Applied();
        if (a.commit_time_us > 0) {
          int64_t lag = NowUnixMicros() - a.commit_time_us;
          int64_t prev = max_lag_us_.load();
          while (lag > prev && !max_lag_us_.compare_exchange_weak(prev, lag)) {
          }
        }
      }
      std::this_thread::sleep_for(milliseconds(250));
    }
  });
}

void Drill::StopLagSampler() {
  lag_stop_ = true;
  if (lag_thread_.joinable()) lag_thread_.join();
}

Status Drill::CrashAndRestart(bool capture) {
  const char* name = capture ? "capture" : "replayer";
  auto fault = Clock::now();
  if (capture) {
    Note("kill -9 capture+shipper (pid " + std::to_string(pipeline_->capture_pid()) + ")");
    pipeline_->KillCapture();
  } else {
    Note("kill -9 the replayer (pid " + std::to_string(pipeline_->replay_pid()) + ")");
    pipeline_->KillReplay();
  }
  Sleep(milliseconds(1000));  // a supervisor's restart delay (systemd RestartSec=1)
  LIFELINE_RETURN_IF_ERROR(capture ? pipeline_->StartCapture() : pipeline_->StartReplay());
  Note(std::string("restarted ") + name);
  if (!WaitCaughtUp(milliseconds(120'000))) Fail(std::string(name) + " did not catch up in 120 s");
  result_.recovery_seconds = SecondsSince(fault);
  Note("standby applied what followed the crash " +
       std::to_string(result_.recovery_seconds).substr(0, 5) + " s after it");
  return Status::Ok();
}

Status Drill::KafkaOutage() {
  Note("every broker down for " + std::to_string(options_.outage_ms / 1000) + " s");
  LIFELINE_RETURN_IF_ERROR(pipeline_->KafkaDown());
  Sleep(milliseconds(options_.outage_ms));
  LIFELINE_RETURN_IF_ERROR(pipeline_->KafkaUp());
  auto up = Clock::now();
  Note("brokers back");
  if (!pipeline_->capture_running()) Fail("capture stopped during the outage");
  if (!WaitCaughtUp(milliseconds(120'000))) Fail("the pipeline did not catch up in 120 s");
  result_.recovery_seconds = SecondsSince(up);
  Note("standby caught up " + std::to_string(result_.recovery_seconds).substr(0, 5) +
       " s after the brokers came back");
  return Status::Ok();
}

Status Drill::PrimaryRestart() {
  auto fault = Clock::now();
  Note("pg_ctl restart -m immediate on the primary");
  LIFELINE_RETURN_IF_ERROR(pipeline_->primary().Restart("immediate"));
  Note("primary accepting connections again");
  if (!WaitCaughtUp(milliseconds(120'000))) Fail("the pipeline did not catch up in 120 s");
  result_.recovery_seconds = SecondsSince(fault);
  Note("standby applied what followed the restart " +
       std::to_string(result_.recovery_seconds).substr(0, 5) + " s after it");
  return Status::Ok();
}

Status Drill::StandbyRestart() {
  auto fault = Clock::now();
  Note("pg_ctl restart -m immediate on the standby");
  sample_lag_ = false;
  LIFELINE_RETURN_IF_ERROR(pipeline_->standby().Restart("immediate"));
  sample_lag_ = true;
  Note("standby accepting connections again");
  if (!WaitCaughtUp(milliseconds(120'000))) Fail("the replayer did not catch up in 120 s");
  result_.recovery_seconds = SecondsSince(fault);
  Note("standby applied what followed the restart " +
       std::to_string(result_.recovery_seconds).substr(0, 5) + " s after it");
  return Status::Ok();
}

Status Drill::RegionLoss() {
  // The primary region goes at once: its database and capture+shipper. Kafka is elsewhere.
  auto fault = Clock::now();
  int64_t fault_us = 0;
  Note("region lost: kill -9 capture+shipper and stop the primary immediately");
  pipeline_->KillCapture();
  LIFELINE_RETURN_IF_ERROR(pipeline_->primary().Stop("immediate"));
  // Calls acknowledged while the stop took hold were committed too: the region died now.
  fault_us = NowUnixMicros();
  pipeline_->StopLoad();
  (void)pipeline_->WaitLoad();

  // Everything that reached Kafka must reach the standby: wait until the replayer applied the
  // topic's last seq.
  gapcheck::StreamScanOptions scan;
  scan.stream.kafka_brokers = pipeline_->kafka().bootstrap_servers();
  scan.stream.topic = pipeline_->topic();
  LIFELINE_ASSIGN_OR_RETURN(gapcheck::StreamReport topic, gapcheck::ScanStream(scan));
  uint64_t last_seq = 0;
  for (const auto& s : topic.sources) last_seq = std::max(last_seq, s.last_seq);
  Note("the topic holds seq up to " + std::to_string(last_seq));
  auto deadline = Clock::now() + milliseconds(120'000);
  while (pipeline_->Applied().seq < last_seq && Clock::now() < deadline && !stop_.load()) {
    std::this_thread::sleep_for(milliseconds(100));
  }
  if (pipeline_->Applied().seq < last_seq) Fail("the standby did not apply the whole topic");
  // Promote: stop the replayer; the standby takes writes.
  int code = pipeline_->StopReplay();
  if (code != 0) Fail("the replayer did not stop cleanly (exit " + std::to_string(code) + ")");
  auto write = pipeline_->standby().Psql(
      "INSERT INTO emergency_requests (customer_name, phone_number) VALUES ('after failover', "
      "'0') RETURNING id",
      "app");
  if (!write.ok()) Fail("the promoted standby refused a write: " + write.status().ToString());
  result_.recovery_seconds = SecondsSince(fault);
  Note("standby applied the whole topic and took a write " +
       std::to_string(result_.recovery_seconds).substr(0, 5) + " s after the loss");

  std::vector<LedgerEntry> lost = pipeline_->LostCalls();
  int64_t oldest = fault_us;
  for (const LedgerEntry& e : lost) {
    result_.lost_ids.push_back(e.id);
    oldest = std::min(oldest, e.committed_us);
  }
  result_.rpo_seconds = lost.empty() ? 0 : static_cast<double>(fault_us - oldest) / 1e6;
  Note(std::to_string(lost.size()) +
       " call(s) committed on the primary had not left the region (reported by id)");
  return Status::Ok();
}

Status Drill::PointInTimeRecovery() {
  // A bad change at T deletes the open calls; the primary is restored from its base backup to T
  // and the calls created after T are replayed from Kafka with --only-missing.
  std::string t = Trimmed(*pipeline_->primary().Psql("SELECT now()::text", "app"));
  Sleep(milliseconds(100));
  // The bad change spares calls created in the last second before T: a call created just before
  // T may commit after it, and its insert then lies inside the replayed window together with the
  // bad delete, which --only-missing honours (it never resurrects a deleted row).
  auto bad = pipeline_->primary().Psql(
      "DELETE FROM emergency_requests WHERE status IN ('pending', 'assigned') AND created_at < '" +
          t + "'::timestamptz - interval '1 second'",
      "app");
  LIFELINE_RETURN_IF_ERROR(bad.status());
  Note("bad change after " + t + ": the pending and assigned calls created before it deleted");
  // The load goes on until its end; then the pipeline settles (the standby has the bad change too).
  LIFELINE_ASSIGN_OR_RETURN(LoadReport load, pipeline_->WaitLoad());
  (void)load;
  WaitCaughtUp(milliseconds(120'000));
  LIFELINE_RETURN_IF_ERROR(pipeline_->primary().ArchiveUpToNow());

  auto fault = Clock::now();
  Note("restoring the primary's base backup to " + t);
  LocalPostgresOptions o;
  o.name = "restored";
  o.parent_dir = pipeline_->workdir();
  LIFELINE_ASSIGN_OR_RETURN(
      auto restored, LocalPostgres::RestoreFromBackup(o, pipeline_->workdir() + "/base",
                                                      pipeline_->primary().archive_dir(), t));
  restored->set_keep(options_.keep);
  Note("restored; replaying the calls created after " + t + " with --only-missing");
  CommandSpec replay;
  replay.argv = {SelfExecutable(),  "replay",
                 "--target",        restored->ConnInfo("app"),
                 "--kafka-brokers", pipeline_->kafka().bootstrap_servers(),
                 "--topic",         pipeline_->topic(),
                 "--from-time",     t,
                 "--only-missing",  "--stop-at-end"};
  replay.timeout = milliseconds(300'000);
  LIFELINE_ASSIGN_OR_RETURN(CommandResult r, RunCommand(replay));
  if (r.exit_code != 0) Fail("the window replay failed: " + r.stderr_text);
  result_.recovery_seconds = SecondsSince(fault);
  std::set<std::string> back = pipeline_->RequestIds(*restored);
  int64_t oldest = 0;
  for (const LedgerEntry& e : pipeline_->Ledger()) {
    if (!back.count(e.id)) {
      result_.lost_ids.push_back(e.id);
      if (oldest == 0 || e.committed_us < oldest) oldest = e.committed_us;
    }
  }
  result_.rpo_seconds =
      result_.lost_ids.empty() ? 0 : static_cast<double>(NowUnixMicros() - oldest) / 1e6;
  Note("restore and replay took " + std::to_string(result_.recovery_seconds).substr(0, 5) + " s; " +
       std::to_string(back.size()) + " calls on the restored primary");
  pipeline_->ReplacePrimary(std::move(restored));
  return Status::Ok();
}

Status Drill::Chaos() {
  // 5 capture kills, 5 replayer kills, a broker outage, a primary and a standby restart, in
  // random order at random moments between 10% and 80% of the load.
  std::mt19937 rng(options_.seed ? options_.seed : std::random_device{}());
  std::vector<std::string> faults = {"capture",  "capture",  "capture",  "capture",  "capture",
                                     "replayer", "replayer", "replayer", "replayer", "replayer",
                                     "kafka",    "primary",  "standby"};
  std::shuffle(faults.begin(), faults.end(), rng);
  const int64_t span = options_.duration_ms * 7 / 10;
  std::vector<int64_t> at;
  std::uniform_int_distribution<int64_t> when(0, span);
  for (size_t i = 0; i < faults.size(); ++i) at.push_back(options_.duration_ms / 10 + when(rng));
  std::sort(at.begin(), at.end());
  const Clock::time_point begin = load_started_;
  for (size_t i = 0; i < faults.size() && !stop_.load(); ++i) {
    auto due = begin + milliseconds(at[i]);
    if (due > Clock::now()) Sleep(std::chrono::duration_cast<milliseconds>(due - Clock::now()));
    const std::string& f = faults[i];
    if (f == "capture" || f == "replayer") {
      bool capture = f == "capture";
      Note("kill -9 " + f);
      capture ? pipeline_->KillCapture() : pipeline_->KillReplay();
      Sleep(milliseconds(1000));
      LIFELINE_RETURN_IF_ERROR(capture ? pipeline_->StartCapture() : pipeline_->StartReplay());
    } else if (f == "kafka") {
      Note("every broker down for 10 s");
      LIFELINE_RETURN_IF_ERROR(pipeline_->KafkaDown());
      Sleep(milliseconds(10'000));
      LIFELINE_RETURN_IF_ERROR(pipeline_->KafkaUp());
    } else if (f == "primary") {
      Note("primary restarted (immediate)");
      LIFELINE_RETURN_IF_ERROR(pipeline_->primary().Restart("immediate"));
    } else {
      Note("standby restarted (immediate)");
      sample_lag_ = false;
      LIFELINE_RETURN_IF_ERROR(pipeline_->standby().Restart("immediate"));
      sample_lag_ = true;
    }
  }
  return Status::Ok();
}

// After the load: wait for the pipeline to settle, count calls against the ledger, compare the
// sides row for row, and run gapcheck's stream and rows reports.
void Drill::Judge(bool primary_intact) {
  if (primary_intact) {
    double catch_up = 0;
    if (!WaitCaughtUp(milliseconds(180'000), &catch_up)) {
      Fail("the standby did not catch up within 180 s of the load's end");
    }
    for (const LedgerEntry& e : pipeline_->LostCalls()) result_.lost_ids.push_back(e.id);
    std::string p = pipeline_->Digest(pipeline_->primary());
    std::string s = pipeline_->Digest(pipeline_->standby());
    result_.standby_equals_primary = !p.empty() && p == s;
    if (!result_.standby_equals_primary) Fail("the standby differs from the primary");
    gapcheck::RowDiffOptions rows;
    rows.source = pipeline_->primary().ConnInfo("app");
    rows.target = pipeline_->standby().ConnInfo("app");
    Result<gapcheck::RowDiffReport> diff = gapcheck::DiffRows(rows);
    result_.gapcheck_rows_exit = !diff.ok() ? 2 : diff->clean() ? 0 : 1;
    if (result_.gapcheck_rows_exit != 0) {
      Fail("gapcheck rows: " + (diff.ok()
                                    ? std::to_string(diff->missing.size()) + " missing, " +
                                          std::to_string(diff->extra.size()) + " extra, " +
                                          std::to_string(diff->different.size()) + " different"
                                    : diff.status().ToString()));
    }
  }
  gapcheck::StreamScanOptions scan;
  scan.stream.kafka_brokers = pipeline_->kafka().bootstrap_servers();
  scan.stream.topic = pipeline_->topic();
  Result<gapcheck::StreamReport> stream = gapcheck::ScanStream(scan);
  result_.gapcheck_stream_exit = !stream.ok() ? 2 : stream->clean() ? 0 : 1;
  if (result_.gapcheck_stream_exit != 0) {
    Fail("gapcheck stream: " +
         (stream.ok() ? std::string("gaps or breaks in the topic") : stream.status().ToString()));
  }
  result_.calls_committed = pipeline_->Ledger().size();
  result_.max_lag_seconds = static_cast<double>(max_lag_us_.load()) / 1e6;
  const bool losses_allowed = result_.scenario == "region-loss";
  if (!result_.lost_ids.empty() && !losses_allowed) {
    Fail(std::to_string(result_.lost_ids.size()) + " committed call(s) missing, first " +
         result_.lost_ids.front());
  }
  if (result_.recovery_seconds > options_.max_recovery_seconds) {
    Fail("recovery took " + std::to_string(result_.recovery_seconds) + " s, over the " +
         std::to_string(options_.max_recovery_seconds) + " s objective");
  }
  if (result_.rpo_seconds > options_.max_rpo_seconds) {
    Fail("data loss of " + std::to_string(result_.rpo_seconds) + " s, over the " +
         std::to_string(options_.max_rpo_seconds) + " s objective");
  }
  result_.passed = result_.failures.empty();
}

Result<DrillResult> Drill::Run() {
  const std::string& s = result_.scenario;
  std::fprintf(out_, "drill %s: %.0f changes/s for %lld s\n", s.c_str(), options_.rate,
               static_cast<long long>(options_.duration_ms / 1000));
  PipelineOptions po;
  if (!options_.workdir.empty()) po.workdir = options_.workdir + "/" + s;
  po.keep = options_.keep;
  po.rtt_ms = options_.rtt_ms;
  po.wal_archiving = s == "pitr";
  LIFELINE_ASSIGN_OR_RETURN(pipeline_, LocalPipeline::Create(po));
  Note("primary, standby and devkafka up in " + pipeline_->workdir());
  if (s == "pitr") {
    LIFELINE_RETURN_IF_ERROR(pipeline_->primary().BaseBackup(pipeline_->workdir() + "/base"));
    Note("base backup taken; WAL archived");
  }
  LIFELINE_RETURN_IF_ERROR(pipeline_->StartCapture());
  LIFELINE_RETURN_IF_ERROR(pipeline_->StartReplay());
  int64_t duration = options_.duration_ms;
  if (s == "kafka-outage") duration = std::max(duration, options_.outage_ms * 3 / 2 + 10'000);
  pipeline_->StartLoad(options_.rate, duration);
  StartLagSampler();
  load_started_ = Clock::now();
  if (s != "chaos") Sleep(milliseconds(duration / 3));

  Status fault = Status::Ok();
  if (s == "capture-crash") fault = CrashAndRestart(true);
  if (s == "replayer-crash") fault = CrashAndRestart(false);
  if (s == "kafka-outage") fault = KafkaOutage();
  if (s == "primary-restart") fault = PrimaryRestart();
  if (s == "standby-restart") fault = StandbyRestart();
  if (s == "region-loss") fault = RegionLoss();
  if (s == "pitr") fault = PointInTimeRecovery();
  if (s == "chaos") fault = Chaos();
  if (!fault.ok()) {
    StopLagSampler();
    return fault.WithContext("drill " + s);
  }
  Result<LoadReport> load = pipeline_->WaitLoad();
  if (!load.ok() && s != "region-loss") Fail("the load failed: " + load.status().ToString());
  Note("load finished: " + std::to_string(pipeline_->Ledger().size()) + " calls committed");
  if (s == "chaos") {
    double catch_up = 0;
    WaitCaughtUp(milliseconds(180'000), &catch_up);
    result_.recovery_seconds = catch_up;
  }
  StopLagSampler();
  Judge(s != "region-loss" && s != "pitr");
  Note(result_.passed ? "PASSED" : "FAILED");
  return result_;
}

}  // namespace

Result<std::vector<DrillResult>> RunDrills(const DrillOptions& options) {
  std::vector<std::string> scenarios;
  if (options.scenario == "all") {
    scenarios = Scenarios();
  } else if (options.scenario == "chaos" || std::find(Scenarios().begin(), Scenarios().end(),
                                                      options.scenario) != Scenarios().end()) {
    scenarios = {options.scenario};
  } else {
    std::string names;
    for (const auto& n : Scenarios()) names += n + ", ";
    return Status::InvalidArgument("unknown drill scenario '" + options.scenario +
                                   "': use one of " + names + "chaos or all");
  }
  if (options.rate <= 0 || options.duration_ms < 6'000) {
    return Status::InvalidArgument(
        "a drill needs --rate above 0 and --duration of at least 6s (the fault comes at a third "
        "of it)");
  }
  FILE* out = options.format == "json" ? stderr : stdout;
  std::vector<DrillResult> results;
  for (const std::string& s : scenarios) {
    if (StopRequested().load()) break;
    Drill drill(options, s, out);
    LIFELINE_ASSIGN_OR_RETURN(DrillResult r, drill.Run());
    results.push_back(std::move(r));
  }
  return results;
}

void PrintDrillResults(const std::vector<DrillResult>& results, const std::string& format) {
  bool all_passed = !results.empty();
  for (const auto& r : results) all_passed = all_passed && r.passed;
  if (format == "json") {
    auto one = [](JsonWriter& w, const DrillResult& r) {
      w.BeginObject().Field("scenario", r.scenario).Field("passed", r.passed);
      w.Field("recovery_seconds", r.recovery_seconds).Field("rpo_seconds", r.rpo_seconds);
      w.Field("max_lag_seconds", r.max_lag_seconds);
      w.Field("calls_committed", r.calls_committed);
      w.Field("calls_lost", static_cast<uint64_t>(r.lost_ids.size()));
      w.Key("lost_ids").BeginArray();
      for (const auto& id : r.lost_ids) w.String(id);
      w.EndArray().Field("standby_equals_primary", r.standby_equals_primary);
      w.Field("gapcheck_rows_exit", r.gapcheck_rows_exit);
      w.Field("gapcheck_stream_exit", r.gapcheck_stream_exit);
      w.Key("failures").BeginArray();
      for (const auto& f : r.failures) w.String(f);
      w.EndArray().Key("events").BeginArray();
      for (const auto& n : r.notes) w.String(n);
      w.EndArray().EndObject();
    };
    JsonWriter w;
    if (results.size() == 1) {
      one(w, results.front());
    } else {
      w.BeginObject().Field("passed", all_passed).Key("scenarios").BeginArray();
      for (const auto& r : results) one(w, r);
      w.EndArray().EndObject();
    }
    std::printf("%s\n", w.str().c_str());
    return;
  }
  std::printf("\n%-16s %-7s %10s %8s %8s %10s %6s\n", "scenario", "result", "recovery s", "RPO s",
              "max lag", "committed", "lost");
  for (const auto& r : results) {
    std::printf("%-16s %-7s %10.2f %8.3f %8.2f %10llu %6zu\n", r.scenario.c_str(),
                r.passed ? "pass" : "FAIL", r.recovery_seconds, r.rpo_seconds, r.max_lag_seconds,
                static_cast<unsigned long long>(r.calls_committed), r.lost_ids.size());
    for (const auto& f : r.failures) std::printf("    %s\n", f.c_str());
    for (size_t i = 0; i < r.lost_ids.size() && i < 20; ++i) {
      std::printf("    lost %s\n", r.lost_ids[i].c_str());
    }
  }
  std::printf(
      "criteria: recovery under the RTO, data loss under the RPO, no call lost (except "
      "calls that never left a lost region, listed by id)\n%s\n",
      all_passed ? "all drills passed" : "DRILL FAILED");
}

}  // namespace lifeline
