// The recovery point: the standby's stored position, the primary's WAL position and clock read at
// once, and (with a stream) the transactions after the applied seq, counted per commit.
#include "gapcheck/rpo.h"

#include <future>
#include <pqxx/pqxx>
#include <unordered_set>

#include "common/event_format.h"
#include "common/postgres.h"
#include "gapcheck/stream_scan.h"

namespace lifeline::gapcheck {
namespace {

struct StandbyPosition {
  std::string stream;
  uint64_t seq = 0;
  std::string commit_lsn;
  int64_t commit_time_us = 0;
  int64_t applied_at_us = 0;
};

Result<StandbyPosition> ReadStandbyPosition(const GapcheckOptions& options) {
  return GuardPostgres("reading the standby's replay position", [&]() -> Result<StandbyPosition> {
    pqxx::connection conn(ConnInfoWithPassword(options.target, options.target_password));
    pqxx::nontransaction tx(conn);
    if (tx.exec1("SELECT to_regclass('lifeline.replay_position') IS NULL")[0].as<bool>()) {
      return Status::NotFound("the standby (" + std::string(conn.dbname()) +
                              ") has no lifeline.replay_position: no replayer has applied to it; "
                              "check --target");
    }
    // The stream the report is about: the given topic (a spool is stream ''), else the one
    // applied most recently.
    std::string filter;
    if (!options.stream.kafka_brokers.empty()) {
      filter = " WHERE stream = " + QuoteLiteral(options.stream.topic);
    } else if (!options.stream.spool_dir.empty()) {
      filter = " WHERE stream = ''";
    }
    auto rows = tx.exec(
        "SELECT stream, max(last_seq), max(last_commit_lsn)::text, "
        "(extract(epoch FROM max(last_commit_time)) * 1000000)::bigint, "
        "(extract(epoch FROM max(applied_at)) * 1000000)::bigint FROM lifeline.replay_position" +
        filter + " GROUP BY stream ORDER BY max(applied_at) DESC LIMIT 1");
    if (rows.empty()) {
      return Status::NotFound(
          "lifeline.replay_position on the standby holds no position" +
          (filter.empty() ? std::string() : " for this stream") +
          ": the replayer has not applied it yet (or pass the stream it applies)");
    }
    StandbyPosition p;
    p.stream = rows[0][0].as<std::string>();
    p.seq = rows[0][1].as<uint64_t>();
    p.commit_lsn = rows[0][2].is_null() ? "0/0" : rows[0][2].as<std::string>();
    p.commit_time_us = rows[0][3].is_null() ? 0 : rows[0][3].as<int64_t>();
    p.applied_at_us = rows[0][4].is_null() ? 0 : rows[0][4].as<int64_t>();
    return p;
  });
}

Status ReadPrimary(const GapcheckOptions& options, const std::string& applied_lsn,
                   RpoReport* report) {
  return GuardPostgres("reading the primary's position", [&]() -> Status {
    pqxx::connection conn(ConnInfoWithPassword(options.source, options.source_password));
    pqxx::nontransaction tx(conn);
    auto r = tx.exec_params1(
        "SELECT pg_current_wal_lsn()::text, (extract(epoch FROM now()) * 1000000)::bigint, "
        "greatest(pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn), 0)::bigint, "
        "(SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE plugin = 'pgoutput' "
        "ORDER BY slot_name = 'lifeline' DESC, slot_name LIMIT 1)",
        applied_lsn);
    report->primary_wal_lsn = r[0].as<std::string>();
    report->primary_now_us = r[1].as<int64_t>();
    report->wal_bytes_unapplied = r[2].as<int64_t>();
    report->slot_confirmed_flush_lsn = r[3].is_null() ? "" : r[3].as<std::string>();
    return Status::Ok();
  });
}

// Transactions after the applied seq: each distinct commit LSN holding at least one event that is
// not a heartbeat.
Status CountUnapplied(const GapcheckOptions& options, RpoReport* report) {
  std::unordered_set<uint64_t> seen;
  std::unordered_set<uint64_t> transactions;
  StreamScanOptions scan;
  scan.stream = options.stream;
  scan.visit = [&](const StreamPosition&, const v1::ChangeEvent& ev) {
    if (ev.seq() <= report->applied_seq || ev.op() == v1::OP_HEARTBEAT) return;
    if (!seen.insert(ev.seq()).second) return;
    transactions.insert(ev.commit_lsn());
    ++report->lost_ops[std::string(OpName(ev.op()))];
    if (report->lost_first_seq == 0 || ev.seq() < report->lost_first_seq) {
      report->lost_first_seq = ev.seq();
      report->lost_first_commit_time_us = ev.commit_time_us();
    }
    report->lost_last_seq = std::max<uint64_t>(report->lost_last_seq, ev.seq());
  };
  LIFELINE_ASSIGN_OR_RETURN(StreamReport stream, ScanStream(scan));
  report->stream_read = true;
  report->stream_description = stream.description;
  report->lost_transactions = static_cast<int64_t>(transactions.size());
  return Status::Ok();
}

}  // namespace

Result<RpoReport> MeasureRpo(const GapcheckOptions& options) {
  if (options.source.empty() || options.target.empty()) {
    return Status::InvalidArgument(
        "gapcheck rpo needs --source CONNINFO (the primary) and --target CONNINFO (the standby)");
  }
  RpoReport report;
  report.objective_seconds = static_cast<double>(options.rpo_objective_ms) / 1000.0;
  LIFELINE_ASSIGN_OR_RETURN(StandbyPosition standby, ReadStandbyPosition(options));
  report.stream = standby.stream;
  report.applied_seq = standby.seq;
  report.applied_commit_lsn = standby.commit_lsn;
  report.applied_commit_time_us = standby.commit_time_us;
  report.applied_at_us = standby.applied_at_us;
  LIFELINE_RETURN_IF_ERROR(ReadPrimary(options, standby.commit_lsn, &report));
  report.rpo_seconds = std::max<double>(
      0, static_cast<double>(report.primary_now_us - standby.commit_time_us) / 1e6);
  if (options.stream.given()) LIFELINE_RETURN_IF_ERROR(CountUnapplied(options, &report));
  return report;
}

}  // namespace lifeline::gapcheck
