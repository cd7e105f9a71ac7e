// The loop that drives the shipper: read the spool after the cursor, produce, follow delivery
// reports, store the cursor, trim what is shipped and old.
#include <spdlog/spdlog.h>

#include <chrono>
#include <vector>

#include "common/event_format.h"
#include "common/shutdown.h"
#include "common/status_server.h"
#include "shipper/delivery_tracker.h"
#include "shipper/kafka_producer.h"
#include "shipper/kafka_record.h"
#include "shipper/shipper.h"

namespace lifeline {
namespace {

using Clock = std::chrono::steady_clock;

// Events per spool read, and so between two polls for delivery reports. The reader keeps its
// iterator between reads, so slices can be small; and the smaller, the sooner what librdkafka frees
// on a report (each record's message and headers) is what the next records allocate, while it is
// still in the allocator's per-thread cache (128 took 3% less time than 1,024).
constexpr size_t kSliceEvents = 128;
constexpr size_t kSliceBytes = 4 << 20;
using shipper::DeliveryTracker;
using shipper::KafkaProducer;
using shipper::KafkaRecord;

class Shipper {
 public:
  Shipper(Spool& spool, const ShipperOptions& options, const std::atomic<bool>& stop,
          Metrics& metrics)
      : spool_(spool),
        options_(options),
        stop_(stop),
        metrics_(metrics),
        tracker_(spool.GetCursor(options.cursor_name)),
        reader_(spool.NewReader()),
        events_(metrics.counter("lifeline_shipper_events_total", "Events acknowledged by Kafka")),
        bytes_(metrics.counter("lifeline_shipper_bytes_total", "Event bytes handed to Kafka")),
        unshipped_(metrics.gauge("lifeline_shipper_unshipped_events",
                                 "Spooled events Kafka has not acknowledged")),
        lag_(metrics.gauge("lifeline_shipper_lag_seconds",
                           "Now minus the commit time of the oldest unshipped event")),
        cursor_gauge_(metrics.gauge("lifeline_shipper_cursor_seq",
                                    "Last seq acknowledged with all before it")) {}

  Status Run();

 private:
  Status Connect();
  // Serves delivery reports for up to `timeout_ms`.
  void Poll(int timeout_ms);
  // Produces record_, waiting out backpressure: true once produced, false when it was not because
  // shipping stops or the producer must be replaced.
  [[nodiscard]] Result<bool> ProduceRecord();
  void StoreCursor(bool force);
  void UpdateGauges();

  Spool& spool_;
  const ShipperOptions& options_;
  const std::atomic<bool>& stop_;
  Metrics& metrics_;
  DeliveryTracker tracker_;
  std::unique_ptr<SpoolReader> reader_;
  KafkaRecord record_;  // refilled in place for each event, so that its buffers are reused
  Counter& events_;
  Counter& bytes_;
  Gauge& unshipped_;
  Gauge& lag_;
  Gauge& cursor_gauge_;
  std::unique_ptr<KafkaProducer> producer_;
  std::atomic<bool> delivery_failed_{false};
  uint64_t acknowledged_ = 0;  // acknowledged since the last Poll
  uint64_t stored_cursor_ = 0;
  Clock::time_point stored_at_ = Clock::now();
  Clock::time_point trimmed_at_ = Clock::now();
};

Status Shipper::Connect() {
  shipper::ProducerConfig config;
  config.brokers = options_.brokers;
  config.topic = options_.topic;
  config.properties = options_.kafka_properties;
  config.partitions = options_.partitions;
  config.replication_factor = options_.replication_factor;
  LIFELINE_ASSIGN_OR_RETURN(
      producer_, KafkaProducer::Create(config, [this](uint64_t seq, std::string_view error) {
        if (error.empty()) {
          tracker_.Acknowledged(seq);
          // Into the counter after the poll: one atomic add per poll, not per record.
          ++acknowledged_;
          return;
        }
        metrics_
            .counter("lifeline_shipper_delivery_errors_total", "Failed deliveries, by error",
                     {{"code", std::string(error)}})
            .Add();
        spdlog::warn("shipper: delivery of seq {} failed: {}; re-shipping from the cursor", seq,
                     error);
        delivery_failed_ = true;
      }));
  auto backoff = std::chrono::milliseconds(500);
  while (!stop_.load()) {
    Status st = producer_->EnsureTopic(5'000);
    if (st.ok()) return st;
    if (st.code() != StatusCode::kUnavailable) return st;
    spdlog::warn("shipper: {}; capture keeps spooling; retrying in {} ms", st.message(),
                 backoff.count());
    if (SleepUnlessStopped(stop_, backoff)) break;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(10'000));
  }
  return Status::Ok();
}

void Shipper::Poll(int timeout_ms) {
  producer_->Poll(timeout_ms);
  events_.Add(acknowledged_);
  acknowledged_ = 0;
}

Result<bool> Shipper::ProduceRecord() {
  while (true) {
    Status st = producer_->Produce(record_);
    if (st.ok()) break;
    if (!producer_->FatalError().ok()) return false;  // replaced at the top of the loop
    if (st.message() != "queue full") return st;
    // Backpressure (brokers slow or away): serve reports and wait; capture keeps spooling.
    Poll(100);
    StoreCursor(false);
    if (stop_.load() || delivery_failed_.load()) return false;
  }
  return true;
}

void Shipper::StoreCursor(bool force) {
  uint64_t cursor = tracker_.cursor();
  if (cursor == stored_cursor_) return;
  if (!force && Clock::now() - stored_at_ < std::chrono::milliseconds(100)) return;
  // The periodic store does not wait for the disk (each fdatasync held the producing thread for
  // a millisecond): a cursor lost with the machine only ships events again, and any synced write
  // after it, a trim or capture's next append, makes it durable too. The store at stop is synced.
  Status st = spool_.SetCursor(options_.cursor_name, cursor,
                               force ? Spool::CursorSync::kSynced : Spool::CursorSync::kUnsynced);
  if (!st.ok()) {
    spdlog::error("shipper: cannot store the cursor: {}", st.ToString());
    return;
  }
  stored_cursor_ = cursor;
  stored_at_ = Clock::now();
  cursor_gauge_.Set(static_cast<double>(cursor));
}

void Shipper::UpdateGauges() {
  uint64_t last = spool_.last_complete_seq();
  uint64_t cursor = tracker_.cursor();
  unshipped_.Set(static_cast<double>(last > cursor ? last - cursor : 0));
  int64_t oldest = tracker_.oldest_unacknowledged_commit_time_us();
  if (oldest == 0 && last > cursor) {
    auto next = spool_.Read(cursor + 1, 1);
    if (next.ok() && !next->empty()) {
      auto ev = ParseEvent(next->front());
      if (ev.ok()) oldest = ev->commit_time_us();
    }
  }
  lag_.Set(oldest == 0 ? 0.0 : std::max(0.0, (NowUnixMicros() - oldest) / 1e6));
}

Status Shipper::Run() {
  stored_cursor_ = tracker_.cursor();
  LIFELINE_RETURN_IF_ERROR(Connect());
  uint64_t next = tracker_.cursor() + 1;
  spdlog::info("shipper: shipping to {} from seq {}", options_.topic, next);
  auto last_gauges = Clock::now();
  while (!stop_.load()) {
    if (delivery_failed_.load() || !producer_->FatalError().ok()) {
      // Replace the producer and start again after the last acknowledged seq; records after it
      // may reach the topic twice, with the same seq.
      spdlog::warn("shipper: restarting the producer at seq {} ({})", tracker_.cursor() + 1,
                   producer_->FatalError().ToString());
      producer_->Abandon();
      producer_.reset();
      tracker_.Reset();
      delivery_failed_ = false;
      LIFELINE_RETURN_IF_ERROR(Connect());
      next = tracker_.cursor() + 1;
      continue;
    }
    // Each event is produced as it is read, straight from the spool's buffer (the producer copies
    // it once); `interrupted` marks a read cut short to stop or to replace the producer.
    bool interrupted = false;
    uint64_t shipped_bytes = 0;
    auto read = reader_->Visit(
        next, kSliceEvents, kSliceBytes, [&](uint64_t seq, std::string_view bytes) -> Status {
          LIFELINE_RETURN_IF_ERROR(shipper::FillKafkaRecord(seq, bytes, &record_));
          tracker_.Sent(seq, record_.commit_time_us);
          LIFELINE_ASSIGN_OR_RETURN(bool produced, ProduceRecord());
          if (produced) {
            shipped_bytes += bytes.size();
            next = seq + 1;
          }
          if (!produced || stop_.load() || delivery_failed_.load()) {
            interrupted = true;
            return Status::Unavailable("shipping interrupted");
          }
          return Status::Ok();
        });
    bytes_.Add(shipped_bytes);
    if (interrupted) continue;
    if (read.ok() && *read == 0) {
      bool drained = next > spool_.last_complete_seq();
      if (options_.until_drained && drained && tracker_.in_flight() == 0) break;
      if (options_.until_drained && drained) {
        Poll(50);  // nothing more to read: returns with the next delivery report
      } else {
        Poll(0);
        if (!spool_.WaitForEventsAfter(next - 1, std::chrono::milliseconds(50))) Poll(0);
      }
    }
    // Records before an unreadable event went out; the error stops the shipper after them.
    if (!read.ok()) return read.status();
    Poll(0);
    StoreCursor(false);
    if (Clock::now() - last_gauges > std::chrono::milliseconds(500)) {
      UpdateGauges();
      last_gauges = Clock::now();
    }
    if (Clock::now() - trimmed_at_ > std::chrono::seconds(10)) {
      trimmed_at_ = Clock::now();
      auto trimmed = spool_.Trim(stored_cursor_, NowUnixMicros() - options_.retention_ms * 1000);
      if (!trimmed.ok()) spdlog::warn("shipper: trim failed: {}", trimmed.status().ToString());
    }
  }
  producer_->Flush(5000);
  Poll(0);
  StoreCursor(true);
  UpdateGauges();
  spdlog::info("shipper: stopped at seq {} ({} in flight)", tracker_.cursor(),
               tracker_.in_flight());
  return Status::Ok();
}

}  // namespace

Status RunShipper(Spool& spool, const ShipperOptions& options, const std::atomic<bool>& stop,
                  Metrics& metrics) {
  Shipper shipper(spool, options, stop, metrics);
  return shipper.Run();
}

Status ShipSpool(const std::string& spool_dir, const ShipperOptions& options,
                 const std::string& metrics_addr, const std::atomic<bool>& stop) {
  LIFELINE_ASSIGN_OR_RETURN(auto spool, Spool::OpenForWrite(spool_dir));
  Metrics metrics;
  std::unique_ptr<StatusServer> http;
  if (!metrics_addr.empty()) {
    LIFELINE_ASSIGN_OR_RETURN(http, StatusServer::Start(metrics_addr, &metrics, nullptr));
  }
  SpoolStats st = spool->Stats();
  spdlog::info("ship: spool {} holds seq {}..{}, cursor {}", spool_dir, st.first_seq, st.last_seq,
               spool->GetCursor(options.cursor_name));
  LIFELINE_RETURN_IF_ERROR(RunShipper(*spool, options, stop, metrics));
  uint64_t cursor = spool->GetCursor(options.cursor_name);
  if (options.until_drained && cursor < spool->last_complete_seq()) {
    return Status::Unavailable("stopped before the spool was drained: cursor " +
                               std::to_string(cursor) + " of " +
                               std::to_string(spool->last_complete_seq()));
  }
  std::printf("{\"cursor\":%llu,\"last_seq\":%llu}\n", static_cast<unsigned long long>(cursor),
              static_cast<unsigned long long>(spool->last_complete_seq()));
  return Status::Ok();
}

}  // namespace lifeline
