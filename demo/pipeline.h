// The whole pipeline on one machine, for `lifeline demo` and `lifeline drill`: a primary and a
// standby PostgreSQL with the reference schema, devkafka (3 brokers), capture+shipper and the
// replayer as child processes that can be killed and restarted, the emergency-request load with its
// ledger, and what the verdicts need to observe (applied position, WAL position, request ids).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/devkafka.h"
#include "common/local_postgres.h"
#include "common/lsn.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "demo/load_generator.h"

namespace lifeline {

struct PipelineOptions {
  std::string workdir;  // empty: a new directory under /tmp
  bool keep = false;    // keep the work directory at the end
  int rtt_ms = 0;       // round trip added by every Kafka broker
  bool wal_archiving = false;
  std::string heartbeat_interval = "500ms";
  std::string topic = "lifeline.events";
  // devkafka keeps about the last 5 MiB of each partition: a backlog of hundreds of thousands of
  // events needs tens of partitions to stay whole.
  int topic_partitions = 1;
  std::string audit_table = "public.emergency_requests_audit";  // empty: no audit trail
  std::string lifeline_binary;  // the daemons' executable; empty: this process's own
};

// One call the load committed: its request id and when the commit was acknowledged.
struct LedgerEntry {
  std::string id;
  int64_t committed_us = 0;
};

// The replayer's applied position on the standby.
struct AppliedPosition {
  uint64_t seq = 0;
  Lsn lsn;
  int64_t commit_time_us = 0;
};

class LocalPipeline {
 public:
  [[nodiscard]] static Result<std::unique_ptr<LocalPipeline>> Create(
      const PipelineOptions& options);
  ~LocalPipeline();  // stops what it started; removes the work directory unless kept

  [[nodiscard]] Status StartCapture();
  [[nodiscard]] Status StartReplay();
  void KillCapture();  // SIGKILL, as a crash
  void KillReplay();
  // SIGTERM and wait: the daemon's exit code (-1 if it did not stop in 30 s or was not running).
  int StopCapture();
  int StopReplay();
  bool capture_running();
  bool replay_running();
  int capture_pid() const { return capture_.pid(); }
  int replay_pid() const { return replay_.pid(); }

  [[nodiscard]] Status KafkaDown();
  [[nodiscard]] Status KafkaUp();

  // The load runs on a thread of this process; the ledger is kept in memory and in ledger.txt.
  void StartLoad(double rate, int64_t duration_ms);
  void StopLoad();
  [[nodiscard]] Result<LoadReport> WaitLoad();
  uint64_t changes_committed() const { return committed_.load(); }
  std::vector<LedgerEntry> Ledger() const;

  AppliedPosition Applied() const;
  [[nodiscard]] Result<Lsn> PrimaryWalLsn() const;
  // Waits until the standby applied a commit past `lsn`; false on timeout or stop.
  bool WaitApplied(Lsn lsn, std::chrono::milliseconds timeout, const std::atomic<bool>& stop) const;
  std::set<std::string> RequestIds(const LocalPostgres& pg) const;
  // "rows:md5" over every row of emergency_requests in id order.
  std::string Digest(const LocalPostgres& pg) const;
  // Calls of the ledger the standby does not hold.
  std::vector<LedgerEntry> LostCalls() const;

  LocalPostgres& primary() { return *primary_; }
  LocalPostgres& standby() { return *standby_; }
  DevKafkaCluster& kafka() { return *kafka_; }
  const std::string& workdir() const { return workdir_; }
  std::string spool_dir() const { return workdir_ + "/spool"; }
  const std::string& topic() const { return options_.topic; }
  // Replaces the primary (a restore after point-in-time recovery).
  void ReplacePrimary(std::unique_ptr<LocalPostgres> pg) { primary_ = std::move(pg); }

 private:
  explicit LocalPipeline(PipelineOptions options) : options_(std::move(options)) {}
  std::string Binary() const;
  PipelineOptions options_;
  std::string workdir_;
  std::unique_ptr<LocalPostgres> primary_, standby_;
  std::unique_ptr<DevKafkaCluster> kafka_;
  ChildProcess capture_, replay_;
  std::thread load_thread_;
  std::atomic<bool> load_stop_{false};
  std::atomic<uint64_t> committed_{0};
  Result<LoadReport> load_result_ = Status::Internal("the load did not run");
  mutable std::mutex ledger_mu_;
  std::vector<LedgerEntry> ledger_;
};

// The path of the running `lifeline` binary (children are started from it).
std::string SelfExecutable();

}  // namespace lifeline
