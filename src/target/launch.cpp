#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "swprof/common.h"
#include "swprof/target.h"

namespace swprof::target {

namespace {

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

Child Child::launch(const std::vector<std::string>& argv) {
  if (argv.empty()) throw UserError("no command to run: give one after --, or use --pid PID");
  // The child reports an exec failure through a close-on-exec pipe: if exec succeeds, the pipe
  // closes with nothing written.
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) throw UserError(fmt::format("cannot create a pipe: {}", strerror(errno)));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) throw UserError(fmt::format("cannot fork: {}", strerror(errno)));
  if (pid == 0) {
    close(pipefd[0]);
    // The recorder blocks SIGINT/SIGTERM to handle them itself; the program gets the defaults.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    execvp(args[0], args.data());
    int err = errno;
    ssize_t ignored = write(pipefd[1], &err, sizeof err);
    (void)ignored;
    _exit(127);
  }
  close(pipefd[1]);
  int err = 0;
  ssize_t n;
  do {
    n = read(pipefd[0], &err, sizeof err);
  } while (n < 0 && errno == EINTR);
  close(pipefd[0]);
  if (n == sizeof err) {
    int status;
    waitpid(pid, &status, 0);
    throw UserError(fmt::format("cannot run {}: {}", argv[0], strerror(err)), 127);
  }
  Child c;
  c.pid_ = pid;
  return c;
}

bool Child::poll_exited() {
  if (exited_) return true;
  int status;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exited_ = true;
    exit_status_ = decode_status(status);
  }
  return exited_;
}

void Child::exited_with(int wait_status) {
  if (exited_) return;
  exited_ = true;
  exit_status_ = decode_status(wait_status);
}

int Child::wait() {
  while (!exited_) {
    int status;
    pid_t r = waitpid(pid_, &status, 0);
    if (r == pid_) {
      exited_ = true;
      exit_status_ = decode_status(status);
    } else if (r < 0 && errno != EINTR) {
      exited_ = true;
      exit_status_ = 1;
    }
  }
  return exit_status_;
}

void Child::signal(int sig) const {
  if (!exited_ && pid_ > 0) kill(pid_, sig);
}

}  // namespace swprof::target
