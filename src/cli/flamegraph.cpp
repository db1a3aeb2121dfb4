// swprof flamegraph: an interactive SVG of a snapshot file's call tree.
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
    bool show_importlib = false;
  };
  auto st = std::make_shared<State>();
  auto* cmd = parent.add_subcommand("flamegraph", "write an interactive flame graph (SVG)");
  cmd->add_option("file", st->in, "snapshot file")->required();
  cmd->add_option("-o,--output", st->out, "SVG file to write")->required();
  cmd->add_option("--title", st->options.title, "title shown at the top");
  cmd->add_flag("--inverted", st->options.inverted, "icicle graph: callers at the top");
  cmd->add_option("--min-width", st->options.min_width_pct,
                  "leave out frames narrower than this percent (default 0.05)");
  cmd->add_flag("--show-importlib", st->show_importlib,
                "draw every frame of the import machinery instead of one per chain");
  add_view_flags(cmd, st->view);

  return {cmd, [st](const std::vector<std::string>&) {
            auto rec = snapshot::read_file(st->in);
            auto sel = selection_of(st->view);
            auto tree = analyze::build_tree(rec, analyze::select_samples(rec, sel), sel, tree_options_of(st->view));
            if (!st->show_importlib) analyze::collapse_import_machinery(tree);
            std::string cmdline;
            for (const auto& a : rec.header.command()) cmdline += (cmdline.empty() ? "" : " ") + a;
            const std::string& mode = st->view.mode;
            st->options.subtitle = fmt::format(
                "{} — Python {} — {} — {} samples", cmdline, rec.header.python_version(),
                mode == "wall" ? "wall time" : mode == "cpu" ? "on-CPU time" : "off-CPU time", rec.samples.size());
            write_whole_file(st->out, exporter::flamegraph_svg(tree, st->options));
            std::fprintf(stderr, "swprof: wrote %s\n", terminal_text(st->out).c_str());
            return 0;
          }};
}

}  // namespace swprof::cli
