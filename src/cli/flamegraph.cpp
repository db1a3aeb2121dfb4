// swprof flamegraph: an interactive SVG of a snapshot file's call tree, or of what changed since
// a base recording (--diff).
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "cli/cli.h"
#include "swprof/common.h"
#include "swprof/export.h"
#include "swprof/output_file.h"

namespace swprof::cli {

Subcommand add_flamegraph(CLI::App& parent) {
  struct State {
    std::string in, out;
    exporter::FlamegraphOptions options;
    ViewFlags view;
    bool show_importlib = false, per_segment = false;
    std::string base;
  };
  auto st = std::make_shared<State>();
  auto* cmd = parent.add_subcommand("flamegraph", "write an interactive flame graph (SVG), or a differential one");
  cmd->add_option("file", st->in, "snapshot file")->required();
  cmd->add_option("-o,--output", st->out, "SVG file to write")->required();
  cmd->add_option("--title", st->options.title, "title shown at the top");
  cmd->add_flag("--inverted", st->options.inverted, "icicle graph: callers at the top");
  cmd->add_option("--min-width", st->options.min_width_pct,
                  "leave out frames narrower than this percent (default 0.05)");
  cmd->add_flag("--show-importlib", st->show_importlib,
                "draw every frame of the import machinery instead of one per chain");
  add_view_flags(cmd, st->view);
  auto* diff = cmd->add_option("--diff", st->base,
                               "a differential flame graph against this BASE snapshot: width = this file's time, "
                               "red = grew, blue = shrank, stronger = more");
  cmd->add_flag("--per-segment", st->per_segment, "--diff: compare per segment instead of per second of recording")
      ->needs(diff);

  return {cmd, [st](const std::vector<std::string>&) {
            if (!st->base.empty() && (st->view.by_thread || st->view.by_greenlet))
              throw UserError("--diff matches call paths: thread and greenlet ids differ between recordings, so "
                              "--by-thread and --by-greenlet do not apply");
            const auto tree_options = tree_options_of(st->view);
            auto rec = snapshot::read_file(st->in, analyze::read_options_for(tree_options, st->in));
            auto sel = selection_of(st->view);
            sel.whole_segments = !st->base.empty() && st->per_segment;  // (averages of whole calls)
            auto tree = analyze::build_tree(rec, analyze::select_samples(rec, sel), sel, tree_options);
            if (!st->show_importlib) analyze::collapse_import_machinery(tree);
            const std::string& mode = st->view.mode;
            const char* mode_name = mode == "wall" ? "wall time" : mode == "cpu" ? "on-CPU time" : "off-CPU time";
            st->options.subtitle = fmt::format("{} — Python {} — {} — {} samples", analyze::command_line(rec),
                                               rec.header.python_version(), mode_name, rec.sample_count);
            exporter::FlamegraphDiff compared;
            if (!st->base.empty()) {
              auto base = snapshot::read_file(st->base, analyze::read_options_for(tree_options, st->base));
              auto result = compare_recordings(st->base, base, rec, tree, sel, st->in, st->per_segment, !st->show_importlib);
              compared = exporter::flamegraph_diff(result, tree.nodes.size());
              st->options.diff = &compared;
              if (st->options.title == exporter::FlamegraphOptions{}.title) st->options.title = "swprof differential flame graph";
              st->options.subtitle = fmt::format("{} vs base {} — {} per {} — red grew, blue shrank",
                                                 analyze::command_line(rec), analyze::command_line(base), mode_name,
                                                 st->per_segment ? "segment" : "second");
            }
            write_whole_file(st->out, exporter::flamegraph_svg(tree, st->options));
            std::fprintf(stderr, "swprof: wrote %s\n", terminal_text(st->out).c_str());
            return 0;
          }};
}

}  // namespace swprof::cli
