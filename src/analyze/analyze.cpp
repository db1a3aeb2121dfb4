#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "swprof/analyze.h"
#include "swprof/common.h"

namespace swprof::analyze {

namespace {

// JSON readers with a nesting limit: jq 1.6 reads the nested tree up to about 85 frames deep,
// Python's json module up to about 490 (tests/e2e/test_deep_json.py measures both).
constexpr size_t kNestedJsonFriendlyDepth = 80;

// All of `data` to stdout, or a UserError naming the real reason (a full disk, a closed pipe...).
void write_stdout(const std::string& data) {
  size_t written = std::fwrite(data.data(), 1, data.size(), stdout);
  int error = written == data.size() ? 0 : errno;
  if (std::fflush(stdout) != 0 && !error) error = errno;
  if (written != data.size() || std::ferror(stdout))
    throw UserError(fmt::format("writing to standard output failed: {}", std::strerror(error ? error : EIO)));
}

}  // namespace

int run(const Options& o) {
  snapshot::Recording rec = snapshot::read_file(o.path, read_options_for(o.tree, o.path));
  if (rec.truncated && o.format != Format::kText)
    std::fprintf(stderr, "swprof: %s ends early (the recorder was killed or its disk was full?): analysing what it holds\n",
                 terminal_text(o.path).c_str());
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
      case Format::kJson:
        if (size_t depth = tree_depth(tree); !o.flat && depth > kNestedJsonFriendlyDepth)
          std::fprintf(stderr,
                       "swprof: note: this tree is %zu frames deep; jq and other JSON readers with a nesting limit "
                       "may refuse it: --flat lists the nodes without nesting\n",
                       depth);
        out = json_report(rec, tree, o.flat);
        break;
      case Format::kCollapsed: out = collapsed_report(tree); break;
    }
  }
  write_stdout(out);
  return 0;
}

}  // namespace swprof::analyze
