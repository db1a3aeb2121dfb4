// Naming native code addresses with elfutils' libdwfl: the target's mapped files are reported as
// modules; libdwfl loads each once (symbol tables, .gnu_debugdata through liblzma, a separate
// debug file by build-id or debuglink, DWARF) and we cache every address we named.
#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "swprof/common.h"
#include "target/native_internal.h"

namespace swprof::native::detail {

namespace {

constexpr int64_t kRefreshIntervalNs = 100 * 1000 * 1000;  // maps read again at most every 100 ms
constexpr size_t kMaxCachedAddresses = 1 << 18;
constexpr size_t kMaxNameLength = 1024;

std::string demangle(const char* name) {
  std::string out;
  if (name[0] == '_' && name[1] == 'Z') {
    int status = 0;
    char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    if (d && status == 0) out = d;
    std::free(d);
  }
  if (out.empty()) out = name;
  if (out.size() > kMaxNameLength) out = out.substr(0, kMaxNameLength) + "...";
  return out;
}

// GCC moves a function's rarely run blocks into `name.cold`: the same function.
std::string without_cold_suffix(std::string name) {
  constexpr std::string_view cold = ".cold";
  if (name.size() > cold.size() && name.compare(name.size() - cold.size(), cold.size(), cold) == 0)
    name.resize(name.size() - cold.size());
  return name;
}

std::string basename_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The name of a DWARF subprogram or inlined call: its linkage name demangled (C++: qualified,
// with parameters), else its name, following abstract origins and specifications.
std::string die_name(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  if (dwarf_attr_integrate(die, DW_AT_linkage_name, &attr) || dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr)) {
    if (const char* s = dwarf_formstring(&attr)) return demangle(s);
  }
  if (dwarf_attr_integrate(die, DW_AT_name, &attr)) {
    if (const char* s = dwarf_formstring(&attr)) return demangle(s);
  }
  return {};
}

int find_elf(Dwfl_Module* module, void** userdata, const char* name, Dwarf_Addr base, char** file_name, Elf** elfp) {
  auto* file = static_cast<const Symbolizer::ModuleFile*>(*userdata);
  if (!file) return -1;
  // The vDSO has no file: libdwfl reads its image from /proc/PID/mem.
  if (file->vdso) return dwfl_linux_proc_find_elf(module, userdata, name, base, file_name, elfp);
  // The file the target mapped, seen from here: through the target's root (another mount
  // namespace: a container) under its own name, so that debuglink files next to it are found too;
  // then our own path; then the mapping itself (/proc/PID/map_files: also a deleted file).
  const std::string candidates[] = {fmt::format("/proc/{}/root{}", file->pid, file->path), file->path,
                                    fmt::format("/proc/{}/map_files/{:x}-{:x}", file->pid, file->start, file->end)};
  for (const auto& path : candidates) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_ino == file->inode) {
      *file_name = strdup(path.c_str());
      return fd;
    }
    close(fd);
  }
  return -1;
}

int find_debuginfo(Dwfl_Module* module, void** userdata, const char* name, Dwarf_Addr base, const char* file_name,
                   const char* debuglink_file, GElf_Word debuglink_crc, char** debuginfo_file_name) {
  // libdwfl's standard search ends with a download from debuginfod servers when DEBUGINFOD_URLS is
  // set: a profiler must not stall its sampling on the network, so then look up by build-id only.
  const char* urls = std::getenv("DEBUGINFOD_URLS");
  if (urls && *urls)
    return dwfl_build_id_find_debuginfo(module, userdata, name, base, file_name, debuglink_file, debuglink_crc,
                                        debuginfo_file_name);
  return dwfl_standard_find_debuginfo(module, userdata, name, base, file_name, debuglink_file, debuglink_crc,
                                      debuginfo_file_name);
}

// module+offset for code without a name; the offset is an ELF address (what addr2line -e takes).
std::string unnamed(Dwfl_Module* module, const std::string& module_path, uint64_t address) {
  Dwarf_Addr bias = 0;
  dwfl_module_getelf(module, &bias);
  return fmt::format("{}+{:#x}", basename_of(module_path), address - bias);
}

}  // namespace

bool is_eval_function(std::string_view name) {
  constexpr std::string_view eval = "_PyEval_EvalFrameDefault";
  return name.substr(0, eval.size()) == eval && (name.size() == eval.size() || name[eval.size()] == '.');
}

Symbolizer::Symbolizer(pid_t pid, const Options& options, Stats& stats) : pid_(pid), options_(options), stats_(stats) {
  // ":.debug" searches next to the file and in its .debug/ directory (debuglink); every absolute
  // directory is searched by build-id (.build-id/xx/yyyy.debug) and by debuglink name.
  debuginfo_path_ = ":.debug";
  for (const auto& d : options.debug_dirs) debuginfo_path_ += ":" + d;
  debuginfo_path_ += fmt::format(":/usr/lib/debug:/proc/{}/root/usr/lib/debug", pid);
  debuginfo_path_ptr_ = debuginfo_path_.data();
  callbacks_ = std::make_unique<Dwfl_Callbacks>();
  callbacks_->find_elf = find_elf;
  callbacks_->find_debuginfo = find_debuginfo;
  callbacks_->section_address = nullptr;
  callbacks_->debuginfo_path = &debuginfo_path_ptr_;
  dwfl_ = dwfl_begin(callbacks_.get());
  if (!dwfl_) throw std::runtime_error("libdw: cannot start a session");
  refresh(true);
}

Symbolizer::~Symbolizer() {
  if (dwfl_) dwfl_end(dwfl_);
}

bool Symbolizer::refresh(bool force) {
  const int64_t now = monotonic_ns();
  if (!force && now - last_refresh_ns_ < kRefreshIntervalNs) return false;
  last_refresh_ns_ = now;
  ++stats_.map_reloads;
  std::vector<target::Mapping> maps = target::read_maps(pid_);
  if (maps.empty()) return false;  // gone: keep what we know

  // A file's consecutive mappings are one module; only files with code are reported.
  struct Group {
    size_t first, last;
    bool code;
  };
  std::vector<Group> groups;
  for (size_t i = 0; i < maps.size(); ++i) {
    const auto& m = maps[i];
    bool file = !m.path.empty() && m.path[0] == '/' && m.inode != 0;
    bool vdso = m.path == "[vdso]";
    if (!file && !vdso) continue;
    if (!groups.empty() && file && groups.back().last + 1 == i && maps[groups.back().first].path == m.path &&
        maps[groups.back().first].inode == m.inode) {
      groups.back().last = i;
      groups.back().code |= m.executable;
      continue;
    }
    groups.push_back({i, i, m.executable});
  }

  std::deque<ModuleFile> files;
  dwfl_report_begin(dwfl_);
  for (const auto& g : groups) {
    if (!g.code) continue;
    const auto& first = maps[g.first];
    // libdwfl reads the vDSO's image from the process when its module is named "[vdso: PID]".
    const std::string name = first.path == "[vdso]" ? fmt::format("[vdso: {}]", pid_) : first.path;
    Dwfl_Module* module = dwfl_report_module(dwfl_, name.c_str(), first.start, maps[g.last].end);
    if (!module) continue;
    ModuleFile f;
    f.pid = pid_;
    f.path = first.path;
    f.inode = first.inode;
    f.start = first.start;
    f.end = first.end;
    f.vdso = first.path == "[vdso]";
    files.push_back(std::move(f));
    // libdwfl hands this to find_elf when it first needs the file.
    void** userdata = nullptr;
    dwfl_module_info(module, &userdata, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
    if (userdata) *userdata = &files.back();
  }
  dwfl_report_end(dwfl_, nullptr, nullptr);
  // Modules that are gone (dlclose) were dropped by dwfl_report_end, and the addresses cached
  // for them may now hold another file's code: forget all cached addresses then (rare).
  auto same = [](const ModuleFile& a, const ModuleFile& b) { return a.start == b.start && a.path == b.path; };
  bool lost = std::any_of(files_.begin(), files_.end(), [&](const ModuleFile& old) {
    return std::none_of(files.begin(), files.end(), [&](const ModuleFile& f) { return same(old, f); });
  });
  files_.swap(files);
  stats_.modules = files_.size();
  if (lost) {
    by_pc_.clear();
    chains_.clear();
    fde_starts_.clear();
    named_ranges_.clear();
    functions_.clear();
    inlined_.clear();
  }
  return true;
}

uint32_t Symbolizer::intern(Symbol symbol) {
  std::string key = fmt::format("{}\x1f{}\x1f{}\x1f{}", symbol.function, symbol.module, symbol.source, symbol.line);
  auto [it, inserted] = symbol_ids_.try_emplace(std::move(key), static_cast<uint32_t>(symbols_.size()));
  if (inserted) symbols_.push_back(std::move(symbol));
  return it->second;
}

void Symbolizer::name(uint64_t pc, std::vector<uint32_t>& out) {
  ++stats_.symbol_lookups;
  auto it = by_pc_.find(pc);
  if (it != by_pc_.end()) {
    ++stats_.symbol_cache_hits;
    out.insert(out.end(), chains_.begin() + it->second.first, chains_.begin() + it->second.first + it->second.second);
    return;
  }
  if (by_pc_.size() >= kMaxCachedAddresses) {
    by_pc_.clear();
    chains_.clear();
  }
  size_t from = out.size();
  const int64_t start = monotonic_ns();
  resolve(pc, out);
  stats_.symbol_ns += monotonic_ns() - start;
  // An address in no module known yet (a library loaded since the maps were read, which are read
  // again at most every 100 ms) is not remembered as unknown: it is named once its module is.
  if (out.size() == from + 1 && !symbols_[out.back()].named && symbols_[out.back()].module.empty()) return;
  by_pc_[pc] = {static_cast<uint32_t>(chains_.size()), static_cast<uint32_t>(out.size() - from)};
  chains_.insert(chains_.end(), out.begin() + static_cast<long>(from), out.end());
}

std::optional<std::string> Symbolizer::symbol_name(Dwfl_Module* module, uint64_t pc, uint64_t function_start) {
  // libdwfl searches the symbol table linearly (tens of microseconds in libpython): functions
  // already named are looked up here first.
  auto& known = named_ranges_[module];
  auto next = std::upper_bound(known.begin(), known.end(), pc, [](uint64_t a, const NamedRange& r) { return a < r.start; });
  if (next != known.begin() && pc < (next - 1)->end) return (next - 1)->name;
  GElf_Off offset = 0;
  GElf_Sym sym;
  const char* name = dwfl_module_addrinfo(module, pc, &offset, &sym, nullptr, nullptr, nullptr);
  if (!name || !*name) return std::nullopt;
  // A stripped file keeps only its exported symbols: the nearest one before an address in a
  // static function is another function. Trust a symbol that covers the address, or one without
  // a size that starts where the address's CFI says its function starts.
  bool covers = sym.st_size > 0 ? offset < sym.st_size : (function_start != 0 && pc - offset == function_start);
  if (!covers) return std::nullopt;
  // .dynsym names carry their symbol version (clock_nanosleep@GLIBC_2.2.5): not part of the name.
  std::string plain = name;
  size_t at = plain.find('@');
  if (at != std::string::npos && at > 0) plain.resize(at);
  std::string result = without_cold_suffix(demangle(plain.c_str()));
  if (sym.st_size > 0 && known.size() < kMaxCachedAddresses) known.insert(next, {pc - offset, pc - offset + sym.st_size, result});
  return result;
}

namespace {

// Calls a function for each [low, high) address range of a DIE (DW_AT_low_pc/high_pc or DW_AT_ranges).
template <class F>
void for_each_range(Dwarf_Die* die, F&& f) {
  Dwarf_Addr base = 0, low = 0, high = 0;
  ptrdiff_t offset = 0;
  int guard = 0;
  while ((offset = dwarf_ranges(die, offset, &base, &low, &high)) > 0 && ++guard < 4096) f(low, high);
}

}  // namespace

// The functions of a compilation unit with code, by address: found by walking its top level (and
// namespaces and classes, where C++ puts definitions), once per unit.
const std::vector<Symbolizer::FunctionRange>& Symbolizer::functions_of(Dwarf_Die* cu) {
  auto [it, inserted] = functions_.try_emplace(std::make_pair(dwarf_cu_getdwarf(cu->cu), dwarf_dieoffset(cu)));
  if (!inserted) return it->second;
  auto& out = it->second;
  std::vector<Dwarf_Die> pending;
  Dwarf_Die child;
  if (dwarf_child(cu, &child) == 0) pending.push_back(child);
  while (!pending.empty() && out.size() < (1u << 20)) {
    Dwarf_Die die = pending.back();
    pending.pop_back();
    Dwarf_Die sibling;
    if (dwarf_siblingof(&die, &sibling) == 0) pending.push_back(sibling);
    int tag = dwarf_tag(&die);
    if (tag == DW_TAG_subprogram) {
      for_each_range(&die, [&](uint64_t low, uint64_t high) { out.push_back({low, high, dwarf_dieoffset(&die)}); });
    } else if (tag == DW_TAG_namespace || tag == DW_TAG_class_type || tag == DW_TAG_structure_type ||
               tag == DW_TAG_union_type) {
      if (dwarf_child(&die, &child) == 0) pending.push_back(child);
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.low < b.low; });
  return out;
}

// The calls inlined into one function, walked once: each with its address ranges, the call it
// sits in, its name and where it was called. Listed parents first (a depth-first walk), so the
// last call holding an address is the innermost one there.
const Symbolizer::InlinedCalls& Symbolizer::inlined_calls(Dwarf_Die* cu, Dwarf_Die* function) {
  auto [it, inserted] = inlined_.try_emplace(std::make_pair(dwarf_cu_getdwarf(cu->cu), dwarf_dieoffset(function)));
  if (!inserted) return it->second;
  InlinedCalls& out = it->second;
  out.name = die_name(function);
  Dwarf_Files* files = nullptr;
  size_t file_count = 0;
  bool have_files = dwarf_getsrcfiles(cu, &files, &file_count) == 0;
  struct Pending {
    Dwarf_Die die;
    int32_t parent;
  };
  std::vector<Pending> pending;
  Dwarf_Die child;
  if (dwarf_child(function, &child) == 0) pending.push_back({child, -1});
  while (!pending.empty() && out.calls.size() < (1u << 16)) {
    Pending p = pending.back();
    pending.pop_back();
    // The sibling waits below the children pushed next: a depth-first walk, parents first.
    Dwarf_Die sibling;
    if (dwarf_siblingof(&p.die, &sibling) == 0) pending.push_back({sibling, p.parent});
    int tag = dwarf_tag(&p.die);
    if (tag == DW_TAG_inlined_subroutine) {
      InlinedCall call;
      call.parent = p.parent;
      call.name = die_name(&p.die);
      Dwarf_Attribute attr;
      Dwarf_Word value = 0;
      if (dwarf_formudata(dwarf_attr(&p.die, DW_AT_call_line, &attr), &value) == 0) call.call_line = static_cast<int>(value);
      if (have_files && dwarf_formudata(dwarf_attr(&p.die, DW_AT_call_file, &attr), &value) == 0 && value < file_count) {
        if (const char* f = dwarf_filesrc(files, value, nullptr, nullptr)) call.call_file = f;
      }
      for_each_range(&p.die, [&](uint64_t low, uint64_t high) { call.ranges.push_back({low, high}); });
      out.calls.push_back(std::move(call));
      if (dwarf_child(&p.die, &child) == 0) pending.push_back({child, static_cast<int32_t>(out.calls.size() - 1)});
    } else if (tag == DW_TAG_lexical_block) {
      if (dwarf_child(&p.die, &child) == 0) pending.push_back({child, p.parent});
    }
  }
  return out;
}

void Symbolizer::inline_chain(Dwfl_Module* module, uint64_t pc, std::vector<Located>& chain) {
  Dwarf_Addr bias = 0;
  Dwarf_Die* cu = dwfl_module_addrdie(module, pc, &bias);
  if (!cu) return;
  const uint64_t at = pc - bias;
  const auto& functions = functions_of(cu);
  auto next = std::upper_bound(functions.begin(), functions.end(), at, [](uint64_t a, const FunctionRange& f) { return a < f.low; });
  // Ranges may nest (a function's split-off part inside another's span): the nearest that holds pc.
  const FunctionRange* found = nullptr;
  for (auto f = next; f != functions.begin() && !found;) {
    --f;
    if (at >= f->low && at < f->high) found = &*f;
    if (next - f > 64) break;
  }
  if (!found) return;
  Dwarf_Die function;
  if (!dwarf_offdie(dwarf_cu_getdwarf(cu->cu), found->die, &function)) return;
  const InlinedCalls& calls = inlined_calls(cu, &function);
  int32_t innermost = -1;
  for (int32_t i = 0; i < static_cast<int32_t>(calls.calls.size()); ++i)
    for (const auto& [low, high] : calls.calls[i].ranges)
      if (at >= low && at < high) innermost = i;
  // Where the innermost call is: the line table. Each inlined call's caller is where that call
  // was written (DW_AT_call_file / DW_AT_call_line).
  std::string source;
  int line = 0;
  if (Dwfl_Line* l = dwfl_module_getsrc(module, pc)) {
    const char* file = dwfl_lineinfo(l, nullptr, &line, nullptr, nullptr, nullptr);
    if (file) source = file;
  }
  for (int32_t i = innermost; i >= 0 && chain.size() < 64; i = calls.calls[i].parent) {
    const InlinedCall& call = calls.calls[i];
    chain.push_back({call.name, source, line});
    source = call.call_file;
    line = call.call_line;
  }
  chain.push_back({calls.name, source, line});
}

const std::vector<uint64_t>& Symbolizer::fde_starts(Dwfl_Module* module) {
  auto [it, inserted] = fde_starts_.try_emplace(module);
  if (!inserted) return it->second;
  // .eh_frame_hdr's binary search table (found through PT_GNU_EH_FRAME, which stripping keeps):
  // the start address of every function that has CFI, sorted. Only its usual encoding is read:
  // signed 4-byte offsets from the header's own address.
  Dwarf_Addr bias = 0;
  Elf* elf = dwfl_module_getelf(module, &bias);
  size_t count = 0;
  if (!elf || elf_getphdrnum(elf, &count) != 0) return it->second;
  for (size_t i = 0; i < count; ++i) {
    GElf_Phdr phdr;
    if (!gelf_getphdr(elf, static_cast<int>(i), &phdr) || phdr.p_type != PT_GNU_EH_FRAME) continue;
    Elf_Data* data = elf_getdata_rawchunk(elf, static_cast<int64_t>(phdr.p_offset), phdr.p_filesz, ELF_T_BYTE);
    if (!data || data->d_size < 12) break;
    const auto* b = static_cast<const uint8_t*>(data->d_buf);
    constexpr uint8_t kUdata4 = 0x03, kSdata4 = 0x0b, kDatarelSdata4 = 0x3b;
    if (b[0] != 1 || (b[2] != kUdata4 && b[2] != kSdata4) || b[3] != kDatarelSdata4) break;
    // b[1] encodes the pointer to .eh_frame (4 bytes in every encoding we accept here).
    uint32_t n = 0;
    std::memcpy(&n, b + 8, 4);
    if (12 + uint64_t(n) * 8 > data->d_size) break;
    it->second.reserve(n);
    for (uint32_t k = 0; k < n; ++k) {
      int32_t rel = 0;
      std::memcpy(&rel, b + 12 + uint64_t(k) * 8, 4);
      it->second.push_back(phdr.p_vaddr + static_cast<int64_t>(rel) + bias);
    }
    std::sort(it->second.begin(), it->second.end());
    break;
  }
  return it->second;
}

uint64_t Symbolizer::cfi_function_start(Dwfl_Module* module, uint64_t pc) {
  // The table says where functions start, not where they end: only an address that has CFI of
  // its own (dwarf_cfi_addrframe) belongs to the last function that starts before it.
  Dwarf_Addr cfi_bias = 0;
  Dwarf_CFI* cfi = dwfl_module_eh_cfi(module, &cfi_bias);
  Dwarf_Frame* frame = nullptr;
  if (!cfi || dwarf_cfi_addrframe(cfi, pc - cfi_bias, &frame) != 0) return 0;
  std::free(frame);
  const auto& starts = fde_starts(module);
  auto at = std::upper_bound(starts.begin(), starts.end(), pc);
  return at == starts.begin() ? 0 : *(at - 1);
}

Dwfl_Module* Symbolizer::module_at(uint64_t pc) {
  Dwfl_Module* module = dwfl_addrmodule(dwfl_, pc);
  Dwarf_Addr low = 0, high = 0;
  if (module && dwfl_module_info(module, nullptr, &low, &high, nullptr, nullptr, nullptr, nullptr) && low <= pc && pc < high)
    return module;
  return nullptr;
}

void Symbolizer::resolve(uint64_t pc, std::vector<uint32_t>& out) {
  Dwfl_Module* module = module_at(pc);
  if (!module) {
    refresh();  // a library loaded since (dlopen): read the maps again (throttled)
    module = module_at(pc);
  }
  if (!module) {
    Symbol s;
    s.function = "[unknown]";
    out.push_back(intern(std::move(s)));
    return;
  }
  const char* module_name = dwfl_module_info(module, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  std::string module_path = module_name ? module_name : "";
  if (module_path.rfind("[vdso", 0) == 0) module_path = "[vdso]";

  // The start of the function holding pc, from its CFI: what names a function without a symbol.
  const uint64_t function_start = cfi_function_start(module, pc);

  std::optional<std::string> sym = symbol_name(module, pc, function_start);
  // The evaluation loop's frames are replaced by the Python frames it ran: the calls inlined into
  // it (the largest function of all, at every bytecode's address) are not worth their lookup.
  std::vector<Located> chain;
  if (options_.inline_frames && !(sym && is_eval_function(*sym))) inline_chain(module, pc, chain);

  if (chain.empty()) {
    Symbol s;
    s.module = module_path;
    if (sym) {
      s.function = *sym;
      s.named = true;
      if (Dwfl_Line* l = dwfl_module_getsrc(module, pc)) {
        const char* file = dwfl_lineinfo(l, nullptr, &s.line, nullptr, nullptr, nullptr);
        if (file) s.source = file;
      }
    } else {
      s.function = unnamed(module, module_path, function_start ? function_start : pc);
    }
    s.eval = is_eval_function(s.function);
    out.push_back(intern(std::move(s)));
    return;
  }
  for (size_t i = 0; i < chain.size(); ++i) {
    Symbol s;
    s.module = module_path;
    s.source = std::move(chain[i].source);
    s.line = chain[i].line;
    const bool physical = i + 1 == chain.size();
    // The function itself as the symbol table names it (one name for its hot and cold parts,
    // C++ qualified), its inlined calls as DWARF does.
    s.function = physical && sym ? *sym : std::move(chain[i].function);
    s.named = !s.function.empty();
    if (!s.named) s.function = unnamed(module, module_path, function_start ? function_start : pc);
    s.eval = physical && is_eval_function(s.function);
    out.push_back(intern(std::move(s)));
  }
}

}  // namespace swprof::native::detail
