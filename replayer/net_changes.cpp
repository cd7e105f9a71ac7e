// Netting a batch's changes per row (see net_changes.h for the transitions).
#include "replayer/net_changes.h"

#include <algorithm>

namespace lifeline::replayer {
namespace {

bool SameRelation(const v1::Relation& a, const v1::Relation& b) {
  return a.relation_oid() == b.relation_oid() && a.schema_version() == b.schema_version() &&
         a.table() == b.table() && a.schema() == b.schema();
}

bool IsText(const v1::Value& v) {
  return v.kind_case() == v1::Value::kText;
}

// The row's key as text ("v1\0v2\0"), empty if a key column is not a text value (NULL, unchanged
// TOAST) or the relation has no key columns.
std::string KeyOf(const v1::Relation& rel, const v1::Row& row) {
  std::string key;
  for (int i = 0; i < rel.columns_size(); ++i) {
    if (!rel.columns(i).key()) continue;
    if (!IsText(row.values(i))) return {};
    key += row.values(i).text();
    key += '\0';
  }
  return key;
}

// `row` with only its key columns set (NULL elsewhere): what a DELETE needs.
v1::Row KeyRow(const v1::Relation& rel, const v1::Row& row) {
  v1::Row out;
  for (int i = 0; i < rel.columns_size(); ++i) {
    v1::Value* v = out.add_values();
    if (rel.columns(i).key()) {
      *v = row.values(i);
    } else {
      v->set_null(true);
    }
  }
  return out;
}

// Sets in `into` every column `from` has a value for (anything but unchanged TOAST).
void Overlay(const v1::Row& from, v1::Row* into) {
  for (int i = 0; i < from.values_size(); ++i) {
    if (from.values(i).kind_case() != v1::Value::kUnchangedToast) {
      *into->mutable_values(i) = from.values(i);
    }
  }
}

}  // namespace

NetChanges::Held& NetChanges::Find(const std::string& key, bool* fresh) {
  auto [it, inserted] = by_key_.try_emplace(key, held_.size());
  *fresh = inserted;
  if (inserted) held_.emplace_back();
  return held_[it->second];
}

bool NetChanges::TryAdd(const v1::ChangeEvent& ev, const std::vector<std::string>& column_types) {
  const v1::Relation& rel = ev.relation();
  const int width = rel.columns_size();
  if (relation_.has_relation() && !SameRelation(relation_.relation(), rel)) return false;
  const bool upsert = ev.op() == v1::OP_INSERT || ev.op() == v1::OP_SNAPSHOT;
  const bool update = ev.op() == v1::OP_UPDATE;
  if (!upsert && !update && ev.op() != v1::OP_DELETE) return false;
  const v1::Row& row = ev.op() == v1::OP_DELETE ? ev.before() : ev.after();
  if (row.values_size() != width) return false;
  std::string key = KeyOf(rel, row);
  if (key.empty()) return false;
  if (update && ev.has_before() && ev.before().values_size() > 0) {
    // The old key is sent only when it differs (or under REPLICA IDENTITY FULL): a changed key
    // moves the row, which is applied as it is.
    if (ev.before().values_size() != width || KeyOf(rel, ev.before()) != key) return false;
  }
  if (!relation_.has_relation()) {
    *relation_.mutable_relation() = rel;
    column_types_ = column_types;
  }
  bool fresh = false;
  Held& h = Find(key, &fresh);
  h.seq = ev.seq();
  if (ev.op() == v1::OP_DELETE) {
    h.net = Net::kDelete;
    h.delete_first = false;
    h.row = KeyRow(rel, row);
  } else if (upsert) {
    h.delete_first = !fresh && (h.net == Net::kDelete || h.delete_first);
    h.net = Net::kUpsert;
    h.row = row;
  } else if (fresh) {
    h.net = Net::kUpdate;
    h.row = row;
  } else if (h.net != Net::kDelete) {  // an UPDATE of a row deleted in the batch changes nothing
    Overlay(row, &h.row);
  }
  ++events_taken_;
  return true;
}

Status NetChanges::TakeInto(const Apply& apply) {
  if (held_.empty()) {
    relation_.Clear();
    return Status::Ok();
  }
  // Updates grouped by the columns they set ('1' per column sent), each group in the order its
  // rows were first met.
  std::vector<std::pair<std::string, size_t>> updates;
  for (size_t i = 0; i < held_.size(); ++i) {
    if (held_[i].net != Net::kUpdate) continue;
    std::string sent;
    for (const auto& v : held_[i].row.values()) {
      sent += v.kind_case() == v1::Value::kUnchangedToast ? '0' : '1';
    }
    updates.emplace_back(std::move(sent), i);
  }
  std::stable_sort(updates.begin(), updates.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  Status st = Status::Ok();
  v1::ChangeEvent ev;
  ev.Swap(&relation_);
  auto give = [&](Held& h, v1::Op op) {
    if (!st.ok()) return;
    ev.set_op(op);
    ev.set_seq(h.seq);
    ev.clear_before();
    ev.clear_after();
    if (op == v1::OP_DELETE) {
      *ev.mutable_before() =
          h.net == Net::kDelete ? std::move(h.row) : KeyRow(ev.relation(), h.row);
    } else {
      *ev.mutable_after() = std::move(h.row);
    }
    ++changes_given_;
    st = apply(ev, column_types_);
  };
  for (Held& h : held_) {
    if (h.net == Net::kDelete || h.delete_first) give(h, v1::OP_DELETE);
  }
  for (Held& h : held_) {
    if (h.net == Net::kUpsert) give(h, v1::OP_INSERT);
  }
  for (const auto& u : updates) give(held_[u.second], v1::OP_UPDATE);

  held_.clear();
  by_key_.clear();
  column_types_.clear();
  relation_.Clear();
  return st;
}

}  // namespace lifeline::replayer
