// swprof export: a snapshot file in another tool's format.
#include <cstdio>
#include <functional>
#include <memory>

#include "cli/cli.h"
#include "swprof/common.h"
#include "swprof/export.h"
#include "swprof/output_file.h"

namespace swprof::cli {

Subcommand add_export(CLI::App& parent) {
  struct State {
    std::string in, out, format, mode = "wall", task_id = "swprof";
    std::vector<uint32_t> segments;
    uint32_t slowest = 0;
    int64_t thread = 0, process = 0;
    bool lines = false, full_stack = false, per_segment = false;
  };
  auto st = std::make_shared<State>();
  auto* cmd = parent.add_subcommand("export", "convert a snapshot file to another tool's format");
  cmd->add_option("file", st->in, "snapshot file")->required();
  cmd->add_option("-f,--format", st->format,
                  "pprof (gzipped profile.proto: go tool pprof, Pyroscope, Grafana), speedscope (JSON), chrome "
                  "(Trace Event JSON: Perfetto, chrome://tracing), skywalking (ThreadSnapshot JSON) or collapsed")
      ->required()
      ->check(CLI::IsMember({"pprof", "speedscope", "chrome", "skywalking", "collapsed"}));
  cmd->add_option("-o,--output", st->out, "file to write")->required();
  cmd->add_option("--mode", st->mode, "speedscope, collapsed: weigh by wall (default), cpu or offcpu time")
      ->check(CLI::IsMember({"wall", "cpu", "offcpu"}));
  cmd->add_flag("--lines", st->lines, "speedscope, chrome, collapsed: one frame per executing line");
  cmd->add_option("--thread", st->thread, "only this OS thread id");
  cmd->add_option("--process", st->process, "only this process (record --subprocesses)");
  cmd->add_option("--segment", st->segments, "only this segment (repeatable)");
  cmd->add_option("--slowest", st->slowest, "only the N longest segments");
  cmd->add_flag("--full-stack", st->full_stack, "keep the frames above each segment's entry function");
  cmd->add_flag("--segments", st->per_segment, "speedscope: one profile per segment instead of per thread");
  cmd->add_option("--task-id", st->task_id, "skywalking: taskId written into the records (default swprof)");

  return {cmd, [st](const std::vector<std::string>&) {
            if (st->per_segment && st->format != "speedscope") throw UserError("--segments is for --format speedscope");
            // Alike samples merged: the formats that add weights up need no more; the timelines
            // (speedscope, chrome, skywalking) read the samples again one by one, below, from a
            // file that can be read again (from a pipe they are read unmerged, once).
            snapshot::ReadOptions read_options;
            read_options.merge_alike = st->format == "pprof" || st->format == "collapsed" || snapshot::rereadable(st->in);
            auto rec = snapshot::read_file(st->in, read_options);
            ViewFlags flags;
            flags.mode = st->mode;
            flags.lines = st->lines;
            flags.thread = st->thread;
            flags.process = st->process;
            flags.segments = st->segments;
            flags.slowest = st->slowest;
            flags.full_stack = st->full_stack;
            exporter::ExportView view;
            view.selection = selection_of(flags);
            view.mode = tree_options_of(flags).mode;
            view.lines = st->lines;
            // The file's samples read again, each handed over and not held (the timelines), or
            // those held when read unmerged.
            const auto samples = snapshot::samples_in_file(rec);
            // The timeline formats (an entry per sample) are written as they are made.
            auto stream = [&](const std::function<void(const exporter::Sink&)>& make) {
              OutputFile out(st->out, OutputFile::Mode::kReplace);
              make([&](std::string_view piece) {
                if (!out.write(piece)) throw UserError(out.error_message());
              });
              out.commit();
            };
            if (st->format == "pprof") {
              write_whole_file(st->out, exporter::pprof_profile(rec, view));
            } else if (st->format == "speedscope") {
              stream([&](const exporter::Sink& sink) { exporter::speedscope_json(rec, samples, view, st->per_segment, sink); });
            } else if (st->format == "chrome") {
              stream([&](const exporter::Sink& sink) { exporter::chrome_trace_json(rec, samples, view, sink); });
            } else if (st->format == "skywalking") {
              stream([&](const exporter::Sink& sink) {
                exporter::skywalking_export(rec, samples, analyze::selected_segments(rec, view.selection), st->task_id,
                                            sink);
              });
            } else {
              auto tree = analyze::build_tree(rec, analyze::select_samples(rec, view.selection), view.selection,
                                              tree_options_of(flags));
              write_whole_file(st->out, analyze::collapsed_report(tree));
            }
            if (rec.truncated)
              std::fprintf(stderr, "swprof: %s ends early (the recorder was killed?): exported what it holds\n",
                           terminal_text(st->in).c_str());
            std::fprintf(stderr, "swprof: wrote %s\n", terminal_text(st->out).c_str());
            return 0;
          }};
}

}  // namespace swprof::cli
