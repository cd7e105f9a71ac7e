// The HTTP endpoint every daemon serves: GET /health (JSON; 200 healthy, 503 not) and
// GET /metrics (Prometheus text). Binds to loopback unless an address says otherwise.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/metrics.h"
#include "common/status.h"

namespace httplib {
class Server;
}

namespace lifeline {

struct HealthReport {
  bool healthy = true;
  std::string json;  // a JSON object describing the daemon's state
};

class StatusServer {
 public:
  ~StatusServer();
  // `address` is "HOST:PORT", or "PORT" or ":PORT" for 127.0.0.1 (port 0 picks a free one);
  // every interface only when asked for, "0.0.0.0:PORT".
  [[nodiscard]] static Result<std::unique_ptr<StatusServer>> Start(
      const std::string& address, const Metrics* metrics, std::function<HealthReport()> health);
  int port() const { return port_; }
  const std::string& host() const { return host_; }
  void Stop();

 private:
  StatusServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::string host_;
  int port_ = 0;
};

}  // namespace lifeline
