// Source checks and helpers over libpqxx; exceptions stop here and become Status.
#include "capture/source_catalog.h"

#include <pqxx/pqxx>

#include "capture/change_builder.h"
#include "common/postgres.h"

namespace lifeline::capture {
std::string TableName::Qualified() const {
  return QuoteIdent(schema) + "." + QuoteIdent(table);
}

Result<std::vector<TableName>> ParseTableNames(const std::vector<std::string>& names) {
  std::vector<TableName> out;
  for (const auto& n : names) {
    size_t dot = n.find('.');
    TableName t;
    if (dot == std::string::npos) {
      t = {"public", n};
    } else {
      t = {n.substr(0, dot), n.substr(dot + 1)};
    }
    if (t.schema.empty() || t.table.empty() || t.table.find('.') != std::string::npos) {
      return Status::InvalidArgument("malformed --table '" + n +
                                     "': expected schema.name, e.g. public.emergency_requests");
    }
    out.push_back(t);
  }
  return out;
}

SourceCatalog::~SourceCatalog() = default;

Result<std::unique_ptr<SourceCatalog>> SourceCatalog::Connect(const std::string& conninfo,
                                                              const std::string& password) {
  return GuardPostgres("connecting to the source", [&]() -> Result<std::unique_ptr<SourceCatalog>> {
    std::unique_ptr<SourceCatalog> c(new SourceCatalog());
    c->conn_ = std::make_unique<pqxx::connection>(ConnInfoWithPassword(conninfo, password));
    return c;
  });
}

Status SourceCatalog::CheckServerSettings(const std::string& slot) {
  return GuardPostgres("checking source settings", [&]() -> Status {
    pqxx::nontransaction tx(*conn_);
    auto r = tx.exec_params(
        "SELECT current_setting('wal_level'), current_setting('max_replication_slots')::int, "
        "current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_replication_slots), "
        "(SELECT coalesce(string_agg(slot_name, ', ' ORDER BY slot_name), '') FROM "
        "pg_replication_slots), EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
        slot);
    std::string wal_level = r[0][0].as<std::string>();
    if (wal_level != "logical") {
      return Status::FailedPrecondition(
          "the source has wal_level = " + wal_level +
          "; logical decoding needs wal_level = logical: run ALTER SYSTEM SET wal_level = "
          "logical and restart PostgreSQL");
    }
    int max_slots = r[0][1].as<int>(), max_senders = r[0][2].as<int>();
    if (max_senders < 1) {
      return Status::FailedPrecondition(
          "the source has max_wal_senders = " + std::to_string(max_senders) +
          "; capture streams through a WAL sender: run ALTER SYSTEM SET max_wal_senders = 10 "
          "and restart PostgreSQL");
    }
    int used = r[0][3].as<int>();
    bool ours_exists = r[0][5].as<bool>();
    if (!ours_exists && used >= max_slots) {
      std::string taken = r[0][4].as<std::string>();
      return Status::FailedPrecondition(
          "the source has max_replication_slots = " + std::to_string(max_slots) + " and " +
          (used == 0 ? std::string("no slot can be made") : "all are in use (" + taken + ")") +
          "; capture needs one for slot " + slot +
          ": run ALTER SYSTEM SET max_replication_slots = " + std::to_string(used + 1) +
          " (or more) and restart PostgreSQL, or drop a slot nothing uses with "
          "SELECT pg_drop_replication_slot('name')");
    }
    return Status::Ok();
  });
}

Status SourceCatalog::CheckTables(const std::vector<TableName>& tables) {
  return GuardPostgres("checking captured tables", [&]() -> Status {
    pqxx::nontransaction tx(*conn_);
    for (const auto& t : tables) {
      auto r = tx.exec_params(
          "SELECT c.relreplident, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND "
          "i.indisprimary), EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND "
          "i.indisreplident) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
          "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
          t.schema, t.table);
      if (r.empty()) {
        return Status::InvalidArgument("table " + t.Display() +
                                       " does not exist on the source; check --table");
      }
      std::string ident = r[0][0].as<std::string>();
      bool pk = r[0][1].as<bool>(), ri_index = r[0][2].as<bool>();
      bool ok = ident == "f" || (ident == "d" && pk) || (ident == "i" && ri_index);
      if (!ok) {
        return Status::InvalidArgument(
            "table " + t.Display() +
            " has no primary key or replica identity, so its updates and deletes cannot be "
            "captured: add a primary key, or run ALTER TABLE " +
            t.Qualified() + " REPLICA IDENTITY FULL");
      }
    }
    return Status::Ok();
  });
}

Status SourceCatalog::EnsurePublication(const std::string& publication,
                                        const std::vector<TableName>& tables) {
  return GuardPostgres("setting up publication " + publication, [&]() -> Status {
    pqxx::work tx(*conn_);
    auto exists = tx.exec_params("SELECT 1 FROM pg_publication WHERE pubname = $1", publication);
    if (exists.empty()) {
      std::string list;
      for (const auto& t : tables) list += (list.empty() ? "" : ", ") + t.Qualified();
      tx.exec0("CREATE PUBLICATION " + QuoteIdent(publication) + " FOR TABLE " + list);
    } else {
      for (const auto& t : tables) {
        auto has = tx.exec_params(
            "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND "
            "tablename = $3",
            publication, t.schema, t.table);
        if (has.empty()) {
          tx.exec0("ALTER PUBLICATION " + QuoteIdent(publication) + " ADD TABLE " + t.Qualified());
        }
      }
    }
    tx.commit();
    return Status::Ok();
  });
}

Result<std::optional<SlotInfo>> SourceCatalog::FindSlot(const std::string& slot) {
  return GuardPostgres("reading slot " + slot, [&]() -> Result<std::optional<SlotInfo>> {
    pqxx::nontransaction tx(*conn_);
    auto r = tx.exec_params(
        "SELECT plugin, coalesce(active_pid, 0), coalesce(wal_status, ''), "
        "coalesce(confirmed_flush_lsn::text, '0/0'), coalesce(database, ''), "
        "coalesce((SELECT (extract(epoch FROM now() - coalesce(r.reply_time, r.backend_start)) "
        "* 1000)::bigint FROM pg_stat_replication r WHERE r.pid = s.active_pid), -1), "
        "(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_sender_timeout') "
        "FROM pg_replication_slots s WHERE slot_name = $1",
        slot);
    if (r.empty()) return std::optional<SlotInfo>();
    SlotInfo info;
    info.plugin = r[0][0].is_null() ? "" : r[0][0].as<std::string>();
    info.active_pid = r[0][1].as<int>();
    info.wal_status = r[0][2].as<std::string>();
    auto lsn = Lsn::Parse(r[0][3].as<std::string>());
    if (!lsn.ok()) return lsn.status();
    info.confirmed_flush = *lsn;
    info.database = r[0][4].as<std::string>();
    info.holder_silent_ms = r[0][5].as<int64_t>();
    info.wal_sender_timeout_ms = r[0][6].as<int64_t>();
    return std::optional<SlotInfo>(info);
  });
}

Result<uint32_t> SourceCatalog::RelationOid(const TableName& table) {
  return GuardPostgres("looking up " + table.Display(), [&]() -> Result<uint32_t> {
    pqxx::nontransaction tx(*conn_);
    auto r = tx.exec_params("SELECT $1::regclass::oid", table.Qualified());
    return r[0][0].as<uint32_t>();
  });
}

Result<std::vector<SnapshotColumn>> SourceCatalog::Columns(const TableName& table) {
  return GuardPostgres(
      "reading the columns of " + table.Display(), [&]() -> Result<std::vector<SnapshotColumn>> {
        pqxx::nontransaction tx(*conn_);
        // Key columns as pgoutput flags them: the replica identity's columns.
        auto r = tx.exec_params(
            "SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod), "
            "c.relreplident = 'f' OR EXISTS (SELECT 1 FROM pg_index i WHERE "
            "i.indrelid = c.oid AND a.attnum = ANY(i.indkey) AND "
            "((c.relreplident = 'd' AND i.indisprimary) OR "
            "(c.relreplident = 'i' AND i.indisreplident))) "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped "
            "AND a.attgenerated = '' ORDER BY a.attnum",
            table.Qualified());
        std::vector<SnapshotColumn> cols;
        for (const auto& row : r) {
          cols.push_back({row[0].as<std::string>(), row[1].as<uint32_t>(), row[2].as<std::string>(),
                          row[3].as<bool>()});
        }
        return cols;
      });
}

Result<uint64_t> SourceCatalog::EstimatedRows(const TableName& table) {
  return GuardPostgres("estimating the rows of " + table.Display(), [&]() -> Result<uint64_t> {
    pqxx::nontransaction tx(*conn_);
    auto r = tx.exec_params(
        "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = "
        "$1::regclass",
        table.Qualified());
    return r[0][0].as<uint64_t>();
  });
}

std::string SourceCatalog::TypeName(uint32_t type_oid, int32_t type_modifier) {
  auto key = std::make_pair(type_oid, type_modifier);
  if (auto it = type_names_.find(key); it != type_names_.end()) return it->second;
  std::string name;
  try {
    pqxx::nontransaction tx(*conn_);
    auto r = tx.exec_params("SELECT format_type($1::oid, $2::int)", type_oid, type_modifier);
    name = r[0][0].is_null() ? "" : r[0][0].as<std::string>();
  } catch (const std::exception&) {
    return "";  // a name is descriptive only; the oid is authoritative
  }
  type_names_[key] = name;
  return name;
}

Status SourceCatalog::EmitHeartbeat() {
  return GuardPostgres("emitting a heartbeat", [&]() -> Status {
    pqxx::nontransaction tx(*conn_);
    tx.exec_params("SELECT pg_logical_emit_message(true, $1, now()::text)",
                   std::string(kHeartbeatPrefix));
    return Status::Ok();
  });
}

Result<Lsn> SourceCatalog::CurrentWalLsn() {
  return GuardPostgres("reading the source WAL position", [&]() -> Result<Lsn> {
    pqxx::nontransaction tx(*conn_);
    auto r = tx.exec("SELECT pg_current_wal_lsn()::text");
    return Lsn::Parse(r[0][0].as<std::string>());
  });
}

}  // namespace lifeline::capture
