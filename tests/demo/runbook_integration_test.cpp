// docs/runbook.md's commands, run as written against the demo's environment by
// scripts/runbook-check.sh: every checked block exits as the runbook says and prints what it says.
#include <gtest/gtest.h>

#include "common/subprocess.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

TEST(RunbookIntegration, EveryCommandDoesWhatTheRunbookSays) {
  for (const char* program : {"jq", "curl", "psql", "pg_dump", "pg_isready"}) {
    ASSERT_FALSE(
        testing::RequireProgram(program, program[0] == 'p' ? "postgresql-client-15" : program)
            .empty());
  }
  CommandSpec spec;
  spec.argv = {"bash", testing::SourceDir() + "/scripts/runbook-check.sh",
               testing::LifelineBinary()};
  spec.timeout = std::chrono::milliseconds(600'000);
  auto r = RunCommand(spec);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->exit_code, 0) << r->stdout_text << r->stderr_text;
  EXPECT_NE(r->stdout_text.find("runbook-check: PASS"), std::string::npos) << r->stdout_text;
}

}  // namespace
}  // namespace lifeline
