// Target bookkeeping, drift checks and batch application over libpqxx.
#include "replayer/target.h"

#include <pqxx/pqxx>

#include "common/event_format.h"
#include "common/postgres.h"
#include "replayer/statement_builder.h"

namespace lifeline::replayer {
namespace {

std::string HexLiteral(const std::string& raw) {
  static const char* kHex = "0123456789abcdef";
  std::string out = "'\\x";
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out + "'::bytea";
}

}  // namespace

Target::~Target() = default;

Result<std::unique_ptr<Target>> Target::Connect(const std::string& conninfo,
                                                const std::string& password) {
  return GuardPostgres("connecting to the target", [&]() -> Result<std::unique_ptr<Target>> {
    std::unique_ptr<Target> t(new Target());
    t->conn_ = std::make_unique<pqxx::connection>(ConnInfoWithPassword(conninfo, password));
    pqxx::nontransaction tx(*t->conn_);
    tx.exec0("SET standard_conforming_strings = on");
    tx.exec0("SET application_name = 'lifeline replay'");
    return t;
  });
}

Status Target::EnsureBookkeeping() {
  return GuardPostgres("creating lifeline's tables on the target", [&]() -> Status {
    pqxx::work tx(*conn_);
    tx.exec0("CREATE SCHEMA IF NOT EXISTS lifeline");
    tx.exec0(
        "CREATE TABLE IF NOT EXISTS lifeline.replay_position (stream text NOT NULL, "
        "partition int NOT NULL, source_id text, next_offset bigint, last_seq bigint NOT NULL, "
        "last_commit_lsn pg_lsn, last_commit_time timestamptz, applied_at timestamptz NOT NULL "
        "DEFAULT now(), PRIMARY KEY (stream, partition))");
    tx.exec0(
        "CREATE TABLE IF NOT EXISTS lifeline.replay_gaps (source_id text, from_seq bigint, "
        "to_seq bigint, detected_at timestamptz NOT NULL DEFAULT now())");
    tx.exec0(
        "CREATE TABLE IF NOT EXISTS lifeline.dead_letter (id bigserial PRIMARY KEY, topic text, "
        "partition int, \"offset\" bigint, raw bytea, error text, recorded_at timestamptz NOT "
        "NULL DEFAULT now())");
    tx.commit();
    return Status::Ok();
  });
}

Status Target::LockStream(const std::string& stream) {
  return GuardPostgres("locking the stream on the target", [&]() -> Status {
    pqxx::nontransaction tx(*conn_);
    auto r =
        tx.exec_params("SELECT pg_try_advisory_lock(hashtext($1))", "lifeline.replay:" + stream);
    if (!r[0][0].as<bool>()) {
      auto who = tx.exec_params(
          "SELECT coalesce(string_agg(a.pid::text || ' (' || coalesce(a.application_name, '') || "
          "')', ', '), 'unknown') FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
          "WHERE l.locktype = 'advisory' AND l.objid = hashtext($1)::oid",
          "lifeline.replay:" + stream);
      return Status::FailedPrecondition("another replayer is applying stream '" +
                                        (stream.empty() ? "spool" : stream) +
                                        "' to this target (backend " + who[0][0].as<std::string>() +
                                        "); stop it first, or replay a window with --dry-run");
    }
    return Status::Ok();
  });
}

Result<ReplayPosition> Target::ReadPosition(const std::string& stream) {
  return GuardPostgres("reading the replay position", [&]() -> Result<ReplayPosition> {
    pqxx::nontransaction tx(*conn_);
    ReplayPosition pos;
    auto exists = tx.exec("SELECT to_regclass('lifeline.replay_position') IS NOT NULL");
    if (!exists[0][0].as<bool>()) return pos;
    auto r = tx.exec_params(
        "SELECT partition, coalesce(source_id, ''), coalesce(next_offset, -1), last_seq, "
        "coalesce(last_commit_lsn::text, '0/0'), "
        "coalesce((extract(epoch FROM last_commit_time) * 1000000)::bigint, 0) "
        "FROM lifeline.replay_position WHERE stream = $1",
        stream);
    for (const auto& row : r) {
      int32_t partition = row[0].as<int32_t>();
      int64_t next = row[2].as<int64_t>();
      if (next >= 0) pos.next_offsets[partition] = next;
      uint64_t seq = row[3].as<uint64_t>();
      if (seq >= pos.last_seq) {
        pos.last_seq = seq;
        pos.source_id = row[1].as<std::string>();
        pos.last_commit_lsn = Lsn::Parse(row[4].as<std::string>()).value();
        pos.last_commit_time_us = row[5].as<int64_t>();
      }
    }
    return pos;
  });
}

Status Target::CheckRelation(const v1::Relation& rel) {
  std::string key = rel.schema() + "." + rel.table() + "#" + std::to_string(rel.schema_version());
  if (checked_.count(key)) return Status::Ok();
  return GuardPostgres(
      "checking table " + rel.schema() + "." + rel.table() + " on the target", [&]() -> Status {
        pqxx::nontransaction tx(*conn_);
        auto r = tx.exec_params(
            "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND "
            "c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            rel.schema(), rel.table());
        std::string table = QuoteIdent(rel.schema()) + "." + QuoteIdent(rel.table());
        auto type_of = [](const v1::Column& c) {
          return c.type_name().empty() ? std::string("text") : c.type_name();
        };
        if (r.empty()) {
          std::string ddl = "CREATE TABLE " + table + " (";
          std::string keys;
          for (const auto& c : rel.columns()) {
            ddl += QuoteIdent(c.name()) + " " + type_of(c) + ", ";
            if (c.key()) keys += (keys.empty() ? "" : ", ") + QuoteIdent(c.name());
          }
          ddl += "PRIMARY KEY (" + keys + "));";
          return Status::FailedPrecondition(
              "table " + rel.schema() + "." + rel.table() +
              " does not exist on the target; nothing was applied and the position is "
              "held. Create it, e.g.: " +
              ddl);
        }
        std::set<std::string> have;
        for (const auto& row : r) have.insert(row[0].as<std::string>());
        std::string ddl;
        for (const auto& c : rel.columns()) {
          if (!have.count(c.name())) {
            ddl += "ALTER TABLE " + table + " ADD COLUMN " + QuoteIdent(c.name()) + " " +
                   type_of(c) + "; ";
          }
        }
        if (!ddl.empty()) {
          return Status::FailedPrecondition(
              "table " + rel.schema() + "." + rel.table() +
              " on the target lacks columns the source sends (schema version " +
              std::to_string(rel.schema_version()) +
              "); nothing was applied and the position is held. Run: " + ddl);
        }
        checked_.insert(key);
        return Status::Ok();
      });
}

Status Target::ApplyInTransaction(const std::string& sql) {
  return GuardPostgres("applying to the target", [&]() -> Status {
    pqxx::nontransaction tx(*conn_);
    try {
      // One round trip: the statements run inside their own transaction block.
      tx.exec("BEGIN;" + sql + "COMMIT;");
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (...) {
      try {
        tx.exec0("ROLLBACK");
      } catch (...) {
      }
      throw;
    }
    return Status::Ok();
  });
}

std::string Target::PositionSql(const std::string& stream, const ReplayPosition& p) {
  std::string sql;
  std::map<int32_t, int64_t> offsets = p.next_offsets;
  if (offsets.empty()) offsets[-1] = static_cast<int64_t>(p.last_seq + 1);
  for (const auto& [partition, next] : offsets) {
    sql +=
        "INSERT INTO lifeline.replay_position (stream, partition, source_id, next_offset, "
        "last_seq, last_commit_lsn, last_commit_time, applied_at) VALUES (" +
        QuoteLiteral(stream) + ", " + std::to_string(partition) + ", " + QuoteLiteral(p.source_id) +
        ", " + std::to_string(next) + ", " + std::to_string(p.last_seq) + ", " +
        QuoteLiteral(p.last_commit_lsn.ToString()) + ", " +
        QuoteLiteral(FormatTimestampUs(p.last_commit_time_us)) +
        ", clock_timestamp()) ON CONFLICT (stream, partition) DO UPDATE SET source_id = "
        "EXCLUDED.source_id, next_offset = EXCLUDED.next_offset, last_seq = EXCLUDED.last_seq, "
        "last_commit_lsn = EXCLUDED.last_commit_lsn, last_commit_time = "
        "EXCLUDED.last_commit_time, applied_at = EXCLUDED.applied_at;";
  }
  return sql;
}

std::string Target::GapSql(const std::string& source_id, uint64_t from_seq, uint64_t to_seq) {
  return "INSERT INTO lifeline.replay_gaps (source_id, from_seq, to_seq) VALUES (" +
         QuoteLiteral(source_id) + ", " + std::to_string(from_seq) + ", " + std::to_string(to_seq) +
         ");";
}

std::string Target::DeadLetterSql(const std::string& topic, int32_t partition, int64_t offset,
                                  const std::string& raw, const std::string& error) {
  return "INSERT INTO lifeline.dead_letter (topic, partition, \"offset\", raw, error) VALUES (" +
         QuoteLiteral(topic) + ", " + std::to_string(partition) + ", " + std::to_string(offset) +
         ", " + HexLiteral(raw) + ", " + QuoteLiteral(error) + ");";
}

}  // namespace lifeline::replayer
