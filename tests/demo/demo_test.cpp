// `lifeline demo` end to end (primary -> capture -> Kafka -> replay -> standby), and `lifeline
// load`'s ledger against what the database holds.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "tests/support/test_env.h"

namespace lifeline {
namespace {

TEST(DemoIntegration, RunsTheLocalPipelineAndLosesNothing) {
  CommandResult r = testing::RunLifeline(
      {"demo", "--duration", "10s", "--rate", "150", "--format", "json"}, "", 180'000);
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_NE(r.stdout_text.find("\"calls_lost\":0,"), std::string::npos) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("\"spool_verified\":true"), std::string::npos) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("\"standby_equals_primary\":true"), std::string::npos)
      << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("\"replay_exit_code\":0"), std::string::npos) << r.stdout_text;
  size_t at = r.stdout_text.find("\"calls_committed\":");
  ASSERT_NE(at, std::string::npos);
  EXPECT_GT(std::stoi(r.stdout_text.substr(at + 18)), 100) << "the load hardly ran";
}

TEST(DemoIntegration, LoadLedgerListsExactlyTheCommittedRequests) {
  auto pg = testing::StartPostgres({.name = "load"});
  ASSERT_TRUE(pg);
  testing::LoadReferenceSchema(*pg, "app");
  testing::TempDir tmp;
  CommandResult r = testing::RunLifeline({"load", "--target", pg->ConnInfo("app"), "--rate", "300",
                                          "--duration", "3s", "--ledger", tmp.Sub("ledger")},
                                         "", 60'000);
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  std::set<std::string> ledger;
  std::ifstream in(tmp.Sub("ledger"));
  for (std::string line; std::getline(in, line);) ledger.insert(line);
  auto rows = pg->Psql("SELECT id FROM emergency_requests ORDER BY id", "app");
  ASSERT_TRUE(rows.ok());
  std::set<std::string> in_db;
  std::istringstream lines(*rows);
  for (std::string line; std::getline(lines, line);) in_db.insert(line);
  EXPECT_GT(ledger.size(), 100u);
  EXPECT_EQ(ledger, in_db);
  auto statuses = pg->Psql("SELECT count(DISTINCT status) FROM emergency_requests", "app");
  EXPECT_GE(std::stoi(*statuses), 3) << "the load moves calls through their life cycle";
}

TEST(DemoTest, BadFlagsExitTwo) {
  CommandResult r = testing::RunLifeline({"demo", "--rate", "0"});
  EXPECT_EQ(r.exit_code, 2) << r.stderr_text;
  r = testing::RunLifeline({"demo", "--duration", "soon"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("malformed duration 'soon'"), std::string::npos) << r.stderr_text;
  r = testing::RunLifeline({"load", "--rate", "10"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("--target"), std::string::npos) << r.stderr_text;
}

}  // namespace
}  // namespace lifeline
