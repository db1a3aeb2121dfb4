// gc_objects PID TYPE_NAME: how many objects of a type (by tp_name) the GC of a running Python
// process tracks, found from outside along its generation lists (src/live/gc_walk.h), as JSON:
//   {"python": "3.12.1", "objects": 12345, "matching": 5000, "complete": true, "stopped": ""}
// For the end-to-end test of the walk on every interpreter (swprof dump uses it for greenlets).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>

#include "live/gc_walk.h"
#include "swprof/common.h"
#include "swprof/python.h"

using namespace swprof;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: gc_objects PID TYPE_NAME\n");
    return 2;
  }
  try {
    pid_t pid = std::atoi(argv[1]);
    std::string wanted = argv[2];
    target::Memory memory(pid);
    python::Interpreter interp = python::discover(pid, memory);
    python::refine_version(interp, memory);
    python::ObjectReader objects(memory, interp.layout);
    uint64_t interp_state = 0;
    memory.read_value(interp.runtime + interp.layout.runtime.interpreters_head, interp_state);
    std::unordered_map<uint64_t, bool> matches;
    size_t matching = 0;
    auto stats = live::walk_gc_objects(memory, interp, interp_state, 10000000, 10000000, [&](uint64_t, uint64_t type) {
      auto [it, inserted] = matches.try_emplace(type, false);
      if (inserted) it->second = objects.type_name(type) == wanted;
      matching += it->second;
    });
    std::printf("{\"python\": \"%s\", \"objects\": %zu, \"matching\": %zu, \"complete\": %s, \"stopped\": %s}\n",
                interp.version.text().c_str(), stats.objects, matching, stats.complete ? "true" : "false",
                json_quoted(stats.stopped).c_str());
    return 0;
  } catch (const UserError& e) {
    std::fprintf(stderr, "gc_objects: %s\n", e.what());
    return e.exit_code();
  }
}
