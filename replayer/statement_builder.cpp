// SQL text for change events.
#include "replayer/statement_builder.h"

namespace lifeline::replayer {
namespace {

bool IsValue(const v1::Value& v) {
  return v.kind_case() != v1::Value::kUnchangedToast;
}

std::string Literal(const v1::Value& v) {
  if (v.kind_case() == v1::Value::kText) return QuoteLiteral(v.text());
  return "NULL";
}

const v1::Row* KeySource(const v1::ChangeEvent& ev) {
  if (ev.has_before() && ev.before().values_size() > 0) return &ev.before();
  if (ev.has_after()) return &ev.after();
  return nullptr;
}

// "k1" = 'v1' AND "k2" IS NULL ...
Result<std::string> KeyPredicate(const v1::ChangeEvent& ev, const v1::Row& row) {
  std::string where;
  const auto& cols = ev.relation().columns();
  for (int i = 0; i < cols.size(); ++i) {
    if (!cols[i].key()) continue;
    if (i >= row.values_size() || !IsValue(row.values(i))) {
      return Status::Corruption("event seq " + std::to_string(ev.seq()) + ": key column " +
                                cols[i].name() + " has no value");
    }
    if (!where.empty()) where += " AND ";
    const auto& v = row.values(i);
    where += QuoteIdent(cols[i].name()) +
             (v.kind_case() == v1::Value::kText ? " = " + QuoteLiteral(v.text()) : " IS NULL");
  }
  if (where.empty()) {
    return Status::InvalidArgument("table " + ev.relation().schema() + "." + ev.relation().table() +
                                   " has no key columns in the stream; give it a primary key or "
                                   "REPLICA IDENTITY FULL on the source");
  }
  return where;
}

Status CheckWidth(const v1::ChangeEvent& ev, const v1::Row& row) {
  if (row.values_size() != ev.relation().columns_size()) {
    return Status::Corruption("event seq " + std::to_string(ev.seq()) + " has " +
                              std::to_string(row.values_size()) + " values for " +
                              std::to_string(ev.relation().columns_size()) + " columns");
  }
  return Status::Ok();
}

Result<std::string> Upsert(const v1::ChangeEvent& ev, const v1::Row& row, bool overwrite) {
  LIFELINE_RETURN_IF_ERROR(CheckWidth(ev, row));
  const auto& cols = ev.relation().columns();
  std::string names, values, keys, updates;
  for (int i = 0; i < cols.size(); ++i) {
    if (!IsValue(row.values(i))) continue;
    std::string name = QuoteIdent(cols[i].name());
    names += (names.empty() ? "" : ", ") + name;
    values += (values.empty() ? "" : ", ") + Literal(row.values(i));
    if (cols[i].key()) {
      keys += (keys.empty() ? "" : ", ") + name;
    } else {
      updates += (updates.empty() ? "" : ", ") + name + " = EXCLUDED." + name;
    }
  }
  if (keys.empty()) {
    return Status::InvalidArgument("table " + ev.relation().schema() + "." + ev.relation().table() +
                                   " has no key columns in the stream");
  }
  std::string sql = "INSERT INTO " + QualifiedTable(ev) + " (" + names + ") VALUES (" + values +
                    ") ON CONFLICT (" + keys + ") DO ";
  sql += (overwrite && !updates.empty()) ? "UPDATE SET " + updates : std::string("NOTHING");
  return sql + ";";
}

}  // namespace

std::string QualifiedTable(const v1::ChangeEvent& ev) {
  return QuoteIdent(ev.relation().schema()) + "." + QuoteIdent(ev.relation().table());
}

Result<std::string> ApplyStatement(const v1::ChangeEvent& ev) {
  switch (ev.op()) {
    case v1::OP_INSERT:
    case v1::OP_SNAPSHOT:
      return Upsert(ev, ev.after(), /*overwrite=*/true);
    case v1::OP_UPDATE: {
      LIFELINE_RETURN_IF_ERROR(CheckWidth(ev, ev.after()));
      const v1::Row* key_row = KeySource(ev);
      LIFELINE_ASSIGN_OR_RETURN(std::string where, KeyPredicate(ev, *key_row));
      std::string sets;
      const auto& cols = ev.relation().columns();
      for (int i = 0; i < cols.size(); ++i) {
        if (!IsValue(ev.after().values(i))) continue;
        sets += (sets.empty() ? "" : ", ") + QuoteIdent(cols[i].name()) + " = " +
                Literal(ev.after().values(i));
      }
      if (sets.empty()) return std::string();
      return "UPDATE " + QualifiedTable(ev) + " SET " + sets + " WHERE " + where + ";";
    }
    case v1::OP_DELETE: {
      if (!ev.has_before()) {
        return Status::Corruption("delete event seq " + std::to_string(ev.seq()) +
                                  " has no old key");
      }
      LIFELINE_ASSIGN_OR_RETURN(std::string where, KeyPredicate(ev, ev.before()));
      return "DELETE FROM " + QualifiedTable(ev) + " WHERE " + where + ";";
    }
    case v1::OP_TRUNCATE: {
      std::string sql = "TRUNCATE " + QualifiedTable(ev);
      if (ev.truncate_options() & 2) sql += " RESTART IDENTITY";
      if (ev.truncate_options() & 1) sql += " CASCADE";
      return sql + ";";
    }
    case v1::OP_HEARTBEAT:
    case v1::OP_RESNAPSHOT_MARKER:
      return std::string();
    default:
      return Status::Corruption("event seq " + std::to_string(ev.seq()) + " has unknown op " +
                                std::to_string(static_cast<int>(ev.op())));
  }
}

Result<std::string> InsertIfMissingStatement(const v1::ChangeEvent& ev, const v1::Row& row) {
  return Upsert(ev, row, /*overwrite=*/false);
}

std::string RowKeyText(const v1::ChangeEvent& ev) {
  const v1::Row* row = ev.op() == v1::OP_DELETE ? &ev.before()
                       : ev.has_after()         ? &ev.after()
                                                : &ev.before();
  std::string out;
  const auto& cols = ev.relation().columns();
  for (int i = 0; i < cols.size() && i < row->values_size(); ++i) {
    if (!cols[i].key()) continue;
    if (!out.empty()) out += ",";
    out += cols[i].name() + "=" + row->values(i).text();
  }
  return out;
}

bool StatementRun::TryAdd(const v1::ChangeEvent& ev) {
  const bool upsert = ev.op() == v1::OP_INSERT || ev.op() == v1::OP_SNAPSHOT;
  if (!upsert && ev.op() != v1::OP_DELETE) return false;
  const v1::Row& row = upsert ? ev.after() : ev.before();
  const auto& cols = ev.relation().columns();
  if (row.values_size() != cols.size()) return false;
  std::string signature = QualifiedTable(ev) + (upsert ? " U" : " D");
  std::string key, tuple;
  for (int i = 0; i < cols.size(); ++i) {
    const v1::Value& v = row.values(i);
    if (upsert && v.kind_case() == v1::Value::kUnchangedToast) continue;
    if (cols[i].key()) {
      if (v.kind_case() != v1::Value::kText) return false;  // a NULL key cannot go in a list
      key += QuoteLiteral(v.text()) + ",";
    }
    if (upsert || cols[i].key()) {
      signature += " " + QuoteIdent(cols[i].name());
      tuple += (tuple.empty() ? "" : ", ") + Literal(v);
    }
  }
  if (key.empty()) return false;
  if (signature != signature_) {
    if (!signature_.empty()) return false;
    signature_ = signature;
    std::string names, keys, updates;
    for (int i = 0; i < cols.size(); ++i) {
      if (upsert && row.values(i).kind_case() == v1::Value::kUnchangedToast) continue;
      if (!upsert && !cols[i].key()) continue;
      std::string name = QuoteIdent(cols[i].name());
      names += (names.empty() ? "" : ", ") + name;
      if (cols[i].key()) {
        keys += (keys.empty() ? "" : ", ") + name;
      } else {
        updates += (updates.empty() ? "" : ", ") + name + " = EXCLUDED." + name;
      }
    }
    if (upsert) {
      head_ = "INSERT INTO " + QualifiedTable(ev) + " (" + names + ") VALUES ";
      tail_ = " ON CONFLICT (" + keys + ") DO " +
              (updates.empty() ? std::string("NOTHING") : "UPDATE SET " + updates) + ";";
    } else {
      head_ = "DELETE FROM " + QualifiedTable(ev) + " WHERE (" + keys + ") IN (";
      tail_ = ");";
    }
  } else if (keys_.count(key)) {
    return false;
  }
  keys_.insert(key);
  values_ += (rows_ == 0 ? "(" : ", (") + tuple + ")";
  ++rows_;
  return true;
}

std::string StatementRun::Take() {
  std::string sql = rows_ == 0 ? std::string() : head_ + values_ + tail_;
  signature_.clear();
  head_.clear();
  tail_.clear();
  values_.clear();
  keys_.clear();
  rows_ = 0;
  return sql;
}

}  // namespace lifeline::replayer
