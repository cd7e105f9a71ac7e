// libpq replication connection: commands, CopyBoth receive loop, status updates.
#include "capture/replication_connection.h"

#include "common/postgres.h"

#include <libpq-fe.h>
#include <poll.h>

#include <chrono>

namespace lifeline::capture {
namespace {

bool Contains(const std::string& s, const char* needle) {
  return s.find(needle) != std::string::npos;
}

std::string TrimMessage(std::string m) {
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

}  // namespace

ReplicationConnection::~ReplicationConnection() {
  if (buffer_ != nullptr) PQfreemem(buffer_);
  if (conn_ != nullptr) PQfinish(conn_);
}

Status ReplicationConnection::ConnectionError(const std::string& what) const {
  return ClassifyPostgresError(PQerrorMessage(conn_), what);
}

Result<std::unique_ptr<ReplicationConnection>> ReplicationConnection::Connect(
    const std::string& conninfo, const std::string& password) {
  std::unique_ptr<ReplicationConnection> c(new ReplicationConnection());
  const char* keys[5] = {"dbname", "replication", "fallback_application_name", nullptr, nullptr};
  const char* values[5] = {conninfo.c_str(), "database", "lifeline capture", nullptr, nullptr};
  if (!password.empty()) {
    keys[3] = "password";
    values[3] = password.c_str();
  }
  c->conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (c->conn_ == nullptr) return Status::Internal("libpq could not allocate a connection");
  if (PQstatus(c->conn_) != CONNECTION_OK) {
    std::string err = PQerrorMessage(c->conn_);
    if (Contains(err, "exceeds max_wal_senders")) {
      // Transient while a just-stopped client's sender exits; capture gives up if it lasts.
      return Status::Unavailable(
          "no free WAL sender on the source (" + TrimMessage(err) +
          "): raise max_wal_senders (ALTER SYSTEM SET max_wal_senders = ...; restart "
          "PostgreSQL) or stop a replication client that holds one");
    }
    return c->ConnectionError("connecting to the source for replication");
  }
  return c;
}

Result<SystemIdentity> ReplicationConnection::IdentifySystem() {
  PGresult* res = PQexec(conn_, "IDENTIFY_SYSTEM");
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 4) {
    PQclear(res);
    return ConnectionError("IDENTIFY_SYSTEM");
  }
  SystemIdentity id;
  id.system_id = PQgetvalue(res, 0, 0);
  id.timeline = static_cast<uint32_t>(std::stoul(PQgetvalue(res, 0, 1)));
  auto lsn = Lsn::Parse(PQgetvalue(res, 0, 2));
  id.database = PQgetisnull(res, 0, 3) ? "" : PQgetvalue(res, 0, 3);
  PQclear(res);
  if (!lsn.ok()) return lsn.status();
  id.wal_position = *lsn;
  return id;
}

Result<CreatedSlot> ReplicationConnection::CreateSlotWithSnapshot(const std::string& slot) {
  std::string sql =
      "CREATE_REPLICATION_SLOT " + QuoteIdent(slot) + " LOGICAL pgoutput (SNAPSHOT 'export')";
  PGresult* res = PQexec(conn_, sql.c_str());
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
    std::string err = PQresultErrorMessage(res);
    PQclear(res);
    if (Contains(err, "all replication slots are in use")) {
      return Status::FailedPrecondition(
          "cannot create replication slot " + slot + ": " + err +
          "; raise max_replication_slots on the source (needs a restart) or drop unused slots");
    }
    return ClassifyPostgresError(err, "creating replication slot " + slot);
  }
  CreatedSlot created;
  auto lsn = Lsn::Parse(PQgetvalue(res, 0, 1));
  created.snapshot_name = PQgetvalue(res, 0, 2);
  PQclear(res);
  if (!lsn.ok()) return lsn.status();
  created.consistent_point = *lsn;
  return created;
}

Status ReplicationConnection::DropSlot(const std::string& slot) {
  std::string sql = "DROP_REPLICATION_SLOT " + QuoteIdent(slot);
  PGresult* res = PQexec(conn_, sql.c_str());
  bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
  std::string err = PQresultErrorMessage(res);
  PQclear(res);
  if (!ok) {
    if (Contains(err, "is active for PID")) {
      return Status::Unavailable("replication slot " + slot + " is in use: " + err);
    }
    return ClassifyPostgresError(err, "dropping replication slot " + slot);
  }
  return Status::Ok();
}

Status ReplicationConnection::StartReplication(const std::string& slot, Lsn start,
                                               const std::string& publication) {
  std::string sql = "START_REPLICATION SLOT " + QuoteIdent(slot) + " LOGICAL " + start.ToString() +
                    " (proto_version '1', publication_names " +
                    QuoteLiteral(QuoteIdent(publication)) + ", messages 'true')";
  PGresult* res = PQexec(conn_, sql.c_str());
  ExecStatusType st = PQresultStatus(res);
  std::string err = PQresultErrorMessage(res);
  PQclear(res);
  if (st != PGRES_COPY_BOTH) {
    if (Contains(err, "is active for PID")) {
      return Status::Unavailable("replication slot " + slot + " is in use: " + err);
    }
    return ClassifyPostgresError(err, "START_REPLICATION on slot " + slot);
  }
  return Status::Ok();
}

Result<std::optional<ServerReplicationMessage>> ReplicationConnection::Receive(
    std::chrono::milliseconds timeout) {
  if (buffer_ != nullptr) {
    PQfreemem(buffer_);
    buffer_ = nullptr;
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int n = PQgetCopyData(conn_, &buffer_, /*async=*/1);
    if (n > 0) {
      auto msg = ParseServerReplicationMessage(std::string_view(buffer_, static_cast<size_t>(n)));
      if (!msg.ok()) return msg.status();
      return std::optional<ServerReplicationMessage>(std::move(msg).value());
    }
    if (n == -1) {
      PGresult* res = PQgetResult(conn_);
      std::string err = res != nullptr ? PQresultErrorMessage(res) : "";
      PQclear(res);
      return Status::Unavailable("the source ended the replication stream" +
                                 (err.empty() ? std::string() : ": " + err));
    }
    if (n == -2) return ConnectionError("reading the replication stream");
    // Rounded up: a wait shorter than a millisecond must still wait, not spin.
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::optional<ServerReplicationMessage>();
    pollfd pfd{PQsocket(conn_), POLLIN, 0};
    int rc = poll(&pfd, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno != EINTR)
      return Status::Unavailable("poll on the replication socket failed");
    if (rc > 0 && PQconsumeInput(conn_) == 0)
      return ConnectionError("reading the replication stream");
    if (rc == 0) return std::optional<ServerReplicationMessage>();
  }
}

Status ReplicationConnection::SendStatus(const StandbyStatusUpdate& update) {
  std::string bytes = EncodeStandbyStatusUpdate(update);
  if (PQputCopyData(conn_, bytes.data(), static_cast<int>(bytes.size())) != 1 ||
      PQflush(conn_) != 0) {
    return ConnectionError("sending a standby status update");
  }
  return Status::Ok();
}

}  // namespace lifeline::capture
