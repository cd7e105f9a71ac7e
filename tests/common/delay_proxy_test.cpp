// The delaying proxy: bytes arrive intact and in order, a round trip through it takes at least the
// configured time, end of stream passes through, and Stop() ends open connections.
#include "common/delay_proxy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace lifeline {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{10, 0};  // no read in these tests may hang
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Reads exactly n bytes (or fewer at end of stream / timeout).
std::string ReadN(int fd, size_t n) {
  std::string out;
  char buf[65536];
  while (out.size() < n) {
    ssize_t got = read(fd, buf, std::min(sizeof buf, n - out.size()));
    if (got <= 0) break;
    out.append(buf, static_cast<size_t>(got));
  }
  return out;
}

bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t put = write(fd, data.data() + done, data.size() - done);
    if (put <= 0) return false;
    done += static_cast<size_t>(put);
  }
  return true;
}

// An echo server on loopback: one thread per connection, echoes until end of stream, then closes.
class EchoServer {
 public:
  EchoServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) continue;
        echoes_.emplace_back([c] {
          char buf[65536];
          while (true) {
            ssize_t got = read(c, buf, sizeof buf);
            if (got <= 0) break;
            if (!WriteAll(c, std::string(buf, static_cast<size_t>(got)))) break;
          }
          close(c);
        });
      }
    });
  }
  ~EchoServer() {
    stop_ = true;
    acceptor_.join();
    for (auto& t : echoes_) t.join();
    close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> echoes_;
};

TEST(DelayProxyTest, ARoundTripTakesTheConfiguredTime) {
  EchoServer echo;
  auto proxy = DelayProxy::Start(echo.port(), 20ms);
  ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
  int fd = Connect((*proxy)->port());
  ASSERT_GE(fd, 0);
  // Direct, the echo takes well under a millisecond; through the proxy, at least 20 ms.
  for (int i = 0; i < 5; ++i) {
    auto start = Clock::now();
    ASSERT_TRUE(WriteAll(fd, "ping"));
    EXPECT_EQ(ReadN(fd, 4), "ping");
    auto took = Clock::now() - start;
    EXPECT_GE(took, 20ms);
    EXPECT_LT(took, 1s);
  }
  close(fd);
  EXPECT_EQ((*proxy)->connections_accepted(), 1u);
}

TEST(DelayProxyTest, BytesArriveIntactInOrderAndEndOfStreamPassesThrough) {
  EchoServer echo;
  auto proxy = DelayProxy::Start(echo.port(), 4ms);
  ASSERT_TRUE(proxy.ok());
  int fd = Connect((*proxy)->port());
  ASSERT_GE(fd, 0);
  std::string payload(3 << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>((i * 131) % 251);
  // Write on one thread while reading on this one, as the echo's buffers fill.
  std::thread writer([&] {
    EXPECT_TRUE(WriteAll(fd, payload));
    shutdown(fd, SHUT_WR);
  });
  std::string back = ReadN(fd, payload.size() + 1);  // +1: the end of stream must follow
  writer.join();
  EXPECT_EQ(back.size(), payload.size());
  EXPECT_TRUE(back == payload) << "the bytes came back changed or reordered";
  close(fd);
}

TEST(DelayProxyTest, StopEndsOpenConnectionsAndARefusedTargetIsRefused) {
  EchoServer echo;
  auto proxy = DelayProxy::Start(echo.port(), 2ms);
  ASSERT_TRUE(proxy.ok());
  int fd = Connect((*proxy)->port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(WriteAll(fd, "x"));
  EXPECT_EQ(ReadN(fd, 1), "x");
  auto start = Clock::now();
  (*proxy)->Stop();
  EXPECT_LT(Clock::now() - start, 2s);
  char c;
  EXPECT_LE(read(fd, &c, 1), 0) << "the connection must be closed by Stop()";
  close(fd);
  (*proxy)->Stop();  // idempotent

  // A proxy to a port nobody listens on: the client's connection is closed at once.
  auto dead = DelayProxy::Start(echo.port() == 1 ? 2 : 1, 2ms);
  ASSERT_TRUE(dead.ok());
  int d = Connect((*dead)->port());
  ASSERT_GE(d, 0);
  EXPECT_LE(read(d, &c, 1), 0);
  close(d);
}

}  // namespace
}  // namespace lifeline
