// swprof export: a snapshot file in another tool's format.
#include <cstdio>
#include <memory>

#include "cli/cli.h"
#include "swprof/common.h"
#include "swprof/export.h"
#include "swprof/output_file.h"

namespace swprof::cli {

Subcommand add_export(CLI::App& parent) {
  struct State {
    std::string in, out, format, task_id = "swprof";
    std::vector<uint32_t> segments;
  };
  auto st = std::make_shared<State>();
  auto* cmd = parent.add_subcommand("export", "convert a snapshot file to another tool's format");
  cmd->add_option("file", st->in, "snapshot file")->required();
  cmd->add_option("-f,--format", st->format, "skywalking (ThreadSnapshot JSON) or collapsed")
      ->required()
      ->check(CLI::IsMember({"skywalking", "collapsed"}));
  cmd->add_option("-o,--output", st->out, "file to write")->required();
  cmd->add_option("--segment", st->segments, "only this segment (repeatable)");
  cmd->add_option("--task-id", st->task_id, "taskId written into SkyWalking records (default swprof)");

  return {cmd, [st](const std::vector<std::string>&) {
            auto rec = snapshot::read_file(st->in);
            analyze::Selection sel;
            sel.segments = st->segments;
            if (st->format == "skywalking") {
              auto segments = analyze::selected_segments(rec, sel);
              OutputFile out(st->out, OutputFile::Mode::kReplace);
              exporter::skywalking_export(rec, segments, st->task_id, [&](std::string_view data) {
                if (!out.write(data)) throw UserError(out.error_message());
              });
              out.commit();
            } else {
              auto tree = analyze::build_tree(rec, analyze::select_samples(rec, sel), sel, {});
              write_whole_file(st->out, analyze::collapsed_report(tree));
            }
            std::fprintf(stderr, "swprof: wrote %s\n", terminal_text(st->out).c_str());
            return 0;
          }};
}

}  // namespace swprof::cli
