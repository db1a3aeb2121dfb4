// swprof analyze: the call tree of a snapshot file as text, JSON or collapsed stacks.
#include <memory>

#include "cli/cli.h"
#include "swprof/common.h"

namespace swprof::cli {

Subcommand add_analyze(CLI::App& parent) {
  struct State {
    analyze::Options options;
    ViewFlags view;
    std::string format = "text";
    bool color = false, no_color = false, show_importlib = false;
  };
  auto st = std::make_shared<State>();
  auto* cmd = parent.add_subcommand("analyze", "print the call tree of a snapshot file");
  cmd->add_option("file", st->options.path, "snapshot file")->required();
  cmd->add_option("-f,--format", st->format, "text (default), json or collapsed")
      ->check(CLI::IsMember({"text", "json", "collapsed"}));
  cmd->add_flag("--flat", st->options.flat,
                "json: the nodes as one list with parent ids (any JSON reader loads it at any depth) "
                "instead of nested children");
  cmd->add_option("--min-percent", st->options.min_percent, "fold nodes under this share of the total (default 0.5)");
  cmd->add_flag("--segments", st->options.list_segments, "list the segments instead of the tree");
  cmd->add_flag("--color", st->color, "colors even when stdout is not a terminal");
  cmd->add_flag("--no-color", st->no_color, "no colors");
  cmd->add_flag("--show-importlib", st->show_importlib,
                "text: show every frame of the import machinery instead of one row per chain");
  add_view_flags(cmd, st->view);

  return {cmd, [st](const std::vector<std::string>&) {
            analyze::Options& an = st->options;
            an.format = st->format == "json"        ? analyze::Format::kJson
                        : st->format == "collapsed" ? analyze::Format::kCollapsed
                                                    : analyze::Format::kText;
            an.selection = selection_of(st->view);
            an.tree = tree_options_of(st->view);
            if (st->color) an.color = true;
            if (st->no_color) an.color = false;
            an.collapse_imports = !st->show_importlib;
            if (!(an.min_percent >= 0 && an.min_percent <= 100)) throw UserError("--min-percent must be between 0 and 100");
            if (an.flat && an.format != analyze::Format::kJson) throw UserError("--flat goes with --format json");
            return analyze::run(an);
          }};
}

}  // namespace swprof::cli
