// The loop that drives capture: slot and snapshot set-up, then receive (ReplicationConnection),
// decode (PgOutputDecoder), transform (ChangeBuilder), spool, and confirm.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "capture/capture.h"
#include "capture/change_builder.h"
#include "capture/pgoutput_decoder.h"
#include "capture/replication_connection.h"
#include "capture/snapshot_reader.h"
#include "capture/source_catalog.h"
#include "common/event_format.h"
#include "common/event_seal.h"
#include "common/metrics.h"
#include "common/shutdown.h"
#include "common/spool.h"
#include "common/status_server.h"

namespace lifeline {
namespace {

using capture::ChangeBuilder;
using capture::PgOutputDecoder;
using capture::ReplicationConnection;
using capture::SourceCatalog;
using capture::StandbyStatusUpdate;
using Clock = std::chrono::steady_clock;

// Spool properties owned by capture.
constexpr char kPropSystemId[] = "source.system_id";
constexpr char kPropDatabase[] = "source.database";
constexpr char kPropSlot[] = "source.slot";
constexpr char kPropTimeline[] = "source.timeline";
// Consistent point of the slot whose snapshot completed; empty while a (re)snapshot is due.
constexpr char kPropSnapshotDone[] = "snapshot.done";
// Set just before this spool's capture creates its slot: only such a slot may be dropped by it.
constexpr char kPropSlotCreated[] = "capture.slot_created";
// Highest flush LSN capture ever confirmed: a slot confirmed beyond it was moved by someone else.
constexpr char kPropConfirmed[] = "capture.confirmed_flush";

constexpr int kOps = v1::Op_ARRAYSIZE;

// Emits heartbeats and samples the source's WAL position on its own connection, so a slow
// round trip never stalls the receive loop. The WAL position is sampled every second whatever the
// heartbeat interval, so the lag in bytes stays current.
class HeartbeatThread {
 public:
  HeartbeatThread(const CaptureOptions& options, Gauge& source_wal_lsn, const Gauge& confirmed,
                  Gauge& lag_bytes)
      : options_(options),
        source_wal_lsn_(source_wal_lsn),
        confirmed_(confirmed),
        lag_bytes_(lag_bytes) {
    thread_ = std::thread([this] { Run(); });
  }
  ~HeartbeatThread() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void Run() {
    std::unique_ptr<SourceCatalog> catalog;
    const auto interval =
        std::chrono::milliseconds(std::max<int64_t>(1, options_.heartbeat_interval_ms));
    const auto tick = std::min<Clock::duration>(interval, std::chrono::seconds(1));
    auto next_heartbeat = Clock::now() + interval;
    while (true) {
      {
        std::unique_lock lock(mu_);
        if (cv_.wait_for(lock, tick, [this] { return stopping_; })) return;
      }
      if (!catalog) {
        auto c = SourceCatalog::Connect(options_.source, options_.source_password);
        if (!c.ok()) {
          spdlog::warn("heartbeat: {}", c.status().ToString());
          continue;
        }
        catalog = std::move(c).value();
      }
      if (Clock::now() >= next_heartbeat) {
        next_heartbeat = Clock::now() + interval;
        Status st = catalog->EmitHeartbeat();
        if (!st.ok()) {
          spdlog::warn("heartbeat: {}", st.ToString());
          catalog.reset();
          continue;
        }
      }
      auto lsn = catalog->CurrentWalLsn();
      if (!lsn.ok()) {
        catalog.reset();
        continue;
      }
      double wal = static_cast<double>(lsn->value());
      source_wal_lsn_.Set(wal);
      double confirmed = confirmed_.value();
      if (confirmed > 0) lag_bytes_.Set(std::max(0.0, wal - confirmed));
    }
  }

  const CaptureOptions& options_;
  Gauge& source_wal_lsn_;
  const Gauge& confirmed_;
  Gauge& lag_bytes_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

// What the spool writer reports, for /metrics.
struct SpoolWriterMetrics {
  Counter* events_spooled = nullptr;
  Counter* transactions = nullptr;
  std::array<Counter*, kOps> spooled_by_op{};
  Gauge* last_commit_lsn = nullptr;
  Gauge* spool_failing = nullptr;
  std::atomic<int64_t>* last_event_at_ns = nullptr;  // steady clock
};

// Syncs batches of events into the spool on its own thread, so that receiving and decoding go on
// while a batch syncs; what arrives meanwhile makes the next, larger batch (group commit). The
// queue is bounded, so a slow or failing spool holds the receiver back instead of filling memory.
// The spool's last complete commit LSN, which capture confirms, only moves once a batch is synced.
class SpoolWriter {
 public:
  SpoolWriter(Spool& spool, const SpoolWriterMetrics& metrics, const std::atomic<bool>& stop,
              size_t max_queued, const Keyring& keyring)
      : spool_(spool), metrics_(metrics), stop_(stop), max_queued_(max_queued), keyring_(keyring) {
    thread_ = std::thread([this] { Run(); });
  }
  // Abandons batches not yet written: nothing of them was confirmed, so the source sends them
  // again.
  ~SpoolWriter() {
    {
      std::lock_guard lock(mu_);
      abandon_ = true;
    }
    work_.notify_all();
    thread_.join();
  }

  // Nothing queued or being written.
  bool idle() const { return in_flight_.load() == 0; }

  // Queues `batch` for writing and hands back an empty one in its place; false (and `batch`
  // untouched) when the queue is full or the writer has failed.
  bool Offer(std::unique_ptr<capture::EventBatch>& batch) {
    {
      std::lock_guard lock(mu_);
      if (failed_ || queue_.size() >= max_queued_) return false;
      queue_.push_back(std::move(batch));
      in_flight_.fetch_add(1);
      if (spare_.empty()) {
        batch = std::make_unique<capture::EventBatch>();
      } else {
        batch = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    work_.notify_one();
    return true;
  }

  // Waits up to `timeout` for room in the queue; true if there is room.
  bool WaitForRoom(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return room_.wait_for(lock, timeout, [this] {
      return failed_ || queue_.size() < max_queued_;
    }) && !failed_;
  }

  // Waits until everything queued is synced; the writer's error if it gave up.
  Status Finish() {
    std::unique_lock lock(mu_);
    room_.wait(lock, [this] { return failed_ || in_flight_.load() == 0; });
    return failed_ ? error_ : Status::Ok();
  }

  // The writer's error once it gave up (only when capture is stopping), else Ok.
  Status error() const {
    if (!gave_up_.load()) return Status::Ok();
    std::lock_guard lock(mu_);
    return failed_ ? error_ : Status::Ok();
  }

 private:
  void Run() {
    while (true) {
      capture::EventBatch* batch = nullptr;
      {
        std::unique_lock lock(mu_);
        work_.wait(lock, [this] { return abandon_ || !queue_.empty(); });
        if (abandon_) return;
        batch = queue_.front().get();
      }
      Status st = Write(*batch);
      std::lock_guard lock(mu_);
      std::unique_ptr<capture::EventBatch> done = std::move(queue_.front());
      queue_.pop_front();
      done->Reset();
      spare_.push_back(std::move(done));
      in_flight_.fetch_sub(1);
      if (!st.ok()) {
        failed_ = true;
        gave_up_ = true;
        error_ = st;
        in_flight_.store(0);
        queue_.clear();
      }
      room_.notify_all();
      if (failed_) return;
    }
  }

  // Appends with retries: while the spool cannot be written nothing more is confirmed, so the
  // source keeps the WAL and nothing is lost; capture carries on once the spool works again.
  Status Write(capture::EventBatch& batch) {
    // Sealed here, on the writer's thread, so the receiver does not wait for the cipher; an event
    // sealed already (a retried batch) stays as it is.
    for (auto& ev : batch.events()) LIFELINE_RETURN_IF_ERROR(keyring_.Seal(ev));
    auto backoff = std::chrono::milliseconds(200);
    int failures = 0;
    while (true) {
      auto r = spool_.Append(batch.events());
      if (r.ok()) break;
      ++failures;
      metrics_.spool_failing->Set(1);
      spdlog::error(
          "cannot write the spool {} ({}); capture confirms nothing past {} until it can, so "
          "PostgreSQL keeps the WAL and nothing is lost. Free space on the filesystem of {} "
          "(or fix the error above); retrying in {} ms (attempt {})",
          spool_.dir(), r.status().ToString(), spool_.last_complete_commit_lsn().ToString(),
          spool_.dir(), backoff.count(), failures);
      bool stopping = false;
      {
        std::unique_lock lock(mu_);
        stopping = work_.wait_for(lock, backoff, [this] { return abandon_; });
      }
      if (stopping || stop_.load()) {
        return Status::IOError("stopped while the spool could not be written: " +
                               r.status().ToString());
      }
      backoff = std::min(backoff * 2, std::chrono::milliseconds(10'000));
    }
    if (failures > 0) {
      spdlog::warn("spool {} is writable again after {} failed attempt(s); capture goes on",
                   spool_.dir(), failures);
    }
    metrics_.spool_failing->Set(0);
    uint64_t txns = 0;
    std::array<uint64_t, kOps> by_op{};
    for (const auto& ev : batch.events()) {
      if (ev.op() >= 0 && ev.op() < kOps) ++by_op[ev.op()];
      if (ev.last_in_txn()) ++txns;
    }
    for (int op = 0; op < kOps; ++op) {
      if (by_op[op] > 0) metrics_.spooled_by_op[op]->Add(by_op[op]);
    }
    metrics_.events_spooled->Add(batch.size());
    metrics_.transactions->Add(txns);
    metrics_.last_commit_lsn->Set(static_cast<double>(spool_.last_complete_commit_lsn().value()));
    metrics_.last_event_at_ns->store(Clock::now().time_since_epoch().count());
    return Status::Ok();
  }

  Spool& spool_;
  const SpoolWriterMetrics& metrics_;
  const std::atomic<bool>& stop_;
  const size_t max_queued_;
  const Keyring& keyring_;
  mutable std::mutex mu_;
  std::condition_variable work_;
  std::condition_variable room_;
  std::deque<std::unique_ptr<capture::EventBatch>> queue_;  // front: being written
  std::vector<std::unique_ptr<capture::EventBatch>> spare_;
  std::atomic<size_t> in_flight_{0};
  bool abandon_ = false;
  bool failed_ = false;
  std::atomic<bool> gave_up_{false};  // failed_, readable without the lock
  Status error_;
  std::thread thread_;
};

class CaptureDaemon {
 public:
  CaptureDaemon(const CaptureOptions& options, const std::atomic<bool>& stop)
      : options_(options),
        stop_(stop),
        events_spooled_(&metrics_.counter("lifeline_capture_events_spooled_total",
                                          "Events streamed from the slot and synced into the "
                                          "spool (all operations)")),
        transactions_(&metrics_.counter("lifeline_capture_transactions_total",
                                        "Source transactions spooled")),
        skipped_(&metrics_.counter("lifeline_capture_transactions_skipped_total",
                                   "Transactions re-sent by the source and already spooled")),
        snapshot_rows_(&metrics_.counter("lifeline_capture_snapshot_rows_total",
                                         "Rows read by the initial snapshot")),
        snapshot_rows_spooled_(&metrics_.counter("lifeline_capture_snapshot_rows_spooled_total",
                                                 "Rows of the initial snapshot synced into the "
                                                 "spool")),
        snapshot_rows_estimated_(
            &metrics_.gauge("lifeline_capture_snapshot_rows_estimated",
                            "Rows the initial snapshot expects to read (the planner's estimate)")),
        snapshot_done_(&metrics_.gauge("lifeline_capture_snapshot_done",
                                       "1 once the initial snapshot is complete in the spool")),
        last_commit_lsn_(&metrics_.gauge("lifeline_capture_last_commit_lsn",
                                         "Commit LSN of the last transaction synced in the spool")),
        confirmed_lsn_(&metrics_.gauge("lifeline_capture_confirmed_flush_lsn",
                                       "Flush LSN last confirmed to the source")),
        source_wal_lsn_(&metrics_.gauge("lifeline_capture_source_wal_lsn",
                                        "The source's current WAL LSN (sampled every second)")),
        lag_bytes_(&metrics_.gauge("lifeline_capture_source_lag_bytes",
                                   "Source WAL LSN minus the confirmed flush LSN")),
        since_event_(&metrics_.gauge("lifeline_capture_seconds_since_last_event",
                                     "Seconds since the last event was spooled")),
        spool_failing_(&metrics_.gauge("lifeline_capture_spool_write_failing",
                                       "1 while writes to the spool fail (nothing is confirmed)")),
        connected_(
            &metrics_.gauge("lifeline_capture_connected", "1 while the replication stream is up")) {
    for (int op = 0; op < kOps; ++op) {
      if (!v1::Op_IsValid(op) || op == v1::OP_UNSPECIFIED) continue;
      MetricLabels labels = {{"op", std::string(OpName(static_cast<v1::Op>(op)))}};
      decoded_by_op_[op] = &metrics_.counter("lifeline_capture_events_decoded_total",
                                             "Events decoded, by operation", labels);
      writer_metrics_.spooled_by_op[op] =
          &metrics_.counter("lifeline_capture_events_spooled_by_op_total",
                            "Events synced into the spool, by operation", labels);
    }
    writer_metrics_.spooled_by_op[v1::OP_UNSPECIFIED] =
        writer_metrics_.spooled_by_op[v1::OP_INSERT];
    decoded_by_op_[v1::OP_UNSPECIFIED] = decoded_by_op_[v1::OP_INSERT];
    writer_metrics_.events_spooled = events_spooled_;
    writer_metrics_.transactions = transactions_;
    writer_metrics_.last_commit_lsn = last_commit_lsn_;
    writer_metrics_.spool_failing = spool_failing_;
    writer_metrics_.last_event_at_ns = &last_event_at_ns_;
    last_event_at_ns_ = Clock::now().time_since_epoch().count();
  }

  Status Run();

 private:
  Status Prepare();
  Status Session();
  Status CheckIdentity(const capture::SystemIdentity& id);
  Status CreateSlotAndSnapshot(ReplicationConnection& repl, const capture::SystemIdentity& id);
  Status Stream(ReplicationConnection& repl);
  // `quiet`: nothing received is still on its way to the spool.
  Status SendStatus(ReplicationConnection& repl, bool quiet);
  HealthReport Health() const;

  const CaptureOptions& options_;
  const std::atomic<bool>& stop_;
  Metrics metrics_;
  Counter* events_spooled_;
  Counter* transactions_;
  Counter* skipped_;
  Counter* snapshot_rows_;
  Counter* snapshot_rows_spooled_;
  Gauge* snapshot_rows_estimated_;
  Gauge* snapshot_done_;
  Gauge* last_commit_lsn_;
  Gauge* confirmed_lsn_;
  Gauge* source_wal_lsn_;
  Gauge* lag_bytes_;
  Gauge* since_event_;
  Gauge* spool_failing_;
  Gauge* connected_;
  std::array<Counter*, kOps> decoded_by_op_{};
  SpoolWriterMetrics writer_metrics_;
  std::atomic<int64_t> last_event_at_ns_{0};

  std::unique_ptr<Spool> spool_;
  Keyring keyring_;
  std::unique_ptr<SourceCatalog> catalog_;
  std::vector<capture::TableName> tables_;
  v1::Source source_;
  bool resnapshot_due_ = false;
  // Of the sender holding our slot at the last try (see Session).
  bool slot_holder_silent_ = false;
  std::chrono::milliseconds wal_sender_timeout_{60'000};
  uint64_t received_lsn_ = 0;
  uint64_t idle_lsn_ = 0;  // a keepalive position reached with nothing in flight
  uint64_t confirmed_ = 0;
  uint64_t persisted_confirmed_ = 0;
  bool streamed_ = false;  // the last session reached streaming (resets the backoff)
  // The companion (shipper) thread and how it ended.
  std::atomic<bool> companion_stop_{false};
  std::atomic<bool> companion_done_{false};
  Status companion_status_;
  Clock::time_point spool_full_logged_{};
};

HealthReport CaptureDaemon::Health() const {
  bool healthy = connected_->value() > 0 && spool_failing_->value() == 0;
  std::string json =
      std::string("{\"status\":") + (healthy ? "\"ok\"" : "\"degraded\"") +
      ",\"connected\":" + (connected_->value() > 0 ? "true" : "false") +
      ",\"spool_write_failing\":" + (spool_failing_->value() > 0 ? "true" : "false") +
      ",\"last_commit_lsn\":" +
      JsonQuote(Lsn(static_cast<uint64_t>(last_commit_lsn_->value())).ToString()) +
      ",\"confirmed_flush_lsn\":" +
      JsonQuote(Lsn(static_cast<uint64_t>(confirmed_lsn_->value())).ToString()) +
      ",\"seconds_since_last_event\":" + std::to_string(since_event_->value()) + "}";
  return {healthy, json};
}

Status CaptureDaemon::Prepare() {
  LIFELINE_ASSIGN_OR_RETURN(tables_, capture::ParseTableNames(options_.tables));
  if (tables_.empty()) return Status::InvalidArgument("no --table to capture");
  LIFELINE_ASSIGN_OR_RETURN(keyring_, Keyring::Load(options_.encryption_key_files));
  if (!keyring_.empty()) {
    spdlog::info("sealing row images with key {} (keys loaded: {})", keyring_.sealing_key_id(),
                 keyring_.Describe());
  }
  LIFELINE_ASSIGN_OR_RETURN(spool_, Spool::OpenForWrite(options_.spool_dir));
  if (auto p = Lsn::Parse(spool_->GetProperty(kPropConfirmed)); p.ok()) {
    persisted_confirmed_ = p->value();
  }
  std::string spool_slot = spool_->GetProperty(kPropSlot);
  if (!spool_slot.empty() && spool_slot != options_.slot) {
    return Status::FailedPrecondition("spool " + options_.spool_dir + " belongs to slot " +
                                      spool_slot + ", not " + options_.slot +
                                      "; use that slot or a new --spool");
  }
  resnapshot_due_ = options_.resnapshot;
  snapshot_done_->Set(spool_->GetProperty(kPropSnapshotDone).empty() ? 0 : 1);
  last_commit_lsn_->Set(static_cast<double>(spool_->last_complete_commit_lsn().value()));
  return Status::Ok();
}

Status CaptureDaemon::CheckIdentity(const capture::SystemIdentity& id) {
  std::string known = spool_->GetProperty(kPropSystemId);
  if (!known.empty() && known != id.system_id) {
    return Status::FailedPrecondition(
        "spool " + options_.spool_dir + " holds changes of PostgreSQL system " + known +
        " but the source is system " + id.system_id +
        "; point --source at the original primary or use a new --spool");
  }
  source_.set_system_id(id.system_id);
  source_.set_timeline(id.timeline);
  source_.set_database(id.database);
  source_.set_slot_name(options_.slot);
  if (known.empty()) {
    LIFELINE_RETURN_IF_ERROR(spool_->SetProperty(kPropSystemId, id.system_id));
    LIFELINE_RETURN_IF_ERROR(spool_->SetProperty(kPropDatabase, id.database));
    LIFELINE_RETURN_IF_ERROR(spool_->SetProperty(kPropSlot, options_.slot));
  }
  return spool_->SetProperty(kPropTimeline, std::to_string(id.timeline));
}

Status CaptureDaemon::CreateSlotAndSnapshot(ReplicationConnection& repl,
                                            const capture::SystemIdentity& id) {
  LIFELINE_RETURN_IF_ERROR(spool_->SetProperty(kPropSlotCreated, options_.slot));
  LIFELINE_ASSIGN_OR_RETURN(auto created, repl.CreateSlotWithSnapshot(options_.slot));
  spdlog::info("created slot {} at consistent point {}; taking the initial snapshot", options_.slot,
               created.consistent_point.ToString());
  capture::SnapshotRequest req;
  req.conninfo = options_.source;
  req.password = options_.source_password;
  req.snapshot_name = created.snapshot_name;
  req.consistent_point = created.consistent_point;
  req.tables = tables_;
  req.source = source_;
  req.batch_events = options_.batch_events;
  req.keyring = &keyring_;
  req.done_properties = {{kPropSnapshotDone, created.consistent_point.ToString()},
                         {kPropConfirmed, created.consistent_point.ToString()}};
  capture::SnapshotProgress progress{snapshot_rows_, snapshot_rows_spooled_,
                                     snapshot_rows_estimated_};
  snapshot_done_->Set(0);
  LIFELINE_ASSIGN_OR_RETURN(uint64_t rows, ReadSnapshot(req, *catalog_, *spool_, progress, stop_));
  decoded_by_op_[v1::OP_SNAPSHOT]->Add(rows);
  writer_metrics_.spooled_by_op[v1::OP_SNAPSHOT]->Add(rows);
  snapshot_done_->Set(1);
  last_commit_lsn_->Set(static_cast<double>(spool_->last_complete_commit_lsn().value()));
  persisted_confirmed_ = created.consistent_point.value();
  spdlog::info("snapshot complete: {} rows spooled through seq {}", rows,
               spool_->last_complete_seq());
  return Status::Ok();
}

Status CaptureDaemon::Session() {
  if (!catalog_) {
    LIFELINE_ASSIGN_OR_RETURN(catalog_,
                              SourceCatalog::Connect(options_.source, options_.source_password));
    LIFELINE_RETURN_IF_ERROR(catalog_->CheckServerSettings(options_.slot));
    LIFELINE_RETURN_IF_ERROR(catalog_->CheckTables(tables_));
    LIFELINE_RETURN_IF_ERROR(catalog_->EnsurePublication(options_.publication, tables_));
  }
  LIFELINE_ASSIGN_OR_RETURN(
      auto repl, ReplicationConnection::Connect(options_.source, options_.source_password));
  // A transaction cut off with the last connection comes again in full.
  LIFELINE_RETURN_IF_ERROR(spool_->DiscardIncomplete());
  LIFELINE_ASSIGN_OR_RETURN(auto id, repl->IdentifySystem());
  LIFELINE_RETURN_IF_ERROR(CheckIdentity(id));
  LIFELINE_ASSIGN_OR_RETURN(auto slot, catalog_->FindSlot(options_.slot));
  bool snapshot_done = !spool_->GetProperty(kPropSnapshotDone).empty();
  if (slot && slot->active_pid != 0) {
    // A sender that has not heard from its client for a while is most likely serving a capture
    // that is gone (a cut network, a killed host) and lets go after wal_sender_timeout; one whose
    // client answers belongs to a live consumer.
    slot_holder_silent_ = slot->holder_silent_ms > 11'000 || slot->holder_silent_ms < 0;
    wal_sender_timeout_ = std::chrono::milliseconds(slot->wal_sender_timeout_ms);
    return Status::Unavailable("replication slot " + options_.slot + " is active for PID " +
                               std::to_string(slot->active_pid));
  }
  bool slot_is_ours = spool_->GetProperty(kPropSlotCreated) == options_.slot;

  if (resnapshot_due_) {
    // Mark the window first, so a crash anywhere below resumes the resnapshot, never skips it.
    v1::ChangeEvent marker;
    *marker.mutable_source() = source_;
    marker.set_op(v1::OP_RESNAPSHOT_MARKER);
    marker.set_commit_lsn(spool_->last_complete_commit_lsn().value());
    marker.set_event_lsn(marker.commit_lsn());
    marker.set_commit_time_us(NowUnixMicros());
    marker.set_last_in_txn(true);
    marker.set_txn_event_count(1);
    marker.set_message("lifeline.resnapshot: new slot and snapshot; changes between seq " +
                       std::to_string(spool_->last_complete_seq()) +
                       " and the snapshot may have been missed upstream");
    std::vector<v1::ChangeEvent> one{marker};
    LIFELINE_RETURN_IF_ERROR(spool_->Append(one, {{kPropSnapshotDone, ""}}).status());
    snapshot_done_->Set(0);
    if (slot) LIFELINE_RETURN_IF_ERROR(repl->DropSlot(options_.slot));
    spdlog::warn("--resnapshot: recorded a marker at seq {}, dropped the old slot if any",
                 spool_->last_complete_seq());
    resnapshot_due_ = false;
    slot.reset();
    snapshot_done = false;
  }

  if (!slot) {
    if (snapshot_done) {
      return Status::FailedPrecondition(
          "replication slot " + options_.slot +
          " is missing on the source (dropped, or the source failed over), so changes may "
          "have been missed; lifeline does not recreate it silently. Run capture with "
          "--resnapshot to make a new slot and snapshot again (downstream upserts converge)");
    }
    LIFELINE_RETURN_IF_ERROR(CreateSlotAndSnapshot(*repl, id));
  } else {
    if (slot->wal_status == "lost") {
      return Status::FailedPrecondition(
          "replication slot " + options_.slot +
          " was invalidated by the source (wal_status = lost, max_slot_wal_keep_size exceeded): "
          "WAL it needed is gone and changes were missed. Run capture with --resnapshot");
    }
    if (slot->plugin != "pgoutput") {
      return Status::FailedPrecondition("replication slot " + options_.slot + " uses plugin " +
                                        slot->plugin + ", not pgoutput; choose another --slot");
    }
    if (!snapshot_done && !slot_is_ours) {
      return Status::FailedPrecondition(
          "replication slot " + options_.slot +
          " exists but was not created by this spool's capture; choose another --slot, or drop "
          "it if nothing uses it: SELECT pg_drop_replication_slot('" +
          options_.slot + "')");
    }
    if (!snapshot_done) {
      // The previous run stopped inside the snapshot; its exported snapshot died with it.
      spdlog::warn("the initial snapshot did not finish last time; starting it over");
      LIFELINE_RETURN_IF_ERROR(repl->DropSlot(options_.slot));
      LIFELINE_RETURN_IF_ERROR(CreateSlotAndSnapshot(*repl, id));
    } else {
      uint64_t ours = std::max(persisted_confirmed_, spool_->last_complete_commit_lsn().value());
      if (slot->confirmed_flush.value() > ours) {
        return Status::FailedPrecondition(
            "replication slot " + options_.slot + " has confirmed " +
            slot->confirmed_flush.ToString() + ", beyond anything this spool confirmed (" +
            Lsn(ours).ToString() +
            "): another consumer advanced it or it was recreated, so changes may have been "
            "missed. Run capture with --resnapshot");
      }
    }
  }
  return Stream(*repl);
}

Status CaptureDaemon::SendStatus(ReplicationConnection& repl, bool quiet) {
  // Only what is synced in the spool; a keepalive position only when nothing is on its way.
  uint64_t flush = spool_->last_complete_commit_lsn().value();
  if (quiet) flush = std::max(flush, idle_lsn_);
  flush = std::max(flush, confirmed_);  // never move backwards
  if (flush > persisted_confirmed_) {
    Status st = spool_->SetProperty(kPropConfirmed, Lsn(flush).ToString());
    if (st.ok()) {
      persisted_confirmed_ = flush;
    } else {
      // The spool cannot be written (the writer reports why). Confirm no more than a restart
      // would accept as ours; the status still goes out, so the source keeps the connection.
      flush =
          std::max({persisted_confirmed_, spool_->last_complete_commit_lsn().value(), confirmed_});
    }
  }
  StandbyStatusUpdate update;
  update.write_lsn = std::max(received_lsn_, flush);
  update.flush_lsn = flush;
  update.apply_lsn = flush;
  update.client_time_us = NowUnixMicros();
  LIFELINE_RETURN_IF_ERROR(repl.SendStatus(update));
  confirmed_ = flush;
  confirmed_lsn_->Set(static_cast<double>(flush));
  double wal = source_wal_lsn_->value();
  if (wal > 0) lag_bytes_->Set(std::max(0.0, wal - static_cast<double>(flush)));
  return Status::Ok();
}

Status CaptureDaemon::Stream(ReplicationConnection& repl) {
  // Under load a batch gathers for this long (or up to --batch-events) before it is handed to the
  // writer, so syncs are few and large; when the stream pauses it goes at once.
  constexpr auto kGatherTime = std::chrono::milliseconds(5);
  // A batch is handed over once the source sent this much for it, whatever its event count.
  constexpr size_t kBatchBytes = 8 << 20;
  // Batches waiting for the writer, beyond the one it writes: bounds capture's memory.
  constexpr size_t kQueuedBatches = 2;

  PgOutputDecoder decoder;
  capture::PgOutputMessage decoded;  // reused message by message
  ChangeBuilder builder(
      source_, [this](uint32_t oid, int32_t typmod) { return catalog_->TypeName(oid, typmod); });
  Lsn start = spool_->last_complete_commit_lsn();
  builder.set_skip_through_commit_lsn(start.value());
  LIFELINE_RETURN_IF_ERROR(repl.StartReplication(options_.slot, start, options_.publication));
  spdlog::info("streaming from slot {} at {} (spool at seq {})", options_.slot, start.ToString(),
               spool_->last_complete_seq());
  connected_->Set(1);
  streamed_ = true;
  struct Disconnected {
    Gauge* g;
    ~Disconnected() { g->Set(0); }
  } disconnected{connected_};
  HeartbeatThread heartbeat(options_, *source_wal_lsn_, *confirmed_lsn_, *lag_bytes_);
  // Declared after the builder and the batch's owner so it is gone before they are.
  SpoolWriter writer(*spool_, writer_metrics_, stop_, kQueuedBatches, keyring_);
  auto batch = std::make_unique<capture::EventBatch>();
  Clock::time_point batch_since{};
  idle_lsn_ = 0;
  auto last_status = Clock::now();
  uint64_t skipped_before = 0;
  const size_t max_events = std::max<size_t>(1, options_.batch_events);
  bool reply_due = false;    // the server asked for a status update
  bool stream_busy = false;  // the last receive brought a message
  bool paused_full = false;  // held back by --spool-max-bytes

  auto count_decoded = [&](const capture::EventBatch& b) {
    std::array<uint64_t, kOps> by_op{};
    for (size_t i = 0; i < b.size(); ++i) {
      int op = b[i].op();
      if (op >= 0 && op < kOps) ++by_op[op];
    }
    for (int op = 0; op < kOps; ++op) {
      if (by_op[op] > 0) decoded_by_op_[op]->Add(by_op[op]);
    }
  };
  auto quiet = [&] { return batch->empty() && writer.idle() && !builder.in_transaction(); };

  while (!stop_.load()) {
    if (companion_done_.load()) {
      return companion_status_.ok() ? Status::Internal("the shipper stopped unexpectedly")
                                    : companion_status_;
    }
    LIFELINE_RETURN_IF_ERROR(writer.error());
    since_event_->Set(std::chrono::duration<double>(Clock::now().time_since_epoch() -
                                                    Clock::duration(last_event_at_ns_.load()))
                          .count());
    if (reply_due || Clock::now() - last_status >= std::chrono::seconds(1)) {
      LIFELINE_RETURN_IF_ERROR(SendStatus(repl, quiet()));
      last_status = Clock::now();
      reply_due = false;
    }
    if (options_.spool_max_bytes > 0 && spool_->live_bytes() >= options_.spool_max_bytes) {
      // Full: stop reading and hold the confirmed position; the slot keeps the WAL.
      spool_failing_->Set(1);
      paused_full = true;
      if (Clock::now() - spool_full_logged_ > std::chrono::seconds(10)) {
        spool_full_logged_ = Clock::now();
        spdlog::error(
            "spool holds {} bytes, at --spool-max-bytes {}: capture has paused and "
            "confirms nothing more; PostgreSQL retains WAL until the shipper drains it",
            spool_->live_bytes(), options_.spool_max_bytes);
      }
      SleepUnlessStopped(stop_, std::chrono::milliseconds(100));
      continue;
    }
    if (!batch->empty()) {
      // Hand the batch to the writer when it is free and the batch has gathered long enough, or
      // when the batch is full; a full batch waits (not reading) until there is room.
      bool full = batch->size() >= max_events || batch->bytes() >= kBatchBytes;
      bool gathered = Clock::now() - batch_since >= kGatherTime;
      if (full || (writer.idle() && (gathered || !stream_busy))) {
        count_decoded(*batch);
        if (!writer.Offer(batch)) {
          if (!full) continue;
          writer.WaitForRoom(std::chrono::milliseconds(100));
          continue;
        }
      }
    }
    if (paused_full) {
      spool_failing_->Set(0);
      paused_full = false;
    }
    // While a batch waits for the writer, look back often so it goes as soon as the writer is free.
    auto wait = batch->empty() ? std::chrono::milliseconds(100) : std::chrono::milliseconds(1);
    LIFELINE_ASSIGN_OR_RETURN(auto msg, repl.Receive(wait));
    stream_busy = msg.has_value();
    if (!msg) continue;
    if (const auto* x = std::get_if<capture::XLogData>(&*msg)) {
      LIFELINE_RETURN_IF_ERROR(decoder.DecodeInto(x->payload, &decoded));
      if (batch->empty()) batch_since = Clock::now();
      LIFELINE_RETURN_IF_ERROR(builder.Apply(decoded, decoder, x->wal_start, batch.get()));
      batch->add_bytes(x->payload.size());
      received_lsn_ = std::max(received_lsn_, x->wal_start);
    } else if (const auto* k = std::get_if<capture::PrimaryKeepalive>(&*msg)) {
      received_lsn_ = std::max(received_lsn_, k->wal_end);
      if (quiet()) idle_lsn_ = k->wal_end;
      if (k->reply_requested) reply_due = true;
    }
    if (builder.transactions_skipped() != skipped_before) {
      skipped_->Add(builder.transactions_skipped() - skipped_before);
      skipped_before = builder.transactions_skipped();
    }
  }
  // Stopping: write what was received, then confirm it.
  if (!batch->empty()) {
    count_decoded(*batch);
    while (!writer.Offer(batch)) {
      LIFELINE_RETURN_IF_ERROR(writer.error());
      writer.WaitForRoom(std::chrono::milliseconds(100));
    }
  }
  LIFELINE_RETURN_IF_ERROR(writer.Finish());
  LIFELINE_RETURN_IF_ERROR(SendStatus(repl, !builder.in_transaction()));
  spdlog::info("capture stopped: spool at seq {}, confirmed {}", spool_->last_complete_seq(),
               Lsn(confirmed_).ToString());
  return Status::Ok();
}

Status CaptureDaemon::Run() {
  LIFELINE_RETURN_IF_ERROR(Prepare());
  std::unique_ptr<StatusServer> http;
  if (!options_.metrics_addr.empty()) {
    LIFELINE_ASSIGN_OR_RETURN(
        http, StatusServer::Start(options_.metrics_addr, &metrics_, [this] { return Health(); }));
    spdlog::info("/health and /metrics on {}:{}", http->host(), http->port());
  }
  std::thread companion;
  if (options_.companion) {
    companion = std::thread([this] {
      companion_status_ = options_.companion(*spool_, metrics_, companion_stop_);
      companion_done_ = true;
    });
  }
  struct JoinCompanion {
    CaptureDaemon* self;
    std::thread* t;
    ~JoinCompanion() {
      self->companion_stop_ = true;
      if (t->joinable()) t->join();
    }
  } join_companion{this, &companion};
  auto backoff = std::chrono::milliseconds(250);
  int attempt = 0;
  auto slot_busy_since = Clock::time_point::max();
  auto senders_full_since = Clock::time_point::max();
  while (!stop_.load()) {
    streamed_ = false;
    Status st = Session();
    if (companion_done_.load() && !companion_status_.ok()) return companion_status_;
    if (st.ok()) return st;
    if (st.code() != StatusCode::kUnavailable) return st;
    // The walsender of a capture that was just killed may hold the slot a moment longer, and one
    // whose client vanished without closing the connection holds it until wal_sender_timeout; a
    // slot held for long by a sender whose client answers belongs to another consumer.
    if (st.message().find("is active for PID") != std::string::npos) {
      slot_busy_since = std::min(slot_busy_since, Clock::now());
      auto grace = std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(15));
      if (slot_holder_silent_) grace += wal_sender_timeout_;
      if (Clock::now() - slot_busy_since > grace) {
        return Status::FailedPrecondition(st.message() + "; another process is consuming slot " +
                                          options_.slot + ": stop it or choose another --slot");
      }
    } else {
      slot_busy_since = Clock::time_point::max();
    }
    // Likewise a WAL sender of a capture just killed may hold the last free one for a moment.
    if (st.message().find("no free WAL sender") != std::string::npos) {
      senders_full_since = std::min(senders_full_since, Clock::now());
      if (Clock::now() - senders_full_since > std::chrono::seconds(15)) {
        return Status::FailedPrecondition(st.message());
      }
    } else {
      senders_full_since = Clock::time_point::max();
    }
    // A restarting source or a cut network: keep the spool, retry the source.
    catalog_.reset();
    if (streamed_) {
      attempt = 0;
      backoff = std::chrono::milliseconds(250);
    }
    ++attempt;
    spdlog::warn("source unavailable (attempt {}): {}; retrying in {} ms", attempt, st.message(),
                 backoff.count());
    if (SleepUnlessStopped(stop_, backoff)) break;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(10'000));
  }
  return Status::Ok();
}

}  // namespace

Status RunCapture(const CaptureOptions& options, const std::atomic<bool>& stop) {
  CaptureDaemon daemon(options, stop);
  return daemon.Run();
}

}  // namespace lifeline
