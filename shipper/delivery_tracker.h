// Which shipped seqs Kafka has acknowledged. Delivery reports from different partitions arrive in
// any order; the cursor may only move over a contiguous run of acknowledged seqs. One thread
// only: librdkafka serves delivery reports inside rd_kafka_poll/flush, on the shipper's own
// thread, so the tracker takes no lock (two per record were a measurable share of that thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lifeline::shipper {

class DeliveryTracker {
 public:
  explicit DeliveryTracker(uint64_t cursor) : cursor_(cursor) {}
  void Sent(uint64_t seq, int64_t commit_time_us);
  void Acknowledged(uint64_t seq);
  // Forget what is in flight (after a failed producer is replaced): it will be sent again.
  void Reset();
  // Highest seq such that it and every seq before it were acknowledged.
  uint64_t cursor() const;
  size_t in_flight() const;
  // Commit time of the oldest event not yet acknowledged (0 when none in flight).
  int64_t oldest_unacknowledged_commit_time_us() const;

 private:
  enum class State : uint8_t { kNotSent, kSent, kAcknowledged };
  struct Entry {
    int64_t commit_time_us = 0;
    State state = State::kNotSent;
  };

  Entry& At(uint64_t seq) { return ring_[(head_ + (seq - cursor_ - 1)) & (ring_.size() - 1)]; }
  void Grow(size_t count);

  uint64_t cursor_;
  // Seqs are sent in order, so the entries after the cursor form a queue: a ring whose size is a
  // power of two, entry i (seq cursor_ + 1 + i) at (head_ + i) mod size. It grows to the most
  // ever in flight and then allocates nothing.
  std::vector<Entry> ring_ = std::vector<Entry>(1024);
  size_t head_ = 0;
  size_t count_ = 0;      // entries after the cursor: seqs cursor_ + 1 .. cursor_ + count_
  size_t in_flight_ = 0;  // entries sent and not yet passed by the cursor
};

}  // namespace lifeline::shipper
