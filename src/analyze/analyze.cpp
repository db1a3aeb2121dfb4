#include <unistd.h>

#include <cstdio>

#include "swprof/analyze.h"

namespace swprof::analyze {

int run(const Options& o) {
  snapshot::Recording rec = snapshot::read_file(o.path);
  if (rec.truncated && o.format != Format::kText)
    std::fprintf(stderr, "swprof: %s ends early (the recorder was killed?): analysing what it holds\n",
                 o.path.c_str());
  std::string out;
  if (o.list_segments) {
    auto rows = segment_rows(rec, selected_segments(rec, o.selection));
    out = o.format == Format::kJson ? segments_json(rows) : segments_text(rows);
  } else {
    auto samples = select_samples(rec, o.selection);
    Tree tree = build_tree(rec, samples, o.selection, o.tree);
    bool color = o.color.value_or(isatty(STDOUT_FILENO) != 0);
    switch (o.format) {
      case Format::kText:
        if (o.collapse_imports) collapse_import_machinery(tree);
        out = text_report(rec, tree, selected_segments(rec, o.selection), o.min_percent, color);
        break;
      case Format::kJson: out = json_report(rec, tree); break;
      case Format::kCollapsed: out = collapsed_report(tree); break;
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace swprof::analyze
