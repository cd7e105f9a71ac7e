// capture against a real PostgreSQL 15: type fidelity, transaction shapes, snapshot + stream with
// every row once, and no loss or duplicates through kill -9 and source restarts.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <thread>

#include "common/spool.h"
#include "tests/support/daemon.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

using testing::Trim;

using testing::LifelineDaemon;
using testing::TempDir;
using testing::WaitFor;
using namespace std::chrono_literals;

std::vector<v1::ChangeEvent> ReadSpool(const std::string& dir) {
  std::vector<v1::ChangeEvent> out;
  auto spool = Spool::OpenForRead(dir);
  if (!spool.ok()) return out;
  uint64_t next = 1;
  while (true) {
    auto batch = (*spool)->Read(next, 10'000);
    if (!batch.ok() || batch->empty()) break;
    for (const auto& rec : *batch) {
      auto ev = ParseEvent(rec);
      EXPECT_TRUE(ev.ok()) << ev.status().ToString();
      if (ev.ok()) out.push_back(*ev);
      next = rec.seq + 1;
    }
  }
  return out;
}

std::vector<v1::ChangeEvent> RowEvents(const std::vector<v1::ChangeEvent>& all) {
  std::vector<v1::ChangeEvent> out;
  for (const auto& ev : all) {
    if (ev.op() != v1::OP_HEARTBEAT && ev.op() != v1::OP_RESNAPSHOT_MARKER) out.push_back(ev);
  }
  return out;
}

// The text of column `name` in a row image ("<null>", "<unchanged>" for the other kinds).
std::string Col(const v1::ChangeEvent& ev, const v1::Row& row, const std::string& name) {
  for (int i = 0; i < ev.relation().columns_size(); ++i) {
    if (ev.relation().columns(i).name() != name) continue;
    if (i >= row.values_size()) return "<missing>";
    const auto& v = row.values(i);
    if (v.kind_case() == v1::Value::kText) return v.text();
    if (v.kind_case() == v1::Value::kUnchangedToast) return "<unchanged>";
    return "<null>";
  }
  return "<no column>";
}

class CaptureIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    pg_ = testing::StartPostgres({.name = "capture"});
    ASSERT_TRUE(pg_);
    testing::LoadReferenceSchema(*pg_, "app");
  }

  std::unique_ptr<LifelineDaemon> StartCapture(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"capture", "--source",  pg_->ConnInfo("app"),
                                     "--spool", spool_dir(), "--heartbeat-interval",
                                     "200ms"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto d = std::make_unique<LifelineDaemon>(args, tmp_.Sub("capture.log"));
    EXPECT_TRUE(d->Start());
    return d;
  }

  std::string spool_dir() const { return tmp_.Sub("spool"); }

  void Sql(const std::string& sql) {
    auto r = pg_->Psql(sql, "app");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  // Waits until the spool holds a heartbeat committed after everything done so far: then every
  // earlier commit is spooled too (commit order).
  void WaitCaughtUp(std::chrono::milliseconds timeout = 60s) {
    std::string lsn = Trim(*pg_->Psql("SELECT pg_current_wal_lsn()", "app"));
    uint64_t target = Lsn::Parse(lsn)->value();
    bool ok = WaitFor(
        [&] {
          auto spool = Spool::OpenForRead(spool_dir());
          return spool.ok() && (*spool)->last_complete_commit_lsn().value() > target;
        },
        timeout);
    ASSERT_TRUE(ok) << "capture did not catch up with " << lsn;
  }

  TempDir tmp_;
  std::unique_ptr<LocalPostgres> pg_;
};

TEST_F(CaptureIntegration, SpooledTextEqualsWhatPostgresPrints) {
  Sql("CREATE TABLE fidelity (id int PRIMARY KEY, a int[], t text[], b bytea, n numeric, "
      "ts timestamptz, j jsonb, s text, nothing text, g geography(Point,4326), "
      "u uuid, e emergency_issue_type)");
  auto capture =
      StartCapture({"--table", "public.fidelity", "--table", "public.emergency_requests"});
  ASSERT_TRUE(
      WaitFor([&] { return capture->Log().find("streaming from slot") != std::string::npos; }, 30s))
      << capture->Log();
  Sql("INSERT INTO fidelity VALUES (1, '{1,NULL,3}', '{\"a b\",\"c,d\",\"\\\\\"}', "
      "'\\x00ff10', 1" +
      std::string(99, '7') +
      ".5, '2026-01-02 03:04:05.123456+00', "
      "'{\"name\": \"Zoë ⛑\", \"n\": [1, 2.50, null]}', "
      "E'quote '' dq \" backslash \\\\ newline \\n tab \\t end', NULL, "
      "'SRID=4326;POINT(-0.1276 51.5072)', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'valve')");
  Sql("INSERT INTO emergency_requests (id, customer_name, phone_number, location_address, "
      "location_coordinates, vehicle_make_model, tyre_issue, status, notes) VALUES "
      "('11111111-2222-4333-8444-555555555555', 'O''Brien', '+44 7700 900123', "
      "E'1 High St\\nLondon', 'SRID=4326;POINT(-2.5 53.4)', 'Ford Focus', 'blowout', "
      "'en_route', '{\"lane\": 2, \"hazard\": true}')");
  WaitCaughtUp();
  auto events = RowEvents(ReadSpool(spool_dir()));
  ASSERT_EQ(events.size(), 2u);
  for (const auto& ev : events) {
    std::string table = ev.relation().table();
    std::string key_col = "id";
    std::string key = Col(ev, ev.after(), key_col);
    for (const auto& col : ev.relation().columns()) {
      auto expected = pg_->Psql("SELECT coalesce(" + col.name() + "::text, '<null>') FROM " +
                                    table + " WHERE id = '" + key + "'",
                                "app");
      ASSERT_TRUE(expected.ok()) << expected.status().ToString();
      std::string want = *expected;
      if (!want.empty() && want.back() == '\n') want.pop_back();
      EXPECT_EQ(Col(ev, ev.after(), col.name()), want) << table << "." << col.name();
    }
  }
  // Type names come from the source's catalog.
  std::map<std::string, std::string> types;
  for (const auto& c : events[0].relation().columns()) types[c.name()] = c.type_name();
  EXPECT_EQ(types["g"], "geography(Point,4326)");
  EXPECT_EQ(types["a"], "integer[]");
  EXPECT_EQ(types["e"], "emergency_issue_type");
  EXPECT_TRUE(events[0].relation().columns(0).key());
  EXPECT_FALSE(events[0].relation().columns(1).key());
  EXPECT_EQ(capture->Stop(), 0) << capture->Log();
}

TEST_F(CaptureIntegration, TransactionsRollbacksSavepointsToastKeysTruncateAndDdl) {
  Sql("CREATE TABLE t (id int PRIMARY KEY, v text, big text)");
  auto capture = StartCapture({"--table", "public.t"});
  ASSERT_TRUE(WaitFor(
      [&] { return capture->Log().find("streaming from slot") != std::string::npos; }, 30s));
  // md5 text barely compresses, so the value is stored out of line (TOASTed).
  const std::string big_sql =
      "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) g)";
  Sql("BEGIN; INSERT INTO t VALUES (1, 'one', " + big_sql +
      "); INSERT INTO t VALUES (2, 'two', "
      "NULL); UPDATE t SET v = 'uno' WHERE id = 1; COMMIT;");
  Sql("BEGIN; INSERT INTO t VALUES (3, 'rolled back', NULL); ROLLBACK;");
  Sql("BEGIN; INSERT INTO t VALUES (4, 'kept', NULL); SAVEPOINT s; INSERT INTO t VALUES (5, "
      "'undone', NULL); ROLLBACK TO SAVEPOINT s; INSERT INTO t VALUES (6, 'kept too', NULL); "
      "COMMIT;");
  Sql("UPDATE t SET id = 10 WHERE id = 2");
  Sql("DELETE FROM t WHERE id = 4");
  Sql("ALTER TABLE t ADD COLUMN extra int DEFAULT 7; INSERT INTO t (id, v) VALUES (20, 'new');");
  Sql("TRUNCATE t");
  WaitCaughtUp();
  auto events = RowEvents(ReadSpool(spool_dir()));
  ASSERT_EQ(events.size(), 9u);

  // One transaction of three events, indexed, last one marked.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(events[i].xid(), events[0].xid());
    EXPECT_EQ(events[i].index_in_txn(), static_cast<uint32_t>(i));
    EXPECT_EQ(events[i].last_in_txn(), i == 2);
    EXPECT_EQ(events[i].commit_lsn(), events[0].commit_lsn());
  }
  EXPECT_EQ(events[2].txn_event_count(), 3u);
  EXPECT_GT(events[0].commit_time_us(), 1'700'000'000'000'000LL);
  std::string big = Trim(*pg_->Psql("SELECT " + big_sql, "app"));
  EXPECT_EQ(Col(events[0], events[0].after(), "big").size(), 12800u);
  EXPECT_TRUE(Col(events[0], events[0].after(), "big") == big) << "the TOASTed value round-trips";
  // The UPDATE left the TOASTed value out: unchanged, not null.
  EXPECT_EQ(events[2].op(), v1::OP_UPDATE);
  EXPECT_EQ(Col(events[2], events[2].after(), "v"), "uno");
  EXPECT_EQ(Col(events[2], events[2].after(), "big"), "<unchanged>");

  // Rollback: nothing. Savepoint: only the kept part.
  EXPECT_EQ(Col(events[3], events[3].after(), "id"), "4");
  EXPECT_EQ(Col(events[4], events[4].after(), "id"), "6");
  EXPECT_TRUE(events[4].last_in_txn());

  // A primary-key change carries the old key.
  EXPECT_EQ(events[5].op(), v1::OP_UPDATE);
  EXPECT_EQ(Col(events[5], events[5].before(), "id"), "2");
  EXPECT_EQ(Col(events[5], events[5].after(), "id"), "10");

  EXPECT_EQ(events[6].op(), v1::OP_DELETE);
  EXPECT_EQ(Col(events[6], events[6].before(), "id"), "4");
  EXPECT_FALSE(events[6].has_after());

  // After ALTER TABLE the new column is described and carried.
  EXPECT_EQ(events[7].op(), v1::OP_INSERT);
  EXPECT_EQ(Col(events[7], events[7].after(), "extra"), "7");
  EXPECT_GT(events[7].relation().schema_version(), events[0].relation().schema_version());

  EXPECT_EQ(events[8].op(), v1::OP_TRUNCATE);
  EXPECT_EQ(events[8].relation().table(), "t");

  // Seqs are contiguous and commit LSNs never go backwards across the whole spool.
  auto all = ReadSpool(spool_dir());
  for (size_t i = 1; i < all.size(); ++i) {
    EXPECT_EQ(all[i].seq(), all[i - 1].seq() + 1);
    EXPECT_GE(all[i].commit_lsn(), all[i - 1].commit_lsn());
  }
  EXPECT_EQ(capture->Stop(), 0);
}

TEST_F(CaptureIntegration, SnapshotAndStreamCaptureEveryRowOnceAcrossRestarts) {
  Sql("CREATE TABLE items (n int PRIMARY KEY, v text)");
  Sql("INSERT INTO items SELECT g, 'before' FROM generate_series(1, 3000) g");
  // Writes keep landing while capture creates its slot and reads the snapshot.
  CommandSpec load;
  load.argv = {"psql",
               "-X",
               "-q",
               "-h",
               "127.0.0.1",
               "-p",
               std::to_string(pg_->port()),
               "-U",
               "postgres",
               "-d",
               "app",
               "-c",
               "DO $$ BEGIN FOR i IN 3001..4500 LOOP INSERT INTO items VALUES (i, 'during'); "
               "COMMIT; PERFORM pg_sleep(0.001); END LOOP; END $$"};
  auto loader = ChildProcess::Start(load, tmp_.Sub("load.log"));
  ASSERT_TRUE(loader.ok());
  std::this_thread::sleep_for(200ms);
  auto capture = StartCapture({"--table", "public.items"});
  ASSERT_TRUE(loader->Wait(120s).ok());
  EXPECT_EQ(capture->Stop(), 0) << capture->Log();
  // A restart after the snapshot finished does not snapshot again.
  Sql("INSERT INTO items SELECT g, 'after' FROM generate_series(4501, 5000) g");
  capture = StartCapture({"--table", "public.items"});
  WaitCaughtUp();
  EXPECT_EQ(capture->Stop(), 0);
  std::map<int, int> seen;
  size_t snapshot_rows = 0;
  for (const auto& ev : RowEvents(ReadSpool(spool_dir()))) {
    seen[std::stoi(Col(ev, ev.after(), "n"))]++;
    if (ev.op() == v1::OP_SNAPSHOT) ++snapshot_rows;
  }
  EXPECT_EQ(seen.size(), 5000u);
  for (const auto& [n, count] : seen) ASSERT_EQ(count, 1) << "row " << n << " captured twice";
  EXPECT_GE(snapshot_rows, 3000u);
  EXPECT_LT(snapshot_rows, 5000u);
  EXPECT_EQ(capture->Log().find("taking the initial snapshot", capture->Log().find("streaming")),
            std::string::npos)
      << "the second start must not snapshot again";
}

// The load: 5,000 transactions of 10 inserts and 1 update each (55,000 changes), numbered so the
// spool can be checked against exactly what committed.
constexpr int kTxns = 5000;
constexpr int kRowsPerTxn = 10;

std::string LoadSql(int from_txn, int to_txn) {
  return "DO $$ BEGIN FOR i IN " + std::to_string(from_txn) + ".." + std::to_string(to_txn) +
         " LOOP INSERT INTO items SELECT g, 0 FROM generate_series((i - 1) * 10 + 1, i * 10) g; "
         "UPDATE items SET v = v + 1 WHERE n = (i - 1) * 10 + 1; COMMIT; "
         "PERFORM pg_sleep(0.0005); END LOOP; END $$";
}

// Every committed insert and update is in the spool exactly once, in commit order, whole
// transactions, seqs contiguous, the hash chain intact.
void CheckAgainstCommitted(const std::string& spool_dir, const LocalPostgres& pg) {
  auto spool = Spool::OpenForRead(spool_dir);
  ASSERT_TRUE(spool.ok());
  Status verified = (*spool)->Verify();
  ASSERT_TRUE(verified.ok()) << verified.ToString();
  auto rows =
      pg.Psql("SELECT count(*), coalesce(max(n), 0), coalesce(sum(v), 0) FROM items", "app");
  ASSERT_TRUE(rows.ok());
  long long count = 0, max_n = 0, updates = 0;
  ASSERT_EQ(std::sscanf(rows->c_str(), "%lld|%lld|%lld", &count, &max_n, &updates), 3);
  ASSERT_EQ(count, max_n) << "the load commits numbered rows without holes";
  int64_t next_insert = 1, updates_seen = 0;
  uint64_t prev_commit = 0;
  for (const auto& ev : RowEvents(ReadSpool(spool_dir))) {
    ASSERT_GE(ev.commit_lsn(), prev_commit);
    prev_commit = ev.commit_lsn();
    int64_t n = std::stoll(Col(ev, ev.after(), "n"));
    if (ev.op() == v1::OP_INSERT) {
      ASSERT_EQ(n, next_insert) << "insert missing, duplicated or out of order at seq " << ev.seq();
      ++next_insert;
    } else {
      ASSERT_EQ(ev.op(), v1::OP_UPDATE);
      ASSERT_EQ(n, (next_insert - 2) / kRowsPerTxn * kRowsPerTxn + 1) << "at seq " << ev.seq();
      ++updates_seen;
    }
  }
  EXPECT_EQ(next_insert - 1, count) << "committed inserts missing from the spool";
  EXPECT_EQ(updates_seen, updates) << "committed updates missing or duplicated";
}

TEST_F(CaptureIntegration, NoLossNoDuplicatesThroughRepeatedKillNine) {
  Sql("CREATE TABLE items (n bigint PRIMARY KEY, v int)");
  auto capture = StartCapture({"--table", "public.items", "--batch-events", "500"});
  ASSERT_TRUE(WaitFor(
      [&] { return capture->Log().find("streaming from slot") != std::string::npos; }, 30s));
  CommandSpec load;
  load.argv = {"psql",
               "-X",
               "-q",
               "-v",
               "ON_ERROR_STOP=1",
               "-h",
               "127.0.0.1",
               "-p",
               std::to_string(pg_->port()),
               "-U",
               "postgres",
               "-d",
               "app",
               "-c",
               LoadSql(1, kTxns)};
  auto loader = ChildProcess::Start(load, tmp_.Sub("load.log"));
  ASSERT_TRUE(loader.ok());
  std::mt19937 rng(std::random_device{}());
  int kills = 0;
  for (int i = 0; i < 40 && loader->running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 450));
    capture->Kill();
    ++kills;
    capture = StartCapture({"--table", "public.items", "--batch-events", "500"});
  }
  auto load_exit = loader->Wait(300s);
  ASSERT_TRUE(load_exit.ok());
  ASSERT_EQ(*load_exit, 0) << "the load itself failed";
  EXPECT_GE(kills, 10) << "the load ended too soon to kill capture ten times";
  WaitCaughtUp(120s);
  EXPECT_EQ(capture->Stop(), 0);
  CheckAgainstCommitted(spool_dir(), *pg_);
  auto rows = pg_->Psql("SELECT count(*) FROM items", "app");
  EXPECT_EQ(Trim(*rows), std::to_string(kTxns * kRowsPerTxn));
}

TEST_F(CaptureIntegration, SourceImmediateRestartMidLoadLosesNothing) {
  Sql("CREATE TABLE items (n bigint PRIMARY KEY, v int)");
  auto capture = StartCapture({"--table", "public.items"});
  ASSERT_TRUE(WaitFor(
      [&] { return capture->Log().find("streaming from slot") != std::string::npos; }, 30s));
  CommandSpec load;
  load.argv = {
      "psql",     "-X", "-q",  "-h", "127.0.0.1",     "-p", std::to_string(pg_->port()), "-U",
      "postgres", "-d", "app", "-c", LoadSql(1, 2000)};
  auto loader = ChildProcess::Start(load, tmp_.Sub("load.log"));
  ASSERT_TRUE(loader.ok());
  std::this_thread::sleep_for(1500ms);
  ASSERT_TRUE(pg_->Restart("immediate").ok());  // the load dies with the server
  ASSERT_TRUE(loader->Wait(60s).ok());
  // Carry on numbering after what survived.
  auto max_txn = pg_->Psql("SELECT coalesce(max(n), 0) / 10 FROM items", "app");
  ASSERT_TRUE(max_txn.ok());
  int from = std::stoi(Trim(*max_txn)) + 1;
  Sql(LoadSql(from, from + 200));
  WaitCaughtUp(120s);
  EXPECT_TRUE(capture->running()) << "capture must reconnect, not exit";
  EXPECT_NE(capture->Log().find("retrying"), std::string::npos);
  EXPECT_EQ(capture->Stop(), 0);
  CheckAgainstCommitted(spool_dir(), *pg_);
}

}  // namespace
}  // namespace lifeline
