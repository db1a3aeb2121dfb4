// swprof diff: what changed between two recordings, node by node of their call trees.
#include <cstdio>
#include <memory>

#include "cli/cli.h"
#include "swprof/common.h"
#include "swprof/diff.h"

namespace swprof::cli {

diff::Result compare_recordings(const std::string& base_path, const snapshot::Recording& base,
                                const snapshot::Recording& now, const analyze::Tree& now_tree,
                                const analyze::Selection& now_selection, const std::string& now_path,
                                bool per_segment, bool collapse_imports) {
  analyze::Selection base_selection;
  base_selection.full_stack = now_selection.full_stack;
  base_selection.whole_segments = per_segment;
  auto base_tree = analyze::build_tree(base, analyze::select_samples(base, base_selection), base_selection, now_tree.options);
  if (collapse_imports) analyze::collapse_import_machinery(base_tree);
  auto base_side = diff::side_of(base, base_path, base_selection, per_segment);
  auto new_side = diff::side_of(now, now_path, now_selection, per_segment);
  return diff::compare(base_tree, now_tree, std::move(base_side), std::move(new_side), per_segment);
}

Subcommand add_diff(CLI::App& parent) {
  struct State {
    std::string base, now, format = "text", mode = "wall";
    bool lines = false, full_stack = false, per_segment = false;
    size_t limit = 20;
  };
  auto st = std::make_shared<State>();
  auto* cmd = parent.add_subcommand("diff", "compare two snapshot files: each call path's time in both and the change");
  cmd->add_option("base", st->base, "snapshot file to compare against (before)")->required();
  cmd->add_option("new", st->now, "snapshot file to compare (after)")->required();
  cmd->add_option("-f,--format", st->format, "text (default) or json")->check(CLI::IsMember({"text", "json"}));
  cmd->add_option("--mode", st->mode, "wall (default), cpu or offcpu time")->check(CLI::IsMember({"wall", "cpu", "offcpu"}));
  cmd->add_flag("--per-segment", st->per_segment,
                "normalise per segment (--entry recordings) instead of per second of recording: the average of "
                "the whole calls (those the recording cut at its start or end left out)");
  cmd->add_flag("--lines", st->lines, "one node per executing line instead of per function");
  cmd->add_flag("--full-stack", st->full_stack, "keep the frames above each segment's entry function");
  cmd->add_option("--limit", st->limit, "text: show the N largest changes (default 20; 0: all)");

  return {cmd, [st](const std::vector<std::string>&) {
            snapshot::ReadOptions read_options;  // (compares weights added up: alike samples merged)
            read_options.merge_alike = true;
            auto base = snapshot::read_file(st->base, read_options);
            auto now = snapshot::read_file(st->now, read_options);
            for (const auto* side : {&st->base, &st->now})
              if ((side == &st->base ? base : now).truncated)
                std::fprintf(stderr, "swprof: %s ends early (the recorder was killed?): comparing what it holds\n",
                             side->c_str());
            ViewFlags flags;
            flags.mode = st->mode;
            flags.lines = st->lines;
            flags.full_stack = st->full_stack;
            auto selection = selection_of(flags);
            selection.whole_segments = st->per_segment;  // (averages of whole calls)
            auto now_tree = analyze::build_tree(now, analyze::select_samples(now, selection), selection, tree_options_of(flags));
            auto result = compare_recordings(st->base, base, now, now_tree, selection, st->now, st->per_segment, false);
            std::string out = st->format == "json" ? diff::json_report(result) : diff::text_report(result, st->limit);
            std::fwrite(out.data(), 1, out.size(), stdout);
            return std::fflush(stdout) == 0 ? 0 : 1;
          }};
}

}  // namespace swprof::cli
