// Contiguous-acknowledgement cursor.
#include "shipper/delivery_tracker.h"

namespace lifeline::shipper {

void DeliveryTracker::Sent(uint64_t seq, int64_t commit_time_us) {
  if (seq <= cursor_) return;  // already acknowledged with everything before it
  uint64_t index = seq - cursor_ - 1;
  if (index >= pending_.size()) pending_.resize(index + 1);
  Entry& e = pending_[index];
  if (e.state == State::kNotSent) ++in_flight_;
  e = {commit_time_us, State::kSent};
}

void DeliveryTracker::Acknowledged(uint64_t seq) {
  if (seq <= cursor_ || seq - cursor_ - 1 >= pending_.size()) return;  // from before a Reset
  Entry& e = pending_[seq - cursor_ - 1];
  if (e.state != State::kSent) return;
  e.state = State::kAcknowledged;
  while (!pending_.empty() && pending_.front().state == State::kAcknowledged) {
    ++cursor_;
    --in_flight_;
    pending_.pop_front();
  }
}

void DeliveryTracker::Reset() {
  pending_.clear();
  in_flight_ = 0;
}

uint64_t DeliveryTracker::cursor() const {
  return cursor_;
}

size_t DeliveryTracker::in_flight() const {
  return in_flight_;
}

int64_t DeliveryTracker::oldest_unacknowledged_commit_time_us() const {
  for (const Entry& e : pending_) {
    if (e.state == State::kSent) return e.commit_time_us;
  }
  return 0;
}

}  // namespace lifeline::shipper
