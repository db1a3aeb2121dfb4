// swprof dump: every thread's Python stack of a running (or stopped, or deadlocked) process, now.
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "cli/cli.h"
#include "swprof/common.h"
#include "swprof/live.h"

namespace swprof::cli {

Subcommand add_dump(CLI::App& parent) {
  struct State {
    pid_t pid = 0;
    std::string format = "text";
    live::DumpOptions options;
  };
  auto st = std::make_shared<State>();
  auto* cmd = parent.add_subcommand(
      "dump",
      "print every thread's Python stack now, with what each thread waits for, its parked greenlets and "
      "suspended asyncio tasks:\n  swprof dump --pid PID");
  cmd->footer("Examples:\n  swprof dump --pid 1234\n  swprof dump --pid 1234 --locals\n"
              "  swprof dump --pid 1234 --format json");
  cmd->add_option("-p,--pid", st->pid, "the Python process to look at")->required();
  cmd->add_flag("--locals", st->options.locals,
                "also show each frame's local variables (short reprs of simple values, lengths of containers, "
                "type names otherwise)");
  cmd->add_option("-f,--format", st->format, "text (default) or json")->check(CLI::IsMember({"text", "json"}));

  return {cmd, [st](const std::vector<std::string>&) {
            if (st->pid <= 0) throw UserError(fmt::format("--pid {} is not a process id", st->pid));
            live::Dump dump = live::take_dump(st->pid, st->options);
            std::string out = st->format == "json" ? live::dump_json(dump) : live::dump_text(dump);
            std::fwrite(out.data(), 1, out.size(), stdout);
            return 0;
          }};
}

}  // namespace swprof::cli
