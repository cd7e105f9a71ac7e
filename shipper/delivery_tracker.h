// Which shipped seqs Kafka has acknowledged. Delivery reports from different partitions arrive in
// any order; the cursor may only move over a contiguous run of acknowledged seqs.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>

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
  mutable std::mutex mu_;
  uint64_t cursor_;
  std::map<uint64_t, std::pair<int64_t, bool>> pending_;  // seq -> (commit time, acknowledged)
};

}  // namespace lifeline::shipper
