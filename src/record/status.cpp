#include "record/status.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

#include "swprof/common.h"

namespace swprof::record {

Status::Status(bool wanted, int pid, std::string python)
    : enabled_(wanted && isatty(STDERR_FILENO)), pid_(pid), python_(std::move(python)) {}

void Status::update(int64_t elapsed_us, uint64_t samples, uint64_t errors, size_t threads) {
  if (!enabled_ || elapsed_us - last_us_ < 250000) return;
  last_us_ = elapsed_us;
  double rate = elapsed_us > 0 ? static_cast<double>(samples) * 1e6 / static_cast<double>(elapsed_us) : 0;
  std::string line = fmt::format("swprof: pid {} (Python {}) {:.1f}s  {} samples  {:.0f}/s  {} thread{}  {} errors",
                                 pid_, python_, elapsed_us / 1e6, samples, rate, threads, threads == 1 ? "" : "s",
                                 errors);
  std::fprintf(stderr, "\r\x1b[2K%s", line.c_str());
  std::fflush(stderr);
  shown_ = true;
}

void Status::clear() {
  if (shown_) std::fprintf(stderr, "\r\x1b[2K");
  shown_ = false;
}

void print_summary(const pb::Footer& f, const pb::Header& h, const std::string& path, uint64_t bytes) {
  uint64_t samples = f.samples();
  uint64_t attempts = samples + f.errors() + f.outside_segments() + f.idle_dropped() + f.not_gil_holder();
  double error_pct = attempts ? 100.0 * static_cast<double>(f.errors()) / static_cast<double>(attempts) : 0;
  uint64_t torn_dropped = 0;
  for (const auto& e : f.error_kinds())
    if (e.kind().rfind("torn", 0) == 0) torn_dropped += e.count();
  std::string out;
  out += fmt::format("swprof: wrote {} ({}, {} samples, {} bytes/sample) — {}\n", terminal_text(path),
                     format_bytes(bytes), samples,
                     samples ? fmt::format("{:.1f}", static_cast<double>(bytes) / static_cast<double>(samples)) : "-",
                     terminal_text(f.stop_reason()));
  out += fmt::format("  recorded  {} of Python {} ({}), {} thread{}, interval {}\n",
                     format_duration_us(f.duration_us()), h.python_version(), h.python_build(), f.threads(),
                     f.threads() == 1 ? "" : "s",
                     format_duration_us(h.interval_us()));
  out += fmt::format("  errors    {} ({:.2f}%)", f.errors(), error_pct);
  for (const auto& e : f.error_kinds()) out += fmt::format(", {} {}", e.count(), e.kind());
  out += fmt::format("; late ticks {} of {}", f.late_ticks(), f.ticks());
  if (f.runtime_unreadable_ticks())
    out += fmt::format("; interpreter unreadable in {} ticks (shutting down)", f.runtime_unreadable_ticks());
  out += "\n";
  if (f.torn_retried() || torn_dropped || f.unsteady()) {
    out += fmt::format("  torn      {} samples changed while read and were read again", f.torn_retried());
    if (f.unsteady())
      out += fmt::format("; {} kept changing: their outer frames are kept under <frames changed while read>",
                         f.unsteady());
    if (torn_dropped) out += fmt::format("; {} dropped", torn_dropped);
    out += "\n";
  }
  if (f.late_samples())
    out += fmt::format("  late      {} samples came over two intervals after their thread's previous one: {} of "
                       "their time is shown as <not sampled> under the frames their stacks had in common\n",
                       f.late_samples(), format_duration_us(f.gap_us()));
  if (!f.greenlets().empty())
    out += fmt::format("  gevent    {}; {} samples of parked greenlets{}\n", sanitize_text(f.greenlets()), f.greenlet_samples(),
                       f.uprobe_lost() ? fmt::format(" ({} greenlet starts lost: the kernel's buffer was full)", f.uprobe_lost()) : "");
  if (!f.native().empty()) out += fmt::format("  native    {}\n", sanitize_text(f.native()));
  if (!f.realtime().empty()) out += fmt::format("  realtime  {}\n", sanitize_text(f.realtime()));
  if (!f.processes().empty()) out += fmt::format("  processes {}\n", terminal_text(f.processes()));
  if (f.task_samples())
    out += fmt::format("  asyncio   {} samples of suspended tasks, each under what it awaits\n", f.task_samples());
  if (f.cut_stacks())
    out += fmt::format("  deep      {} samples had more than {} frames: their middle frames are cut "
                       "(<N frames cut>; --max-depth)\n",
                       f.cut_stacks(), h.max_depth());
  out += fmt::format("  cost      {:.1f} µs per sample on average, {:.1f} µs at most; {:.1f} µs of CPU per sample\n",
                     f.cost_mean_us(), f.cost_max_us(),
                     samples ? static_cast<double>(f.recorder_cpu_us()) / static_cast<double>(samples) : 0.0);
  if (f.quiet_samples())
    out += fmt::format("  asleep    {} samples of threads not run since their previous one kept its stack, not read again\n",
                       f.quiet_samples());
  if (f.gil_quiet_samples())
    out += fmt::format("  no GIL    {} samples of threads that had not taken the GIL since their previous one kept "
                       "its stack, not read again\n",
                       f.gil_quiet_samples());
  if (h.entry_specs_size() > 0) {
    out += fmt::format("  segments  {} seen, {} kept, {}{} skipped (over --max-parallel/--max-segments)\n",
                       f.segments_seen(), f.segments_kept(),
                       h.min_duration_us() ? fmt::format("{} shorter than {}, ", f.segments_too_short(),
                                                         format_duration_us(h.min_duration_us()))
                                           : "",
                       f.segments_skipped());
    out += fmt::format("  not written: {} samples outside any kept segment\n", f.outside_segments());
  }
  if (!h.idle_kept()) out += fmt::format("  not written: {} samples of threads asleep for a whole interval (--no-idle)\n", f.idle_dropped());
  else out += "  idle threads kept (use --no-idle to drop samples of threads asleep for a whole interval)\n";
  if (h.gil_only()) out += fmt::format("  not written: {} samples of threads without the GIL (--gil)\n", f.not_gil_holder());
  out += fmt::format("  analyze with: swprof analyze {}\n", terminal_text(path));
  std::fputs(out.c_str(), stderr);
}

}  // namespace swprof::record
