// pgoutput messages to ChangeEvents, written into reused event objects.
#include "capture/change_builder.h"

namespace lifeline::capture {

namespace {

// A text buffer larger than this is not kept for reuse once a smaller value replaces it, so one
// huge value does not pin its memory in a reused event for the rest of the stream.
constexpr size_t kKeepTextCapacity = 64 * 1024;

}  // namespace

void EventBatch::Push(v1::ChangeEvent& ev) {
  if (size_ < slots_.size()) {
    slots_[size_].Swap(&ev);
  } else {
    slots_.push_back(std::move(ev));
    ev.Clear();
  }
  ++size_;
}

ChangeBuilder::ChangeBuilder(v1::Source source, TypeNameLookup type_names)
    : source_(std::move(source)), type_names_(std::move(type_names)) {}

void ChangeBuilder::FillRow(const TupleData& tuple, v1::Row* row) {
  auto* values = row->mutable_values();
  const int n = static_cast<int>(tuple.size());
  while (values->size() > n) values->RemoveLast();
  values->Reserve(n);
  for (int i = 0; i < n; ++i) {
    const TupleValue& v = tuple[static_cast<size_t>(i)];
    v1::Value* out = i < values->size() ? values->Mutable(i) : values->Add();
    switch (v.kind) {
      case TupleValueKind::kNull:
        out->set_null(true);
        break;
      case TupleValueKind::kUnchangedToast:
        out->set_unchanged_toast(true);
        break;
      case TupleValueKind::kText:
        if (out->kind_case() == v1::Value::kText) {
          std::string* text = out->mutable_text();
          if (text->capacity() > kKeepTextCapacity && v.text.size() * 2 < text->capacity()) {
            std::string().swap(*text);
          }
          text->assign(v.text);
        } else {
          out->set_text(v.text);
        }
        break;
    }
  }
}

const v1::Relation& ChangeBuilder::RelationFor(const PgOutputDecoder::CachedRelation& cached) {
  RelationEntry& entry = relations_[cached.relation.relation_oid];
  if (entry.schema_version != cached.schema_version) {
    entry.schema_version = cached.schema_version;
    v1::Relation& rel = entry.relation;
    rel.Clear();
    rel.set_schema(cached.relation.schema);
    rel.set_table(cached.relation.table);
    rel.set_relation_oid(cached.relation.relation_oid);
    rel.set_schema_version(cached.schema_version);
    for (const auto& col : cached.relation.columns) {
      auto* c = rel.add_columns();
      c->set_name(col.name);
      c->set_type_oid(col.type_oid);
      c->set_key(col.key);
      if (type_names_) c->set_type_name(type_names_(col.type_oid, col.type_modifier));
    }
  }
  return entry.relation;
}

v1::Row* ChangeBuilder::TakeRow() {
  if (spare_rows_.empty()) return new v1::Row();
  v1::Row* row = spare_rows_.back().release();
  spare_rows_.pop_back();
  return row;
}

Status ChangeBuilder::StartEvent(v1::Op op, uint32_t relation_oid, const PgOutputDecoder& decoder,
                                 uint64_t wal_start, EventBatch* out, v1::ChangeEvent** ev) {
  *ev = nullptr;
  if (!in_txn_) {
    return Status::Corruption("pgoutput: a row change arrived outside a transaction at " +
                              std::to_string(wal_start));
  }
  if (skipping_) return Status::Ok();
  const PgOutputDecoder::CachedRelation* cached = nullptr;
  if (relation_oid != 0) {
    cached = decoder.FindRelation(relation_oid);
    if (cached == nullptr) {
      return Status::Corruption("pgoutput: relation " + std::to_string(relation_oid) +
                                " is unknown");
    }
  }
  if (has_held_) out->Push(held_);
  has_held_ = true;
  // held_ is now a spent event (or an empty one): every field is written again below.
  v1::ChangeEvent& e = held_;
  if (!e.has_source()) *e.mutable_source() = source_;
  e.set_seq(0);
  e.clear_prev_hash();
  e.set_commit_lsn(commit_lsn_);
  e.set_event_lsn(wal_start);
  e.set_xid(xid_);
  e.set_commit_time_us(commit_time_us_);
  e.set_index_in_txn(index_++);
  e.set_txn_event_count(0);
  e.set_last_in_txn(false);
  e.set_op(op);
  e.clear_message();
  e.set_truncate_options(0);
  e.clear_sealed();
  if (e.has_before()) spare_rows_.emplace_back(e.release_before());
  if (e.has_after()) spare_rows_.emplace_back(e.release_after());
  if (cached != nullptr) {
    const v1::Relation& rel = RelationFor(*cached);
    // Within one builder an oid and schema version always describe the same relation, so a
    // spent event that carried it already needs no copy.
    if (!e.has_relation() || e.relation().relation_oid() != rel.relation_oid() ||
        e.relation().schema_version() != rel.schema_version()) {
      *e.mutable_relation() = rel;
    }
  } else {
    e.clear_relation();
  }
  *ev = &e;
  return Status::Ok();
}

Status ChangeBuilder::Apply(const PgOutputMessage& message, const PgOutputDecoder& decoder,
                            uint64_t wal_start, EventBatch* out) {
  v1::ChangeEvent* ev = nullptr;
  if (const auto* begin = std::get_if<BeginMessage>(&message)) {
    if (in_txn_) {
      return Status::Corruption("pgoutput: Begin of xid " + std::to_string(begin->xid) +
                                " inside transaction " + std::to_string(xid_));
    }
    in_txn_ = true;
    xid_ = begin->xid;
    commit_lsn_ = begin->final_lsn;
    commit_time_us_ = begin->commit_time_us;
    index_ = 0;
    skipping_ = begin->final_lsn <= skip_through_;
    return Status::Ok();
  }
  if (const auto* commit = std::get_if<CommitMessage>(&message)) {
    if (!in_txn_) return Status::Corruption("pgoutput: Commit outside a transaction");
    if (has_held_) {
      held_.set_last_in_txn(true);
      held_.set_txn_event_count(index_);
      out->Push(held_);
      has_held_ = false;
    }
    if (skipping_) ++skipped_;
    in_txn_ = false;
    skipping_ = false;
    last_commit_lsn_ = commit->commit_lsn;
    return Status::Ok();
  }
  if (const auto* ins = std::get_if<InsertMessage>(&message)) {
    LIFELINE_RETURN_IF_ERROR(
        StartEvent(v1::OP_INSERT, ins->relation_oid, decoder, wal_start, out, &ev));
    if (ev != nullptr) {
      ev->set_allocated_after(TakeRow());
      FillRow(ins->new_tuple, ev->mutable_after());
    }
    return Status::Ok();
  }
  if (const auto* upd = std::get_if<UpdateMessage>(&message)) {
    LIFELINE_RETURN_IF_ERROR(
        StartEvent(v1::OP_UPDATE, upd->relation_oid, decoder, wal_start, out, &ev));
    if (ev != nullptr) {
      if (upd->old_kind != 0) {
        ev->set_allocated_before(TakeRow());
        FillRow(upd->old_tuple, ev->mutable_before());
      }
      ev->set_allocated_after(TakeRow());
      FillRow(upd->new_tuple, ev->mutable_after());
    }
    return Status::Ok();
  }
  if (const auto* del = std::get_if<DeleteMessage>(&message)) {
    LIFELINE_RETURN_IF_ERROR(
        StartEvent(v1::OP_DELETE, del->relation_oid, decoder, wal_start, out, &ev));
    if (ev != nullptr) {
      ev->set_allocated_before(TakeRow());
      FillRow(del->old_tuple, ev->mutable_before());
    }
    return Status::Ok();
  }
  if (const auto* trunc = std::get_if<TruncateMessage>(&message)) {
    for (uint32_t oid : trunc->relation_oids) {
      LIFELINE_RETURN_IF_ERROR(StartEvent(v1::OP_TRUNCATE, oid, decoder, wal_start, out, &ev));
      if (ev != nullptr) ev->set_truncate_options(trunc->options);
    }
    return Status::Ok();
  }
  if (const auto* msg = std::get_if<LogicalMessage>(&message)) {
    // Only capture's own transactional heartbeats matter; other applications' messages pass by.
    if (!msg->transactional || msg->prefix != kHeartbeatPrefix || !in_txn_) return Status::Ok();
    LIFELINE_RETURN_IF_ERROR(StartEvent(v1::OP_HEARTBEAT, 0, decoder, wal_start, out, &ev));
    if (ev != nullptr) ev->set_message(msg->content);
    return Status::Ok();
  }
  // Relation, Type and Origin only update the decoder's state.
  return Status::Ok();
}

}  // namespace lifeline::capture
