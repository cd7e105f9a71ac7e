// The delaying proxy: one poll loop per connection pair, with a queue of timestamped chunks per
// direction, so the delay adds latency without capping throughput.
#include "common/delay_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <string>
#include <vector>

namespace lifeline {
namespace {

using Clock = std::chrono::steady_clock;

// Per direction, at most this much is held before the proxy stops reading (back pressure).
constexpr size_t kMaxHeldBytes = 16 << 20;
constexpr size_t kReadChunk = 64 << 10;

Status Errno(const std::string& what) {
  return Status::Unavailable("delay proxy: " + what + ": " + std::strerror(errno));
}

void SetNonBlocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

struct Chunk {
  Clock::time_point due;
  std::string bytes;
  size_t sent = 0;
};

// Bytes read from `from`, to be written to `to` once due.
struct Direction {
  int from = -1, to = -1;
  std::deque<Chunk> held;
  size_t held_bytes = 0;
  bool eof = false;   // `from` has no more to send
  bool shut = false;  // and `to` was told so
  bool due() const { return !held.empty() && held.front().due <= Clock::now(); }
};

}  // namespace

DelayProxy::~DelayProxy() {
  Stop();
}

Result<std::unique_ptr<DelayProxy>> DelayProxy::Start(int target_port,
                                                      std::chrono::microseconds round_trip) {
  std::unique_ptr<DelayProxy> p(new DelayProxy());
  p->target_port_ = target_port;
  p->half_trip_ = round_trip / 2;
  int wake[2];
  if (pipe(wake) != 0) return Errno("pipe");
  p->wake_read_ = wake[0];
  p->wake_write_ = wake[1];
  p->listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (p->listen_fd_ < 0) return Errno("socket");
  sockaddr_in addr = Loopback(0);
  if (bind(p->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Errno("bind 127.0.0.1");
  }
  if (listen(p->listen_fd_, 64) != 0) return Errno("listen");
  socklen_t len = sizeof addr;
  if (getsockname(p->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Errno("getsockname");
  }
  p->port_ = ntohs(addr.sin_port);
  p->acceptor_ = std::thread([raw = p.get()] { raw->AcceptLoop(); });
  return p;
}

void DelayProxy::Stop() {
  if (stopping_.exchange(true)) return;
  if (wake_write_ >= 0) {
    char c = 1;
    // Never read: the pipe stays readable, so every loop polling it sees the stop.
    [[maybe_unused]] ssize_t n = write(wake_write_, &c, 1);
  }
  if (acceptor_.joinable()) acceptor_.join();
  std::list<std::thread> pairs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pairs.swap(pairs_);
  }
  for (auto& t : pairs) t.join();
  for (int* fd : {&listen_fd_, &wake_read_, &wake_write_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

void DelayProxy::AcceptLoop() {
  while (!stopping_.load()) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = Loopback(target_port_);
    if (server < 0 || connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      // The target refuses: so does the proxy, as a direct connection would.
      if (server >= 0) close(server);
      close(client);
      continue;
    }
    accepted_.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    pairs_.emplace_back([this, client, server] { Forward(client, server); });
  }
}

void DelayProxy::Forward(int client_fd, int server_fd) {
  for (int fd : {client_fd, server_fd}) {
    SetNonBlocking(fd);
    SetNoDelay(fd);
  }
  Direction dirs[2];
  dirs[0].from = client_fd;
  dirs[0].to = server_fd;
  dirs[1].from = server_fd;
  dirs[1].to = client_fd;
  std::vector<char> buf(kReadChunk);
  bool broken = false;
  while (!broken && !stopping_.load()) {
    if (dirs[0].shut && dirs[1].shut) break;  // both sides said all they had, and it was passed on
    // Wake for input, for a socket to take a due chunk, or when the next chunk falls due.
    pollfd fds[5];
    int n = 0;
    fds[n++] = {wake_read_, POLLIN, 0};
    int read_slot[2] = {-1, -1};
    auto next_due = Clock::time_point::max();
    for (int d = 0; d < 2; ++d) {
      Direction& dir = dirs[d];
      if (!dir.eof && dir.held_bytes < kMaxHeldBytes) {
        read_slot[d] = n;
        fds[n++] = {dir.from, POLLIN, 0};
      }
      if (dir.due()) {
        fds[n++] = {dir.to, POLLOUT, 0};  // sent below whenever due; this only wakes the loop
      } else if (!dir.held.empty()) {
        next_due = std::min(next_due, dir.held.front().due);
      }
    }
    timespec wait{};
    timespec* timeout = nullptr;
    if (next_due != Clock::time_point::max()) {
      auto left = std::max(Clock::duration::zero(), next_due - Clock::now());
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      wait.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
      wait.tv_nsec = static_cast<long>(ns % 1'000'000'000);
      timeout = &wait;
    }
    if (ppoll(fds, static_cast<nfds_t>(n), timeout, nullptr) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0) break;
    for (int d = 0; d < 2 && !broken; ++d) {
      Direction& dir = dirs[d];
      if (read_slot[d] >= 0 && fds[read_slot[d]].revents != 0) {
        ssize_t got = read(dir.from, buf.data(), buf.size());
        if (got > 0) {
          dir.held.push_back({Clock::now() + half_trip_, std::string(buf.data(), got), 0});
          dir.held_bytes += static_cast<size_t>(got);
        } else if (got == 0) {
          dir.eof = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          broken = true;  // reset: end both directions, as a broken link would
        }
      }
      while (!broken && dir.due()) {
        Chunk& c = dir.held.front();
        ssize_t put = send(dir.to, c.bytes.data() + c.sent, c.bytes.size() - c.sent, MSG_NOSIGNAL);
        if (put < 0) {
          if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) broken = true;
          break;
        }
        c.sent += static_cast<size_t>(put);
        if (c.sent < c.bytes.size()) break;
        dir.held_bytes -= c.bytes.size();
        dir.held.pop_front();
      }
      if (dir.eof && dir.held.empty() && !dir.shut) {
        shutdown(dir.to, SHUT_WR);
        dir.shut = true;
      }
    }
  }
  close(client_fd);
  close(server_fd);
}

}  // namespace lifeline
