// The command line: one file per subcommand (record.cpp, analyze.cpp, ...), as git's builtin/ and
// perf's builtin-*.c do. Each registers its options on the top-level app and returns how to run.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "swprof/analyze.h"

namespace swprof::cli {

struct Subcommand {
  CLI::App* app = nullptr;
  // Runs the subcommand; `command` is what followed "--" on the command line (record only).
  std::function<int(const std::vector<std::string>& command)> run;
};

Subcommand add_record(CLI::App& parent);
Subcommand add_analyze(CLI::App& parent);
Subcommand add_flamegraph(CLI::App& parent);
Subcommand add_export(CLI::App& parent);
Subcommand add_import(CLI::App& parent);

// --- shared by the subcommands that build a call tree ---------------------------------------
CLI::Validator duration_validator();
int64_t duration_of(const std::string& text);  // "" -> 0; otherwise a validated duration

struct ViewFlags {
  std::string mode = "wall", estimator = "default";
  bool lines = false, by_thread = false, by_greenlet = false, full_stack = false;
  int64_t thread = 0;
  std::vector<uint32_t> segments;
  uint32_t slowest = 0;
};
void add_view_flags(CLI::App* cmd, ViewFlags& flags);
analyze::Selection selection_of(const ViewFlags& flags);
analyze::TreeOptions tree_options_of(const ViewFlags& flags);

}  // namespace swprof::cli
