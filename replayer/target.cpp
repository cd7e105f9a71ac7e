// Target bookkeeping and drift checks over libpqxx; batch application over pipelined libpq.
#include "replayer/target.h"

#include <libpq-fe.h>
#include <poll.h>
#include <set>

#include <pqxx/pqxx>

#include "common/event_format.h"
#include "common/postgres.h"
#include "replayer/statement_builder.h"

namespace lifeline::replayer {
namespace {

// Beyond this many statement shapes on one connection, new shapes run unprepared.
constexpr size_t kMaxPrepared = 5000;

// bytea's text input form.
std::string HexText(const std::string& raw) {
  static const char* kHex = "0123456789abcdef";
  std::string out = "\\x";
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string ErrorText(const char* message) {
  std::string m = message == nullptr ? "" : message;
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

}  // namespace

void Target::PgConnCloser::operator()(PGconn* c) const {
  PQfinish(c);
}

Target::~Target() = default;

Result<std::unique_ptr<Target>> Target::Connect(const std::string& conninfo,
                                                const std::string& password) {
  return GuardPostgres("connecting to the target", [&]() -> Result<std::unique_ptr<Target>> {
    std::unique_ptr<Target> t(new Target());
    t->conn_ = std::make_unique<pqxx::connection>(ConnInfoWithPassword(conninfo, password));
    pqxx::nontransaction tx(*t->conn_);
    tx.exec0("SET standard_conforming_strings = on");
    tx.exec0("SET application_name = 'lifeline replay'");
    t->apply_.reset(PQconnectdb(ConnInfoWithPassword(conninfo, password).c_str()));
    PGconn* c = t->apply_.get();
    if (c == nullptr || PQstatus(c) != CONNECTION_OK) {
      return ClassifyPostgresError(c == nullptr ? "out of memory" : ErrorText(PQerrorMessage(c)),
                                   "connecting to the target");
    }
    // Statements here find rows by their key, and their plans are cached: one made while a table
    // was small (a fresh standby) would scan it whole for the rest of the connection.
    PGresult* r = PQexec(c, "SET application_name = 'lifeline replay'; SET enable_seqscan = off");
    bool set = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    // Nonblocking, so sending a large batch never waits on a target busy writing results back.
    if (!set || PQsetnonblocking(c, 1) != 0 || PQenterPipelineMode(c) != 1) {
      return ClassifyPostgresError(ErrorText(PQerrorMessage(c)),
                                   "preparing the apply connection to the target");
    }
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

namespace {

// Whether rows of the table change independently of each other (RelationOnTarget).
bool IndependentRows(pqxx::nontransaction& tx, const v1::Relation& rel) {
  auto ties = tx.exec_params(
      "SELECT c.relkind = 'r' AND NOT c.relhasrules "
      "AND NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = c.oid OR inhparent = c.oid) "
      "AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE (conrelid = c.oid OR confrelid = "
      "c.oid) AND contype IN ('f', 'x')) "
      "AND NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = c.oid AND NOT tgisinternal) "
      "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE n.nspname = $1 AND c.relname = $2",
      rel.schema(), rel.table());
  if (ties.size() != 1 || !ties[0][0].as<bool>()) return false;
  // Every unique index, with its columns (none for an expression); partial ones count as
  // expressions: they are not the key.
  auto unique = tx.exec_params(
      "SELECT i.indexrelid, i.indpred IS NULL AND i.indexprs IS NULL, a.attname "
      "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
      "JOIN pg_namespace n ON n.oid = c.relnamespace "
      "LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
      "WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique",
      rel.schema(), rel.table());
  std::set<std::string> key, index_columns;
  for (const auto& c : rel.columns()) {
    if (c.key()) key.insert(c.name());
  }
  std::string index;
  for (const auto& row : unique) {
    if (!index.empty() && row[0].as<std::string>() != index) return false;  // a second one
    index = row[0].as<std::string>();
    if (!row[1].as<bool>() || row[2].is_null()) return false;
    index_columns.insert(row[2].as<std::string>());
  }
  return !key.empty() && index_columns == key;
}

}  // namespace

Status Target::CheckRelation(const v1::Relation& rel, RelationOnTarget* on_target) {
  std::string key = rel.schema() + "." + rel.table() + "#" + std::to_string(rel.schema_version());
  if (auto it = checked_.find(key); it != checked_.end()) {
    if (on_target != nullptr) *on_target = it->second;
    return Status::Ok();
  }
  return GuardPostgres(
      "checking table " + rel.schema() + "." + rel.table() + " on the target", [&]() -> Status {
        pqxx::nontransaction tx(*conn_);
        auto r = tx.exec_params(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid "
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
        std::map<std::string, std::string> have;  // column name -> its type on the target
        for (const auto& row : r) have[row[0].as<std::string>()] = row[1].as<std::string>();
        std::string ddl;
        RelationOnTarget found;
        for (const auto& c : rel.columns()) {
          auto it = have.find(c.name());
          found.column_types.push_back(it != have.end() ? it->second : std::string());
          if (it == have.end()) {
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
        found.independent_rows = IndependentRows(tx, rel);
        if (on_target != nullptr) *on_target = found;
        checked_.emplace(key, std::move(found));
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

Status Target::Lost() const {
  return Status::Unavailable("applying to the target: connection lost: " +
                             ErrorText(PQerrorMessage(apply_.get())));
}

Status Target::Send(std::shared_ptr<const std::vector<Statement>> statements) {
  if (in_flight_) return Status::Internal("applying to the target: a batch is already in flight");
  error_.clear();
  sqlstate_.clear();
  preparing_.clear();
  if (PQsendQueryParams(apply_.get(), "BEGIN", 0, nullptr, nullptr, nullptr, nullptr, 0) != 1) {
    return Lost();
  }
  in_flight_ = true;
  sending_ = std::move(statements);
  next_ = 0;
  sent_all_ = false;
  flushed_ = false;
  return Pump();
}

Status Target::Pump() {
  PGconn* c = apply_.get();
  constexpr size_t kChunk = 64;  // statements handed over between flushes
  std::vector<const char*> params;
  while (true) {
    int f = PQflush(c);
    if (f < 0) return Lost();
    flushed_ = f == 0;
    if (!flushed_ || sent_all_) return Status::Ok();
    for (size_t end = std::min(sending_->size(), next_ + kChunk); next_ < end; ++next_) {
      const Statement& st = (*sending_)[next_];
      if (st.sql.empty()) continue;
      const int n = static_cast<int>(st.params());
      params.resize(st.params());
      for (size_t i = 0; i < st.params(); ++i) params[i] = st.param(i);
      auto it = prepared_.find(st.sql);
      if (it == prepared_.end() && prepared_.size() < kMaxPrepared) {
        std::string name = "lifeline_" + std::to_string(++statements_named_);
        if (PQsendPrepare(c, name.c_str(), st.sql.c_str(), n, nullptr) != 1) return Lost();
        it = prepared_.emplace(st.sql, std::move(name)).first;
        preparing_.push_back(st.sql);
      }
      int sent = it != prepared_.end() ? PQsendQueryPrepared(c, it->second.c_str(), n,
                                                             params.data(), nullptr, nullptr, 0)
                                       : PQsendQueryParams(c, st.sql.c_str(), n, nullptr,
                                                           params.data(), nullptr, nullptr, 0);
      if (sent != 1) return Lost();
    }
    if (next_ >= sending_->size()) {
      if (PQsendQueryParams(c, "COMMIT", 0, nullptr, nullptr, nullptr, nullptr, 0) != 1 ||
          PQpipelineSync(c) != 1) {
        return Lost();
      }
      sent_all_ = true;
      sending_.reset();
    }
  }
}

Result<bool> Target::ReadResults() {
  PGconn* c = apply_.get();
  if (PQconsumeInput(c) == 0) return Lost();
  int idle = 0;
  while (!PQisBusy(c)) {
    PGresult* r = PQgetResult(c);
    if (r == nullptr) {
      // One NULL ends each statement's results; two in a row: nothing more has arrived.
      if (++idle > 1) break;
      continue;
    }
    idle = 0;
    ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_FATAL_ERROR && error_.empty()) {
      error_ = ErrorText(PQresultErrorMessage(r));
      const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      sqlstate_ = state != nullptr ? state : "";
    }
    PQclear(r);
    if (s == PGRES_PIPELINE_SYNC) return true;
  }
  if (PQstatus(c) == CONNECTION_BAD) return Lost();
  return false;
}

Status Target::WaitSocket(bool write) {
  pollfd p{PQsocket(apply_.get()), static_cast<short>(POLLIN | (write ? POLLOUT : 0)), 0};
  if (p.fd < 0) return Lost();
  if (poll(&p, 1, 1000) < 0 && errno != EINTR) return Lost();
  return Status::Ok();
}

Result<bool> Target::Finished(bool wait) {
  if (!in_flight_) return true;
  PGconn* c = apply_.get();
  while (true) {
    Status pumped = Pump();
    Result<bool> over = pumped.ok() ? ReadResults() : Result<bool>(pumped);
    if (!over.ok()) {
      in_flight_ = false;
      return over.status();
    }
    if (*over) break;
    if (!wait) return false;
    Status st = WaitSocket(!flushed_);
    if (!st.ok()) {
      in_flight_ = false;
      return st;
    }
  }
  in_flight_ = false;
  if (error_.empty()) {
    preparing_.clear();
    return true;
  }
  // Statements after the error were skipped, prepares among them too; the transaction block is
  // left aborted: end it before the connection is used again.
  for (const auto& sql : preparing_) prepared_.erase(sql);
  preparing_.clear();
  std::string error = error_, sqlstate = sqlstate_;
  // The ROLLBACK round below reads its own results; a stale error would roll back again forever.
  error_.clear();
  sqlstate_.clear();
  if (PQsendQueryParams(c, "ROLLBACK", 0, nullptr, nullptr, nullptr, nullptr, 0) != 1 ||
      PQpipelineSync(c) != 1) {
    return Lost();
  }
  in_flight_ = true;
  sent_all_ = true;
  auto rolled_back = Finished(true);
  if (!rolled_back.ok()) return rolled_back.status();
  // A change the target refuses (a constraint, a value) fails the same way on every retry: stop
  // with the position held, so it can be fixed and the stream resumed where it stopped.
  return ClassifyPostgresError(
      error, "applying to the target (rolled back; the stored position is held)", sqlstate);
}

Statement Target::PositionStatement(const std::string& stream, const ReplayPosition& p) {
  std::map<int32_t, int64_t> offsets = p.next_offsets;
  if (offsets.empty()) offsets[-1] = static_cast<int64_t>(p.last_seq + 1);
  Statement st;
  st.sql =
      "INSERT INTO lifeline.replay_position (stream, partition, source_id, next_offset, "
      "last_seq, last_commit_lsn, last_commit_time, applied_at) VALUES ";
  const std::string lsn = p.last_commit_lsn.ToString();
  const std::string time = FormatTimestampUs(p.last_commit_time_us);
  bool first = true;
  for (const auto& [partition, next] : offsets) {
    size_t n = st.params();
    st.sql += first ? "(" : ", (";
    first = false;
    for (size_t i = 1; i <= 7; ++i) st.sql += "$" + std::to_string(n + i) + ", ";
    st.sql += "clock_timestamp())";
    st.AddText(stream);
    st.AddText(std::to_string(partition));
    st.AddText(p.source_id);
    st.AddText(std::to_string(next));
    st.AddText(std::to_string(p.last_seq));
    st.AddText(lsn);
    st.AddText(time);
  }
  st.sql +=
      " ON CONFLICT (stream, partition) DO UPDATE SET source_id = EXCLUDED.source_id, "
      "next_offset = EXCLUDED.next_offset, last_seq = EXCLUDED.last_seq, last_commit_lsn = "
      "EXCLUDED.last_commit_lsn, last_commit_time = EXCLUDED.last_commit_time, applied_at = "
      "EXCLUDED.applied_at";
  return st;
}

Statement Target::GapStatement(const std::string& source_id, uint64_t from_seq, uint64_t to_seq) {
  Statement st;
  st.sql = "INSERT INTO lifeline.replay_gaps (source_id, from_seq, to_seq) VALUES ($1, $2, $3)";
  st.AddText(source_id);
  st.AddText(std::to_string(from_seq));
  st.AddText(std::to_string(to_seq));
  return st;
}

Statement Target::DeadLetterStatement(const std::string& topic, int32_t partition, int64_t offset,
                                      const std::string& raw, const std::string& error) {
  Statement st;
  st.sql =
      "INSERT INTO lifeline.dead_letter (topic, partition, \"offset\", raw, error) VALUES ($1, "
      "$2, $3, $4, $5)";
  st.AddText(topic);
  st.AddText(std::to_string(partition));
  st.AddText(std::to_string(offset));
  st.AddText(HexText(raw));
  st.AddText(error);
  return st;
}

}  // namespace lifeline::replayer
