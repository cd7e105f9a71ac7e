// Ordinary SQL against the source (libpqxx): settings and table checks, the publication, slot
// state, column type names, heartbeats and the current WAL position.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <pqxx/connection>
#include <string>
#include <utility>
#include <vector>

#include "common/lsn.h"
#include "common/status.h"

namespace lifeline::capture {

struct TableName {
  std::string schema;
  std::string table;
  std::string Qualified() const;  // "public"."emergency_requests", quoted for SQL
  std::string Display() const { return schema + "." + table; }
};

// "schema.name" or "name" (schema public).
[[nodiscard]] Result<std::vector<TableName>> ParseTableNames(const std::vector<std::string>& names);

struct SlotInfo {
  std::string plugin;
  int active_pid = 0;      // 0 when not in use
  std::string wal_status;  // reserved, extended, unreserved, lost
  Lsn confirmed_flush;
  // While active: how long the WAL sender holding it has heard nothing from its client (-1 when
  // unknown), and the source's wal_sender_timeout, after which that sender gives the slot up.
  int64_t holder_silent_ms = -1;
  int64_t wal_sender_timeout_ms = 60'000;
  std::string database;
};

// A column as the snapshot reads it, in attribute order.
struct SnapshotColumn {
  std::string name;
  uint32_t type_oid = 0;
  std::string type_name;
  bool key = false;
};

class SourceCatalog {
 public:
  ~SourceCatalog();
  [[nodiscard]] static Result<std::unique_ptr<SourceCatalog>> Connect(const std::string& conninfo,
                                                                      const std::string& password);
  // wal_level = logical, room for a sender, and room for `slot` unless it exists already.
  [[nodiscard]] Status CheckServerSettings(const std::string& slot);
  // Each table exists and has a primary key or REPLICA IDENTITY FULL.
  [[nodiscard]] Status CheckTables(const std::vector<TableName>& tables);
  // Creates the publication if missing; adds tables it lacks.
  [[nodiscard]] Status EnsurePublication(const std::string& publication,
                                         const std::vector<TableName>& tables);
  [[nodiscard]] Result<std::optional<SlotInfo>> FindSlot(const std::string& slot);
  [[nodiscard]] Result<uint32_t> RelationOid(const TableName& table);
  [[nodiscard]] Result<std::vector<SnapshotColumn>> Columns(const TableName& table);
  // The planner's row estimate (pg_class.reltuples; 0 when the table was never analyzed).
  [[nodiscard]] Result<uint64_t> EstimatedRows(const TableName& table);
  std::string TypeName(uint32_t type_oid, int32_t type_modifier);
  // A transactional logical message that comes back through the slot as a HEARTBEAT event.
  [[nodiscard]] Status EmitHeartbeat();
  [[nodiscard]] Result<Lsn> CurrentWalLsn();

 private:
  SourceCatalog() = default;
  std::unique_ptr<pqxx::connection> conn_;
  std::map<std::pair<uint32_t, int32_t>, std::string> type_names_;
};

}  // namespace lifeline::capture
