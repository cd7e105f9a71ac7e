// Snapshot reads through a server-side cursor inside SET TRANSACTION SNAPSHOT.
#include "capture/snapshot_reader.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>
#include <pqxx/pqxx>

#include "common/postgres.h"

namespace lifeline::capture {

Result<uint64_t> ReadSnapshot(const SnapshotRequest& request, SourceCatalog& catalog, Spool& spool,
                              const SnapshotProgress& progress, const std::atomic<bool>& stop) {
  const int64_t started_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
  std::vector<v1::ChangeEvent> pending;
  std::optional<v1::ChangeEvent> held;  // the newest row, kept back to be marked last
  uint64_t rows = 0;
  uint32_t index = 0;
  auto seal = [&](std::vector<v1::ChangeEvent>& events) -> Status {
    if (request.keyring == nullptr) return Status::Ok();
    for (auto& ev : events) LIFELINE_RETURN_IF_ERROR(request.keyring->Seal(ev));
    return Status::Ok();
  };
  auto flush = [&]() -> Status {
    if (pending.empty()) return Status::Ok();
    LIFELINE_RETURN_IF_ERROR(seal(pending));
    auto r = spool.Append(pending);
    if (r.ok()) progress.rows_spooled->Add(pending.size());
    pending.clear();
    return r.status();
  };
  double estimated = 0;
  for (const auto& table : request.tables) {
    auto n = catalog.EstimatedRows(table);
    if (n.ok()) estimated += static_cast<double>(*n);
  }
  progress.rows_estimated->Set(estimated);
  try {
    pqxx::connection conn(ConnInfoWithPassword(request.conninfo, request.password));
    pqxx::work tx(conn, "lifeline snapshot");
    tx.exec0("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    tx.exec0("SET TRANSACTION SNAPSHOT " + tx.quote(request.snapshot_name));
    for (const auto& table : request.tables) {
      LIFELINE_ASSIGN_OR_RETURN(uint32_t oid, catalog.RelationOid(table));
      LIFELINE_ASSIGN_OR_RETURN(auto columns, catalog.Columns(table));
      v1::Relation relation;
      relation.set_schema(table.schema);
      relation.set_table(table.table);
      relation.set_relation_oid(oid);
      relation.set_schema_version(1);
      std::string select;
      for (const auto& c : columns) {
        auto* col = relation.add_columns();
        col->set_name(c.name);
        col->set_type_oid(c.type_oid);
        col->set_type_name(c.type_name);
        col->set_key(c.key);
        select += (select.empty() ? "" : ", ") + tx.quote_name(c.name);
      }
      spdlog::info("snapshot: reading {} ({} columns)", table.Display(), columns.size());
      tx.exec0("DECLARE lifeline_snapshot NO SCROLL CURSOR FOR SELECT " + select + " FROM " +
               table.Qualified());
      while (true) {
        if (stop.load()) return Status::Unavailable("snapshot interrupted by shutdown");
        pqxx::result r = tx.exec("FETCH FORWARD 5000 FROM lifeline_snapshot");
        if (r.empty()) break;
        for (const auto& row : r) {
          v1::ChangeEvent ev;
          *ev.mutable_source() = request.source;
          ev.set_commit_lsn(request.consistent_point.value());
          ev.set_event_lsn(request.consistent_point.value());
          ev.set_commit_time_us(started_us);
          ev.set_index_in_txn(index++);
          ev.set_op(v1::OP_SNAPSHOT);
          *ev.mutable_relation() = relation;
          auto* after = ev.mutable_after();
          for (const auto& field : row) {
            auto* v = after->add_values();
            if (field.is_null()) {
              v->set_null(true);
            } else {
              v->set_text(field.c_str(), field.size());
            }
          }
          if (held) pending.push_back(std::move(*held));
          held = std::move(ev);
          ++rows;
          progress.rows_read->Add();
          if (pending.size() >= request.batch_events) LIFELINE_RETURN_IF_ERROR(flush());
        }
      }
      tx.exec0("CLOSE lifeline_snapshot");
      spdlog::info("snapshot: {} done, {} rows so far", table.Display(), rows);
    }
    tx.commit();
  } catch (const pqxx::broken_connection& e) {
    return ClassifyPostgresError(e.what(), "snapshot: connection to the source");
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (msg.find("invalid snapshot identifier") != std::string::npos) {
      return Status::Unavailable("snapshot: the exported snapshot is gone (" + msg + ")");
    }
    return ClassifyPostgresError(msg, "reading the initial snapshot");
  }
  if (held) {
    held->set_last_in_txn(true);
    held->set_txn_event_count(index);
    pending.push_back(std::move(*held));
  }
  LIFELINE_RETURN_IF_ERROR(seal(pending));
  auto r = spool.Append(pending, request.done_properties);
  if (!r.ok()) return r.status();
  progress.rows_spooled->Add(pending.size());
  return rows;
}

}  // namespace lifeline::capture
