// Prometheus text exposition of lifeline's counters and gauges.
#include "common/metrics.h"

#include <cmath>
#include <sstream>

namespace lifeline {
namespace {

std::string RenderLabels(const MetricLabels& labels) {
  if (labels.empty()) return "";
  std::string s = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) s += ",";
    s += labels[i].first + "=\"";
    for (char c : labels[i].second) {
      if (c == '\\' || c == '"') s += '\\';
      if (c == '\n') {
        s += "\\n";
        continue;
      }
      s += c;
    }
    s += "\"";
  }
  return s + "}";
}

}  // namespace

Counter& Metrics::counter(const std::string& name, const std::string& help,
                          const MetricLabels& labels) {
  std::lock_guard lock(mu_);
  Family& f = families_[name];
  f.help = help;
  f.is_counter = true;
  auto& slot = f.counters[RenderLabels(labels)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Metrics::gauge(const std::string& name, const std::string& help,
                      const MetricLabels& labels) {
  std::lock_guard lock(mu_);
  Family& f = families_[name];
  f.help = help;
  auto& slot = f.gauges[RenderLabels(labels)];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

std::string Metrics::RenderPrometheus() const {
  std::ostringstream out;
  out.precision(17);
  std::lock_guard lock(mu_);
  for (const auto& [name, f] : families_) {
    out << "# HELP " << name << " " << f.help << "\n";
    out << "# TYPE " << name << " " << (f.is_counter ? "counter" : "gauge") << "\n";
    for (const auto& [labels, c] : f.counters) out << name << labels << " " << c->value() << "\n";
    for (const auto& [labels, g] : f.gauges) {
      double v = g->value();
      out << name << labels << " ";
      if (std::isnan(v)) {
        out << "NaN";
      } else {
        out << v;
      }
      out << "\n";
    }
  }
  return out.str();
}

}  // namespace lifeline
