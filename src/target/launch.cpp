#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
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

// Whether the child exited, collecting its status if so. Only an exit: while record --native
// traces the child's threads, the main thread's ptrace stops are reported to waitpid(pid) too
// (whatever its flags), and taking one for an exit (decoded as status 1) ended the recording,
// orphaned the program and left the stopper waiting for a stop it never saw. So look first
// (WNOWAIT); a stop is left to the stopper that caused it, unless `block`: then nothing else
// will collect it, so it is let go here and the wait goes on.
bool Child::collect(bool block) {
  while (!exited_) {
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT | (block ? 0 : WNOHANG)) != 0) {
      if (errno == EINTR) continue;
      if (!block) return false;
      exited_ = true;  // not ours to wait for: someone else collected it
      exit_status_ = 1;
      return true;
    }
    if (info.si_pid != pid_) return false;  // WNOHANG: nothing to report
    int status = 0;
    if (info.si_code == CLD_EXITED || info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        exit_status_ = decode_status(status);
      }
      continue;
    }
    if (!block) return false;
    if (waitpid(pid_, &status, __WALL | WNOHANG) == pid_ && WIFSTOPPED(status)) {
      // A signal that stopped it is handed on; an interrupt's own stop carries none.
      const int sig = (status >> 16) == PTRACE_EVENT_STOP ? 0 : WSTOPSIG(status);
      ptrace(PTRACE_DETACH, pid_, nullptr, reinterpret_cast<void*>(static_cast<uintptr_t>(sig)));
    }
  }
  return true;
}

bool Child::poll_exited() { return collect(false); }

void Child::exited_with(int wait_status) {
  if (exited_) return;
  exited_ = true;
  exit_status_ = decode_status(wait_status);
}

int Child::wait() {
  collect(true);
  return exit_status_;
}

void Child::signal(int sig) const {
  if (!exited_ && pid_ > 0) kill(pid_, sig);
}

}  // namespace swprof::target
