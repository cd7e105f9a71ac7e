// Contiguous-acknowledgement cursor.
#include "shipper/delivery_tracker.h"

namespace lifeline::shipper {

void DeliveryTracker::Sent(uint64_t seq, int64_t commit_time_us) {
  std::lock_guard lock(mu_);
  pending_[seq] = {commit_time_us, false};
}

void DeliveryTracker::Acknowledged(uint64_t seq) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(seq);
  if (it == pending_.end()) return;  // a report from before a Reset
  it->second.second = true;
  while (!pending_.empty() && pending_.begin()->second.second &&
         pending_.begin()->first == cursor_ + 1) {
    cursor_ = pending_.begin()->first;
    pending_.erase(pending_.begin());
  }
}

void DeliveryTracker::Reset() {
  std::lock_guard lock(mu_);
  pending_.clear();
}

uint64_t DeliveryTracker::cursor() const {
  std::lock_guard lock(mu_);
  return cursor_;
}

size_t DeliveryTracker::in_flight() const {
  std::lock_guard lock(mu_);
  return pending_.size();
}

int64_t DeliveryTracker::oldest_unacknowledged_commit_time_us() const {
  std::lock_guard lock(mu_);
  for (const auto& [seq, p] : pending_) {
    if (!p.second) return p.first;
  }
  return 0;
}

}  // namespace lifeline::shipper
