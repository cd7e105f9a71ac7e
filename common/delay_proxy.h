// A TCP proxy on loopback that holds every chunk for half a round trip in each direction, so a
// benchmark can put a link of known latency between two local processes (a replayer and its
// target).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "common/status.h"

namespace lifeline {

class DelayProxy {
 public:
  ~DelayProxy();  // Stop()
  DelayProxy(const DelayProxy&) = delete;
  DelayProxy& operator=(const DelayProxy&) = delete;

  // Listens on 127.0.0.1 (an ephemeral port) and forwards each connection to 127.0.0.1:target_port,
  // a thread per connection pair; bytes in either direction arrive round_trip / 2 after they were
  // read, in order.
  [[nodiscard]] static Result<std::unique_ptr<DelayProxy>> Start(
      int target_port, std::chrono::microseconds round_trip);

  int port() const { return port_; }
  uint64_t connections_accepted() const { return accepted_.load(); }

  // Closes the listener and every forwarded connection and joins their threads. Idempotent.
  void Stop();

 private:
  DelayProxy() = default;
  void AcceptLoop();
  void Forward(int client_fd, int server_fd);

  int target_port_ = 0;
  std::chrono::microseconds half_trip_{0};
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_read_ = -1, wake_write_ = -1;  // readable once Stop() begins: every loop ends
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> accepted_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::list<std::thread> pairs_;  // guarded by mu_
};

}  // namespace lifeline
