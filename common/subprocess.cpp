// fork/exec with pipes and a deadline; the only place lifeline starts other programs.
#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

namespace lifeline {
namespace {

int DecodeWaitStatus(int wstatus) {
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return -1;
}

// In the child after fork: set up fds, user, environment, and exec. Never returns.
[[noreturn]] void ExecChild(const CommandSpec& spec, int stdin_fd, int stdout_fd, int stderr_fd) {
  dup2(stdin_fd, STDIN_FILENO);
  dup2(stdout_fd, STDOUT_FILENO);
  dup2(stderr_fd, STDERR_FILENO);
  for (int fd = 3; fd < 1024; ++fd) close(fd);
  // Own process group, so a test's Ctrl-C does not reach daemons it is about to stop itself.
  setpgid(0, 0);
  if (spec.run_as_user) {
    struct passwd* pw = getpwnam(spec.run_as_user->c_str());
    if (pw == nullptr || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
      dprintf(STDERR_FILENO, "cannot switch to user %s\n", spec.run_as_user->c_str());
      _exit(127);
    }
    setenv("HOME", pw->pw_dir, 1);
    setenv("USER", pw->pw_name, 1);
  }
  for (const auto& kv : spec.extra_env) putenv(const_cast<char*>(kv.c_str()));
  if (!spec.working_dir.empty() && chdir(spec.working_dir.c_str()) != 0) {
    dprintf(STDERR_FILENO, "cannot chdir to %s: %s\n", spec.working_dir.c_str(), strerror(errno));
    _exit(127);
  }
  std::vector<char*> args;
  for (const auto& a : spec.argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execvp(args[0], args.data());
  dprintf(STDERR_FILENO, "cannot run %s: %s\n", args[0], strerror(errno));
  _exit(127);
}

}  // namespace

std::string FindProgram(const std::string& name) {
  std::string path = getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin";
  path += ":/usr/lib/postgresql/15/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string candidate = path.substr(start, end - start) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

Result<CommandResult> RunCommand(const CommandSpec& spec) {
  if (spec.argv.empty()) return Status::InvalidArgument("RunCommand: empty argv");
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0 ||
      pipe2(err_pipe, O_CLOEXEC) != 0) {
    return Status::IOError(std::string("pipe: ") + strerror(errno));
  }
  pid_t pid = fork();
  if (pid < 0) return Status::IOError(std::string("fork: ") + strerror(errno));
  if (pid == 0) ExecChild(spec, in_pipe[0], out_pipe[1], err_pipe[1]);
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);

  CommandResult result;
  size_t written = 0;
  int in_fd = in_pipe[1];
  if (spec.stdin_text.empty()) {
    close(in_fd);
    in_fd = -1;
  } else {
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
  }
  auto deadline = std::chrono::steady_clock::now() + spec.timeout;
  bool out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    pollfd fds[3];
    int n = 0;
    if (out_open) fds[n++] = {out_pipe[0], POLLIN, 0};
    if (err_open) fds[n++] = {err_pipe[0], POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    int rc = poll(fds, n, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (rc < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_fd) {
        ssize_t w =
            write(in_fd, spec.stdin_text.data() + written, spec.stdin_text.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 && errno != EAGAIN) written = spec.stdin_text.size();
        if (written >= spec.stdin_text.size()) {
          close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      ssize_t r = read(fds[i].fd, buf, sizeof buf);
      bool is_out = fds[i].fd == out_pipe[0];
      if (r > 0) {
        (is_out ? result.stdout_text : result.stderr_text).append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        (is_out ? out_open : err_open) = false;
      }
    }
  }
  if (in_fd >= 0) close(in_fd);
  close(out_pipe[0]);
  close(err_pipe[0]);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = result.timed_out ? -1 : DecodeWaitStatus(wstatus);
  return result;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_code_) {
    kill(pid_, SIGKILL);
    int wstatus;
    waitpid(pid_, &wstatus, 0);
  }
  if (stdin_fd_ >= 0) close(stdin_fd_);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_), stdin_fd_(other.stdin_fd_), exit_code_(other.exit_code_) {
  other.pid_ = -1;
  other.stdin_fd_ = -1;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    this->~ChildProcess();
    pid_ = other.pid_;
    stdin_fd_ = other.stdin_fd_;
    exit_code_ = other.exit_code_;
    other.pid_ = -1;
    other.stdin_fd_ = -1;
  }
  return *this;
}

Result<ChildProcess> ChildProcess::Start(const CommandSpec& spec, const std::string& log_path) {
  if (spec.argv.empty()) return Status::InvalidArgument("ChildProcess: empty argv");
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return Status::IOError("cannot open log " + log_path + ": " + strerror(errno));
  }
  int in_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) {
    close(log_fd);
    return Status::IOError(std::string("pipe: ") + strerror(errno));
  }
  pid_t pid = fork();
  if (pid < 0) return Status::IOError(std::string("fork: ") + strerror(errno));
  if (pid == 0) ExecChild(spec, in_pipe[0], log_fd, log_fd);
  close(in_pipe[0]);
  close(log_fd);
  ChildProcess child;
  child.pid_ = pid;
  child.stdin_fd_ = in_pipe[1];
  if (!spec.stdin_text.empty()) {
    Status st = child.WriteStdin(spec.stdin_text);
    close(child.stdin_fd_);
    child.stdin_fd_ = -1;
    if (!st.ok()) return st;
  }
  return child;
}

bool ChildProcess::running() {
  if (pid_ <= 0 || exit_code_) return false;
  int wstatus = 0;
  pid_t r = waitpid(pid_, &wstatus, WNOHANG);
  if (r == pid_) {
    exit_code_ = DecodeWaitStatus(wstatus);
    return false;
  }
  return true;
}

Result<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Unavailable("process " + std::to_string(pid_) + " did not exit in time");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!exit_code_) return Status::Internal("no child process");
  return *exit_code_;
}

Result<int> ChildProcess::Stop(int signal, std::chrono::milliseconds timeout) {
  if (running()) kill(pid_, signal);
  return Wait(timeout);
}

Status ChildProcess::WriteStdin(const std::string& text) {
  if (stdin_fd_ < 0) return Status::FailedPrecondition("child stdin is closed");
  size_t off = 0;
  while (off < text.size()) {
    ssize_t w = write(stdin_fd_, text.data() + off, text.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(std::string("write to child stdin: ") + strerror(errno));
    }
    off += static_cast<size_t>(w);
  }
  return Status::Ok();
}

}  // namespace lifeline
