// Contiguous-acknowledgement cursor.
#include "shipper/delivery_tracker.h"

namespace lifeline::shipper {

void DeliveryTracker::Grow(size_t count) {
  size_t size = ring_.size();
  while (size < count) size *= 2;
  std::vector<Entry> grown(size);
  for (size_t i = 0; i < count_; ++i) grown[i] = ring_[(head_ + i) & (ring_.size() - 1)];
  ring_ = std::move(grown);
  head_ = 0;
}

void DeliveryTracker::Sent(uint64_t seq, int64_t commit_time_us) {
  if (seq <= cursor_) return;  // already acknowledged with everything before it
  uint64_t index = seq - cursor_ - 1;
  if (index >= count_) {
    if (index >= ring_.size()) Grow(index + 1);
    for (; count_ <= index; ++count_) At(cursor_ + 1 + count_) = Entry();
  }
  Entry& e = At(seq);
  if (e.state == State::kNotSent) ++in_flight_;
  e = {commit_time_us, State::kSent};
}

void DeliveryTracker::Acknowledged(uint64_t seq) {
  if (seq <= cursor_ || seq - cursor_ - 1 >= count_) return;  // from before a Reset
  Entry& e = At(seq);
  if (e.state != State::kSent) return;
  e.state = State::kAcknowledged;
  while (count_ > 0 && ring_[head_].state == State::kAcknowledged) {
    ++cursor_;
    --in_flight_;
    --count_;
    head_ = (head_ + 1) & (ring_.size() - 1);
  }
}

void DeliveryTracker::Reset() {
  count_ = 0;
  in_flight_ = 0;
}

uint64_t DeliveryTracker::cursor() const {
  return cursor_;
}

size_t DeliveryTracker::in_flight() const {
  return in_flight_;
}

int64_t DeliveryTracker::oldest_unacknowledged_commit_time_us() const {
  for (size_t i = 0; i < count_; ++i) {
    const Entry& e = ring_[(head_ + i) & (ring_.size() - 1)];
    if (e.state == State::kSent) return e.commit_time_us;
  }
  return 0;
}

}  // namespace lifeline::shipper
