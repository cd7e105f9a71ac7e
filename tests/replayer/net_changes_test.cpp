// NetChanges: the transitions of its table, and, over random change sequences, that applying
// the net changes leaves a table exactly as applying every change in order does.
#include "replayer/net_changes.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <random>

namespace lifeline::replayer {
namespace {

const std::vector<std::string> kTypes = {"integer", "text", "text"};

// A change of public.t (id integer key, a text, b text). "~" stands for an unchanged-TOAST
// value, "-" for NULL.
v1::ChangeEvent Change(v1::Op op, const std::vector<std::string>& row, uint64_t seq = 1,
                       const std::vector<std::string>& old_key = {}) {
  v1::ChangeEvent ev;
  ev.set_seq(seq);
  ev.set_op(op);
  auto* rel = ev.mutable_relation();
  rel->set_schema("public");
  rel->set_table("t");
  rel->set_relation_oid(16400);
  rel->set_schema_version(1);
  for (const char* name : {"id", "a", "b"}) {
    auto* c = rel->add_columns();
    c->set_name(name);
    c->set_key(std::string(name) == "id");
  }
  auto fill = [](v1::Row* r, const std::vector<std::string>& values) {
    for (const auto& v : values) {
      if (v == "~") {
        r->add_values()->set_unchanged_toast(true);
      } else if (v == "-") {
        r->add_values()->set_null(true);
      } else {
        r->add_values()->set_text(v);
      }
    }
  };
  fill(op == v1::OP_DELETE ? ev.mutable_before() : ev.mutable_after(), row);
  if (!old_key.empty()) fill(ev.mutable_before(), old_key);
  return ev;
}

std::string Text(const v1::Row& r) {
  std::string out;
  for (const auto& v : r.values()) {
    if (!out.empty()) out += ",";
    out += v.kind_case() == v1::Value::kUnchangedToast ? "~"
           : v.kind_case() == v1::Value::kText         ? v.text()
                                                       : "-";
  }
  return out;
}

// What NetChanges hands out, as "INSERT 1,x,y" lines.
std::vector<std::string> Given(NetChanges& net) {
  std::vector<std::string> out;
  Status st = net.TakeInto([&](const v1::ChangeEvent& ev, const std::vector<std::string>& types) {
    EXPECT_EQ(types, kTypes);
    EXPECT_EQ(ev.relation().table(), "t");
    if (ev.op() == v1::OP_DELETE) {
      out.push_back("DELETE " + Text(ev.before()));
    } else {
      out.push_back((ev.op() == v1::OP_INSERT ? "INSERT " : "UPDATE ") + Text(ev.after()));
    }
    return Status::Ok();
  });
  EXPECT_TRUE(st.ok()) << st.message();
  return out;
}

TEST(NetChanges, InsertUpdateDeleteOfOneRowIsOneDelete) {
  NetChanges net;
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_INSERT, {"1", "x", "y"}), kTypes));
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_UPDATE, {"1", "x2", "~"}), kTypes));
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_DELETE, {"1", "-", "-"}), kTypes));
  EXPECT_EQ(Given(net), (std::vector<std::string>{"DELETE 1,-,-"}));
  EXPECT_EQ(net.events_taken(), 3u);
  EXPECT_EQ(net.changes_given(), 1u);
}

TEST(NetChanges, UpdatesOfAnInsertedRowMakeOneUpsertOfItsLatestValues) {
  NetChanges net;
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_INSERT, {"1", "x", "y"}), kTypes));
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_UPDATE, {"1", "x2", "~"}), kTypes));
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_UPDATE, {"1", "~", "-"}), kTypes));
  EXPECT_EQ(Given(net), (std::vector<std::string>{"INSERT 1,x2,-"}));
}

TEST(NetChanges, UpdatesAloneKeepUnchangedToastWhereNoneWasSent) {
  NetChanges net;
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_UPDATE, {"1", "~", "b1"}), kTypes));
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_UPDATE, {"1", "a2", "~"}), kTypes));
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_UPDATE, {"2", "a3", "~"}), kTypes));
  // Grouped by the columns they set, the groups in the order of those sets.
  EXPECT_EQ(Given(net), (std::vector<std::string>{"UPDATE 2,a3,~", "UPDATE 1,a2,b1"}));
}

TEST(NetChanges, AnInsertAfterADeleteKeepsTheDelete) {
  NetChanges net;
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_DELETE, {"1", "-", "-"}), kTypes));
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_UPDATE, {"1", "ignored", "~"}), kTypes));
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_INSERT, {"1", "x", "y"}), kTypes));
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_UPDATE, {"1", "~", "y2"}), kTypes));
  EXPECT_EQ(Given(net), (std::vector<std::string>{"DELETE 1,-,-", "INSERT 1,x,y2"}));
  // Nor does a second insert drop it.
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_DELETE, {"1", "-", "-"}), kTypes));
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_INSERT, {"1", "x", "y"}), kTypes));
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_INSERT, {"1", "x3", "y3"}), kTypes));
  EXPECT_EQ(Given(net), (std::vector<std::string>{"DELETE 1,-,-", "INSERT 1,x3,y3"}));
}

TEST(NetChanges, DeletesGoFirstThenUpsertsThenUpdates) {
  NetChanges net;
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_UPDATE, {"3", "u", "~"}), kTypes));
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_INSERT, {"2", "i", "i"}), kTypes));
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_DELETE, {"1", "-", "-"}), kTypes));
  ASSERT_TRUE(net.TryAdd(Change(v1::OP_INSERT, {"4", "j", "j"}), kTypes));
  EXPECT_EQ(Given(net), (std::vector<std::string>{"DELETE 1,-,-", "INSERT 2,i,i", "INSERT 4,j,j",
                                                  "UPDATE 3,u,~"}));
  EXPECT_TRUE(Given(net).empty());  // taken: nothing held any more
}

TEST(NetChanges, ChangesThatMoveOrCannotNameARowAreNotNetted) {
  NetChanges net;
  // A changed key.
  EXPECT_FALSE(net.TryAdd(Change(v1::OP_UPDATE, {"2", "a", "b"}, 1, {"1", "-", "-"}), kTypes));
  // The old key sent but unchanged (REPLICA IDENTITY FULL sends it always) is netted.
  EXPECT_TRUE(net.TryAdd(Change(v1::OP_UPDATE, {"2", "a", "b"}, 1, {"2", "a0", "b0"}), kTypes));
  EXPECT_FALSE(net.TryAdd(Change(v1::OP_INSERT, {"-", "a", "b"}), kTypes));  // a NULL key
  EXPECT_FALSE(net.TryAdd(Change(v1::OP_INSERT, {"1", "a"}), kTypes));       // a short row
  v1::ChangeEvent truncate = Change(v1::OP_INSERT, {"1", "a", "b"});
  truncate.set_op(v1::OP_TRUNCATE);
  EXPECT_FALSE(net.TryAdd(truncate, kTypes));
  v1::ChangeEvent other = Change(v1::OP_INSERT, {"1", "a", "b"});
  other.mutable_relation()->set_schema_version(2);  // another version of the table
  EXPECT_FALSE(net.TryAdd(other, kTypes));
  EXPECT_EQ(Given(net), (std::vector<std::string>{"UPDATE 2,a,b"}));
  EXPECT_TRUE(net.TryAdd(other, kTypes));  // once the first is taken
}

// The target as the replay changes it: per key, the stream's columns and a column only the
// target has, which a new row gets by default and an upsert of an existing row keeps.
struct ModelRow {
  std::vector<std::optional<std::string>> values;  // a, b (nullopt: NULL)
  std::string target_only;
  bool operator==(const ModelRow&) const = default;
};
using Model = std::map<std::string, ModelRow>;

void ApplyTo(Model* m, const v1::ChangeEvent& ev) {
  auto value = [](const v1::Value& v) -> std::optional<std::string> {
    if (v.kind_case() == v1::Value::kText) return v.text();
    return std::nullopt;
  };
  if (ev.op() == v1::OP_DELETE) {
    m->erase(ev.before().values(0).text());
    return;
  }
  const v1::Row& r = ev.after();
  auto it = m->find(r.values(0).text());
  if (ev.op() == v1::OP_UPDATE && it == m->end()) return;  // no row: changes nothing
  if (it == m->end()) it = m->emplace(r.values(0).text(), ModelRow{{{}, {}}, "default"}).first;
  for (int i = 1; i < r.values_size(); ++i) {
    if (r.values(i).kind_case() != v1::Value::kUnchangedToast) {
      it->second.values[i - 1] = value(r.values(i));
    }
  }
}

TEST(NetChanges, NetChangesLeaveTheTargetAsEveryChangeInOrderDoes) {
  std::mt19937 rng(20261126);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  uint64_t netted = 0;
  for (int round = 0; round < 2000; ++round) {
    Model start;
    for (int k = 0; k < 4; ++k) {
      if (pick(2)) start[std::to_string(k)] = ModelRow{{"s", "s"}, "custom"};
    }
    Model each = start, net_model = start;
    NetChanges net;
    const int changes = 1 + pick(12);
    for (int c = 0; c < changes; ++c) {
      std::string key = std::to_string(pick(5));
      auto val = [&]() -> std::string {
        int p = pick(6);
        return p == 0 ? "~" : p == 1 ? "-" : "v" + std::to_string(c);
      };
      v1::ChangeEvent ev;
      switch (pick(3)) {
        case 0:
          ev = Change(v1::OP_INSERT, {key, "i" + std::to_string(c), pick(2) ? "-" : "j"});
          break;
        case 1:
          ev = Change(v1::OP_UPDATE, {key, val(), val()});
          break;
        default:
          ev = Change(v1::OP_DELETE, {key, "-", "-"});
      }
      ev.set_seq(static_cast<uint64_t>(c + 1));
      ApplyTo(&each, ev);
      ASSERT_TRUE(net.TryAdd(ev, kTypes));
    }
    Status st = net.TakeInto([&](const v1::ChangeEvent& ev, const std::vector<std::string>&) {
      ApplyTo(&net_model, ev);
      return Status::Ok();
    });
    ASSERT_TRUE(st.ok());
    ASSERT_EQ(net_model, each) << "round " << round;
    netted += net.events_taken() - net.changes_given();
  }
  EXPECT_GT(netted, 2000u);  // the sequences did repeat keys
}

}  // namespace
}  // namespace lifeline::replayer
