// The PostgreSQL cluster fixture: logical WAL, the reference schema with PostGIS, restart, and
// point-in-time restore from a base backup and the WAL archive.
#include "common/local_postgres.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "tests/support/test_env.h"

namespace lifeline {
namespace {

using testing::Trim;

TEST(LocalPostgresIntegration, StartsWithLogicalWalAndTheReferenceSchema) {
  auto pg = testing::StartPostgres({.name = "fixture"});
  ASSERT_TRUE(pg);
  EXPECT_EQ(Trim(*pg->Psql("SHOW wal_level")), "logical");
  testing::LoadReferenceSchema(*pg);
  auto r = pg->Psql(
      "INSERT INTO emergency_requests (customer_name, phone_number, location_coordinates, "
      "tyre_issue, notes) VALUES ('Ada', '+44 7700 900123', "
      "ST_GeogFromText('SRID=4326;POINT(-0.1276 51.5072)'), 'puncture', '{\"lane\": 2}') "
      "RETURNING tyre_issue, status, ST_AsText(location_coordinates)",
      "app");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Trim(*r), "puncture|pending|POINT(-0.1276 51.5072)");
  std::string dir = pg->base_dir();
  EXPECT_TRUE(std::filesystem::exists(dir));
  pg.reset();
  EXPECT_FALSE(std::filesystem::exists(dir)) << "the fixture removes its directory";
}

TEST(LocalPostgresIntegration, ImmediateRestartKeepsCommittedData) {
  auto pg = testing::StartPostgres({.name = "restart"});
  ASSERT_TRUE(pg);
  ASSERT_TRUE(pg->Psql("CREATE TABLE t(x int); INSERT INTO t VALUES (1),(2)").ok());
  int pid = pg->postmaster_pid();
  ASSERT_TRUE(pg->Restart("immediate").ok());
  EXPECT_NE(pg->postmaster_pid(), pid);
  EXPECT_EQ(Trim(*pg->Psql("SELECT sum(x) FROM t")), "3");
}

TEST(LocalPostgresIntegration, PointInTimeRestoreFromBaseBackupAndArchive) {
  auto pg = testing::StartPostgres({.name = "pitr", .wal_archiving = true});
  ASSERT_TRUE(pg);
  ASSERT_TRUE(pg->Psql("CREATE TABLE t(x int); INSERT INTO t VALUES (1)").ok());
  testing::TempDir tmp;
  std::string backup = tmp.Sub("backups/base");
  Status st = pg->BaseBackup(backup);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_TRUE(pg->Psql("INSERT INTO t VALUES (2)").ok());
  std::string target = Trim(*pg->Psql("SELECT now()::text"));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(pg->Psql("INSERT INTO t VALUES (4)").ok());
  Status archived = pg->ArchiveUpToNow();
  ASSERT_TRUE(archived.ok()) << archived.ToString();
  auto restored = LocalPostgres::RestoreFromBackup({.name = "pitr-restored"}, backup,
                                                   pg->archive_dir(), target);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_EQ(Trim(*(*restored)->Psql("SELECT sum(x) FROM t")), "3")
      << "rows committed before the target are back, later ones are not";
}

}  // namespace
}  // namespace lifeline
