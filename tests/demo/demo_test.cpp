// `lifeline demo` end to end (primary -> capture -> Kafka -> replay -> standby), and `lifeline
// load`'s ledger against what the database holds.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "tests/support/json_reader.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

TEST(DemoIntegration, RunsTheLocalPipelineAndLosesNothing) {
  testing::TempDir tmp;
  CommandResult r = testing::RunLifeline({"demo", "--duration", "30s", "--rate", "150", "--format",
                                          "json", "--report-dir", tmp.Sub("report")},
                                         "", 300'000);
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  testing::JsonValue summary = testing::ParseJson(r.stdout_text);
  EXPECT_EQ(summary["calls_lost"].AsInt(), 0) << r.stdout_text;
  EXPECT_EQ(summary["lost_ids"].size(), 0u);
  EXPECT_GT(summary["calls_committed"].AsInt(), 300) << "the load hardly ran";
  EXPECT_TRUE(summary["spool_verified"].boolean);
  EXPECT_TRUE(summary["standby_equals_primary"].boolean);
  EXPECT_EQ(summary["replay_exit_code"].AsInt(), 0);
  EXPECT_EQ(summary["capture_exit_code"].AsInt(), 0);
  // gapcheck ran at the end, found nothing, and left its reports.
  EXPECT_EQ(summary["gapcheck_stream_exit"].AsInt(), 0);
  EXPECT_EQ(summary["gapcheck_rows_exit"].AsInt(), 0);
  EXPECT_EQ(summary["report_dir"].AsString(), tmp.Sub("report"));
  for (const char* name : {"stream", "rows", "buckets"}) {
    std::ifstream html(tmp.Sub("report") + "/" + name + ".html");
    std::string text((std::istreambuf_iterator<char>(html)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("<svg"), std::string::npos) << name;
  }
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
