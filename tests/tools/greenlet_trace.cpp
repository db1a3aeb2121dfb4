// greenlet_trace: the greenlet switch components alone, for the end-to-end tests and the bench.
// Attaches to a Python process, waits for greenlet to be imported, puts uprobes on its switch entry
// points and prints every switch, then, at each poll, the state and parked stack of each greenlet
// that was switched out since the previous poll:
//
//   entry <kind> <address> <file>+<offset>
//   attached <threads>
//   layout <offsets learned in greenlet's C++ object>
//   switch <time_ns> <tid> <target> <generation> <start|resume|throw> <origin>
//   parked <object> <generation> <read_time_ns> <status> <frame>|<frame>|...   (innermost first)
//   summary sites=<kind>:N,... hits=N lost=N switches=N unresolved=N threads=N cpu_ns=N wall_ns=N
//
// Addresses are hex (0x...), frames "qualname file:line"; a status ends in "?" when its thread's
// current greenlet could not be read (parked and running not told apart: no stack read). Exit 0; 3 when uprobes cannot be had
// (one line on stderr); 2 for bad usage; 1 for other errors.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <unordered_set>
#include <vector>

#include "swprof/common.h"
#include "swprof/greenlet.h"
#include "swprof/python.h"
#include "swprof/target.h"
#include "swprof/uprobe.h"

using namespace swprof;

namespace {

int64_t cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

struct Args {
  pid_t pid = 0;
  double duration = 5.0;
  std::string probes = "auto";  // auto | internal | public
  size_t buffer_kib = 1024;
  int poll_ms = 10;
  bool quiet = false;    // summary only (the bench)
  bool stacks = true;
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: greenlet_trace --pid PID [--duration S] [--probes auto|internal|public] [--buffer-kib N]\n"
               "                      [--poll-ms N] [--no-stacks] [--quiet]\n");
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (k == "--pid") a.pid = std::atoi(value().c_str());
    else if (k == "--duration") a.duration = std::atof(value().c_str());
    else if (k == "--probes") a.probes = value();
    else if (k == "--buffer-kib") a.buffer_kib = std::strtoul(value().c_str(), nullptr, 10);
    else if (k == "--poll-ms") a.poll_ms = std::atoi(value().c_str());
    else if (k == "--no-stacks") a.stacks = false;
    else if (k == "--quiet") a.quiet = true;
    else usage();
  }
  if (a.pid <= 0 || a.poll_ms <= 0 || (a.probes != "auto" && a.probes != "internal" && a.probes != "public")) usage();
  return a;
}

std::string frame_text(python::CodeCache& codes, const python::RawFrame& f, uint64_t tick) {
  python::CodeInfo* info = codes.get(f.code, tick);
  if (!info) return "?";
  int line = python::line_for_offset(info->lines, f.offset, info->first_line);
  std::string s = sanitize_text(info->qualname) + " " + sanitize_text(info->filename) + ":" + std::to_string(line);
  for (char& c : s)
    if (c == '|') c = '/';
  return s;
}

// What calibration learned, in bytes from the start of greenlet's C++ object.
void print_layout(const python::GreenletImplLayout& l) {
  auto offset = [](uint32_t o) { return o == python::kAbsent ? std::string("-") : std::to_string(o); };
  std::printf("layout stack_start=%s top_frame=%s current_frame=%s", offset(l.stack_start).c_str(),
              offset(l.top_frame).c_str(), offset(l.current_frame).c_str());
  for (const auto& c : l.classes)
    std::printf(" %s{self=%s main_greenlet=%s parent=%s thread_state=%s}", c.main ? "main" : "user", offset(c.self).c_str(),
                offset(c.main_greenlet).c_str(), offset(c.parent).c_str(), offset(c.thread_state).c_str());
  std::printf("\n");
}

int run(const Args& args) {
  target::Memory memory(args.pid);
  python::Interpreter interp = python::discover(args.pid, memory);
  python::refine_version(interp, memory);
  const int64_t deadline = monotonic_ns() + int64_t(args.duration * 1e9);

  std::optional<python::GreenletModule> module;
  while (!(module = python::find_greenlet(interp, memory))) {
    if (monotonic_ns() > deadline || !target::process_exists(args.pid)) {
      std::fprintf(stderr, "greenlet_trace: greenlet was not imported in process %d\n", args.pid);
      return 1;
    }
    usleep(20000);
  }
  std::vector<python::SwitchEntry> entries;
  if (args.probes == "auto") entries = module->probes();
  for (const auto& e : module->entries)
    if ((args.probes == "internal" && e.internal()) || (args.probes == "public" && !e.internal())) entries.push_back(e);
  if (entries.empty()) {
    std::fprintf(stderr, "greenlet_trace: greenlet %s exports no %s switch functions\n", module->version.c_str(),
                 args.probes.c_str());
    return 1;
  }
  std::vector<std::string> problems;
  auto sites = python::probe_sites(args.pid, entries, problems);
  for (const auto& p : problems) std::fprintf(stderr, "greenlet_trace: %s\n", p.c_str());
  if (sites.size() != entries.size()) return 1;
  std::printf("greenlet %s python %s file %s\n", module->version.c_str(), interp.version.text().c_str(),
              module->file.c_str());
  for (size_t i = 0; i < entries.size(); ++i)
    std::printf("entry %s %#llx %s+%#llx\n", python::switch_entry_kind_name(entries[i].kind),
                (unsigned long long)entries[i].address, sites[i].path.c_str(), (unsigned long long)sites[i].file_offset);

  target::UprobeSession::Options options;
  options.buffer_bytes = args.buffer_kib * 1024;
  std::unique_ptr<target::UprobeSession> session;
  try {
    session = std::make_unique<target::UprobeSession>(args.pid, sites, options);
    session->follow_threads();
  } catch (const target::UprobeUnavailable& e) {
    std::fprintf(stderr, "greenlet_trace: greenlet switches not followed: %s\n", e.what());
    return 3;
  }
  std::printf("attached %zu\n", session->threads());
  std::fflush(stdout);

  python::GreenletReader reader(memory, interp, *module);
  python::SwitchDecoder decoder(entries, [&](uint64_t impl) { return reader.object_of_impl(impl); });
  python::Walker walker(memory, interp);
  python::CodeCache codes(memory, interp.layout);
  const bool impls = entries.front().target_is_impl;
  std::vector<target::UprobeHit> hits, pending;
  std::vector<python::GreenletSwitch> switches;
  std::vector<python::RawFrame> frames;
  std::vector<uint64_t> targets;
  uint64_t decoded = 0, tick = 0;
  std::vector<uint64_t> site_hits(entries.size());
  bool reported_problem = false, layout_printed = false;
  const int64_t cpu_start = cpu_ns(), wall_start = monotonic_ns();

  auto poll = [&]() {
    ++tick;
    hits.clear();
    session->drain(hits);
    for (const auto& h : hits) ++site_hits[h.site];
    pending.insert(pending.end(), hits.begin(), hits.end());
    if (!reader.calibrated()) {
      targets.clear();
      for (const auto& h : pending)
        if (h.args_valid) targets.push_back(h.args[entries[h.site].target_arg]);
      reader.calibrate(targets, impls);
      if (!reader.calibrated()) {
        if (!reader.calibration_problem().empty() && !reported_problem) {
          std::fprintf(stderr, "greenlet_trace: %s\n", reader.calibration_problem().c_str());
          reported_problem = true;
        }
        if (pending.size() > (1u << 22)) pending.clear();  // bounded while it cannot calibrate
        return;
      }
    }
    if (!layout_printed) {
      print_layout(reader.layout());
      layout_printed = true;
    }
    switches.clear();
    decoder.decode(pending, switches);
    pending.clear();
    decoded += switches.size();
    if (args.quiet) return;
    std::unordered_set<uint64_t> switched_out;
    for (const auto& s : switches) {
      const char* kind = s.starts ? "start" : s.is_throw ? "throw" : "resume";
      std::printf("switch %lld %d %#llx %u %s %#llx\n", (long long)s.time_ns, s.tid, (unsigned long long)s.target,
                  s.generation, kind, (unsigned long long)s.origin);
      if (s.origin) switched_out.insert(s.origin);
    }
    if (!args.stacks) return;
    for (uint64_t g : switched_out) {
      python::GreenletState state;
      if (!reader.read(g, state)) continue;
      int64_t now = monotonic_ns();
      std::string text;
      if (reader.parked_frames(state, walker, frames)) {
        for (size_t i = 0; i < frames.size(); ++i) text += (i ? "|" : "") + frame_text(codes, frames[i], tick);
      }
      std::printf("parked %#llx %u %lld %s%s %s\n", (unsigned long long)g, decoder.generation(g), (long long)now,
                  python::greenlet_status_name(state.status), state.running_known ? "" : "?", text.empty() ? "-" : text.c_str());
    }
  };

  while (monotonic_ns() < deadline && target::process_exists(args.pid)) {
    usleep(static_cast<useconds_t>(args.poll_ms) * 1000);
    try {
      session->follow_threads();
    } catch (const target::UprobeUnavailable& e) {
      std::fprintf(stderr, "greenlet_trace: a new thread is not followed: %s\n", e.what());
    }
    poll();
  }
  poll();
  int64_t cpu = cpu_ns() - cpu_start, wall = monotonic_ns() - wall_start;
  if (!reader.calibrated())
    std::fprintf(stderr, "greenlet_trace: not calibrated: %s\n",
                 reader.calibration_problem().empty() ? "too few switches seen" : reader.calibration_problem().c_str());
  std::string per_site;
  for (size_t i = 0; i < entries.size(); ++i)
    per_site += std::string(i ? "," : "") + python::switch_entry_kind_name(entries[i].kind) + ":" + std::to_string(site_hits[i]);
  std::printf("summary sites=%s hits=%llu lost=%llu switches=%llu unresolved=%llu threads=%zu cpu_ns=%lld wall_ns=%lld\n",
              per_site.c_str(), (unsigned long long)session->hits(), (unsigned long long)session->lost(), (unsigned long long)decoded,
              (unsigned long long)decoder.unresolved(), session->threads(), (long long)cpu, (long long)wall);
  return reader.calibrated() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse(argc, argv);
  try {
    return run(args);
  } catch (const UserError& e) {
    std::fprintf(stderr, "greenlet_trace: %s\n", e.what());
    return 1;
  }
}
