// `lifeline drill`: every scenario of the recovery plan under load on the local pipeline, judged by
// the drill itself and checked here from its JSON (calls lost against the ledger, recovery time,
// gapcheck's verdicts); and the chaos run with many faults in random order.
#include <gtest/gtest.h>

#include "tests/support/json_reader.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

using testing::JsonValue;

JsonValue RunDrill(const std::vector<std::string>& extra, int timeout_ms, int* exit_code) {
  std::vector<std::string> args = {"drill", "--format", "json", "--rate", "200"};
  args.insert(args.end(), extra.begin(), extra.end());
  CommandResult r = testing::RunLifeline(args, "", timeout_ms);
  *exit_code = r.exit_code;
  EXPECT_FALSE(r.timed_out);
  try {
    return testing::ParseJson(r.stdout_text);
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what() << "\n" << r.stdout_text << r.stderr_text;
    return {};
  }
}

class DrillIntegration : public ::testing::TestWithParam<std::string> {};

TEST_P(DrillIntegration, ScenarioPassesAndLosesNoCallThatLeftTheRegion) {
  int code = -1;
  JsonValue r =
      RunDrill({"--scenario", GetParam(), "--duration", "15s", "--outage", "10s"}, 600'000, &code);
  std::string events;
  for (const JsonValue& e : r["events"].items) events += e.AsString() + "\n";
  EXPECT_EQ(code, 0) << events;
  EXPECT_EQ(r["scenario"].AsString(), GetParam());
  EXPECT_TRUE(r["passed"].boolean) << events;
  EXPECT_GT(r["calls_committed"].AsInt(), 200) << "the load hardly ran";
  EXPECT_GT(r["recovery_seconds"].number, 0);
  EXPECT_LT(r["recovery_seconds"].number, 60) << events;
  EXPECT_EQ(r["calls_lost"].AsInt(), static_cast<int64_t>(r["lost_ids"].size()));
  if (GetParam() == "region-loss") {
    // Calls that had not left the lost region may be lost; they are named, and their age bounded.
    EXPECT_LT(r["rpo_seconds"].number, 30) << events;
  } else {
    EXPECT_EQ(r["calls_lost"].AsInt(), 0) << events;
    EXPECT_EQ(r["rpo_seconds"].number, 0);
  }
  if (GetParam() != "region-loss" && GetParam() != "pitr") {
    EXPECT_TRUE(r["standby_equals_primary"].boolean) << events;
    EXPECT_EQ(r["gapcheck_rows_exit"].AsInt(), 0) << events;
  }
  EXPECT_EQ(r["gapcheck_stream_exit"].AsInt(), 0) << events;
}

INSTANTIATE_TEST_SUITE_P(Scenarios, DrillIntegration,
                         ::testing::Values("capture-crash", "replayer-crash", "kafka-outage",
                                           "primary-restart", "standby-restart", "region-loss",
                                           "pitr"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

TEST(ChaosIntegration, ThreeMinutesOfFaultsLoseNothing) {
  int code = -1;
  JsonValue r =
      RunDrill({"--scenario", "chaos", "--duration", "180s", "--seed", "20261126"}, 900'000, &code);
  std::string events;
  for (const JsonValue& e : r["events"].items) events += e.AsString() + "\n";
  EXPECT_EQ(code, 0) << events;
  EXPECT_TRUE(r["passed"].boolean) << events;
  EXPECT_GT(r["calls_committed"].AsInt(), 3000);
  EXPECT_EQ(r["calls_lost"].AsInt(), 0) << events;
  EXPECT_TRUE(r["standby_equals_primary"].boolean);
  EXPECT_EQ(r["gapcheck_rows_exit"].AsInt(), 0);
  EXPECT_EQ(r["gapcheck_stream_exit"].AsInt(), 0);
  int kills = 0;
  for (const JsonValue& e : r["events"].items) {
    if (e.AsString().rfind("kill -9", 0) == 0) ++kills;
  }
  EXPECT_EQ(kills, 10) << events;
}

TEST(DrillTest, BadFlagsExitTwo) {
  CommandResult r = testing::RunLifeline({"drill", "--scenario", "meteor"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("meteor"), std::string::npos) << r.stderr_text;
  r = testing::RunLifeline({"drill", "--scenario", "capture-crash", "--duration", "1s"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("--duration"), std::string::npos) << r.stderr_text;
  r = testing::RunLifeline({"drill"});
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace lifeline
