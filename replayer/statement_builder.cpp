// Parameterised statements for change events.
#include "replayer/statement_builder.h"

#include <algorithm>

namespace lifeline::replayer {
namespace {

// Statements of at most this many rows take any row count; longer runs go in power-of-two pieces.
constexpr size_t kExactRows = 16;
constexpr size_t kMaxRows = 256;
constexpr size_t kMaxParams = 65535;  // the protocol's limit per statement

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

StatementShape ShapeOf(const v1::ChangeEvent& ev, char kind) {
  StatementShape shape;
  shape.relation_oid = ev.relation().relation_oid();
  shape.schema_version = ev.relation().schema_version();
  shape.kind = kind;
  shape.schema = &ev.relation().schema();
  shape.table = &ev.relation().table();
  return shape;
}

Status NoKeyColumns(const v1::ChangeEvent& ev) {
  return Status::InvalidArgument("table " + ev.relation().schema() + "." + ev.relation().table() +
                                 " has no key columns in the stream; give it a primary key or "
                                 "REPLICA IDENTITY FULL on the source");
}

// UPDATE "t" SET "c" = $1, ... WHERE "k1" = $n AND "k2" IS NULL: the columns the new row sends,
// then the old key, numbered in the order ApplyStatement adds their parameters.
std::string UpdateText(const v1::ChangeEvent& ev, const v1::Row& key_row) {
  const auto& cols = ev.relation().columns();
  std::string sets, where;
  size_t n = 0;
  for (int i = 0; i < cols.size(); ++i) {
    if (!IsValue(ev.after().values(i))) continue;
    sets += (sets.empty() ? "" : ", ") + QuoteIdent(cols[i].name()) + " = $" + std::to_string(++n);
  }
  for (int i = 0; i < cols.size(); ++i) {
    if (!cols[i].key()) continue;
    where += (where.empty() ? "" : " AND ") + QuoteIdent(cols[i].name());
    where += key_row.values(i).kind_case() == v1::Value::kText ? " = $" + std::to_string(++n)
                                                               : std::string(" IS NULL");
  }
  return "UPDATE " + QualifiedTable(ev) + " SET " + sets + " WHERE " + where;
}

// "k1" = $n AND "k2" IS NULL ..., its parameters added to `st`.
Status KeyPredicate(const v1::ChangeEvent& ev, const v1::Row& row, Statement* st) {
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
    if (v.kind_case() == v1::Value::kText) {
      st->AddText(v.text());
      where += QuoteIdent(cols[i].name()) + " = $" + std::to_string(st->params());
    } else {
      where += QuoteIdent(cols[i].name()) + " IS NULL";
    }
  }
  if (where.empty()) return NoKeyColumns(ev);
  st->sql += where;
  return Status::Ok();
}

Status CheckWidth(const v1::ChangeEvent& ev, const v1::Row& row) {
  if (row.values_size() != ev.relation().columns_size()) {
    return Status::Corruption("event seq " + std::to_string(ev.seq()) + " has " +
                              std::to_string(row.values_size()) + " values for " +
                              std::to_string(ev.relation().columns_size()) + " columns");
  }
  return Status::Ok();
}

// The column list, ON CONFLICT target and update list of an upsert of `row`.
struct UpsertParts {
  std::string names, keys, updates;
  size_t width = 0;
};

UpsertParts PartsOf(const v1::ChangeEvent& ev, const v1::Row& row) {
  UpsertParts p;
  const auto& cols = ev.relation().columns();
  for (int i = 0; i < cols.size(); ++i) {
    if (!IsValue(row.values(i))) continue;
    std::string name = QuoteIdent(cols[i].name());
    p.names += (p.names.empty() ? "" : ", ") + name;
    ++p.width;
    if (cols[i].key()) {
      p.keys += (p.keys.empty() ? "" : ", ") + name;
    } else {
      p.updates += (p.updates.empty() ? "" : ", ") + name + " = EXCLUDED." + name;
    }
  }
  return p;
}

std::string ConflictClause(const UpsertParts& p, bool overwrite) {
  return " ON CONFLICT (" + p.keys + ") DO " +
         ((overwrite && !p.updates.empty()) ? "UPDATE SET " + p.updates : std::string("NOTHING"));
}

Status NoKeys(const v1::ChangeEvent& ev) {
  return Status::InvalidArgument("table " + ev.relation().schema() + "." + ev.relation().table() +
                                 " has no key columns in the stream");
}

// ($1, $2), ($3, $4) ... for `rows` rows of `width` parameters from $first on; with `types`
// (one per column), each parameter is cast: ($1::uuid, $2::text).
std::string Tuples(size_t rows, size_t width, size_t first,
                   const std::vector<std::string>* types = nullptr) {
  std::string out;
  out.reserve(rows * width * 6);
  size_t n = first;
  for (size_t r = 0; r < rows; ++r) {
    out += r == 0 ? "(" : ", (";
    for (size_t c = 0; c < width; ++c) {
      if (c > 0) out += ", ";
      out += '$';
      out += std::to_string(n++);
      if (types != nullptr) out += "::" + (*types)[c];
    }
    out += ')';
  }
  return out;
}

// An UPDATE that can join a run: the key did not change (no old key, or the same one), every key
// column has a non-NULL value, and some other column is set.
bool UpdateJoinsRuns(const v1::ChangeEvent& ev, const std::vector<std::string>* column_types) {
  const auto& cols = ev.relation().columns();
  if (column_types == nullptr || column_types->size() != static_cast<size_t>(cols.size())) {
    return false;
  }
  const v1::Row& after = ev.after();
  const bool old_key = ev.has_before() && ev.before().values_size() > 0;
  if (old_key && ev.before().values_size() != cols.size()) return false;
  bool sets = false;
  for (int i = 0; i < cols.size(); ++i) {
    const v1::Value& v = after.values(i);
    if (cols[i].key()) {
      if (v.kind_case() != v1::Value::kText) return false;
      if (old_key && (ev.before().values(i).kind_case() != v1::Value::kText ||
                      ev.before().values(i).text() != v.text())) {
        return false;
      }
    } else if (IsValue(v)) {
      sets = true;
    }
    if (IsValue(v) && (*column_types)[i].empty()) return false;
  }
  return sets;
}

}  // namespace

bool StatementShape::SameAs(const StatementShape& o, const std::string& o_schema,
                            const std::string& o_table) const {
  return relation_oid == o.relation_oid && schema_version == o.schema_version && kind == o.kind &&
         columns == o.columns && null_keys == o.null_keys && *table == o_table &&
         *schema == o_schema;
}

void Statement::AddText(std::string_view v) {
  starts.push_back(static_cast<int32_t>(values.size()));
  values.append(v);
  values.push_back('\0');
}

void Statement::AddNull() {
  starts.push_back(-1);
}

void Statement::Add(const v1::Value& v) {
  if (v.kind_case() == v1::Value::kText) {
    AddText(v.text());
  } else {
    AddNull();
  }
}

std::string QualifiedTable(const v1::ChangeEvent& ev) {
  return QuoteIdent(ev.relation().schema()) + "." + QuoteIdent(ev.relation().table());
}

Result<Statement> ApplyStatement(const v1::ChangeEvent& ev, ShapeCache* shapes) {
  Statement st;
  switch (ev.op()) {
    case v1::OP_INSERT:
    case v1::OP_SNAPSHOT: {
      LIFELINE_RETURN_IF_ERROR(CheckWidth(ev, ev.after()));
      UpsertParts p = PartsOf(ev, ev.after());
      if (p.keys.empty()) return NoKeys(ev);
      for (const auto& v : ev.after().values()) {
        if (IsValue(v)) st.Add(v);
      }
      st.sql = "INSERT INTO " + QualifiedTable(ev) + " (" + p.names + ") VALUES " +
               Tuples(1, p.width, 1) + ConflictClause(p, /*overwrite=*/true);
      return st;
    }
    case v1::OP_UPDATE: {
      LIFELINE_RETURN_IF_ERROR(CheckWidth(ev, ev.after()));
      const auto& cols = ev.relation().columns();
      StatementShape shape = ShapeOf(ev, 'S');
      for (int i = 0; i < cols.size(); ++i) {
        if (!IsValue(ev.after().values(i))) continue;
        st.Add(ev.after().values(i));
        if (i < 64) shape.columns |= uint64_t{1} << i;
      }
      if (st.params() == 0) return Statement();
      // A new row with values: its key (or the old one, when sent) finds the row.
      const v1::Row& key_row = *KeySource(ev);
      bool keyed = false;
      for (int i = 0; i < cols.size(); ++i) {
        if (!cols[i].key()) continue;
        keyed = true;
        if (i >= key_row.values_size() || !IsValue(key_row.values(i))) {
          return Status::Corruption("event seq " + std::to_string(ev.seq()) + ": key column " +
                                    cols[i].name() + " has no value");
        }
        if (key_row.values(i).kind_case() == v1::Value::kText) {
          st.AddText(key_row.values(i).text());
        } else if (i < 64) {
          shape.null_keys |= uint64_t{1} << i;
        }
      }
      if (!keyed) return NoKeyColumns(ev);
      auto build = [&] { return UpdateText(ev, key_row); };
      st.sql = shapes != nullptr && cols.size() <= 64 ? shapes->Text(shape, build) : build();
      return st;
    }
    case v1::OP_DELETE: {
      if (!ev.has_before()) {
        return Status::Corruption("delete event seq " + std::to_string(ev.seq()) +
                                  " has no old key");
      }
      st.sql = "DELETE FROM " + QualifiedTable(ev) + " WHERE ";
      LIFELINE_RETURN_IF_ERROR(KeyPredicate(ev, ev.before(), &st));
      return st;
    }
    case v1::OP_TRUNCATE: {
      st.sql = "TRUNCATE " + QualifiedTable(ev);
      if (ev.truncate_options() & 2) st.sql += " RESTART IDENTITY";
      if (ev.truncate_options() & 1) st.sql += " CASCADE";
      return st;
    }
    case v1::OP_HEARTBEAT:
    case v1::OP_RESNAPSHOT_MARKER:
      return st;
    default:
      return Status::Corruption("event seq " + std::to_string(ev.seq()) + " has unknown op " +
                                std::to_string(static_cast<int>(ev.op())));
  }
}

Result<std::string> InsertIfMissingStatement(const v1::ChangeEvent& ev, const v1::Row& row) {
  LIFELINE_RETURN_IF_ERROR(CheckWidth(ev, row));
  UpsertParts p = PartsOf(ev, row);
  if (p.keys.empty()) return NoKeys(ev);
  std::string values;
  for (const auto& v : row.values()) {
    if (IsValue(v)) values += (values.empty() ? "" : ", ") + Literal(v);
  }
  return "INSERT INTO " + QualifiedTable(ev) + " (" + p.names + ") VALUES (" + values + ")" +
         ConflictClause(p, /*overwrite=*/false) + ";";
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

bool StatementRun::TryAdd(const v1::ChangeEvent& ev, const std::vector<std::string>* column_types) {
  const bool update = ev.op() == v1::OP_UPDATE;
  // An upsert and a run's update both carry the new row's values; a delete only the old key.
  const bool upsert = ev.op() == v1::OP_INSERT || ev.op() == v1::OP_SNAPSHOT || update;
  if (!upsert && ev.op() != v1::OP_DELETE) return false;
  const v1::Row& row = upsert ? ev.after() : ev.before();
  const auto& cols = ev.relation().columns();
  if (row.values_size() != cols.size() || cols.size() > 64) return false;
  if (update && !UpdateJoinsRuns(ev, column_types)) return false;
  StatementShape shape = ShapeOf(ev, update ? 'V' : upsert ? 'U' : 'D');
  std::string key;
  size_t width = 0;
  for (int i = 0; i < cols.size(); ++i) {
    const v1::Value& v = row.values(i);
    if (upsert && !IsValue(v)) continue;
    if (cols[i].key()) {
      if (v.kind_case() != v1::Value::kText) return false;  // a NULL key cannot go in a list
      key += v.text();
      key += '\0';
    }
    if (upsert || cols[i].key()) {
      shape.columns |= uint64_t{1} << i;
      ++width;
    }
  }
  if (key.empty()) return false;
  if (shape_.kind == 0) {
    shape_ = shape;
    schema_ = ev.relation().schema();
    table_ = ev.relation().table();
    shape_.schema = shape_.table = nullptr;
    width_ = width;
    types_.clear();
    if (update) {
      std::string sets, names, where;
      for (int i = 0; i < cols.size(); ++i) {
        if (!IsValue(row.values(i))) continue;
        std::string name = QuoteIdent(cols[i].name());
        names += (names.empty() ? "" : ", ") + name;
        types_.push_back((*column_types)[i]);
        if (cols[i].key()) {
          where += (where.empty() ? "" : " AND ") + std::string("lifeline_t.") + name +
                   " = lifeline_v." + name;
        } else {
          sets += (sets.empty() ? "" : ", ") + name + " = lifeline_v." + name;
        }
      }
      head_ = "UPDATE " + QualifiedTable(ev) + " AS lifeline_t SET " + sets + " FROM (VALUES ";
      tail_ = ") AS lifeline_v (" + names + ") WHERE " + where;
    } else if (upsert) {
      UpsertParts p = PartsOf(ev, row);
      head_ = "INSERT INTO " + QualifiedTable(ev) + " (" + p.names + ") VALUES ";
      tail_ = ConflictClause(p, /*overwrite=*/true);
    } else {
      std::string keys;
      for (int i = 0; i < cols.size(); ++i) {
        if (cols[i].key()) keys += (keys.empty() ? "" : ", ") + QuoteIdent(cols[i].name());
      }
      head_ = "DELETE FROM " + QualifiedTable(ev) + " WHERE (" + keys + ") IN (";
      tail_ = ")";
    }
  } else if (!shape.SameAs(shape_, schema_, table_) || keys_.count(key)) {
    return false;
  }
  keys_.insert(std::move(key));
  for (int i = 0; i < cols.size(); ++i) {
    const v1::Value& v = row.values(i);
    if (upsert ? IsValue(v) : cols[i].key()) values_.Add(v);
  }
  ++rows_;
  return true;
}

void StatementRun::TakeInto(std::vector<Statement>* out) {
  if (rows_ > 0) {
    const size_t cap = std::max<size_t>(1, std::min(kMaxRows, kMaxParams / width_));
    size_t row = 0;
    while (row < rows_) {
      size_t left = rows_ - row, n = 1;
      if (left <= std::min(kExactRows, cap)) {
        n = left;
      } else {
        while (n * 2 <= std::min(left, cap)) n *= 2;
      }
      Statement st;
      st.sql = head_ + Tuples(n, width_, 1, types_.empty() ? nullptr : &types_) + tail_;
      size_t first = row * width_, last = (row + n) * width_;
      for (size_t i = first; i < last; ++i) {
        if (values_.starts[i] < 0) {
          st.AddNull();
        } else {
          st.AddText(values_.param(i));
        }
      }
      out->push_back(std::move(st));
      row += n;
    }
  }
  shape_ = StatementShape();
  head_.clear();
  tail_.clear();
  width_ = 0;
  types_.clear();
  values_ = Statement();
  keys_.clear();
  rows_ = 0;
}

}  // namespace lifeline::replayer
