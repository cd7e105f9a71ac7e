// Renderings of gapcheck's reports: a text table for a terminal (colour optional), JSON with
// stable keys (documented in docs/gapcheck.md), and one self-contained HTML page with inline SVG.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "gapcheck/buckets.h"
#include "gapcheck/row_diff.h"
#include "gapcheck/rpo.h"
#include "gapcheck/stream_scan.h"

namespace lifeline::gapcheck {

// The last event of the stream that touched a key, and what it did.
struct LastTouch {
  EventMark event;
  std::string op;
};

// `rows` with what the stream adds: per differing key, its last event, and the replay commands
// that would repair the differences.
struct RowsReport {
  RowDiffReport diff;
  bool stream_read = false;
  std::map<std::vector<std::string>, LastTouch> last_touch;
  std::vector<std::string> repair_commands;
  bool clean() const { return diff.clean(); }
};

std::string StreamText(const StreamReport& report, bool color);
std::string StreamJson(const StreamReport& report);
std::string StreamHtml(const StreamReport& report);

std::string BucketsText(const BucketReport& report, bool color);
std::string BucketsJson(const BucketReport& report);
std::string BucketsHtml(const BucketReport& report);

std::string RowsText(const RowsReport& report, bool color);
std::string RowsJson(const RowsReport& report);
std::string RowsHtml(const RowsReport& report);

std::string RpoText(const RpoReport& report, bool color);
std::string RpoJson(const RpoReport& report);
std::string RpoHtml(const RpoReport& report);

}  // namespace lifeline::gapcheck
