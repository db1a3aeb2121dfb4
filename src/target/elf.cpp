#include "swprof/elf.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace swprof::target {

namespace {

template <class T>
bool fits(size_t file_size, uint64_t offset, uint64_t count = 1) {
  return offset <= file_size && count <= (file_size - offset) / sizeof(T);
}

}  // namespace

std::optional<ElfFile> ElfFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(Elf64_Ehdr))) {
    close(fd);
    return std::nullopt;
  }
  void* map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return std::nullopt;
  ElfFile elf;
  elf.path_ = path;
  elf.data_ = static_cast<const uint8_t*>(map);
  elf.size_ = static_cast<size_t>(st.st_size);

  Elf64_Ehdr eh;
  std::memcpy(&eh, elf.data_, sizeof eh);
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_ident[EI_DATA] != ELFDATA2LSB || (eh.e_machine != EM_X86_64 && eh.e_machine != EM_AARCH64))
    return std::nullopt;
  elf.pie_ = eh.e_type == ET_DYN;

  if (eh.e_phentsize == sizeof(Elf64_Phdr) && fits<Elf64_Phdr>(elf.size_, eh.e_phoff, eh.e_phnum)) {
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
      Elf64_Phdr ph;
      std::memcpy(&ph, elf.data_ + eh.e_phoff + i * sizeof ph, sizeof ph);
      if (ph.p_type != PT_LOAD) continue;
      elf.segments_.push_back({ph.p_vaddr, ph.p_memsz, ph.p_offset, ph.p_filesz, (ph.p_flags & PF_X) != 0,
                               (ph.p_flags & PF_W) != 0});
    }
  }
  if (eh.e_shentsize == sizeof(Elf64_Shdr) && fits<Elf64_Shdr>(elf.size_, eh.e_shoff, eh.e_shnum) &&
      eh.e_shstrndx < eh.e_shnum) {
    Elf64_Shdr strtab;
    std::memcpy(&strtab, elf.data_ + eh.e_shoff + eh.e_shstrndx * sizeof strtab, sizeof strtab);
    for (unsigned i = 0; i < eh.e_shnum; ++i) {
      Elf64_Shdr sh;
      std::memcpy(&sh, elf.data_ + eh.e_shoff + i * sizeof sh, sizeof sh);
      Section s;
      uint64_t name_off = strtab.sh_offset + sh.sh_name;
      if (strtab.sh_type == SHT_STRTAB && name_off < elf.size_ && sh.sh_name < strtab.sh_size) {
        const char* name = reinterpret_cast<const char*>(elf.data_ + name_off);
        s.name.assign(name, strnlen(name, elf.size_ - name_off));
      }
      s.address = sh.sh_addr;
      s.size = sh.sh_size;
      s.file_offset = sh.sh_offset;
      s.type = sh.sh_type;
      s.link = sh.sh_link;
      s.entry_size = sh.sh_entsize;
      elf.sections_.push_back(std::move(s));
    }
  }
  return elf;
}

ElfFile::ElfFile(ElfFile&& o) noexcept { *this = std::move(o); }

ElfFile& ElfFile::operator=(ElfFile&& o) noexcept {
  if (this != &o) {
    if (data_) munmap(const_cast<uint8_t*>(data_), size_);
    path_ = std::move(o.path_);
    data_ = o.data_;
    size_ = o.size_;
    pie_ = o.pie_;
    sections_ = std::move(o.sections_);
    segments_ = std::move(o.segments_);
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

ElfFile::~ElfFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}

bool ElfFile::has_symtab() const {
  for (const auto& s : sections_)
    if (s.type == SHT_SYMTAB) return true;
  return false;
}

std::optional<uint64_t> ElfFile::lookup_in(uint32_t symtab_type, std::string_view name) const {
  for (const auto& s : sections_) {
    if (s.type != symtab_type) continue;
    if (s.link >= sections_.size() || s.entry_size != sizeof(Elf64_Sym)) continue;
    const Section& strs = sections_[s.link];
    if (!fits<Elf64_Sym>(size_, s.file_offset, s.size / sizeof(Elf64_Sym))) continue;
    if (strs.file_offset > size_ || strs.size > size_ - strs.file_offset) continue;
    const char* strbase = reinterpret_cast<const char*>(data_ + strs.file_offset);
    size_t count = s.size / sizeof(Elf64_Sym);
    for (size_t i = 0; i < count; ++i) {
      Elf64_Sym sym;
      std::memcpy(&sym, data_ + s.file_offset + i * sizeof sym, sizeof sym);
      if (sym.st_name >= strs.size || sym.st_shndx == SHN_UNDEF || sym.st_value == 0) continue;
      const char* sname = strbase + sym.st_name;
      size_t max = strs.size - sym.st_name;
      size_t len = strnlen(sname, max);
      if (len == name.size() && std::memcmp(sname, name.data(), len) == 0) return sym.st_value;
    }
  }
  return std::nullopt;
}

std::optional<uint64_t> ElfFile::dynamic_symbol(std::string_view name) const { return lookup_in(SHT_DYNSYM, name); }

std::optional<uint64_t> ElfFile::symbol(std::string_view name) const {
  if (auto v = lookup_in(SHT_DYNSYM, name)) return v;
  return lookup_in(SHT_SYMTAB, name);
}

std::optional<ElfFile::Section> ElfFile::section(std::string_view name) const {
  for (const auto& s : sections_)
    if (s.name == name) return s;
  return std::nullopt;
}

std::string_view ElfFile::bytes_at(uint64_t vaddr, uint64_t size) const {
  for (const auto& seg : segments_) {
    if (vaddr < seg.vaddr || vaddr - seg.vaddr >= seg.filesz) continue;
    uint64_t within = vaddr - seg.vaddr;
    uint64_t avail = seg.filesz - within;
    uint64_t off = seg.file_offset + within;
    if (off > size_) return {};
    uint64_t n = std::min<uint64_t>(std::min<uint64_t>(size, avail), size_ - off);
    return {reinterpret_cast<const char*>(data_ + off), static_cast<size_t>(n)};
  }
  return {};
}

std::string_view ElfFile::section_bytes(const Section& s) const {
  if (s.type == SHT_NOBITS || s.file_offset > size_) return {};
  uint64_t n = std::min<uint64_t>(s.size, size_ - s.file_offset);
  return {reinterpret_cast<const char*>(data_ + s.file_offset), static_cast<size_t>(n)};
}

std::optional<uint64_t> ElfFile::load_bias(const std::vector<Mapping>& maps,
                                           const std::string& mapped_path) const {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  for (const auto& seg : segments_) {
    uint64_t seg_page_off = seg.file_offset & ~(page - 1);
    for (const auto& m : maps) {
      if (m.path != mapped_path || m.file_offset != seg_page_off) continue;
      uint64_t bias = m.start - (seg.vaddr & ~(page - 1));
      if (!pie_ && bias != 0) continue;  // a fixed-address executable is loaded where it says
      return bias;
    }
  }
  return std::nullopt;
}

}  // namespace swprof::target
