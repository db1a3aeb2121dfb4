// The swprof binary: parses the command line and runs the chosen subcommand (src/cli/, one file
// each). Errors a user can act on are one line on stderr and a non-zero exit.
#include <execinfo.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>

#include <CLI/CLI.hpp>
#include <google/protobuf/stubs/logging.h>

#include "cli/cli.h"
#include "swprof/common.h"

using namespace swprof;

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SWPROF_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SWPROF_ASAN 1
#endif

namespace {

// A crash is a bug in swprof, never the user's: it says so in one line, with the stack for the
// report, then dies of the same signal (exit status and core dump as usual). Only what is safe in
// a signal handler: write(2) and backtrace (loaded beforehand), on a stack of its own (a stack
// overflow is one of the crashes). Not under AddressSanitizer, whose own report says more.
void on_fatal_signal(int sig) {
  const char* name = sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGFPE ? "SIGFPE" : sig == SIGILL ? "SIGILL" : "SIGABRT";
  auto say = [](const char* text) { (void)!::write(STDERR_FILENO, text, std::strlen(text)); };
  say("swprof: internal error (");
  say(name);
  say("): this is a bug in swprof; please report it with the lines below\n");
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void report_crashes() {
#ifndef SWPROF_ASAN
  void* warm[1];
  backtrace(warm, 1);  // loads the unwinder now, not in the handler
  static char alternate_stack[64 * 1024];
  stack_t ss = {};
  ss.ss_sp = alternate_stack;
  ss.ss_size = sizeof alternate_stack;
  sigaltstack(&ss, nullptr);
  struct sigaction sa = {};
  sa.sa_handler = on_fatal_signal;
  sa.sa_flags = SA_RESETHAND | SA_ONSTACK;
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) sigaction(sig, &sa, nullptr);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  report_crashes();
  // libprotobuf prints its own "[libprotobuf ERROR ...]" lines about bad input; swprof says what
  // went wrong itself, in one line.
  google::protobuf::SetLogHandler(nullptr);

  // Everything after "--" is the command to profile, untouched by option parsing.
  std::vector<std::string> command;
  int own_argc = argc;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) {
      command.assign(argv + i + 1, argv + argc);
      own_argc = i;
      break;
    }
  }

  CLI::App app{"swprof: a sampling profiler for CPython 3.8–3.15 that reads the program from outside.\n"
               "Record a program or a running process, then analyse the snapshot file; or look at a process now\n"
               "(dump, top)."};
  app.set_version_flag("--version", std::string("swprof ") + SWPROF_VERSION);
  app.require_subcommand(1);
  std::vector<cli::Subcommand> subcommands = {cli::add_record(app), cli::add_analyze(app), cli::add_flamegraph(app),
                                              cli::add_export(app), cli::add_import(app), cli::add_diff(app),
                                              cli::add_dump(app),   cli::add_top(app)};

  try {
    app.parse(own_argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and version exit 0; every usage error exits 2 (CLI11's own codes are not documented).
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    for (auto& sub : subcommands) {
      if (!*sub.app) continue;
      if (!command.empty() && sub.app->get_name() != "record" && sub.app->get_name() != "top")
        throw UserError("only record and top take a command after --");
      return sub.run(command);
    }
  } catch (const UserError& e) {
    // Messages quote file names, commands and names from files: one line, no terminal escapes.
    std::fprintf(stderr, "swprof: %s\n", terminal_text(e.what()).c_str());
    return e.exit_code();
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "swprof: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swprof: internal error: %s\n", terminal_text(e.what()).c_str());
    return 70;
  }
  return 0;
}
