// A `lifeline` daemon under test: started as a child process with its own log file, waited on
// through the spool or its log, killed with SIGKILL or stopped with SIGTERM.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "common/subprocess.h"

namespace lifeline::testing {

class LifelineDaemon {
 public:
  // `args` after the binary, e.g. {"capture", "--source", ...}. Output appends to `log_path`.
  LifelineDaemon(std::vector<std::string> args, std::string log_path,
                 std::vector<std::string> extra_env = {});
  bool Start();  // ADD_FAILURE on error
  bool running() { return child_.running(); }
  pid_t pid() const { return child_.pid(); }
  void Kill();  // SIGKILL and reap
  int Stop();   // SIGTERM, wait up to 30 s, return the exit code (-1 on timeout)
  // Waits up to `timeout` for the child to exit; its exit code, or -1 if still running.
  int WaitExit(std::chrono::milliseconds timeout);
  std::string Log() const;

 private:
  std::vector<std::string> args_;
  std::string log_path_;
  std::vector<std::string> extra_env_;
  ChildProcess child_;
};

// Polls `ready` every 50 ms for up to `timeout`; true once it returns true.
bool WaitFor(const std::function<bool()>& ready, std::chrono::milliseconds timeout);

// The spool's last complete seq as a reader sees it (0 if it cannot be opened yet).
uint64_t SpoolLastSeq(const std::string& spool_dir);

}  // namespace lifeline::testing
