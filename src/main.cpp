// CLI wiring only: each subcommand fills its module's Options and calls its entry point.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "swprof/analyze.h"
#include "swprof/common.h"
#include "swprof/export.h"
#include "swprof/record.h"

using namespace swprof;

namespace {

CLI::Validator duration_validator() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        return parse_duration_us(s) ? "" : "expected a duration like 500us, 10ms, 0.5s, 2m";
      },
      "DURATION");
}

int64_t duration_of(const std::string& s) { return s.empty() ? 0 : *parse_duration_us(s); }

struct ViewFlags {
  std::string mode = "wall", estimator = "default";
  bool lines = false, by_thread = false, by_greenlet = false, full_stack = false;
  int64_t thread = 0;
  std::vector<uint32_t> segments;
  uint32_t slowest = 0;
};

void add_view_flags(CLI::App* cmd, ViewFlags& v) {
  cmd->add_option("--mode", v.mode, "wall (elapsed time, default), cpu (on-CPU time) or offcpu (waiting)")
      ->check(CLI::IsMember({"wall", "cpu", "offcpu"}));
  cmd->add_option("--estimator", v.estimator,
                  "default (sample weights) or skywalking (the OAP server's consecutive-dump durations)")
      ->check(CLI::IsMember({"default", "skywalking"}));
  cmd->add_flag("--lines", v.lines, "one node per executing line instead of per function");
  cmd->add_option("--thread", v.thread, "only this OS thread id");
  auto* by_thread = cmd->add_flag("--by-thread", v.by_thread, "threads at the root of the tree");
  cmd->add_flag("--by-greenlet", v.by_greenlet, "greenlets (gevent) at the root of the tree")->excludes(by_thread);
  cmd->add_option("--segment", v.segments, "only this segment (repeatable); default: all segments merged");
  cmd->add_option("--slowest", v.slowest, "only the N longest segments");
  cmd->add_flag("--full-stack", v.full_stack, "keep the frames above each segment's entry function");
}

analyze::Selection selection_of(const ViewFlags& v) {
  analyze::Selection s;
  if (v.thread) s.thread = v.thread;
  s.segments = v.segments;
  s.slowest = v.slowest;
  s.full_stack = v.full_stack;
  return s;
}

analyze::TreeOptions tree_options_of(const ViewFlags& v) {
  analyze::TreeOptions t;
  t.mode = v.mode == "cpu" ? analyze::Mode::kCpu : v.mode == "offcpu" ? analyze::Mode::kOffCpu : analyze::Mode::kWall;
  t.estimator = v.estimator == "skywalking" ? analyze::Estimator::kSkyWalking : analyze::Estimator::kDefault;
  t.lines = v.lines;
  t.by_thread = v.by_thread;
  t.by_greenlet = v.by_greenlet;
  return t;
}

void write_output(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw UserError(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  out << data;
  out.close();
  if (!out) throw UserError(fmt::format("writing {} failed: {}", path, std::strerror(errno)));
}

}  // namespace

int main(int argc, char** argv) {
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

  // record
  record::Options rec;
  std::string interval = "10ms", duration, min_duration;
  auto* record_cmd = app.add_subcommand(
      "record",
      "profile a program or a running process:\n  swprof record [OPTIONS] -- COMMAND [ARGS...]\n"
      "  swprof record [OPTIONS] --pid PID");
  record_cmd->footer("Examples:\n  swprof record -o out.swp -- python3 main.py\n"
                     "  swprof record -o out.swp --pid 1234 --duration 30s\n"
                     "  swprof record --entry do_POST --min-duration 200ms -- python3 server.py");
  record_cmd->add_option("-o,--output", rec.output, "snapshot file to write (default: out.swp)");
  record_cmd->add_option("-p,--pid", rec.pid, "attach to this running Python process");
  record_cmd->add_option("-i,--interval", interval, "time between samples, at least 100us (default 10ms)")
      ->check(duration_validator());
  record_cmd->add_option("-d,--duration", duration, "stop after this long (default: until the program exits)")
      ->check(duration_validator());
  record_cmd->add_option("--entry", rec.entries,
                         "only sample calls of this function: do_POST, Handler.do_POST or server.py:do_POST "
                         "(repeatable); each call becomes a segment");
  record_cmd->add_option("--min-duration", min_duration, "with --entry: drop segments shorter than this")
      ->check(duration_validator());
  record_cmd->add_option("--max-segments", rec.max_segments, "with --entry: stop after keeping N segments");
  record_cmd->add_option("--max-parallel", rec.max_parallel,
                         "with --entry: sample at most N segments at once; others are skipped (default 5)");
  record_cmd->add_flag("--idle,!--no-idle", rec.idle,
                       "keep (default) or drop samples of threads asleep for a whole interval");
  record_cmd->add_flag("--gil", rec.gil_only, "keep only samples of the thread holding the GIL");
  bool quiet = false;
  record_cmd->add_flag("-q,--quiet", quiet, "no status line while recording");

  // analyze
  analyze::Options an;
  ViewFlags an_view;
  std::string format = "text";
  bool color = false, no_color = false;
  auto* analyze_cmd = app.add_subcommand("analyze", "print the call tree of a snapshot file");
  analyze_cmd->add_option("file", an.path, "snapshot file")->required();
  analyze_cmd->add_option("-f,--format", format, "text (default), json or collapsed")
      ->check(CLI::IsMember({"text", "json", "collapsed"}));
  analyze_cmd->add_option("--min-percent", an.min_percent, "fold nodes under this share of the total (default 0.5)");
  analyze_cmd->add_flag("--segments", an.list_segments, "list the segments instead of the tree");
  analyze_cmd->add_flag("--color", color, "colors even when stdout is not a terminal");
  analyze_cmd->add_flag("--no-color", no_color, "no colors");
  bool show_importlib = false;
  analyze_cmd->add_flag("--show-importlib", show_importlib,
                        "text: show every frame of the import machinery instead of one row per chain");
  add_view_flags(analyze_cmd, an_view);

  // flamegraph
  std::string fg_in, fg_out;
  exporter::FlamegraphOptions fg;
  ViewFlags fg_view;
  auto* flame_cmd = app.add_subcommand("flamegraph", "write an interactive flame graph (SVG)");
  flame_cmd->add_option("file", fg_in, "snapshot file")->required();
  flame_cmd->add_option("-o,--output", fg_out, "SVG file to write")->required();
  flame_cmd->add_option("--title", fg.title, "title shown at the top");
  flame_cmd->add_flag("--inverted", fg.inverted, "icicle graph: callers at the top");
  flame_cmd->add_option("--min-width", fg.min_width_pct, "leave out frames narrower than this percent (default 0.05)");
  bool fg_show_importlib = false;
  flame_cmd->add_flag("--show-importlib", fg_show_importlib,
                      "draw every frame of the import machinery instead of one per chain");
  add_view_flags(flame_cmd, fg_view);

  // export / import
  std::string ex_in, ex_out, ex_format, task_id = "swprof";
  std::vector<uint32_t> ex_segments;
  auto* export_cmd = app.add_subcommand("export", "convert a snapshot file to another tool's format");
  export_cmd->add_option("file", ex_in, "snapshot file")->required();
  export_cmd->add_option("-f,--format", ex_format, "skywalking (ThreadSnapshot JSON) or collapsed")
      ->required()
      ->check(CLI::IsMember({"skywalking", "collapsed"}));
  export_cmd->add_option("-o,--output", ex_out, "file to write")->required();
  export_cmd->add_option("--segment", ex_segments, "only this segment (repeatable)");
  export_cmd->add_option("--task-id", task_id, "taskId written into SkyWalking records (default swprof)");
  std::string im_from, im_in, im_out;
  auto* import_cmd = app.add_subcommand("import", "convert another tool's data into a snapshot file");
  import_cmd->add_option("--from", im_from, "skywalking")->required()->check(CLI::IsMember({"skywalking"}));
  import_cmd->add_option("input", im_in, "file to read")->required();
  import_cmd->add_option("-o,--output", im_out, "snapshot file to write")->required();

  try {
    app.parse(own_argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and version exit 0; every usage error exits 2 (CLI11's own codes are not documented).
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    if (*record_cmd) {
      rec.command = command;
      rec.interval_us = duration_of(interval);
      rec.duration_us = duration_of(duration);
      rec.min_duration_us = duration_of(min_duration);
      rec.status = !quiet;
      if (rec.pid && !command.empty()) throw UserError("give either --pid PID or a command after --, not both");
      if (!rec.pid && command.empty())
        throw UserError("nothing to profile: give a command after -- (swprof record -- python3 app.py) or --pid PID");
      if (rec.pid < 0) throw UserError(fmt::format("--pid {} is not a process id", rec.pid));
      if (rec.max_parallel == 0) throw UserError("--max-parallel must be at least 1");
      if (rec.entries.empty() && (!min_duration.empty() || rec.max_segments))
        throw UserError("--min-duration and --max-segments need --entry FUNCTION");
      return record::run(rec);
    }
    if (!command.empty()) throw UserError("only record takes a command after --");
    if (*analyze_cmd) {
      an.format = format == "json" ? analyze::Format::kJson
                  : format == "collapsed" ? analyze::Format::kCollapsed
                                          : analyze::Format::kText;
      an.selection = selection_of(an_view);
      an.tree = tree_options_of(an_view);
      if (color) an.color = true;
      if (no_color) an.color = false;
      an.collapse_imports = !show_importlib;
      if (an.min_percent < 0 || an.min_percent > 100) throw UserError("--min-percent must be between 0 and 100");
      return analyze::run(an);
    }
    if (*flame_cmd) {
      auto rec_file = snapshot::read_file(fg_in);
      auto sel = selection_of(fg_view);
      auto tree = analyze::build_tree(rec_file, analyze::select_samples(rec_file, sel), sel, tree_options_of(fg_view));
      if (!fg_show_importlib) analyze::collapse_import_machinery(tree);
      std::string cmdline;
      for (const auto& a : rec_file.header.command()) cmdline += (cmdline.empty() ? "" : " ") + a;
      fg.subtitle = fmt::format("{} — Python {} — {} — {} samples", cmdline, rec_file.header.python_version(),
                                fg_view.mode == "wall" ? "wall time" : fg_view.mode == "cpu" ? "on-CPU time" : "off-CPU time",
                                rec_file.samples.size());
      write_output(fg_out, exporter::flamegraph_svg(tree, fg));
      std::fprintf(stderr, "swprof: wrote %s\n", fg_out.c_str());
      return 0;
    }
    if (*export_cmd) {
      auto rec_file = snapshot::read_file(ex_in);
      analyze::Selection sel;
      sel.segments = ex_segments;
      if (ex_format == "skywalking") {
        write_output(ex_out, exporter::skywalking_export(rec_file, analyze::selected_segments(rec_file, sel), task_id));
      } else {
        auto tree = analyze::build_tree(rec_file, analyze::select_samples(rec_file, sel), sel, {});
        write_output(ex_out, analyze::collapsed_report(tree));
      }
      std::fprintf(stderr, "swprof: wrote %s\n", ex_out.c_str());
      return 0;
    }
    if (*import_cmd) {
      size_t n = exporter::skywalking_import(im_in, im_out);
      std::fprintf(stderr, "swprof: imported %zu snapshots into %s\n", n, im_out.c_str());
      return 0;
    }
  } catch (const UserError& e) {
    std::fprintf(stderr, "swprof: %s\n", e.what());
    return e.exit_code();
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "swprof: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swprof: internal error: %s\n", e.what());
    return 70;
  }
  return 0;
}
