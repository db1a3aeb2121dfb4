// The swprof binary: parses the command line and runs the chosen subcommand (src/cli/, one file
// each). Errors a user can act on are one line on stderr and a non-zero exit.
#include <cstdio>
#include <cstring>

#include <CLI/CLI.hpp>
#include <google/protobuf/stubs/logging.h>

#include "cli/cli.h"
#include "swprof/common.h"

using namespace swprof;

int main(int argc, char** argv) {
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
               "Record a program or a running process, then analyse the snapshot file."};
  app.set_version_flag("--version", std::string("swprof ") + SWPROF_VERSION);
  app.require_subcommand(1);
  std::vector<cli::Subcommand> subcommands = {cli::add_record(app), cli::add_analyze(app), cli::add_flamegraph(app),
                                              cli::add_export(app), cli::add_import(app), cli::add_diff(app)};

  try {
    app.parse(own_argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and version exit 0; every usage error exits 2 (CLI11's own codes are not documented).
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    for (auto& sub : subcommands) {
      if (!*sub.app) continue;
      if (!command.empty() && sub.app->get_name() != "record") throw UserError("only record takes a command after --");
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
