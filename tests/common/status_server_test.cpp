// /health and /metrics over HTTP on loopback, and a clear error for an address in use.
#include "common/status_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

namespace lifeline {
namespace {

TEST(StatusServerTest, ServesMetricsAndHealthOnLoopback) {
  Metrics metrics;
  metrics.counter("lifeline_test_events_total", "Events", {{"op", "insert"}}).Add(7);
  bool healthy = true;
  auto server = StatusServer::Start("127.0.0.1:0", &metrics, [&] {
    return HealthReport{healthy, std::string("{\"status\":\"") + (healthy ? "ok" : "stuck") + "\"}"};
  });
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  EXPECT_EQ((*server)->host(), "127.0.0.1");
  httplib::Client client("127.0.0.1", (*server)->port());
  auto m = client.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("lifeline_test_events_total{op=\"insert\"} 7"), std::string::npos);
  auto h = client.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(h->body, "{\"status\":\"ok\"}");
  healthy = false;
  h = client.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 503);
  (*server)->Stop();
}

TEST(StatusServerTest, ABusyOrMalformedAddressIsAClearError) {
  Metrics metrics;
  auto first = StatusServer::Start(":0", &metrics, nullptr);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((*first)->host(), "127.0.0.1") << "no host means loopback";
  auto second =
      StatusServer::Start("127.0.0.1:" + std::to_string((*first)->port()), &metrics, nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().ExitCode(), 2);
  EXPECT_NE(second.status().message().find("--metrics-addr"), std::string::npos);
  auto bad = StatusServer::Start("localhost", &metrics, nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("HOST:PORT"), std::string::npos);
}

}  // namespace
}  // namespace lifeline
