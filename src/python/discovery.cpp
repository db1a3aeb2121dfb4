// Finding CPython in a process without running anything in it: which mapped file holds the
// runtime (libpython or the executable), where _PyRuntime is (.dynsym, .symtab, the .PyRuntime
// section, or a validated scan of the data segment), and which version it is (Py_Version, the
// _Py_DebugOffsets header, the file name, or the version string in .rodata).
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "swprof/common.h"
#include "swprof/elf.h"
#include "python/raw.h"
#include "swprof/python.h"

namespace swprof::python {

namespace {

std::string basename_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// A cursor over a short string for the two version parsers below (hand-written and linear: the
// names come from the target's mappings and sections).
struct Scanner {
  std::string_view s;
  bool literal(std::string_view word) {
    if (!s.starts_with(word)) return false;
    s.remove_prefix(word.size());
    return true;
  }
  // Between `min` and `max` decimal digits as a number.
  std::optional<int> digits(size_t min, size_t max) {
    size_t n = 0;
    int value = 0;
    while (n < s.size() && n < max && s[n] >= '0' && s[n] <= '9') value = value * 10 + (s[n++] - '0');
    if (n < min || (n < s.size() && s[n] >= '0' && s[n] <= '9')) return std::nullopt;
    s.remove_prefix(n);
    return value;
  }
};

// "libpython3.11.so.1.0", "libpython3.7m.so", "python3.11", "python2.7" -> version.
std::optional<Version> version_from_name(const std::string& path) {
  const std::string base = basename_of(path);
  Scanner sc{base};
  sc.literal("lib");
  if (!sc.literal("python")) return std::nullopt;
  auto major = sc.digits(1, 1);
  if (!major || !sc.literal(".")) return std::nullopt;
  auto minor = sc.digits(1, 3);
  if (!minor) return std::nullopt;
  return Version{*major, *minor, 0};
}

// PY_VERSION ("3.10.13", "3.14.0rc2", "3.12.1+") is a string literal in .rodata of every build.
std::optional<Version> parse_py_version(std::string_view text) {
  Scanner sc{text};
  auto major = sc.digits(1, 1);
  if (!major || (*major != 2 && *major != 3) || !sc.literal(".")) return std::nullopt;
  auto minor = sc.digits(1, 2);
  if (!minor || !sc.literal(".")) return std::nullopt;
  auto micro = sc.digits(1, 2);
  if (!micro) return std::nullopt;
  // A pre-release tag with its number, and the "+" of a build between releases.
  for (std::string_view tag : {"rc", "a", "b", "c"})
    if (sc.literal(tag)) {
      sc.digits(0, 9);
      break;
    }
  sc.literal("+");
  if (!sc.s.empty()) return std::nullopt;
  return Version{*major, *minor, *micro};
}

std::optional<Version> version_from_rodata(const target::ElfFile& elf) {
  auto rodata = elf.section(".rodata");
  if (!rodata) return std::nullopt;
  std::string_view bytes = elf.section_bytes(*rodata);
  std::optional<Version> best;
  size_t start = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] != '\0') continue;
    size_t len = i - start;
    if (len >= 5 && len <= 12) {
      if (auto v = parse_py_version(bytes.substr(start, len))) {
        // Libraries linked in carry version strings too; the interpreter's is the newest 3.x.
        if (!best || v->major > best->major || (v->major == best->major && v->minor > best->minor)) best = v;
      }
    }
    start = i + 1;
  }
  return best;
}

struct Candidate {
  const target::Mapping* mapping;
  std::optional<target::ElfFile> elf;
  uint64_t bias = 0;
  bool shared = false;
};

bool readable_by_us(pid_t pid, const std::vector<target::Mapping>& maps, int& err) {
  for (const auto& m : maps) {
    if (!m.readable) continue;
    uint64_t value;
    iovec local{&value, sizeof value};
    iovec remote{reinterpret_cast<void*>(m.start), sizeof value};
    if (process_vm_readv(pid, &local, 1, &remote, 1, 0) == sizeof value) return true;
    err = errno;
    if (err == EPERM || err == ESRCH) return false;
  }
  return true;
}

std::string permission_message(pid_t pid) {
  return fmt::format(
      "permission denied reading the memory of process {}: run swprof as root or as the process's "
      "user with CAP_SYS_PTRACE (sudo setcap cap_sys_ptrace+ep $(command -v swprof)); if "
      "/proc/sys/kernel/yama/ptrace_scope is 1 or more, also: sudo sysctl kernel.yama.ptrace_scope=0",
      pid);
}

// A candidate _PyRuntime is real when its first interpreter's first thread points back at it,
// that interpreter's sys.modules is a dict, and (3.11+) the thread's native id is a live thread of
// the process. The scan of a stripped build relies on this: data segments are full of pointers.
bool runtime_looks_valid(uint64_t runtime, const Layout& l, const target::Memory& mem) {
  uint64_t interp = 0, tstate = 0, back = 0, modules = 0;
  if (!mem.read_value(runtime + l.runtime.interpreters_head, interp) || !plausible_pointer(interp)) return false;
  if (!mem.read_value(interp + l.interp.threads_head, tstate) || !plausible_pointer(tstate)) return false;
  if (!mem.read_value(tstate + l.tstate.interp, back) || back != interp) return false;
  // 3.9+: the interpreter points back at its runtime: only the real _PyRuntime passes this.
  uint64_t owner = 0;
  if (l.interp.runtime != kAbsent && (!mem.read_value(interp + l.interp.runtime, owner) || owner != runtime))
    return false;
  if (mem.read_value(interp + l.interp.modules, modules) && modules) {
    ObjectReader objects(mem, l);
    if (objects.type_name(objects.type_of(modules)) != "dict") return false;
  }
  if (l.tstate.native_thread_id != kAbsent) {
    int64_t tid = 0;
    if (!mem.read_value(tstate + l.tstate.native_thread_id, tid)) return false;
    // A thread state may exist before its thread runs (native id 0); otherwise it must be ours.
    if (tid != 0) {
      auto tids = target::ThreadIds(mem.pid()).target_ids();  // namespace-local, like the interpreter's
      if (std::find(tids.begin(), tids.end(), static_cast<pid_t>(tid)) == tids.end()) return false;
    }
  }
  return true;
}

// Stripped builds without a .PyRuntime section: walk the file's writable segments (and the
// anonymous .bss right after them) for an address that passes runtime_looks_valid().
std::optional<uint64_t> scan_for_runtime(const Candidate& c, const std::vector<target::Mapping>& maps,
                                         const Layout& l, const target::Memory& mem) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& seg : c.elf->segments())
    if (seg.writable) ranges.emplace_back(seg.vaddr + c.bias, seg.vaddr + c.bias + seg.memsz);
  std::vector<uint8_t> block;
  const uint32_t head = l.runtime.interpreters_head;
  for (auto [lo, hi] : ranges) {
    for (uint64_t at = lo & ~uint64_t(7); at < hi; at += 1u << 20) {
      uint64_t end = std::min<uint64_t>(hi, at + (1u << 20) + head + 8);
      block.resize(end - at);
      // Read what is mapped of the block; unmapped gaps are skipped.
      bool any = false;
      for (const auto& m : maps) {
        uint64_t s = std::max(m.start, at), e = std::min(m.end, end);
        if (s >= e || !m.readable) continue;
        if (mem.read(s, block.data() + (s - at), e - s)) any = true;
      }
      if (!any) continue;
      for (uint64_t off = 0; off + head + 8 <= block.size(); off += 8) {
        uint64_t interp;
        std::memcpy(&interp, block.data() + off + head, 8);
        if (!plausible_pointer(interp)) continue;
        if (runtime_looks_valid(at + off, l, mem)) return at + off;
      }
    }
  }
  return std::nullopt;
}

}  // namespace

Interpreter discover(pid_t pid, const target::Memory& memory) {
  if (pid <= 0 || !target::process_exists(pid))
    throw UserError(fmt::format("no process with pid {} (it may have exited)", pid));
  auto maps = target::read_maps(pid);
  if (maps.empty()) {
    if (!target::process_exists(pid)) throw UserError(fmt::format("process {} exited", pid));
    throw UserError(permission_message(pid));
  }
  int err = 0;
  if (!readable_by_us(pid, maps, err)) {
    if (err == ESRCH) throw UserError(fmt::format("process {} exited", pid));
    throw UserError(permission_message(pid));
  }

  // Every mapped file that looks like CPython: libpython first, then the executable.
  std::string exe = target::read_exe(pid);
  if (exe.size() > 10 && exe.compare(exe.size() - 10, 10, " (deleted)") == 0) exe.resize(exe.size() - 10);
  std::vector<Candidate> candidates;
  std::vector<std::string> seen;
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& m : maps) {
      if (m.path.empty() || m.path[0] != '/' || m.file_offset != 0) continue;
      bool is_lib = basename_of(m.path).rfind("libpython", 0) == 0;
      bool is_exe = m.path == exe;
      if ((pass == 0 && !is_lib) || (pass == 1 && !is_exe)) continue;
      if (std::find(seen.begin(), seen.end(), m.path) != seen.end()) continue;
      seen.push_back(m.path);
      Candidate c{&m, std::nullopt, 0, is_lib};
      for (const auto& path : target::host_paths(pid, m))
        if ((c.elf = target::ElfFile::open(path))) break;
      if (!c.elf) continue;
      auto bias = c.elf->load_bias(maps, m.path);
      if (!bias) continue;
      c.bias = *bias;
      bool python_api = c.elf->symbol("Py_GetVersion") || c.elf->symbol("Py_Initialize") ||
                        c.elf->symbol("_PyRuntime") || c.elf->section(".PyRuntime");
      if (python_api) candidates.push_back(std::move(c));
    }
  }
  std::string comm = target::read_comm(pid, pid);
  if (candidates.empty())
    throw UserError(fmt::format("process {} ({}) is not a Python process: neither a libpython nor a Python "
                                "executable is mapped in it",
                                pid, comm.empty() ? exe : comm));

  // The file that holds the runtime.
  Candidate* chosen = nullptr;
  for (auto& c : candidates)
    if (c.elf->symbol("_PyRuntime") || c.elf->section(".PyRuntime")) {
      chosen = &c;
      break;
    }
  if (!chosen) chosen = &candidates.front();
  const target::ElfFile& elf = *chosen->elf;

  // The version, without running anything in the target.
  std::optional<Version> version;
  bool exact_version = false;  // Py_Version and the debug offsets give the micro version
  // (Exported where it exists, 3.11+: looked for in .dynsym only, so that 3.8-3.10, which lack
  // it, do not read the whole .symtab: 0.4 s from a cold page cache for pyenv's libpython3.8, the
  // program running on unsampled meanwhile.)
  if (auto sym = elf.dynamic_symbol("Py_Version")) {
    uint32_t hex = 0;
    if (memory.read_value(*sym + chosen->bias, hex) && (hex >> 24) >= 2)
      version = Version{int(hex >> 24), int((hex >> 16) & 0xFF), int((hex >> 8) & 0xFF)};
    exact_version = version.has_value();
  }
  if (!version) version = version_from_name(chosen->mapping->path);
  if (!version) version = version_from_name(exe);
  // A file name gives major.minor; the version string in .rodata gives the micro version too.
  // (Not needed when Py_Version gave it: the scan reads all of .rodata, up to 2 MB, much of it
  // pages the program never touched, from disk when the page cache is cold.)
  if (auto from_rodata = exact_version ? std::nullopt : version_from_rodata(elf)) {
    if (!version) version = from_rodata;
    else if (version->major == from_rodata->major && version->minor == from_rodata->minor) version = from_rodata;
  }
  if (!version)
    throw UserError(fmt::format("process {} ({}) maps {} but its Python version cannot be determined", pid, comm,
                                chosen->mapping->path));
  if (version->major != 3 || version->minor < kMinMinor || version->minor > kMaxMinor)
    throw UserError(fmt::format("unsupported Python version {}.{} in process {}: swprof reads CPython 3.{} to 3.{}",
                                version->major, version->minor, pid, kMinMinor, kMaxMinor));

  Interpreter interp;
  interp.version = *version;
  interp.shared = chosen->shared;
  interp.binary = chosen->mapping->path;
  interp.layout = *builtin_layout(version->minor);
  interp.layout.version = *version;

  // Where _PyRuntime is. SWPROF_FORCE_SCAN=1 exercises the stripped-build path on any build.
  bool force_scan = std::getenv("SWPROF_FORCE_SCAN") != nullptr;
  if (!force_scan) {
    if (auto dyn = elf.symbol("_PyRuntime")) {
      interp.runtime = *dyn + chosen->bias;
      interp.runtime_source = "symbol";
    } else if (auto sec = elf.section(".PyRuntime")) {
      interp.runtime = sec->address + chosen->bias;
      interp.runtime_source = ".PyRuntime section";
    }
  }

  // 3.13+: the runtime starts with _Py_DebugOffsets; it overrides the built-in table.
  if (size_t size = debug_offsets_size(version->minor)) {
    auto apply_at = [&](uint64_t address) -> std::optional<std::string> {
      std::vector<uint8_t> blob(size);
      if (!memory.read(address, blob.data(), blob.size())) return "cannot read _Py_DebugOffsets";
      Layout l = interp.layout;
      auto problem = apply_debug_offsets(l, blob);
      if (!problem) interp.layout = l;
      return problem;
    };
    if (interp.runtime) {
      if (auto problem = apply_at(interp.runtime)) {
        if (problem->find("free-threaded") != std::string::npos) throw UserError(*problem);
        throw UserError(fmt::format("process {}: {} (at _PyRuntime, {})", pid, *problem, interp.binary));
      }
    } else {
      // The cookie marks the start of the runtime: scan the writable segments for it.
      for (const auto& seg : elf.segments()) {
        if (!seg.writable || interp.runtime) continue;
        std::vector<uint8_t> block(std::min<uint64_t>(seg.memsz, 64u << 20));
        uint64_t base = seg.vaddr + chosen->bias;
        if (!memory.read(base, block.data(), std::min<uint64_t>(block.size(), seg.filesz))) continue;
        for (size_t off = 0; off + 8 <= block.size(); off += 8) {
          if (std::memcmp(block.data() + off, "xdebugpy", 8) == 0 && !apply_at(base + off)) {
            interp.runtime = base + off;
            interp.runtime_source = "scan (debug offsets cookie)";
            break;
          }
        }
      }
    }
  }
  // A look at the real runtime can fail while a thread ends (see runtime_ready): a few looks.
  for (int look = 0; look < 3 && !interp.runtime; ++look) {
    if (look) usleep(2000);
    if (auto found = scan_for_runtime(*chosen, maps, interp.layout, memory)) {
      interp.runtime = *found;
      interp.runtime_source = "scan";
    }
  }
  if (!interp.runtime)
    throw UserError(fmt::format("cannot find the Python runtime (_PyRuntime) of process {} in {} (Python {}); "
                                "is the interpreter initialised?",
                                pid, interp.binary, version->text()));
  if (interp.layout.from_debug_offsets) interp.version.micro = interp.layout.version.micro;
  interp.version_exact = exact_version || interp.layout.from_debug_offsets;
  if (!interp.version_exact) refine_version(interp, memory);
  return interp;
}

// Before 3.11 the binary does not say its micro version; the running interpreter does, in
// sys.version ("3.8.18 (default, ...)").
void refine_version(Interpreter& interp, const target::Memory& memory) {
  if (!runtime_ready(interp, memory)) return;
  ObjectReader objects(memory, interp.layout);
  std::string text;
  if (!objects.read_str(objects.module_global(interp.runtime, "sys", "version"), text, 512)) return;
  int major = 0, minor = 0, micro = 0;
  if (std::sscanf(text.c_str(), "%d.%d.%d", &major, &minor, &micro) == 3 && major == interp.version.major &&
      minor == interp.version.minor) {
    interp.version.micro = micro;
    interp.version_exact = true;
  }
}

bool runtime_ready(const Interpreter& interp, const target::Memory& memory, int attempts) {
  // The check follows the newest thread state, which a thread that is ending may still head after
  // its thread id has left /proc (or be freed under us): in a process that starts and ends threads,
  // one look can fail on a runtime that is up (CI: attaching to samples/idle_workers.py on 3.12).
  for (int i = 0; i < attempts; ++i) {
    if (runtime_looks_valid(interp.runtime, interp.layout, memory)) return true;
    if (i + 1 < attempts) usleep(2000);
  }
  return false;
}

}  // namespace swprof::python
