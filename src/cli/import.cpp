// swprof import: another tool's profile data as a snapshot file.
#include <cstdio>
#include <memory>

#include "cli/cli.h"
#include "swprof/common.h"
#include "swprof/export.h"

namespace swprof::cli {

Subcommand add_import(CLI::App& parent) {
  struct State {
    std::string from, in, out;
  };
  auto st = std::make_shared<State>();
  auto* cmd = parent.add_subcommand("import", "convert another tool's data into a snapshot file");
  cmd->add_option("--from", st->from, "skywalking")->required()->check(CLI::IsMember({"skywalking"}));
  cmd->add_option("input", st->in, "file to read")->required();
  cmd->add_option("-o,--output", st->out, "snapshot file to write")->required();

  return {cmd, [st](const std::vector<std::string>&) {
            size_t n = exporter::skywalking_import(st->in, st->out);
            std::fprintf(stderr, "swprof: imported %zu snapshots into %s\n", n, terminal_text(st->out).c_str());
            return 0;
          }};
}

}  // namespace swprof::cli
