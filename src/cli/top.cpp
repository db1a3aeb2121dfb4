// swprof top: a live view of the busiest Python functions of a process, refreshed every second.
#include <memory>

#include <fmt/format.h>

#include "cli/cli.h"
#include "swprof/common.h"
#include "swprof/live.h"

namespace swprof::cli {

Subcommand add_top(CLI::App& parent) {
  struct State {
    live::TopOptions options;
    std::string interval = "10ms", refresh = "1s", duration;
  };
  auto st = std::make_shared<State>();
  live::TopOptions& top = st->options;
  auto* cmd = parent.add_subcommand(
      "top",
      "watch the busiest Python functions of a process live, like top:\n  swprof top [OPTIONS] --pid PID\n"
      "  swprof top [OPTIONS] -- COMMAND [ARGS...]");
  cmd->footer("Keys: o t c g O T sort by a column (< > move the sort column), l functions/lines, i idle samples\n"
              "shown/hidden, f follow the next thread, a all threads, space pause, q quit. Ctrl-C quits too.\n"
              "OWN% and TOTAL% are shares of the window's shown samples, CPU% and GIL% of its length (100% = one\n"
              "CPU, or the GIL, all the time); OWN s and TOTAL s count since start. When stdout is not a\n"
              "terminal a plain table is printed every refresh instead.\n\n"
              "Examples:\n  swprof top --pid 1234\n  swprof top -o busy.swp -- python3 app.py\n"
              "  swprof top --pid 1234 --duration 10s > top.txt");
  add_sampling_options(cmd, top.pid, st->interval);
  cmd->add_option("-o,--output", top.output, "also write the recording to this snapshot file");
  cmd->add_option("--refresh", st->refresh, "the window shown and the time between refreshes (default 1s)")
      ->check(duration_validator());
  cmd->add_option("-d,--duration", st->duration, "stop after this long (default: until q, Ctrl-C or the program exits)")
      ->check(duration_validator());
  cmd->add_flag("--lines", top.lines, "start with one row per executing line instead of per function");
  cmd->add_flag("--idle", top.idle,
                "start showing idle samples too (threads asleep for a whole interval: in sleep, a lock, I/O)");
  cmd->add_option("--rows", top.rows, "rows of each plain table (default 20)");
  cmd->add_flag("--plain", top.force_plain, "print plain tables even on a terminal");

  return {cmd, [st](const std::vector<std::string>& command) {
            live::TopOptions& top = st->options;
            top.command = command;
            top.interval_us = duration_of(st->interval);
            top.refresh_us = duration_of(st->refresh);
            top.duration_us = duration_of(st->duration);
            check_one_target("top", "watch", top.pid, command);
            if (top.rows == 0) throw UserError("--rows must be at least 1");
            return live::run_top(top);
          }};
}

}  // namespace swprof::cli
