// Child-process daemons for integration tests.
#include "tests/support/daemon.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "common/spool.h"
#include "tests/support/test_env.h"

namespace lifeline::testing {

LifelineDaemon::LifelineDaemon(std::vector<std::string> args, std::string log_path,
                               std::vector<std::string> extra_env)
    : args_(std::move(args)), log_path_(std::move(log_path)), extra_env_(std::move(extra_env)) {}

bool LifelineDaemon::Start() {
  CommandSpec spec;
  spec.argv = {LifelineBinary()};
  spec.argv.insert(spec.argv.end(), args_.begin(), args_.end());
  spec.extra_env = extra_env_;
  auto child = ChildProcess::Start(spec, log_path_);
  if (!child.ok()) {
    ADD_FAILURE() << "cannot start lifeline: " << child.status().ToString();
    return false;
  }
  child_ = std::move(child).value();
  return true;
}

void LifelineDaemon::Kill() {
  if (child_.running()) kill(child_.pid(), SIGKILL);
  (void)child_.Wait(std::chrono::milliseconds(10'000));
}

int LifelineDaemon::Stop() {
  auto r = child_.Stop(SIGTERM, std::chrono::milliseconds(30'000));
  return r.ok() ? *r : -1;
}

int LifelineDaemon::WaitExit(std::chrono::milliseconds timeout) {
  auto r = child_.Wait(timeout);
  return r.ok() ? *r : -1;
}

std::string LifelineDaemon::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WaitFor(const std::function<bool()>& ready, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return ready();
}

uint64_t SpoolLastSeq(const std::string& spool_dir) {
  auto spool = Spool::OpenForRead(spool_dir);
  if (!spool.ok()) return 0;
  return (*spool)->last_complete_seq();
}

}  // namespace lifeline::testing
