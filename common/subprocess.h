// Runs external programs (initdb, pg_ctl, kcat, pg_recvlogical) with a deadline, capturing output.
// Used by the local-cluster launcher, tests, the demo and benchmarks.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace lifeline {

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal or by the deadline
  bool timed_out = false;
  std::string stdout_text;
  std::string stderr_text;
};

struct CommandSpec {
  std::vector<std::string> argv;           // argv[0] is looked up in PATH
  std::string stdin_text;                  // written to the child's stdin, then closed
  std::optional<std::string> run_as_user;  // drop to this OS user (needs root), e.g. "postgres"
  std::vector<std::string> extra_env;      // "NAME=value" entries added to the environment
  std::string working_dir;                 // empty: inherit
  std::chrono::milliseconds timeout{60'000};
};

// Runs to completion (or the deadline, after which the child is SIGKILLed). The Status is an error
// only when the program could not be started; a non-zero exit is reported in CommandResult.
[[nodiscard]] Result<CommandResult> RunCommand(const CommandSpec& spec);

// A long-running child (a daemon under test). Output goes to the given log file (appended).
// The destructor SIGKILLs the child if it is still running: a test never leaks processes.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  [[nodiscard]] static Result<ChildProcess> Start(const CommandSpec& spec,
                                                  const std::string& log_path);
  pid_t pid() const { return pid_; }
  bool running();
  // Sends `signal` and waits up to `timeout` for exit; returns the exit code (128+sig if
  // signalled), or an error if it did not exit in time.
  [[nodiscard]] Result<int> Stop(int signal, std::chrono::milliseconds timeout);
  // Waits up to `timeout` for the child to exit on its own.
  [[nodiscard]] Result<int> Wait(std::chrono::milliseconds timeout);
  // Writes to the child's stdin (kept open when CommandSpec::stdin_text is empty).
  [[nodiscard]] Status WriteStdin(const std::string& text);

 private:
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  std::optional<int> exit_code_;
};

// Looks a program up in PATH (and the PostgreSQL bin directory); empty when not found.
std::string FindProgram(const std::string& name);

}  // namespace lifeline
