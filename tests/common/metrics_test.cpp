// Prometheus rendering of counters and gauges.
#include "common/metrics.h"

#include <gtest/gtest.h>

namespace lifeline {

TEST(MetricsTest, RendersPrometheusTextWithLabels) {
  Metrics m;
  m.counter("lifeline_events_total", "Events", {{"op", "insert"}}).Add(3);
  m.counter("lifeline_events_total", "Events", {{"op", "delete"}}).Add();
  m.gauge("lifeline_lag_seconds", "Lag").Set(1.5);
  m.counter("lifeline_events_total", "Events", {{"op", "insert"}}).Add(2);
  std::string text = m.RenderPrometheus();
  EXPECT_NE(text.find("# TYPE lifeline_events_total counter"), std::string::npos);
  EXPECT_NE(text.find("lifeline_events_total{op=\"insert\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("lifeline_events_total{op=\"delete\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE lifeline_lag_seconds gauge"), std::string::npos);
  EXPECT_NE(text.find("lifeline_lag_seconds 1.5\n"), std::string::npos);
}

TEST(MetricsTest, EscapesLabelValues) {
  Metrics m;
  m.counter("x_total", "X", {{"error", "a\"b\\c\nd"}}).Add();
  EXPECT_NE(m.RenderPrometheus().find("x_total{error=\"a\\\"b\\\\c\\nd\"} 1"), std::string::npos);
}

}  // namespace lifeline
