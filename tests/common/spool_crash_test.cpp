// kill -9 of a process appending to the spool, at random moments, many times: after every
// reopen the seqs are contiguous from 1, no event is torn, the state agrees with the data, the
// hash chain verifies, and only whole transactions are visible.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "common/spool.h"
#include "tests/support/sample_events.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

// The child: continue the transaction numbering where the spool ends, append transactions of
// random sizes in batches of random sizes (so batches end inside transactions), forever. One
// byte on `progress_fd` says a first whole transaction is in, so every round has something to
// lose however slow the disk's syncs are.
[[noreturn]] void AppendUntilKilled(const std::string& dir, unsigned seed, int progress_fd) {
  auto spool = Spool::OpenForWrite(dir);
  if (!spool.ok()) _exit(3);
  const uint64_t complete_at_start = (*spool)->last_complete_seq();
  bool told = false;
  uint32_t xid = 1;
  auto last = (*spool)->Read((*spool)->last_complete_seq(), 1);
  if (last.ok() && !last->empty()) {
    auto ev = ParseEvent(last->front());
    if (!ev.ok()) _exit(4);
    xid = ev->xid() + 1;
  }
  std::mt19937 rng(seed);
  std::vector<v1::ChangeEvent> pending;
  while (true) {
    uint32_t count = 1 + rng() % 40;
    for (auto& ev : testing::SampleTransaction(xid++, count, 200 + rng() % 600)) {
      pending.push_back(std::move(ev));
    }
    size_t batch = 1 + rng() % 64;
    while (pending.size() >= batch) {
      std::vector<v1::ChangeEvent> chunk(pending.begin(), pending.begin() + batch);
      pending.erase(pending.begin(), pending.begin() + batch);
      if (!(*spool)->Append(chunk).ok()) _exit(5);
      if (!told && (*spool)->last_complete_seq() > complete_at_start) {
        told = write(progress_fd, "+", 1) == 1;
        if (!told) _exit(6);
      }
    }
  }
}

// Every held event parses, whole transactions only (index 0..n-1, last marked), xids increasing.
void CheckTransactions(Spool& spool, uint64_t* events_out) {
  uint64_t next = 1, events = 0;
  uint32_t expect_index = 0, prev_xid = 0;
  while (true) {
    auto batch = spool.Read(next, 5000);
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    if (batch->empty()) break;
    for (const auto& rec : *batch) {
      auto ev = ParseEvent(rec);
      ASSERT_TRUE(ev.ok()) << ev.status().ToString();
      ASSERT_EQ(rec.seq, next) << "seqs must be contiguous from 1";
      ASSERT_EQ(ev->index_in_txn(), expect_index) << "at seq " << rec.seq;
      if (expect_index == 0) {
        ASSERT_GT(ev->xid(), prev_xid) << "transaction spooled twice or out of order";
        prev_xid = ev->xid();
      } else {
        ASSERT_EQ(ev->xid(), prev_xid);
      }
      expect_index = ev->last_in_txn() ? 0 : expect_index + 1;
      ++next;
      ++events;
    }
  }
  ASSERT_EQ(expect_index, 0u) << "the spool ends inside a transaction";
  *events_out = events;
}

TEST(SpoolCrashIntegration, SurvivesRepeatedKillNine) {
  testing::TempDir tmp;
  std::string dir = tmp.Sub("spool");
  std::mt19937 rng(std::random_device{}());
  constexpr int kKills = 24;
  uint64_t previous_events = 0;
  int grew = 0;
  for (int round = 0; round < kKills; ++round) {
    int progress[2];
    ASSERT_EQ(pipe(progress), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(progress[0]);
      AppendUntilKilled(dir, rng(), progress[1]);
    }
    close(progress[1]);
    pollfd first{progress[0], POLLIN, 0};
    const int ready = poll(&first, 1, 20'000);
    close(progress[0]);
    if (ready != 1) kill(pid, SIGKILL);
    ASSERT_EQ(ready, 1) << "round " << round << ": no whole transaction appended in 20 s";
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 250));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(wstatus))
        << "the writer exited on its own with status " << WEXITSTATUS(wstatus);

    auto spool = Spool::OpenForWrite(dir);
    ASSERT_TRUE(spool.ok()) << "round " << round << ": " << spool.status().ToString();
    Status verified = (*spool)->Verify();
    ASSERT_TRUE(verified.ok()) << "round " << round << ": " << verified.ToString();
    uint64_t events = 0;
    CheckTransactions(**spool, &events);
    SpoolStats st = (*spool)->Stats();
    EXPECT_EQ(st.events, events);
    EXPECT_EQ(st.last_seq, events);
    EXPECT_EQ(st.first_seq, events > 0 ? 1u : 0u);
    EXPECT_GE(events, previous_events) << "a complete transaction was lost";
    if (events > previous_events) ++grew;
    previous_events = events;
  }
  EXPECT_EQ(grew, kKills) << "a round's first whole transaction was acknowledged, then lost";
}

}  // namespace
}  // namespace lifeline
