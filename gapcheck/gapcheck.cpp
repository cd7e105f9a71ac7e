// Runs one gapcheck report: gathers what it needs (databases, stream), joins differing rows to the
// stream's last event per key to propose the repair, and hands the result to the renderers.
#include "gapcheck/gapcheck.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>

#include "capture/source_catalog.h"
#include "common/event_format.h"
#include "common/lsn.h"
#include "gapcheck/buckets.h"
#include "gapcheck/report_render.h"
#include "gapcheck/row_diff.h"
#include "gapcheck/rpo.h"
#include "gapcheck/stream_scan.h"

namespace lifeline {
namespace gapcheck {
namespace {

using capture::ParseTableNames;
using capture::TableName;

// A conninfo to print in a command line: any password in it is left out.
std::string Redacted(const std::string& conninfo) {
  std::string out;
  if (conninfo.rfind("postgres://", 0) == 0 || conninfo.rfind("postgresql://", 0) == 0) {
    out = conninfo;
    size_t scheme = out.find("://") + 3;
    size_t at = out.find('@', scheme);
    size_t colon = out.find(':', scheme);
    if (at != std::string::npos && colon != std::string::npos && colon < at) {
      out.erase(colon, at - colon);
    }
    return out;
  }
  size_t i = 0;
  while (i < conninfo.size()) {
    size_t end = conninfo.find(' ', i);
    if (end == std::string::npos) end = conninfo.size();
    std::string token = conninfo.substr(i, end - i);
    if (!token.empty() && token.rfind("password", 0) != 0) {
      out += (out.empty() ? "" : " ") + token;
    }
    i = end + 1;
  }
  return out;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string ReplayCommandPrefix(const GapcheckOptions& options) {
  std::string cmd = "lifeline replay --target " + ShellQuote(Redacted(options.target));
  if (!options.stream.spool_dir.empty()) {
    cmd += " --spool " + ShellQuote(options.stream.spool_dir);
  } else {
    cmd += " --kafka-brokers " + ShellQuote(options.stream.kafka_brokers) + " --topic " +
           ShellQuote(options.stream.topic);
  }
  for (const std::string& file : options.stream.encryption_key_files) {
    cmd += " --encryption-key-file " + ShellQuote(file);
  }
  return cmd;
}

// The key of the row an image describes, in `key_columns` order; empty if it lacks one.
std::vector<std::string> KeyOf(const v1::ChangeEvent& ev, const v1::Row& row,
                               const std::vector<std::string>& key_columns) {
  std::vector<std::string> key(key_columns.size());
  size_t found = 0;
  for (int i = 0; i < ev.relation().columns_size() && i < row.values_size(); ++i) {
    const std::string& name = ev.relation().columns(i).name();
    for (size_t k = 0; k < key_columns.size(); ++k) {
      if (key_columns[k] == name && row.values(i).has_text()) {
        key[k] = row.values(i).text();
        ++found;
      }
    }
  }
  return found == key_columns.size() ? key : std::vector<std::string>{};
}

Result<RowsReport> RunRows(const GapcheckOptions& options) {
  if (options.source.empty() || options.target.empty()) {
    return Status::InvalidArgument(
        "gapcheck rows needs --source CONNINFO (the primary) and --target CONNINFO (the standby)");
  }
  RowDiffOptions ro;
  ro.source = options.source;
  ro.source_password = options.source_password;
  ro.target = options.target;
  ro.target_password = options.target_password;
  ro.table = options.table;
  ro.where = options.where;
  if (options.progress) {
    ro.progress = [](int level, int64_t compared, int64_t differing) {
      std::cerr << "\rgapcheck rows: level " << level << ", " << compared << " segments compared, "
                << differing << " differ   " << std::flush;
    };
  }
  RowsReport report;
  LIFELINE_ASSIGN_OR_RETURN(report.diff, DiffRows(ro));
  if (options.progress) std::cerr << "\n";
  if (!options.stream.given() || report.diff.clean()) return report;

  LIFELINE_ASSIGN_OR_RETURN(std::vector<TableName> tables, ParseTableNames({options.table}));
  std::set<std::vector<std::string>> wanted;
  for (const auto* list : {&report.diff.missing, &report.diff.extra, &report.diff.different}) {
    for (const RowDifference& d : *list) wanted.insert(d.key);
  }
  // Per key: the last event touching it, and the last full image of it (insert or snapshot), from
  // which a replay rebuilds every column.
  std::map<std::vector<std::string>, uint64_t> last_full_image;
  uint64_t last_seq = 0;
  std::string sealed_key;  // of an event whose rows no key file opened
  StreamScanOptions scan;
  scan.stream = options.stream;
  scan.visit = [&](const StreamPosition& position, const v1::ChangeEvent& ev) {
    last_seq = std::max<uint64_t>(last_seq, ev.seq());
    if (ev.relation().schema() != tables[0].schema || ev.relation().table() != tables[0].table) {
      return;
    }
    auto touch = [&](const v1::Row& row) {
      std::vector<std::string> key = KeyOf(ev, row, report.diff.key_columns);
      if (key.empty() || !wanted.count(key)) return;
      LastTouch& t = report.last_touch[key];
      if (t.event.seq > ev.seq()) return;
      t.event = {ev.seq(), Lsn(ev.commit_lsn()).ToString(), ev.commit_time_us(), position};
      t.op = std::string(OpName(ev.op()));
      if (ev.op() == v1::OP_INSERT || ev.op() == v1::OP_SNAPSHOT) last_full_image[key] = ev.seq();
    };
    if (ev.has_sealed() && sealed_key.empty()) sealed_key = ev.sealed().key_id();
    if (ev.has_before()) touch(ev.before());
    if (ev.has_after()) touch(ev.after());
  };
  LIFELINE_ASSIGN_OR_RETURN(StreamReport ignored, ScanStream(scan));
  (void)ignored;
  if (!sealed_key.empty()) {
    return Status::FailedPrecondition(
        "the stream's rows are sealed (key id '" + sealed_key +
        "'): finding which events touched the differing rows needs the key; pass its file "
        "with --encryption-key-file");
  }
  report.stream_read = true;

  // Each repair replays from the earliest full image (else last event) of its keys to the end of
  // what the stream holds, so later events of the same keys are applied again too and nothing
  // regresses to an older image.
  const std::string prefix = ReplayCommandPrefix(options);
  size_t untouched = 0;
  auto window_start = [&](const std::vector<const std::vector<RowDifference>*>& lists) {
    uint64_t lo = 0;
    for (const auto* list : lists) {
      for (const RowDifference& d : *list) {
        auto it = report.last_touch.find(d.key);
        if (it == report.last_touch.end()) {
          ++untouched;
          continue;
        }
        auto full = last_full_image.find(d.key);
        uint64_t from = full == last_full_image.end() ? it->second.event.seq : full->second;
        lo = lo == 0 ? from : std::min(lo, from);
      }
    }
    return lo;
  };
  const std::string until = " --until-seq " + std::to_string(last_seq);
  if (uint64_t lo = window_start({&report.diff.missing}); lo > 0) {
    report.repair_commands.push_back(prefix + " --from-seq " + std::to_string(lo) + until +
                                     " --only-missing --stop-at-end");
  }
  if (uint64_t lo = window_start({&report.diff.extra, &report.diff.different}); lo > 0) {
    report.repair_commands.push_back(prefix + " --from-seq " + std::to_string(lo) + until +
                                     " --stop-at-end");
  }
  if (untouched > 0) {
    report.repair_commands.push_back(
        "# " + std::to_string(untouched) +
        " differing key(s) were touched by no event the stream still holds: copy those rows "
        "from the primary, or run capture with --resnapshot");
  }
  return report;
}

template <typename Report>
Result<GapcheckVerdict> Emit(const GapcheckOptions& options, const Report& report,
                             std::string (*text)(const Report&, bool),
                             std::string (*json)(const Report&),
                             std::string (*html)(const Report&)) {
  if (options.format == "json") {
    std::cout << json(report) << std::flush;
  } else {
    std::cout << text(report, options.color) << std::flush;
  }
  if (!options.html_path.empty()) {
    std::ofstream out(options.html_path, std::ios::trunc);
    out << html(report);
    out.close();
    if (!out) {
      return Status::IOError("cannot write the HTML report to " + options.html_path +
                             ": check the directory exists and is writable");
    }
    std::cerr << "gapcheck: HTML report written to " << options.html_path << "\n";
  }
  return report.clean() ? GapcheckVerdict::kClean : GapcheckVerdict::kDifferences;
}

}  // namespace
}  // namespace gapcheck

Result<GapcheckVerdict> RunGapcheck(const GapcheckOptions& options) {
  using namespace gapcheck;
  if (options.format != "text" && options.format != "json") {
    return Status::InvalidArgument("--format must be text or json, not '" + options.format + "'");
  }
  if (!options.stream.spool_dir.empty() && !options.stream.kafka_brokers.empty()) {
    return Status::InvalidArgument(
        "give one stream: --spool DIR or --kafka-brokers B --topic T, not both");
  }
  if (options.report == "stream") {
    if (!options.stream.given()) {
      return Status::InvalidArgument(
          "gapcheck stream needs a stream: --spool DIR or --kafka-brokers B --topic T");
    }
    StreamScanOptions scan;
    scan.stream = options.stream;
    if (options.progress) {
      scan.progress = [](uint64_t read, uint64_t total) {
        std::cerr << "\rgapcheck stream: " << read << (total ? " of " + std::to_string(total) : "")
                  << " records   " << std::flush;
      };
    }
    LIFELINE_ASSIGN_OR_RETURN(StreamReport report, ScanStream(scan));
    if (options.progress) std::cerr << "\n";
    return Emit<StreamReport>(options, report, StreamText, StreamJson, StreamHtml);
  }
  if (options.report == "buckets") {
    LIFELINE_ASSIGN_OR_RETURN(BucketReport report, CountBuckets(options));
    return Emit<BucketReport>(options, report, BucketsText, BucketsJson, BucketsHtml);
  }
  if (options.report == "rows") {
    LIFELINE_ASSIGN_OR_RETURN(RowsReport report, RunRows(options));
    return Emit<RowsReport>(options, report, RowsText, RowsJson, RowsHtml);
  }
  if (options.report == "rpo") {
    LIFELINE_ASSIGN_OR_RETURN(RpoReport report, MeasureRpo(options));
    return Emit<RpoReport>(options, report, RpoText, RpoJson, RpoHtml);
  }
  return Status::InvalidArgument("unknown gapcheck report '" + options.report +
                                 "': use stream, buckets, rows or rpo");
}

}  // namespace lifeline
