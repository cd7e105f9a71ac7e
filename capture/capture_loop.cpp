// The loop that drives capture: slot and snapshot set-up, then receive (ReplicationConnection),
// decode (PgOutputDecoder), transform (ChangeBuilder), spool, and confirm.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "capture/capture.h"
#include "capture/change_builder.h"
#include "capture/pgoutput_decoder.h"
#include "capture/replication_connection.h"
#include "capture/snapshot_reader.h"
#include "capture/source_catalog.h"
#include "common/event_format.h"
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

// Emits heartbeats and samples the source's WAL position on its own connection, so a slow
// round trip never stalls the receive loop.
class HeartbeatThread {
 public:
  HeartbeatThread(const CaptureOptions& options, Gauge& source_wal_lsn)
      : options_(options), source_wal_lsn_(source_wal_lsn) {
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
    while (true) {
      {
        std::unique_lock lock(mu_);
        if (cv_.wait_for(lock, std::chrono::milliseconds(options_.heartbeat_interval_ms),
                         [this] { return stopping_; })) {
          return;
        }
      }
      if (!catalog) {
        auto c = SourceCatalog::Connect(options_.source, options_.source_password);
        if (!c.ok()) {
          spdlog::warn("heartbeat: {}", c.status().ToString());
          continue;
        }
        catalog = std::move(c).value();
      }
      Status st = catalog->EmitHeartbeat();
      if (st.ok()) {
        auto lsn = catalog->CurrentWalLsn();
        if (lsn.ok()) source_wal_lsn_.Set(static_cast<double>(lsn->value()));
      } else {
        spdlog::warn("heartbeat: {}", st.ToString());
        catalog.reset();
      }
    }
  }

  const CaptureOptions& options_;
  Gauge& source_wal_lsn_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

class CaptureDaemon {
 public:
  CaptureDaemon(const CaptureOptions& options, const std::atomic<bool>& stop)
      : options_(options),
        stop_(stop),
        events_spooled_(&metrics_.counter("lifeline_capture_events_spooled_total",
                                          "Events synced into the spool")),
        transactions_(&metrics_.counter("lifeline_capture_transactions_total",
                                        "Source transactions spooled")),
        skipped_(&metrics_.counter("lifeline_capture_transactions_skipped_total",
                                   "Transactions re-sent by the source and already spooled")),
        snapshot_rows_(&metrics_.counter("lifeline_capture_snapshot_rows_total",
                                         "Rows read by the initial snapshot")),
        last_commit_lsn_(&metrics_.gauge("lifeline_capture_last_commit_lsn",
                                         "Commit LSN of the last transaction synced in the spool")),
        confirmed_lsn_(&metrics_.gauge("lifeline_capture_confirmed_flush_lsn",
                                       "Flush LSN last confirmed to the source")),
        source_wal_lsn_(&metrics_.gauge("lifeline_capture_source_wal_lsn",
                                        "The source's current WAL LSN (sampled)")),
        lag_bytes_(&metrics_.gauge("lifeline_capture_source_lag_bytes",
                                   "Source WAL LSN minus the confirmed flush LSN")),
        since_event_(&metrics_.gauge("lifeline_capture_seconds_since_last_event",
                                     "Seconds since the last event was spooled")),
        spool_failing_(&metrics_.gauge("lifeline_capture_spool_write_failing",
                                       "1 while writes to the spool fail (nothing is confirmed)")),
        connected_(&metrics_.gauge("lifeline_capture_connected",
                                   "1 while the replication stream is up")) {}

  Status Run();

 private:
  Status Prepare();
  Status Session();
  Status CheckIdentity(const capture::SystemIdentity& id);
  Status CreateSlotAndSnapshot(ReplicationConnection& repl, const capture::SystemIdentity& id);
  Status Stream(ReplicationConnection& repl);
  Status FlushPending();
  Status SendStatus(ReplicationConnection& repl);
  Counter& OpCounter(v1::Op op);
  HealthReport Health() const;

  const CaptureOptions& options_;
  const std::atomic<bool>& stop_;
  Metrics metrics_;
  Counter* events_spooled_;
  Counter* transactions_;
  Counter* skipped_;
  Counter* snapshot_rows_;
  Gauge* last_commit_lsn_;
  Gauge* confirmed_lsn_;
  Gauge* source_wal_lsn_;
  Gauge* lag_bytes_;
  Gauge* since_event_;
  Gauge* spool_failing_;
  Gauge* connected_;
  std::map<v1::Op, Counter*> op_counters_;

  std::unique_ptr<Spool> spool_;
  std::unique_ptr<SourceCatalog> catalog_;
  std::vector<capture::TableName> tables_;
  v1::Source source_;
  bool resnapshot_due_ = false;
  std::vector<v1::ChangeEvent> pending_;
  Clock::time_point pending_since_;
  Clock::time_point last_event_at_ = Clock::now();
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

Counter& CaptureDaemon::OpCounter(v1::Op op) {
  Counter*& c = op_counters_[op];
  if (c == nullptr) {
    c = &metrics_.counter("lifeline_capture_events_total", "Events decoded, by operation",
                          {{"op", std::string(OpName(op))}});
  }
  return *c;
}

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
  req.done_properties = {{kPropSnapshotDone, created.consistent_point.ToString()},
                         {kPropConfirmed, created.consistent_point.ToString()}};
  LIFELINE_ASSIGN_OR_RETURN(uint64_t rows,
                            ReadSnapshot(req, *catalog_, *spool_, *snapshot_rows_, stop_));
  persisted_confirmed_ = created.consistent_point.value();
  spdlog::info("snapshot complete: {} rows spooled through seq {}", rows,
               spool_->last_complete_seq());
  return Status::Ok();
}

Status CaptureDaemon::Session() {
  if (!catalog_) {
    LIFELINE_ASSIGN_OR_RETURN(catalog_,
                              SourceCatalog::Connect(options_.source, options_.source_password));
    LIFELINE_RETURN_IF_ERROR(catalog_->CheckServerSettings());
    LIFELINE_RETURN_IF_ERROR(catalog_->CheckTables(tables_));
    LIFELINE_RETURN_IF_ERROR(catalog_->EnsurePublication(options_.publication, tables_));
  }
  LIFELINE_ASSIGN_OR_RETURN(
      auto repl, ReplicationConnection::Connect(options_.source, options_.source_password));
  // A transaction cut off with the last connection comes again in full.
  pending_.clear();
  LIFELINE_RETURN_IF_ERROR(spool_->DiscardIncomplete());
  LIFELINE_ASSIGN_OR_RETURN(auto id, repl->IdentifySystem());
  LIFELINE_RETURN_IF_ERROR(CheckIdentity(id));
  LIFELINE_ASSIGN_OR_RETURN(auto slot, catalog_->FindSlot(options_.slot));
  bool snapshot_done = !spool_->GetProperty(kPropSnapshotDone).empty();
  if (slot && slot->active_pid != 0) {
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

Status CaptureDaemon::FlushPending() {
  if (pending_.empty()) return Status::Ok();
  Clock::duration backoff = std::chrono::milliseconds(200);
  while (true) {
    auto r = spool_->Append(pending_);
    if (r.ok()) break;
    // Nothing is confirmed past what is synced, so the slot keeps the WAL: nothing is lost.
    spool_failing_->Set(1);
    spdlog::error(
        "cannot write the spool ({}); not confirming anything to the source until it "
        "works again; retrying",
        r.status().ToString());
    if (SleepUnlessStopped(stop_, std::chrono::duration_cast<std::chrono::milliseconds>(backoff))) {
      return Status::IOError("stopped while the spool could not be written: " +
                             r.status().ToString());
    }
    backoff = std::min<Clock::duration>(backoff * 2, std::chrono::seconds(10));
  }
  spool_failing_->Set(0);
  uint64_t txns = 0;
  for (const auto& ev : pending_) {
    OpCounter(ev.op()).Add();
    if (ev.last_in_txn()) ++txns;
  }
  events_spooled_->Add(pending_.size());
  transactions_->Add(txns);
  pending_.clear();
  last_event_at_ = Clock::now();
  last_commit_lsn_->Set(static_cast<double>(spool_->last_complete_commit_lsn().value()));
  return Status::Ok();
}

Status CaptureDaemon::SendStatus(ReplicationConnection& repl) {
  uint64_t flush = spool_->last_complete_commit_lsn().value();
  if (pending_.empty()) flush = std::max(flush, idle_lsn_);
  flush = std::max(flush, confirmed_);  // never move backwards
  if (flush > persisted_confirmed_) {
    LIFELINE_RETURN_IF_ERROR(spool_->SetProperty(kPropConfirmed, Lsn(flush).ToString()));
    persisted_confirmed_ = flush;
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
  PgOutputDecoder decoder;
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
  HeartbeatThread heartbeat(options_, *source_wal_lsn_);
  idle_lsn_ = 0;
  auto last_status = Clock::now();
  uint64_t skipped_before = 0;
  while (!stop_.load()) {
    if (companion_done_.load()) {
      return companion_status_.ok() ? Status::Internal("the shipper stopped unexpectedly")
                                    : companion_status_;
    }
    if (options_.spool_max_bytes > 0 && spool_->live_bytes() >= options_.spool_max_bytes) {
      // Full: stop reading and hold the confirmed position; the slot keeps the WAL.
      spool_failing_->Set(1);
      if (Clock::now() - spool_full_logged_ > std::chrono::seconds(10)) {
        spool_full_logged_ = Clock::now();
        spdlog::error(
            "spool holds {} bytes, at --spool-max-bytes {}: capture has paused and "
            "confirms nothing more; PostgreSQL retains WAL until the shipper drains it",
            spool_->live_bytes(), options_.spool_max_bytes);
      }
      if (Clock::now() - last_status >= std::chrono::seconds(1)) {
        LIFELINE_RETURN_IF_ERROR(SendStatus(repl));
        last_status = Clock::now();
      }
      SleepUnlessStopped(stop_, std::chrono::milliseconds(100));
      continue;
    }
    spool_failing_->Set(0);
    auto wait = pending_.empty() ? std::chrono::milliseconds(100) : std::chrono::milliseconds(0);
    LIFELINE_ASSIGN_OR_RETURN(auto msg, repl.Receive(wait));
    bool reply = false;
    if (msg) {
      if (const auto* x = std::get_if<capture::XLogData>(&*msg)) {
        LIFELINE_ASSIGN_OR_RETURN(auto decoded, decoder.Decode(x->payload));
        if (pending_.empty()) pending_since_ = Clock::now();
        LIFELINE_RETURN_IF_ERROR(builder.Apply(decoded, decoder, x->wal_start, &pending_));
        received_lsn_ = std::max(received_lsn_, x->wal_start);
        if (pending_.size() >= options_.batch_events) LIFELINE_RETURN_IF_ERROR(FlushPending());
      } else if (const auto* k = std::get_if<capture::PrimaryKeepalive>(&*msg)) {
        received_lsn_ = std::max(received_lsn_, k->wal_end);
        if (!builder.in_transaction() && pending_.empty()) idle_lsn_ = k->wal_end;
        reply = k->reply_requested;
      }
    }
    // Flush when the stream pauses, and at least every 20 ms under steady load.
    if (!pending_.empty() &&
        (!msg || Clock::now() - pending_since_ > std::chrono::milliseconds(20))) {
      LIFELINE_RETURN_IF_ERROR(FlushPending());
    }
    if (builder.transactions_skipped() != skipped_before) {
      skipped_->Add(builder.transactions_skipped() - skipped_before);
      skipped_before = builder.transactions_skipped();
    }
    since_event_->Set(std::chrono::duration<double>(Clock::now() - last_event_at_).count());
    if (reply || Clock::now() - last_status >= std::chrono::seconds(1)) {
      LIFELINE_RETURN_IF_ERROR(SendStatus(repl));
      last_status = Clock::now();
    }
  }
  LIFELINE_RETURN_IF_ERROR(FlushPending());
  LIFELINE_RETURN_IF_ERROR(SendStatus(repl));
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
  while (!stop_.load()) {
    streamed_ = false;
    Status st = Session();
    if (companion_done_.load() && !companion_status_.ok()) return companion_status_;
    if (st.ok()) return st;
    if (st.code() != StatusCode::kUnavailable) return st;
    // The walsender of a capture that was just killed may hold the slot a moment longer; a
    // slot held for long belongs to another consumer.
    if (st.message().find("is active for PID") != std::string::npos) {
      slot_busy_since = std::min(slot_busy_since, Clock::now());
      if (Clock::now() - slot_busy_since > std::chrono::seconds(15)) {
        return Status::FailedPrecondition(st.message() + "; another process is consuming slot " +
                                          options_.slot + ": stop it or choose another --slot");
      }
    } else {
      slot_busy_since = Clock::time_point::max();
    }
    // A restarting source or a cut network: keep the spool, retry the source.
    pending_.clear();
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
