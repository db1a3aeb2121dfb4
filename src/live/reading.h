// What the parts of a dump share while they read one process: the interpreter, the walker, the
// code cache, and (with --locals) the locals reader, plus turning walked frames into named ones.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "live/locals.h"
#include "swprof/live.h"
#include "swprof/python.h"

namespace swprof::live {

struct Reading {
  Reading(pid_t pid, bool with_locals);
  pid_t pid;
  target::Memory memory;
  python::Interpreter interp;
  std::unique_ptr<python::Walker> walker;
  std::unique_ptr<python::CodeCache> codes;
  std::unique_ptr<LocalsReader> locals;  // null without --locals
  std::vector<std::string> notes;

  // Frames of a stack read innermost first (Walker::walk) as named frames, outermost first.
  // `walked_last`: they are the walker's last walk, whose bytes hold their locals. False when a
  // code object cannot be read (a frame that changed since).
  bool name_frames(std::span<const python::RawFrame> raw, bool walked_last, std::vector<Frame>& out);
};

// Parked greenlets (see gc_walk.h), each with the threading ident of its thread (0: not known).
struct FoundGreenlet {
  uint64_t thread_ident = 0;
  Greenlet greenlet;
};
void find_parked_greenlets(Reading& reading, std::span<const python::PyThread> threads, const DumpOptions& options,
                           std::vector<FoundGreenlet>& out);

}  // namespace swprof::live
