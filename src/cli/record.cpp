// swprof record: launch a command or attach to a process and write a snapshot file.
#include <memory>

#include <fmt/format.h>

#include "cli/cli.h"
#include "swprof/common.h"
#include "swprof/record.h"

namespace swprof::cli {

Subcommand add_record(CLI::App& parent) {
  struct State {
    record::Options options;
    std::string interval = "10ms", duration, min_duration;
    bool quiet = false;
  };
  auto st = std::make_shared<State>();
  record::Options& rec = st->options;
  auto* cmd = parent.add_subcommand(
      "record",
      "profile a program or a running process:\n  swprof record [OPTIONS] -- COMMAND [ARGS...]\n"
      "  swprof record [OPTIONS] --pid PID");
  cmd->footer("Examples:\n  swprof record -o out.swp -- python3 main.py\n"
              "  swprof record -o out.swp --pid 1234 --duration 30s\n"
              "  swprof record --entry do_POST --min-duration 200ms -- python3 server.py");
  cmd->add_option("-o,--output", rec.output, "snapshot file to write (default: out.swp)");
  add_sampling_options(cmd, rec.pid, st->interval);
  cmd->add_option("-d,--duration", st->duration, "stop after this long (default: until the program exits)")
      ->check(duration_validator());
  cmd->add_option("--entry", rec.entries,
                  "only sample calls of this function: do_POST, Handler.do_POST or server.py:do_POST "
                  "(repeatable); each call becomes a segment");
  cmd->add_option("--min-duration", st->min_duration, "with --entry: drop segments shorter than this")
      ->check(duration_validator());
  cmd->add_option("--max-segments", rec.max_segments, "with --entry: stop after keeping N segments");
  cmd->add_option("--max-parallel", rec.max_parallel,
                  "with --entry: sample at most N segments at once; others are skipped (default 5)");
  cmd->add_flag("--idle,!--no-idle", rec.idle, "keep (default) or drop samples of threads asleep for a whole interval");
  cmd->add_flag("--gil", rec.gil_only, "keep only samples of the thread holding the GIL");
  cmd->add_flag("--tasks", rec.tasks,
                "also sample every suspended asyncio task each tick, with what it awaits (analyze --by-task); "
                "always on with --entry");
  cmd->add_option("--max-depth", rec.max_depth,
                  "keep at most N frames of a stack: deeper ones keep their outermost and innermost N/2 "
                  "with a <K frames cut> frame between (default 2048)");
  cmd->add_flag("--native", rec.native,
                "interleave C/C++ frames (extensions, libpython, libc) with the Python frames: each "
                "sampled thread is stopped (ptrace) while it is read, its C stack unwound after");
  cmd->add_flag("--subprocesses", rec.subprocesses,
                "also profile every descendant Python process (workers, multiprocessing, subprocesses), "
                "found each tick, into the same file (analyze --by-process, --process PID)");
  cmd->add_flag("--realtime", rec.realtime,
                "run the sampling thread under SCHED_FIFO (root or CAP_SYS_NICE) so that ticks start on time when the "
                "program keeps every core busy; dropped if the ticks take over half the time");
  cmd->add_flag("-q,--quiet", st->quiet, "no status line while recording");

  return {cmd, [st](const std::vector<std::string>& command) {
            record::Options& rec = st->options;
            rec.command = command;
            rec.interval_us = duration_of(st->interval);
            rec.duration_us = duration_of(st->duration);
            rec.min_duration_us = duration_of(st->min_duration);
            rec.status = !st->quiet;
            check_one_target("record", "profile", rec.pid, command);
            if (rec.max_parallel == 0) throw UserError("--max-parallel must be at least 1");
            if (rec.entries.empty() && (!st->min_duration.empty() || rec.max_segments))
              throw UserError("--min-duration and --max-segments need --entry FUNCTION");
            // (A segment's and a task's frames are counted in Python frames.)
            if (rec.native && (!rec.entries.empty() || rec.tasks))
              throw UserError("--native cannot be combined with --entry or --tasks yet: record them separately");
            return record::run(rec);
          }};
}

}  // namespace swprof::cli
