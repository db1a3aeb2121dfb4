#include "exercise.h"

#include <google/protobuf/stubs/logging.h>

#include "swprof/analyze.h"
#include "swprof/common.h"
#include "swprof/export.h"

namespace swprof::fuzz {

namespace {

template <class F>
void tolerate_user_errors(F f) {
  try {
    f();
  } catch (const UserError&) {
  }
}

}  // namespace

void quiet() { google::protobuf::SetLogHandler(nullptr); }

void exercise(const snapshot::Recording& rec, uint8_t choice) {
  analyze::Selection sel;
  sel.full_stack = choice & 1;
  if (choice & 2 && !rec.threads.empty()) sel.thread = rec.threads[choice % rec.threads.size()].tid;
  if (choice & 4 && !rec.segments.empty()) sel.slowest = 1 + choice % 3;
  if (choice & 8 && !rec.segments.empty()) sel.segments = {1 + uint32_t(choice) % uint32_t(rec.segments.size())};

  tolerate_user_errors([&] {
    auto ids = analyze::selected_segments(rec, sel);
    auto rows = analyze::segment_rows(rec, ids);
    analyze::segments_text(rows);
    analyze::segments_json(rows);
    if (!rec.segments.empty())
      exporter::skywalking_export(rec, snapshot::samples_of(rec), ids, "fuzz", [](std::string_view) {});
  });
  for (int variant = 0; variant < 3; ++variant)
    tolerate_user_errors([&] {
      analyze::TreeOptions o;
      o.lines = choice & 16;
      o.by_thread = variant == 1;
      o.by_greenlet = variant == 2 && (choice & 32);
      o.mode = variant == 0 ? analyze::Mode::kWall : (choice & 64) ? analyze::Mode::kCpu : analyze::Mode::kOffCpu;
      o.estimator = variant == 0 && (choice & 128) ? analyze::Estimator::kSkyWalking : analyze::Estimator::kDefault;
      auto samples = analyze::select_samples(rec, sel);
      analyze::Tree tree = analyze::build_tree(rec, samples, sel, o);
      analyze::json_report(rec, tree, false);
      analyze::json_report(rec, tree, true);
      analyze::collapsed_report(tree);
      analyze::collapse_import_machinery(tree);
      analyze::text_report(rec, tree, analyze::selected_segments(rec, sel), (choice & 3) * 0.5, choice & 8);
      exporter::FlamegraphOptions fo;
      fo.inverted = choice & 4;
      fo.min_width_pct = (choice & 1) ? 0 : 0.05;
      exporter::flamegraph_svg(tree, fo);
    });
}

void exercise_merged(const snapshot::Recording& rec, uint8_t choice) {
  // What differs from a recording read sample by sample is what the reader merged and how the
  // tree, the segment rows and pprof count it: the reports on the tree are the same code, and
  // running them twice would double the time a huge tree takes (the fuzz step's 60 s timeout).
  analyze::Selection sel;
  sel.full_stack = choice & 1;
  if (choice & 2 && !rec.threads.empty()) sel.thread = rec.threads[choice % rec.threads.size()].tid;
  if (choice & 4 && !rec.segments.empty()) sel.slowest = 1 + choice % 3;
  tolerate_user_errors([&] { analyze::segment_rows(rec, analyze::selected_segments(rec, sel)); });
  for (int variant = 0; variant < 3; ++variant)
    tolerate_user_errors([&] {
      analyze::TreeOptions o;
      o.by_thread = variant == 1;
      o.by_greenlet = variant == 2;
      o.mode = variant == 0 ? analyze::Mode::kWall : (choice & 64) ? analyze::Mode::kCpu : analyze::Mode::kOffCpu;
      analyze::build_tree(rec, analyze::select_samples(rec, sel), sel, o);
    });
  tolerate_user_errors([&] {
    exporter::ExportView view;
    view.selection = sel;
    exporter::pprof_profile(rec, view);
  });
}

}  // namespace swprof::fuzz
