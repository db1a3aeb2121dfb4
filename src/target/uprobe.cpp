// Uprobe perf events and their ring buffers (see swprof/uprobe.h for why per-thread events). The
// ring buffer protocol: the kernel advances data_head (read with acquire), we consume records from
// data_tail and publish the new tail (release) so that the kernel can reuse the space.
// Lost hits: the kernel writes a PERF_RECORD_LOST only once a later hit finds room again, so a
// burst at the end would go unreported; since Linux 6.0 each event also counts its lost samples
// (PERF_FORMAT_LOST), read at every drain. Older kernels fall back to the LOST records.
#include "swprof/uprobe.h"

#include <fcntl.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

#include <fmt/format.h>

namespace swprof::target {

namespace {

constexpr const char* kPmuTypeFile = "/sys/bus/event_source/devices/uprobe/type";

// perf register numbers of the first integer argument registers (arch/*/include/uapi/asm/perf_regs.h).
#if defined(__x86_64__)
constexpr uint32_t kArgRegisters[kUprobeArgs] = {5 /* DI */, 4 /* SI */, 3 /* DX */};
#elif defined(__aarch64__)
constexpr uint32_t kArgRegisters[kUprobeArgs] = {0 /* X0 */, 1 /* X1 */, 2 /* X2 */};
#else
#error "uprobe argument registers: unsupported architecture"
#endif

// A file descriptor that is always closed.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

std::string perf_paranoid() {
  int fd = ::open("/proc/sys/kernel/perf_event_paranoid", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "unknown";
  char buf[16] = {};
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  std::string s(buf, n > 0 ? size_t(n) : 0);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s.empty() ? "unknown" : s;
}

bool is_endbr64_at(const std::string& path, uint64_t offset) {
  static constexpr uint8_t kEndbr64[4] = {0xf3, 0x0f, 0x1e, 0xfa};
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  uint8_t code[4] = {};
  bool yes = ::pread(fd, code, sizeof code, static_cast<off_t>(offset)) == sizeof code &&
             std::memcmp(code, kEndbr64, sizeof code) == 0;
  ::close(fd);
  return yes;
}

}  // namespace

std::optional<ProbeSite> locate_probe_site(pid_t pid, const std::vector<Mapping>& maps, uint64_t address,
                                           std::string name, std::string& error, bool function_entry) {
  const Mapping* m = nullptr;
  for (const auto& candidate : maps)
    if (address >= candidate.start && address < candidate.end) m = &candidate;
  if (!m || !m->executable || m->path.empty() || m->path[0] != '/' || m->inode == 0) {
    error = fmt::format("{} at {:#x} is not in an executable file mapping", name, address);
    return std::nullopt;
  }
  // The kernel looks the path up in swprof's context, as stat() here does: /proc/PID/map_files/...
  // (the mapped file itself) needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE, else the target's root
  // or its own path serve, when they lead to the same inode.
  for (const std::string& path : host_paths(pid, *m)) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || st.st_ino != m->inode || !S_ISREG(st.st_mode)) continue;
    ProbeSite site;
    site.name = std::move(name);
    site.address = address;
    site.path = path;
    site.file_offset = address - m->start + m->file_offset;
    if (function_entry && is_endbr64_at(path, site.file_offset) && address + 4 < m->end) {
      site.address += 4;
      site.file_offset += 4;
    }
    return site;
  }
  error = fmt::format("{}: no path reaches {} (inode {}) from swprof's mount namespace", name, m->path, m->inode);
  return std::nullopt;
}

struct UprobeSession::Thread {
  pid_t tid = 0;
  std::vector<Fd> events;     // one per site; events[0] owns the ring buffer, the others write into it
  std::vector<uint64_t> ids;  // the kernel's id of each event, in site order
  void* ring = nullptr;
  size_t ring_bytes = 0;
  bool ended = false;
  uint64_t lost = 0;          // PERF_FORMAT_LOST: the events' own counts, at the last drain
  ~Thread() {
    if (ring) ::munmap(ring, ring_bytes);
  }
};

UprobeSession::UprobeSession(pid_t pid, std::vector<ProbeSite> sites, Options options)
    : pid_(pid), sites_(std::move(sites)), options_(options) {
  int fd = ::open(kPmuTypeFile, O_RDONLY | O_CLOEXEC);
  char buf[32] = {};
  ssize_t n = fd >= 0 ? ::read(fd, buf, sizeof buf - 1) : -1;
  if (fd >= 0) ::close(fd);
  char* end = nullptr;
  unsigned long type = n > 0 ? std::strtoul(buf, &end, 10) : 0;
  if (n <= 0 || end == buf)
    throw UprobeUnavailable(UprobeUnavailable::Reason::kNoPmu,
                            fmt::format("this kernel has no uprobe PMU ({} is missing: CONFIG_UPROBE_EVENTS)", kPmuTypeFile));
  pmu_type_ = static_cast<uint32_t>(type);
  page_size_ = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  size_t pages = std::max<size_t>(1, (options_.buffer_bytes + page_size_ - 1) / page_size_);
  data_pages_ = std::bit_ceil(pages);
  for (uint32_t r : kArgRegisters) register_mask_ |= uint64_t(1) << r;
  if (sites_.empty()) throw UprobeUnavailable(UprobeUnavailable::Reason::kBadSite, "no probe sites given");
}

UprobeSession::~UprobeSession() = default;

void UprobeSession::add_thread(pid_t tid) {
  if (auto t = open_thread(tid)) threads_.push_back(std::move(t));
}

// (Reads only what the constructor set, and count_lost_: safe beside the caller's thread.)
std::unique_ptr<UprobeSession::Thread> UprobeSession::open_thread(pid_t tid) {
  auto t = std::make_unique<Thread>();
  t->tid = tid;
  for (uint32_t i = 0; i < sites_.size(); ++i) {
    const ProbeSite& site = sites_[i];
    perf_event_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = pmu_type_;
    attr.config = 0;  // an entry probe (bit 0 would make it a return probe)
    attr.uprobe_path = reinterpret_cast<uint64_t>(site.path.c_str());
    attr.probe_offset = site.file_offset;
    attr.sample_period = 1;
    attr.sample_type = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_REGS_USER;
    attr.sample_regs_user = register_mask_;
    attr.use_clockid = 1;
    attr.clockid = CLOCK_MONOTONIC;
    attr.disabled = 1;  // enabled once it writes into the thread's buffer
    attr.read_format = count_lost_ ? PERF_FORMAT_LOST : 0;
    int fd = static_cast<int>(::syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC));
    if (fd < 0 && errno == EINVAL && count_lost_) {  // before Linux 6.0
      count_lost_ = false;
      attr.read_format = 0;
      fd = static_cast<int>(::syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC));
    }
    if (fd < 0) {
      int e = errno;
      if (e == ESRCH) return nullptr;  // the thread ended meanwhile: nothing to follow
      using R = UprobeUnavailable::Reason;
      if (e == EACCES || e == EPERM)
        throw UprobeUnavailable(R::kPrivilege,
                                fmt::format("uprobes refused ({}): they need root or CAP_PERFMON, and ptrace access to "
                                            "process {} (kernel.perf_event_paranoid is {})",
                                            std::strerror(e), pid_, perf_paranoid()));
      if (e == EMFILE || e == ENFILE || e == ENOMEM)
        throw UprobeUnavailable(R::kResources, fmt::format("cannot open a uprobe event: {}", std::strerror(e)));
      if (e == ENOENT || e == EINVAL || e == ENOTSUP || e == EOPNOTSUPP || e == E2BIG)
        throw UprobeUnavailable(R::kBadSite, fmt::format("the kernel refuses a uprobe on {} ({} + {:#x}): {}", site.name,
                                                         site.path, site.file_offset, std::strerror(e)));
      throw UprobeUnavailable(R::kResources, fmt::format("uprobe on {}: {}", site.name, std::strerror(e)));
    }
    t->events.emplace_back(fd);
    if (i == 0) {
      t->ring_bytes = (data_pages_ + 1) * page_size_;
      void* ring = ::mmap(nullptr, t->ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (ring == MAP_FAILED) {
        int e = errno;
        throw UprobeUnavailable(
            UprobeUnavailable::Reason::kResources,
            fmt::format("cannot map a {} KiB uprobe ring buffer ({}): run as root or raise kernel.perf_event_mlock_kb",
                        data_pages_ * page_size_ / 1024, std::strerror(e)));
      }
      t->ring = ring;
    } else if (::ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, t->events[0].get()) != 0) {
      throw UprobeUnavailable(UprobeUnavailable::Reason::kResources,
                              fmt::format("cannot share a uprobe ring buffer: {}", std::strerror(errno)));
    }
    uint64_t id = 0;
    if (::ioctl(fd, PERF_EVENT_IOC_ID, &id) != 0)
      throw UprobeUnavailable(UprobeUnavailable::Reason::kResources,
                              fmt::format("cannot identify a uprobe event: {}", std::strerror(errno)));
    t->ids.push_back(id);
  }
  for (const Fd& fd : t->events) ::ioctl(fd.get(), PERF_EVENT_IOC_ENABLE, 0);
  return t;
}

size_t UprobeSession::follow_threads() { return follow_threads(list_threads(pid_)); }

size_t UprobeSession::follow_threads(std::vector<pid_t> tids) {
  size_t added = 0;
  for (pid_t tid : new_threads(std::move(tids))) {
    size_t before = threads_.size();
    add_thread(tid);
    added += threads_.size() - before;
  }
  return added;
}

// The listed threads not followed yet (and the followed ones not listed are noted as ended).
std::vector<pid_t> UprobeSession::new_threads(std::vector<pid_t> tids) {
  std::sort(tids.begin(), tids.end());
  for (auto& t : threads_)
    if (!std::binary_search(tids.begin(), tids.end(), t->tid) && !opening_tid(t->tid)) t->ended = true;
  std::erase_if(tids, [&](pid_t tid) {
    return opening_tid(tid) ||
           std::any_of(threads_.begin(), threads_.end(), [&](const auto& t) { return t->tid == tid; });
  });
  return tids;
}

bool UprobeSession::opening_tid(pid_t tid) const {
  return opening_.valid() && std::find(opening_tids_.begin(), opening_tids_.end(), tid) != opening_tids_.end();
}

size_t UprobeSession::follow_threads_beside() {
  size_t added = 0;
  if (opening_.valid()) {
    if (opening_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return 0;
    std::vector<std::unique_ptr<Thread>> opened = opening_.get();  // (throws what open_thread threw)
    opening_tids_.clear();
    added = opened.size();
    for (auto& t : opened) threads_.push_back(std::move(t));
  }
  std::vector<pid_t> fresh = new_threads(list_threads(pid_));
  if (!fresh.empty()) {
    opening_tids_ = fresh;
    opening_ = std::async(std::launch::async, [this, fresh = std::move(fresh)] {
      std::vector<std::unique_ptr<Thread>> opened;
      for (pid_t tid : fresh)
        if (auto t = open_thread(tid)) opened.push_back(std::move(t));
      return opened;
    });
  }
  return added;
}

void UprobeSession::drain_thread(Thread& t, std::vector<UprobeHit>& out) {
  auto* meta = static_cast<perf_event_mmap_page*>(t.ring);
  const uint8_t* data = static_cast<const uint8_t*>(t.ring) + (meta->data_offset ? meta->data_offset : page_size_);
  const uint64_t size = meta->data_size ? meta->data_size : data_pages_ * page_size_;
  uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
  uint64_t tail = meta->data_tail;
  // Where each argument register sits among the sampled ones (they come in register-number order).
  size_t slot[kUprobeArgs];
  for (size_t a = 0; a < kUprobeArgs; ++a) slot[a] = std::popcount(register_mask_ & ((uint64_t(1) << kArgRegisters[a]) - 1));
  const size_t registers = std::popcount(register_mask_);
  while (tail + sizeof(perf_event_header) <= head) {
    perf_event_header header;
    uint64_t at = tail % size;
    std::memcpy(&header, data + at, sizeof header);  // 8-byte aligned: never split at the end
    if (header.size < sizeof header || tail + header.size > head) break;
    const uint8_t* record = data + at;
    if (at + header.size > size) {  // wraps around the end of the buffer
      scratch_.resize(header.size);
      std::memcpy(scratch_.data(), data + at, size - at);
      std::memcpy(scratch_.data() + (size - at), data, header.size - (size - at));
      record = scratch_.data();
    }
    const uint8_t* p = record + sizeof header;
    const uint8_t* end = record + header.size;
    auto take = [&](void* dst, size_t n) {
      if (p + n > end) return false;
      std::memcpy(dst, p, n);
      p += n;
      return true;
    };
    if (header.type == PERF_RECORD_SAMPLE) {
      uint64_t id = 0, time = 0, abi = 0;
      uint32_t pid_tid[2] = {};
      UprobeHit hit;
      if (take(&id, 8) && take(pid_tid, 8) && take(&time, 8) && take(&abi, 8)) {
        auto it = std::find(t.ids.begin(), t.ids.end(), id);
        if (it != t.ids.end()) {
          hit.site = static_cast<uint32_t>(it - t.ids.begin());
          hit.tid = static_cast<pid_t>(pid_tid[1]);
          hit.time_ns = static_cast<int64_t>(time);
          uint64_t regs[64];
          if (abi != PERF_SAMPLE_REGS_ABI_NONE && take(regs, registers * 8)) {
            for (size_t a = 0; a < kUprobeArgs; ++a) hit.args[a] = regs[slot[a]];
            hit.args_valid = true;
          }
          out.push_back(hit);
          ++hits_;
        }
      }
    } else if (header.type == PERF_RECORD_LOST && !count_lost_) {
      uint64_t id_lost[2];
      if (take(id_lost, sizeof id_lost)) lost_ += id_lost[1];
    }
    tail += header.size;
  }
  __atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
  if (count_lost_) {
    uint64_t lost = 0;
    for (const Fd& fd : t.events) {
      uint64_t value_lost[2] = {};
      if (::read(fd.get(), value_lost, sizeof value_lost) == sizeof value_lost) lost += value_lost[1];
    }
    if (lost > t.lost) lost_ += lost - t.lost;
    t.lost = std::max(t.lost, lost);
  }
}

size_t UprobeSession::drain(std::vector<UprobeHit>& out) {
  size_t first = out.size();
  for (auto& t : threads_) drain_thread(*t, out);
  // Threads that ended have nothing more to say: close their events (after the drain above).
  std::erase_if(threads_, [](const std::unique_ptr<Thread>& t) { return t->ended; });
  // Each thread's hits are in order already: a stable sort by time merges the threads.
  std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
                   [](const UprobeHit& a, const UprobeHit& b) { return a.time_ns < b.time_ns; });
  return out.size() - first;
}

}  // namespace swprof::target
