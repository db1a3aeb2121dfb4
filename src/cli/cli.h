// The command line: one file per subcommand (record.cpp, analyze.cpp, ...), as git's builtin/ and
// perf's builtin-*.c do. Each registers its options on the top-level app and returns how to run.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "swprof/analyze.h"
#include "swprof/diff.h"

namespace swprof::cli {

struct Subcommand {
  CLI::App* app = nullptr;
  // Runs the subcommand; `command` is what followed "--" on the command line (record and top).
  std::function<int(const std::vector<std::string>& command)> run;
};

Subcommand add_record(CLI::App& parent);
Subcommand add_analyze(CLI::App& parent);
Subcommand add_flamegraph(CLI::App& parent);
Subcommand add_export(CLI::App& parent);
Subcommand add_import(CLI::App& parent);
Subcommand add_diff(CLI::App& parent);
Subcommand add_dump(CLI::App& parent);
Subcommand add_top(CLI::App& parent);

// --- shared by the subcommands that build a call tree ---------------------------------------
CLI::Validator duration_validator();
int64_t duration_of(const std::string& text);  // "" -> 0; otherwise a validated duration

// -p/--pid and -i/--interval, as the subcommands that sample (record, top) take them.
void add_sampling_options(CLI::App* cmd, pid_t& pid, std::string& interval);
// Exactly one of --pid and a command after --; `verb` says what the subcommand does to it.
void check_one_target(const std::string& subcommand, const char* verb, pid_t pid, const std::vector<std::string>& command);

struct ViewFlags {
  std::string mode = "wall", estimator = "default";
  bool lines = false, by_thread = false, by_greenlet = false, by_process = false, full_stack = false;
  int64_t thread = 0, process = 0;
  std::vector<uint32_t> segments;
  uint32_t slowest = 0;
};
void add_view_flags(CLI::App* cmd, ViewFlags& flags);
analyze::Selection selection_of(const ViewFlags& flags);
analyze::TreeOptions tree_options_of(const ViewFlags& flags);

// BASE compared with NEW (diff, flamegraph --diff): BASE's tree is built with NEW's tree options,
// over all its samples (only --full-stack of NEW's selection applies to it; per segment, only its
// whole segments, as NEW's selection should pick), import chains collapsed when NEW's are.
diff::Result compare_recordings(const std::string& base_path, const snapshot::Recording& base,
                                const snapshot::Recording& now, const analyze::Tree& now_tree,
                                const analyze::Selection& now_selection, const std::string& now_path,
                                bool per_segment, bool collapse_imports);

}  // namespace swprof::cli
