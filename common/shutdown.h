// SIGINT/SIGTERM as a flag that daemons poll: they finish what is in flight, confirm, and exit 0.
#pragma once

#include <atomic>
#include <chrono>

namespace lifeline {

// Installs the handlers (once) and returns the flag they set.
const std::atomic<bool>& StopRequested();
// Sleeps up to `d`, waking early when a stop is requested; true if stop was requested.
bool SleepUnlessStopped(const std::atomic<bool>& stop, std::chrono::milliseconds d);

}  // namespace lifeline
