// What several subcommands share: durations and the view flags of a call tree.
#include <fmt/format.h>

#include "cli/cli.h"
#include "swprof/common.h"

namespace swprof::cli {

CLI::Validator duration_validator() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        return parse_duration_us(s) ? "" : "expected a duration like 500us, 10ms, 0.5s, 2m";
      },
      "DURATION");
}

int64_t duration_of(const std::string& s) { return s.empty() ? 0 : *parse_duration_us(s); }

void add_sampling_options(CLI::App* cmd, pid_t& pid, std::string& interval) {
  cmd->add_option("-p,--pid", pid, "attach to this running Python process");
  cmd->add_option("-i,--interval", interval, "time between samples, at least 100us (default 10ms)")
      ->check(duration_validator());
}

void check_one_target(const std::string& subcommand, const char* verb, pid_t pid, const std::vector<std::string>& command) {
  if (pid && !command.empty()) throw UserError("give either --pid PID or a command after --, not both");
  if (!pid && command.empty())
    throw UserError(fmt::format("nothing to {}: give a command after -- (swprof {} -- python3 app.py) or --pid PID",
                                verb, subcommand));
  if (pid < 0) throw UserError(fmt::format("--pid {} is not a process id", pid));
}

void add_view_flags(CLI::App* cmd, ViewFlags& v) {
  cmd->add_option("--mode", v.mode,
                  "wall (elapsed time, default), cpu (on-CPU time) or offcpu (off the CPU, under leaves "
                  "<off-CPU: REASON> and <waiting for a CPU>)")
      ->check(CLI::IsMember({"wall", "cpu", "offcpu"}));
  cmd->add_option("--estimator", v.estimator,
                  "default (sample weights) or skywalking (the OAP server's consecutive-dump durations)")
      ->check(CLI::IsMember({"default", "skywalking"}));
  cmd->add_flag("--lines", v.lines, "one node per executing line instead of per function");
  cmd->add_option("--thread", v.thread, "only this OS thread id");
  cmd->add_option("--process", v.process, "only this process (record --subprocesses)");
  cmd->add_flag("--by-process", v.by_process,
                "processes at the root of the tree (record --subprocesses), above threads with --by-thread");
  auto* by_thread = cmd->add_flag("--by-thread", v.by_thread, "threads at the root of the tree");
  auto* by_greenlet =
      cmd->add_flag("--by-greenlet,--by-task", v.by_greenlet,
                    "greenlets (gevent) and asyncio tasks at the root of the tree, each task's stack from its "
                    "coroutine (record with --tasks to see suspended tasks)");
  by_greenlet->excludes(by_thread);
  cmd->add_option("--segment", v.segments, "only this segment (repeatable); default: all segments merged");
  cmd->add_option("--slowest", v.slowest, "only the N longest segments");
  cmd->add_flag("--full-stack", v.full_stack, "keep the frames above each segment's entry function");
}

analyze::Selection selection_of(const ViewFlags& v) {
  analyze::Selection s;
  if (v.thread) s.thread = v.thread;
  if (v.process) s.process = v.process;
  s.segments = v.segments;
  s.slowest = v.slowest;
  s.full_stack = v.full_stack;
  s.by_context = v.by_greenlet;
  return s;
}

analyze::TreeOptions tree_options_of(const ViewFlags& v) {
  analyze::TreeOptions t;
  t.mode = v.mode == "cpu" ? analyze::Mode::kCpu : v.mode == "offcpu" ? analyze::Mode::kOffCpu : analyze::Mode::kWall;
  t.estimator = v.estimator == "skywalking" ? analyze::Estimator::kSkyWalking : analyze::Estimator::kDefault;
  t.lines = v.lines;
  t.by_thread = v.by_thread;
  t.by_process = v.by_process;
  t.by_greenlet = v.by_greenlet;
  return t;
}

}  // namespace swprof::cli
