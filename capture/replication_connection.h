// The replication protocol client: a libpq `replication=database` connection that identifies the
// system, creates a logical slot with an exported snapshot, streams pgoutput in CopyBoth mode and
// sends standby status updates. Only capture decides what it confirms.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "capture/replication_messages.h"
#include "common/lsn.h"
#include "common/status.h"

struct pg_conn;

namespace lifeline::capture {

struct SystemIdentity {
  std::string system_id;
  uint32_t timeline = 0;
  Lsn wal_position;
  std::string database;
};

struct CreatedSlot {
  Lsn consistent_point;
  std::string snapshot_name;  // valid until the next command on this connection
};

class ReplicationConnection {
 public:
  ~ReplicationConnection();
  ReplicationConnection(const ReplicationConnection&) = delete;
  ReplicationConnection& operator=(const ReplicationConnection&) = delete;

  // `conninfo` as given by the user; `password` (may be empty) is passed separately so it never
  // appears in a conninfo string that could be logged.
  [[nodiscard]] static Result<std::unique_ptr<ReplicationConnection>> Connect(
      const std::string& conninfo, const std::string& password);

  [[nodiscard]] Result<SystemIdentity> IdentifySystem();
  [[nodiscard]] Result<CreatedSlot> CreateSlotWithSnapshot(const std::string& slot);
  [[nodiscard]] Status DropSlot(const std::string& slot);
  // START_REPLICATION ... LOGICAL start (proto_version '1', publication_names, messages 'true').
  [[nodiscard]] Status StartReplication(const std::string& slot, Lsn start,
                                        const std::string& publication);

  // The next message from the server, waiting at most `timeout`; nullopt when none arrived. An
  // XLogData payload points into a buffer that stays valid until the next Receive.
  [[nodiscard]] Result<std::optional<ServerReplicationMessage>> Receive(
      std::chrono::milliseconds timeout);
  [[nodiscard]] Status SendStatus(const StandbyStatusUpdate& update);

 private:
  ReplicationConnection() = default;
  [[nodiscard]] Status ConnectionError(const std::string& what) const;
  pg_conn* conn_ = nullptr;
  char* buffer_ = nullptr;  // last PQgetCopyData buffer
};

}  // namespace lifeline::capture
