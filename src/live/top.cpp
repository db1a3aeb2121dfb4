// swprof top: the recorder samples as `record` does (the same loop: retries, torn reads, CPU time,
// the GIL, gaps) and hands each sample to this viewer through record::Observer; the viewer adds
// it to a TopModel and, every refresh interval, shows the busiest functions: on a terminal as a
// full-screen ncurses view with keys, otherwise as a plain table printed each interval. The
// recording goes to -o when given (nothing seen live is lost), else to /dev/null.
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include <curses.h>
#include <fmt/format.h>

#include "live/top_model.h"
#include "swprof.pb.h"
#include "swprof/analyze.h"
#include "swprof/common.h"
#include "swprof/live.h"
#include "swprof/record.h"

namespace swprof::live {

namespace {

constexpr const char* kKeys = "o t c g O T sort  < > column  l lines  i idle  f follow thread  a all  space pause  q quit";

std::string row_text(const TopRow& r) {
  std::string where = r.file.empty() ? r.function : fmt::format("{} ({}:{})", r.function, analyze::short_path(r.file), r.line);
  return fmt::format("{:6.1f}% {:6.1f}% {:6.1f}% {:6.1f}% {:8.2f} {:8.2f}  {}", r.own_pct, r.total_pct, r.cpu_pct,
                     r.gil_pct, r.own_s, r.total_s, where);
}

// The column titles, each as wide as row_text's columns.
constexpr struct {
  SortKey key;
  int width;
} kColumns[] = {{SortKey::kOwn, 7},          {SortKey::kTotal, 7},           {SortKey::kCpu, 7},
                {SortKey::kGil, 7},          {SortKey::kOwnSinceStart, 8},   {SortKey::kTotalSinceStart, 8}};

class TopViewer : public record::Observer {
 public:
  explicit TopViewer(const TopOptions& options) : options_(options), lines_(options.lines), idle_(options.idle) {}
  ~TopViewer() override { close_screen(); }

  void begin(int pid, const pb::Header& header, const snapshot::Writer& file) override {
    pid_ = pid;
    file_ = &file;
    python_ = header.python_version();
    attached_ = header.attached();
    for (const auto& a : header.command()) command_ += (command_.empty() ? "" : " ") + terminal_text(a);
    if (!options_.force_plain && isatty(STDOUT_FILENO) && isatty(STDIN_FILENO)) open_screen();
  }

  void sample(const snapshot::Sample& s, std::span<const uint32_t> stack, int64_t tid,
              std::string_view thread_name) override {
    model_.add(s, stack, tid, thread_name, *file_);
  }

  bool tick(const record::TickSummary& t) override {
    last_ = t;
    if (screen_) {
      for (int key; (key = getch()) != ERR;)
        if (!on_key(key)) return false;
    }
    if (t.now_us - window_start_us_ >= options_.refresh_us) {
      model_.close_window(t.now_us - window_start_us_);
      window_start_us_ = t.now_us;
      window_samples_ = t.samples - samples_at_window_;
      samples_at_window_ = t.samples;
      ++windows_;
      if (!paused_) show();
    }
    return true;
  }

  void end(const pb::Footer& footer) override {
    close_screen();
    // A plain table for the part of a window the program did not live to finish.
    if (!screen_used_ && last_.now_us > window_start_us_ && last_.samples > samples_at_window_) {
      model_.close_window(last_.now_us - window_start_us_);
      window_samples_ = last_.samples - samples_at_window_;
      print_table();
    }
    if (footer.stop_reason() == "program exited") {
      if (!attached_)
        std::fprintf(stderr, "swprof: %s exited with status %d\n", command_.c_str(), footer.exit_status());
      else
        std::fprintf(stderr, "swprof: process %d exited\n", pid_);
    }
  }

 private:
  void open_screen() {
    if (!initscr()) return;
    screen_ = screen_used_ = true;
    cbreak();  // keys one at a time; Ctrl-C still a signal, which stops the recorder
    noecho();
    nodelay(stdscr, TRUE);
    keypad(stdscr, TRUE);
    curs_set(0);
    show();
  }

  void close_screen() {
    if (!screen_) return;
    endwin();
    screen_ = false;
  }

  int64_t followed() const {
    auto threads = model_.threads();
    return follow_ >= 0 && static_cast<size_t>(follow_) < threads.size() ? threads[static_cast<size_t>(follow_)].tid : 0;
  }

  std::string thread_label() const {
    int64_t tid = followed();
    if (!tid) return "all threads";
    for (const auto& t : model_.threads())
      if (t.tid == tid) return t.name.empty() ? fmt::format("thread {}", tid) : fmt::format("thread {} ({})", tid, t.name);
    return fmt::format("thread {}", tid);
  }

  std::string status_line() const {
    double seconds = static_cast<double>(last_.now_us) / 1e6;
    double rate = model_.window_elapsed_us() > 0 ? 1e6 * double(window_samples_) / double(model_.window_elapsed_us()) : 0;
    uint64_t attempts = last_.samples + last_.errors;
    return fmt::format("{:.1f}s  {} samples ({:.0f}/s)  errors {} ({:.1f}%)  {} thread{}", seconds, last_.samples,
                       rate, last_.errors, attempts ? 100.0 * double(last_.errors) / double(attempts) : 0.0,
                       last_.threads, last_.threads == 1 ? "" : "s");
  }

  std::string view_line() const {
    return fmt::format("{}, {}{}, sorted by {}, last {}", lines_ ? "lines" : "functions", thread_label(),
                       idle_ ? " with idle samples" : " (idle samples hidden)", sort_key_name(sort_),
                       format_duration_us(model_.window_elapsed_us()));
  }

  std::string header_text() const {
    std::string h;
    for (const auto& c : kColumns) h += fmt::format("{:>{}} ", sort_key_name(c.key), c.width);
    return h + " FUNCTION";
  }

  bool on_key(int key) {
    switch (key) {
      case 'q': return false;
      case 'o': sort_ = SortKey::kOwn; break;
      case 't': sort_ = SortKey::kTotal; break;
      case 'c': sort_ = SortKey::kCpu; break;
      case 'g': sort_ = SortKey::kGil; break;
      case 'O': sort_ = SortKey::kOwnSinceStart; break;
      case 'T': sort_ = SortKey::kTotalSinceStart; break;
      case '<': sort_ = static_cast<SortKey>((static_cast<int>(sort_) + kSortKeys - 1) % kSortKeys); break;
      case '>': sort_ = static_cast<SortKey>((static_cast<int>(sort_) + 1) % kSortKeys); break;
      case 'l': lines_ = !lines_; break;
      case 'i': idle_ = !idle_; break;
      case 'f': {
        int count = static_cast<int>(model_.threads().size());
        follow_ = follow_ + 1 >= count ? -1 : follow_ + 1;
        break;
      }
      case 'a': follow_ = -1; break;
      case ' ': case 'p': paused_ = !paused_; break;
      case KEY_RESIZE: break;
      default: return true;
    }
    show();
    return true;
  }

  void show() {
    if (screen_) draw_screen();
    else print_table();
  }

  void draw_screen() {
    // A launched program may write to the terminal too: repaint everything.
    clearok(curscr, TRUE);
    erase();
    int width = COLS, height = LINES;
    auto put = [&](int y, const std::string& text, int attributes = 0) {
      if (y >= height) return;
      attron(attributes);
      mvaddnstr(y, 0, text.c_str(), width);
      attroff(attributes);
    };
    put(0, fmt::format("swprof top  pid {}  Python {}  {}", pid_, python_, command_), A_BOLD);
    put(1, status_line() + (paused_ ? "  [PAUSED]" : ""));
    put(2, windows_ ? view_line() : view_line() + " (first refresh after " + format_duration_us(options_.refresh_us) + ")");
    // Column titles, the sort column highlighted.
    int x = 0;
    for (const auto& c : kColumns) {
      std::string title = fmt::format("{:>{}} ", sort_key_name(c.key), c.width);
      if (c.key == sort_) attron(A_REVERSE);
      mvaddnstr(4, x, title.c_str(), std::max(0, width - x));
      if (c.key == sort_) attroff(A_REVERSE);
      x += static_cast<int>(title.size());
    }
    mvaddnstr(4, x, " FUNCTION", std::max(0, width - x));
    int rows = std::max(0, height - 7);
    auto list = model_.rows(lines_, idle_, followed(), sort_, static_cast<size_t>(rows));
    for (size_t i = 0; i < list.size(); ++i) put(5 + static_cast<int>(i), row_text(list[i]));
    put(height - 1, kKeys, A_REVERSE);
    refresh();
  }

  void print_table() {
    std::string out = fmt::format("swprof top: pid {}, Python {}, {}\n{}\n{}\n", pid_, python_, status_line(),
                                  view_line(), header_text());
    for (const auto& r : model_.rows(lines_, idle_, 0, sort_, options_.rows)) out += row_text(r) + "\n";
    out += "\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  }

  const TopOptions& options_;
  TopModel model_;
  const snapshot::Writer* file_ = nullptr;
  int pid_ = 0;
  std::string python_, command_;
  record::TickSummary last_;
  int64_t window_start_us_ = 0;
  uint64_t samples_at_window_ = 0, window_samples_ = 0, windows_ = 0;
  bool screen_ = false, screen_used_ = false, paused_ = false, lines_ = false, idle_ = false, attached_ = true;
  SortKey sort_ = SortKey::kOwn;
  int follow_ = -1;  // index into model_.threads(); -1: all threads
};

}  // namespace

int run_top(const TopOptions& options) {
  if (options.refresh_us < 100000) throw UserError("--refresh must be at least 100ms");
  TopViewer viewer(options);
  record::Options rec;
  rec.pid = options.pid;
  rec.command = options.command;
  rec.output = options.output.empty() ? "/dev/null" : options.output;
  rec.summary = !options.output.empty();
  rec.status = false;
  rec.interval_us = options.interval_us;
  rec.duration_us = options.duration_us;
  rec.observer = &viewer;
  record::run(rec);  // a launched program's exit status is not ours: top did its job
  return 0;
}

}  // namespace swprof::live
