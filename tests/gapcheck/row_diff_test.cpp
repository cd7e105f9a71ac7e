// Row-level diff against two real PostgreSQL 15 clusters: identical tables, every kind of planted
// difference alone and together, keys of unusual types and orderings, and bad input.
#include "gapcheck/row_diff.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/local_postgres.h"
#include "tests/support/test_env.h"

namespace lifeline::gapcheck {
namespace {

using testing::StartPostgres;

constexpr int kRows = 100'000;

// The reference table's rows, generated identically on each side: row i has id md5('r' || i).
std::string LoadReferenceRows(int rows) {
  return "TRUNCATE emergency_requests; "
         "INSERT INTO emergency_requests (id, customer_name, phone_number, location_address, "
         "location_coordinates, vehicle_make_model, tyre_issue, status, technician_id, notes, "
         "created_at, updated_at, completed_at) "
         "SELECT md5('r' || i)::uuid, 'Zoë Ærø ' || i, '+44 7700 ' || lpad(i::text, 6, '0'), "
         "CASE WHEN i % 97 = 0 THEN NULL ELSE i || ' High Street' END, "
         "ST_SetSRID(ST_MakePoint(-0.1 + (i % 1000) * 0.001, 51.5 + (i % 700) * 0.001), "
         "4326)::geography, 'Ford Focus', "
         "(ARRAY['flat','puncture','blowout','valve','locking_nut','other'])[1 + i % 6]"
         "::emergency_issue_type, "
         "(ARRAY['pending','assigned','en_route','completed','cancelled'])[1 + i % 5]"
         "::emergency_status, "
         "CASE WHEN i % 3 = 0 THEN md5('t' || i % 50)::uuid END, "
         "jsonb_build_object('seq', i, 'note', 'left rear ' || i, 'tags', jsonb_build_array(i % "
         "7)), "
         "timestamptz '2024-03-01 00:00:00+00' + i * interval '1.000001 second', "
         "timestamptz '2024-03-01 00:05:00+00' + i * interval '1 second', "
         "CASE WHEN i % 5 = 3 THEN timestamptz '2024-03-02 00:00:00+00' + i * interval '1 second' "
         "END "
         "FROM generate_series(1, " +
         std::to_string(rows) + ") i";
}

class RowDiffIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    source_ = StartPostgres({.name = "rows-source"}).release();
    target_ = StartPostgres({.name = "rows-target"}).release();
    if (source_ == nullptr || target_ == nullptr) return;
    testing::LoadReferenceSchema(*source_, "app");
    testing::LoadReferenceSchema(*target_, "app");
    for (LocalPostgres* pg : {source_, target_}) {
      auto r = pg->Psql(LoadReferenceRows(kRows) + "; ANALYZE emergency_requests", "app");
      ASSERT_TRUE(r.ok()) << r.status().ToString();
    }
  }
  static void TearDownTestSuite() {
    delete source_;
    delete target_;
    source_ = target_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(source_, nullptr);
    ASSERT_NE(target_, nullptr);
  }
  // The target back to a copy of the source, if a test changed it.
  void TearDown() override {
    if (target_dirty_) {
      auto r = target_->Psql(LoadReferenceRows(kRows), "app");
      EXPECT_TRUE(r.ok()) << r.status().ToString();
    }
    for (const auto& sql : cleanup_) {
      for (LocalPostgres* pg : {source_, target_}) pg->Psql(sql, "app").status().IgnoreError();
    }
  }

  static std::string Sql(LocalPostgres* pg, const std::string& sql) {
    auto r = pg->Psql(sql, "app");
    EXPECT_TRUE(r.ok()) << sql << ": " << r.status().ToString();
    return r.ok() ? testing::Trim(*r) : "";
  }
  // Runs SQL on the target (which the next TearDown restores).
  std::string OnTarget(const std::string& sql) {
    target_dirty_ = true;
    return Sql(target_, sql);
  }
  // SQL on both sides, and its undoing after the test.
  void OnBoth(const std::string& sql, const std::string& undo) {
    Sql(source_, sql);
    Sql(target_, sql);
    cleanup_.push_back(undo);
  }
  static std::string Id(int i) {
    return Sql(source_, "SELECT md5('r' || " + std::to_string(i) + ")::uuid");
  }

  RowDiffOptions Options(const std::string& table = "public.emergency_requests") const {
    RowDiffOptions o;
    o.source = source_->ConnInfo("app");
    o.target = target_->ConnInfo("app");
    o.table = table;
    return o;
  }
  static RowDiffReport Diff(const RowDiffOptions& o) {
    auto r = DiffRows(o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : RowDiffReport{};
  }

  static LocalPostgres* source_;
  static LocalPostgres* target_;
  bool target_dirty_ = false;
  std::vector<std::string> cleanup_;
};

LocalPostgres* RowDiffIntegrationTest::source_ = nullptr;
LocalPostgres* RowDiffIntegrationTest::target_ = nullptr;

std::vector<std::string> Keys(const std::vector<RowDifference>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) {
    std::string k;
    for (const auto& part : r.key) k += (k.empty() ? "" : "|") + part;
    out.push_back(k);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::map<std::string, std::vector<std::string>> Changed(const RowDiffReport& report) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& r : report.different) {
    std::string k;
    for (const auto& part : r.key) k += (k.empty() ? "" : "|") + part;
    out[k] = r.columns;
  }
  return out;
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

int64_t SegmentDifferences(const RowDiffReport& r) {
  int64_t n = 0;
  for (const auto& s : r.segments) n += s.differences;
  return n;
}

TEST_F(RowDiffIntegrationTest, IdenticalTablesAreClean) {
  std::vector<int64_t> differing_per_level;
  RowDiffOptions o = Options();
  o.progress = [&](int, int64_t, int64_t differing) { differing_per_level.push_back(differing); };
  RowDiffReport r = Diff(o);
  EXPECT_TRUE(r.clean());
  EXPECT_EQ(r.source_rows, kRows);
  EXPECT_EQ(r.target_rows, kRows);
  EXPECT_EQ(r.levels, 1);
  EXPECT_EQ(r.rows_fetched, 0);
  EXPECT_EQ(r.key_columns, std::vector<std::string>{"id"});
  EXPECT_EQ(r.columns.size(), 13u);
  EXPECT_EQ(r.segments.size(), 32u);
  int64_t rows = 0;
  for (const auto& s : r.segments) rows += s.source_rows;
  EXPECT_EQ(rows, kRows);
  EXPECT_GT(r.bytes_received, 0u);
  EXPECT_LT(r.bytes_received, 10'000u);
  EXPECT_EQ(differing_per_level, std::vector<int64_t>{0});
}

TEST_F(RowDiffIntegrationTest, DeletedRowIsMissing) {
  OnTarget("DELETE FROM emergency_requests WHERE id = md5('r' || 500)::uuid");
  RowDiffReport r = Diff(Options());
  EXPECT_EQ(Keys(r.missing), std::vector<std::string>{Id(500)});
  EXPECT_TRUE(r.extra.empty());
  EXPECT_TRUE(r.different.empty());
  EXPECT_EQ(r.source_rows, kRows);
  EXPECT_EQ(r.target_rows, kRows - 1);
  EXPECT_EQ(SegmentDifferences(r), 1);
  EXPECT_GT(r.levels, 1);
  EXPECT_GT(r.rows_fetched, 0);
  EXPECT_LE(r.rows_fetched, 2 * 512 + 10);
}

TEST_F(RowDiffIntegrationTest, ExtraRowOnTheStandby) {
  OnTarget(
      "INSERT INTO emergency_requests (id, customer_name, phone_number) VALUES "
      "('00000000-0000-4000-8000-000000000001', 'Extra', '1')");
  RowDiffReport r = Diff(Options());
  EXPECT_TRUE(r.missing.empty());
  EXPECT_EQ(Keys(r.extra), std::vector<std::string>{"00000000-0000-4000-8000-000000000001"});
  EXPECT_TRUE(r.different.empty());
}

TEST_F(RowDiffIntegrationTest, ChangedColumnsAreNamed) {
  OnTarget(
      "UPDATE emergency_requests SET status = 'cancelled', technician_id = NULL "
      "WHERE id = md5('r' || 1200)::uuid");  // 1200 % 5 = 0: pending; % 3 = 0: technician
  RowDiffReport r = Diff(Options());
  EXPECT_TRUE(r.missing.empty());
  EXPECT_TRUE(r.extra.empty());
  auto changed = Changed(r);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(Sorted(changed[Id(1200)]), (std::vector<std::string>{"status", "technician_id"}));
}

TEST_F(RowDiffIntegrationTest, NullAgainstEmptyString) {
  OnTarget("UPDATE emergency_requests SET location_address = '' WHERE id = md5('r' || 970)::uuid");
  RowDiffReport r = Diff(Options());
  auto changed = Changed(r);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[Id(970)], std::vector<std::string>{"location_address"});
  EXPECT_TRUE(r.missing.empty() && r.extra.empty());
}

TEST_F(RowDiffIntegrationTest, TimestampOneMicrosecondApart) {
  OnTarget(
      "UPDATE emergency_requests SET updated_at = updated_at + interval '1 microsecond' "
      "WHERE id = md5('r' || 77777)::uuid");
  RowDiffReport r = Diff(Options());
  auto changed = Changed(r);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[Id(77777)], std::vector<std::string>{"updated_at"});
  EXPECT_TRUE(r.missing.empty() && r.extra.empty());
}

TEST_F(RowDiffIntegrationTest, ChangedJsonb) {
  OnTarget(
      "UPDATE emergency_requests SET notes = jsonb_set(notes, '{tags,0}', '99') "
      "WHERE id = md5('r' || 31337)::uuid");
  RowDiffReport r = Diff(Options());
  auto changed = Changed(r);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[Id(31337)], std::vector<std::string>{"notes"});
  EXPECT_TRUE(r.missing.empty() && r.extra.empty());
}

TEST_F(RowDiffIntegrationTest, UnicodeNormalizationChange) {
  // The same name to the eye: 'ë' precomposed on the source, 'e' + combining diaeresis here.
  EXPECT_EQ(OnTarget("UPDATE emergency_requests SET customer_name = normalize(customer_name, NFD) "
                     "WHERE id = md5('r' || 4242)::uuid RETURNING customer_name <> "
                     "normalize(customer_name, NFC)"),
            "t");
  RowDiffReport r = Diff(Options());
  auto changed = Changed(r);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[Id(4242)], std::vector<std::string>{"customer_name"});
  EXPECT_TRUE(r.missing.empty() && r.extra.empty());
}

TEST_F(RowDiffIntegrationTest, EveryKindTogether) {
  OnTarget(
      "DELETE FROM emergency_requests WHERE id IN (md5('r' || 500)::uuid, md5('r' || 99999)::uuid);"
      "INSERT INTO emergency_requests (id, customer_name, phone_number) VALUES "
      "('ffffffff-ffff-4fff-bfff-ffffffffffff', 'Extra', '1');"
      "UPDATE emergency_requests SET status = 'cancelled' WHERE id = md5('r' || 1200)::uuid;"
      "UPDATE emergency_requests SET location_address = '' WHERE id = md5('r' || 970)::uuid;"
      "UPDATE emergency_requests SET completed_at = completed_at - interval '1 microsecond' "
      "  WHERE id = md5('r' || 8)::uuid;"
      "UPDATE emergency_requests SET notes = notes || '{\"note\": \"left rear\"}' "
      "  WHERE id = md5('r' || 31337)::uuid;"
      "UPDATE emergency_requests SET customer_name = replace(customer_name, 'ø', 'o') "
      "  WHERE id = md5('r' || 4242)::uuid;");
  std::vector<int64_t> compared;
  RowDiffOptions o = Options();
  o.progress = [&](int, int64_t c, int64_t) { compared.push_back(c); };
  RowDiffReport r = Diff(o);
  EXPECT_EQ(Keys(r.missing), Sorted({Id(500), Id(99999)}));
  EXPECT_EQ(Keys(r.extra), std::vector<std::string>{"ffffffff-ffff-4fff-bfff-ffffffffffff"});
  std::map<std::string, std::vector<std::string>> expected = {{Id(1200), {"status"}},
                                                              {Id(970), {"location_address"}},
                                                              {Id(8), {"completed_at"}},
                                                              {Id(31337), {"notes"}},
                                                              {Id(4242), {"customer_name"}}};
  EXPECT_EQ(Changed(r), expected);
  EXPECT_EQ(SegmentDifferences(r), 8);
  EXPECT_EQ(static_cast<int>(compared.size()), r.levels);
  // Fetched rows stay near the differing segments: far under the table.
  EXPECT_LT(r.rows_fetched, 8 * 2 * 512);
}

TEST_F(RowDiffIntegrationTest, WhereLimitsBothSides) {
  OnTarget(
      "DELETE FROM emergency_requests WHERE id IN (md5('r' || 10)::uuid, "
      "md5('r' || 90000)::uuid)");
  RowDiffOptions o = Options();
  o.where = "created_at < timestamptz '2024-03-01 00:00:00+00' + interval '1000 seconds'";
  RowDiffReport r = Diff(o);
  EXPECT_EQ(Keys(r.missing), std::vector<std::string>{Id(10)});
  EXPECT_EQ(r.source_rows, 999);
  EXPECT_EQ(r.target_rows, 998);
}

TEST_F(RowDiffIntegrationTest, Md5RowHashFindsTheSame) {
  OnTarget(
      "UPDATE emergency_requests SET updated_at = updated_at + interval '1 microsecond' "
      "WHERE id = md5('r' || 600)::uuid; DELETE FROM emergency_requests "
      "WHERE id = md5('r' || 601)::uuid");
  RowDiffOptions o = Options();
  o.row_hash = "md5";
  RowDiffReport r = Diff(o);
  EXPECT_EQ(Keys(r.missing), std::vector<std::string>{Id(601)});
  EXPECT_EQ(Changed(r)[Id(600)], std::vector<std::string>{"updated_at"});
  EXPECT_EQ(r.different.size(), 1u);
}

TEST_F(RowDiffIntegrationTest, UuidKeyAtTheEndsOfItsRange) {
  OnBoth(
      "CREATE TABLE uuid_keyed (id uuid PRIMARY KEY, v int); "
      "INSERT INTO uuid_keyed SELECT md5('u' || i)::uuid, i FROM generate_series(1, 20000) i; "
      "INSERT INTO uuid_keyed VALUES ('00000000-0000-0000-0000-000000000000', -1), "
      "('ffffffff-ffff-ffff-ffff-ffffffffffff', -2)",
      "DROP TABLE IF EXISTS uuid_keyed");
  Sql(target_,
      "UPDATE uuid_keyed SET v = 0 WHERE v = -2; DELETE FROM uuid_keyed WHERE v = -1; "
      "UPDATE uuid_keyed SET v = v + 1 WHERE id = md5('u' || 777)::uuid");
  RowDiffOptions o = Options("uuid_keyed");
  o.segments_per_level = 4;
  o.fetch_below_rows = 8;
  RowDiffReport r = Diff(o);
  EXPECT_EQ(Keys(r.missing), std::vector<std::string>{"00000000-0000-0000-0000-000000000000"});
  EXPECT_TRUE(r.extra.empty());
  std::map<std::string, std::vector<std::string>> expected = {
      {"ffffffff-ffff-ffff-ffff-ffffffffffff", {"v"}},
      {Sql(source_, "SELECT md5('u' || 777)::uuid"), {"v"}}};
  EXPECT_EQ(Changed(r), expected);
  EXPECT_GE(r.levels, 5);
}

TEST_F(RowDiffIntegrationTest, BigintKeyAtTheEndsOfItsRange) {
  OnBoth(
      "CREATE TABLE big_keyed (id bigint PRIMARY KEY, v text); "
      "INSERT INTO big_keyed SELECT i * 7919, 'v' || i FROM generate_series(-5000, 5000) i; "
      "INSERT INTO big_keyed VALUES (-9223372036854775808, 'min'), "
      "(9223372036854775807, 'max')",
      "DROP TABLE IF EXISTS big_keyed");
  Sql(target_,
      "DELETE FROM big_keyed WHERE v IN ('max', 'v17'); "
      "INSERT INTO big_keyed VALUES (1, 'one'); "
      "UPDATE big_keyed SET v = 'MIN' WHERE v = 'min'");
  RowDiffOptions o = Options("big_keyed");
  o.segments_per_level = 3;
  o.fetch_below_rows = 4;
  RowDiffReport r = Diff(o);
  EXPECT_EQ(Keys(r.missing), Sorted({"9223372036854775807", std::to_string(17 * 7919)}));
  EXPECT_EQ(Keys(r.extra), std::vector<std::string>{"1"});
  EXPECT_EQ(Changed(r),
            (std::map<std::string, std::vector<std::string>>{{"-9223372036854775808", {"v"}}}));
}

TEST_F(RowDiffIntegrationTest, TextKeyWithIcuCollation) {
  // en-x-icu orders 'b' < 'B' < 'c' and ignores accents at first: not byte order.
  const std::string create =
      "CREATE TABLE words (w text COLLATE \"en-x-icu\" PRIMARY KEY, n int); "
      "INSERT INTO words SELECT (ARRAY['apple','Apple','ápple','Zebra','zebra','éclair'])"
      "[1 + i % 6] || ' ' || (i / 6), i FROM generate_series(0, 29999) i";
  OnBoth(create, "DROP TABLE IF EXISTS words");
  Sql(target_,
      "DELETE FROM words WHERE w IN ('Apple 10', 'éclair 4000'); "
      "INSERT INTO words VALUES ('Ápple 10', -1); "
      "UPDATE words SET n = -n WHERE w = 'zebra 2500'");
  for (int segments : {32, 3}) {
    RowDiffOptions o = Options("words");
    o.segments_per_level = segments;
    o.fetch_below_rows = segments == 3 ? 5 : 512;
    RowDiffReport r = Diff(o);
    EXPECT_EQ(Keys(r.missing), Sorted({"Apple 10", "éclair 4000"})) << segments;
    EXPECT_EQ(Keys(r.extra), std::vector<std::string>{"Ápple 10"}) << segments;
    EXPECT_EQ(Changed(r), (std::map<std::string, std::vector<std::string>>{{"zebra 2500", {"n"}}}))
        << segments;
    EXPECT_TRUE(r.notes.empty());
    EXPECT_EQ(r.source_rows, 30000);
  }
}

TEST_F(RowDiffIntegrationTest, KeyCollationDifferingBetweenSidesIsComparedInByteOrder) {
  Sql(source_, "CREATE TABLE words2 (w text COLLATE \"en-x-icu\" PRIMARY KEY, n int)");
  Sql(target_, "CREATE TABLE words2 (w text COLLATE \"C\" PRIMARY KEY, n int)");
  cleanup_.push_back("DROP TABLE IF EXISTS words2");
  const std::string load =
      "INSERT INTO words2 SELECT (ARRAY['b','B','a','A','é','e'])[1 + i % 6] || (i / 6), i "
      "FROM generate_series(0, 11999) i";
  Sql(source_, load);
  Sql(target_,
      load + "; DELETE FROM words2 WHERE w = 'B7'; UPDATE words2 SET n = 0 WHERE w = 'é9'");
  RowDiffOptions o = Options("words2");
  o.segments_per_level = 5;
  o.fetch_below_rows = 16;
  RowDiffReport r = Diff(o);
  EXPECT_EQ(Keys(r.missing), std::vector<std::string>{"B7"});
  EXPECT_TRUE(r.extra.empty());
  EXPECT_EQ(Changed(r), (std::map<std::string, std::vector<std::string>>{{"é9", {"n"}}}));
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("COLLATE \"C\""), std::string::npos) << r.notes[0];
}

TEST_F(RowDiffIntegrationTest, CompositeKey) {
  OnBoth(
      "CREATE TABLE visits (region text, day date, n int, note text, "
      "PRIMARY KEY (region, day, n)); "
      "INSERT INTO visits SELECT 'region ' || (i % 40), date '2024-01-01' + (i / 400), i % 400, "
      "'note ' || i FROM generate_series(0, 39999) i",
      "DROP TABLE IF EXISTS visits");
  Sql(target_,
      "DELETE FROM visits WHERE region = 'region 7' AND day = '2024-01-05' AND n = 7; "
      "UPDATE visits SET note = NULL WHERE region = 'region 39' AND n = 399 "
      "AND day = '2024-01-10'; "
      "INSERT INTO visits VALUES ('region 7', '2024-01-05', 1000, 'extra')");
  RowDiffOptions o = Options("visits");
  RowDiffReport r = Diff(o);
  EXPECT_EQ(r.key_columns, (std::vector<std::string>{"region", "day", "n"}));
  EXPECT_EQ(Keys(r.missing), std::vector<std::string>{"region 7|2024-01-05|7"});
  EXPECT_EQ(Keys(r.extra), std::vector<std::string>{"region 7|2024-01-05|1000"});
  EXPECT_EQ(
      Changed(r),
      (std::map<std::string, std::vector<std::string>>{{"region 39|2024-01-10|399", {"note"}}}));
  EXPECT_GT(r.levels, 1);
}

TEST_F(RowDiffIntegrationTest, EmptyTargetListsEveryRowMissing) {
  OnBoth(
      "CREATE TABLE small_keyed (id int PRIMARY KEY, v text); "
      "INSERT INTO small_keyed SELECT i, 'v' || i FROM generate_series(1, 3000) i",
      "DROP TABLE IF EXISTS small_keyed");
  Sql(target_, "TRUNCATE small_keyed");
  RowDiffReport r = Diff(Options("small_keyed"));
  EXPECT_EQ(r.missing.size(), 3000u);
  EXPECT_EQ(r.missing.front().key, std::vector<std::string>{"1"});  // in key order
  EXPECT_EQ(r.missing.back().key, std::vector<std::string>{"3000"});
  EXPECT_TRUE(r.extra.empty());
  EXPECT_EQ(r.target_rows, 0);
}

TEST_F(RowDiffIntegrationTest, TableWithoutPrimaryKey) {
  OnBoth("CREATE TABLE keyless (a int, b text)", "DROP TABLE IF EXISTS keyless");
  auto r = DiffRows(Options("keyless"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("keyless"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("add a primary key"), std::string::npos);
}

TEST_F(RowDiffIntegrationTest, MissingTableNamesTableAndSide) {
  auto r = DiffRows(Options("public.no_such_table"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("no_such_table"), std::string::npos);
  EXPECT_NE(r.status().message().find("source"), std::string::npos) << r.status().ToString();

  Sql(source_, "CREATE TABLE source_only (id int PRIMARY KEY)");
  cleanup_.push_back("DROP TABLE IF EXISTS source_only");
  r = DiffRows(Options("source_only"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("target database (host 127.0.0.1 port " +
                                      std::to_string(target_->port())),
            std::string::npos)
      << r.status().ToString();
}

TEST_F(RowDiffIntegrationTest, ColumnsOrKeyDifferingBetweenSides) {
  OnBoth("CREATE TABLE drifted (id int PRIMARY KEY, a int)", "DROP TABLE IF EXISTS drifted");
  Sql(target_, "ALTER TABLE drifted ADD COLUMN added_later text");
  auto r = DiffRows(Options("drifted"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("only on the target: added_later"), std::string::npos)
      << r.status().ToString();

  Sql(target_,
      "ALTER TABLE drifted DROP COLUMN added_later; ALTER TABLE drifted DROP CONSTRAINT "
      "drifted_pkey; ALTER TABLE drifted ADD PRIMARY KEY (id, a)");
  r = DiffRows(Options("drifted"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("primary key"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("id integer, a integer"), std::string::npos);
}

TEST_F(RowDiffIntegrationTest, WhereThatDoesNotParse) {
  RowDiffOptions o = Options();
  o.where = "created_at >> now(";
  auto r = DiffRows(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("syntax error"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("created_at >> now("), std::string::npos);

  o.where = "no_such_column = 1";
  r = DiffRows(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("no_such_column"), std::string::npos);

  // A second statement cannot ride along: the condition stays one expression in one statement.
  o.where = "true; DELETE FROM emergency_requests";
  r = DiffRows(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Sql(source_, "SELECT count(*) FROM emergency_requests"), std::to_string(kRows));
}

TEST_F(RowDiffIntegrationTest, UnreachableTargetNamesSideAndHostNotPassword) {
  auto port = PickFreePort();
  ASSERT_TRUE(port.ok());
  RowDiffOptions o = Options();
  o.target = "host=127.0.0.1 port=" + std::to_string(*port) + " user=postgres dbname=app";
  o.target_password = "s3cret-Passw0rd";
  auto r = DiffRows(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("target"), std::string::npos) << m;
  EXPECT_NE(m.find("127.0.0.1"), std::string::npos) << m;
  EXPECT_NE(m.find(std::to_string(*port)), std::string::npos) << m;
  EXPECT_EQ(m.find("s3cret"), std::string::npos) << m;
}

TEST(RowDiffOptionsTest, RejectsSettingsThatCannotWork) {
  RowDiffOptions o;
  o.source = "host=127.0.0.1 port=1";
  o.target = "host=127.0.0.1 port=1";
  o.segments_per_level = 1;
  auto r = DiffRows(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  o.segments_per_level = 32;
  o.row_hash = "crc";
  r = DiffRows(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("crc"), std::string::npos);
}

}  // namespace
}  // namespace lifeline::gapcheck
