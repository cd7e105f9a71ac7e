// /health and /metrics over cpp-httplib, on its own thread.
#include "common/status_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

namespace lifeline {

StatusServer::~StatusServer() {
  Stop();
}

void StatusServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

Result<std::unique_ptr<StatusServer>> StatusServer::Start(const std::string& address,
                                                          const Metrics* metrics,
                                                          std::function<HealthReport()> health) {
  // A bare port or ":PORT" is loopback: every interface must be asked for (0.0.0.0:PORT).
  size_t colon = address.rfind(':');
  std::string host = colon == std::string::npos ? "" : address.substr(0, colon);
  std::string port_text = colon == std::string::npos ? address : address.substr(colon + 1);
  if (host.empty()) host = "127.0.0.1";
  int port;
  try {
    size_t used = 0;
    port = std::stoi(port_text, &used);
    if (used != port_text.size()) throw std::invalid_argument(port_text);
  } catch (const std::exception&) {
    return Status::InvalidArgument("malformed metrics address '" + address +
                                   "': expected PORT, :PORT (both loopback) or HOST:PORT, for "
                                   "example 9187 or 0.0.0.0:9187 for every interface");
  }
  if (port < 0 || port > 65535) {
    return Status::InvalidArgument("port out of range in metrics address '" + address + "'");
  }
  std::unique_ptr<StatusServer> s(new StatusServer());
  s->server_ = std::make_unique<httplib::Server>();
  // cpp-httplib also sets SO_REUSEPORT, which lets a second daemon share the port silently.
  s->server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  s->server_->Get("/metrics", [metrics](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics != nullptr ? metrics->RenderPrometheus() : "",
                    "text/plain; version=0.0.4");
  });
  s->server_->Get("/health", [health](const httplib::Request&, httplib::Response& res) {
    HealthReport r = health ? health() : HealthReport{true, "{\"status\":\"ok\"}"};
    res.status = r.healthy ? 200 : 503;
    res.set_content(r.json, "application/json");
  });
  int bound = port == 0 ? s->server_->bind_to_any_port(host) : port;
  if (port != 0 && !s->server_->bind_to_port(host, port)) bound = -1;
  if (bound <= 0) {
    return Status::InvalidArgument("cannot listen on " + host + ":" + std::to_string(port) +
                                   " for /health and /metrics: the address is in use or not "
                                   "local; choose another --metrics-addr");
  }
  s->host_ = host;
  s->port_ = bound;
  httplib::Server* raw = s->server_.get();
  s->thread_ = std::thread([raw] { raw->listen_after_bind(); });
  // stop() is ignored by a server whose loop has not started yet, so do not hand out one that a
  // quick Stop() could leave running forever.
  for (int i = 0; i < 500 && !raw->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!raw->is_running()) {
    return Status::Internal("the HTTP server on " + host + ":" + std::to_string(bound) +
                            " did not start");
  }
  return s;
}

}  // namespace lifeline
