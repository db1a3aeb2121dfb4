// Just enough ELF to find CPython's globals: symbols (.dynsym, .symtab), sections, PT_LOAD
// segments for the load bias. Reads the file through a read-only mapping; every offset taken
// from the file is bounds-checked.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "swprof/target.h"

namespace swprof::target {

class ElfFile {
 public:
  // nullopt when the file cannot be opened or is not a 64-bit little-endian x86-64/aarch64 ELF.
  static std::optional<ElfFile> open(const std::string& path);
  ElfFile(ElfFile&&) noexcept;
  ElfFile& operator=(ElfFile&&) noexcept;
  ~ElfFile();

  struct Section {
    std::string name;
    uint64_t address = 0, size = 0, file_offset = 0;
    uint32_t type = 0;
    uint32_t link = 0;       // sh_link: a symbol table's string table
    uint64_t entry_size = 0;
  };
  struct Segment {
    uint64_t vaddr = 0, memsz = 0, file_offset = 0, filesz = 0;
    bool executable = false, writable = false;
  };

  const std::string& path() const { return path_; }
  bool position_independent() const { return pie_; }  // ET_DYN
  bool has_symtab() const;
  // Address (unbiased) of a data or function symbol from .dynsym, then .symtab.
  std::optional<uint64_t> symbol(std::string_view name) const;
  // From .dynsym only: a few pages, where .symtab (with debug information) can be megabytes that a
  // cold page cache reads from disk.
  std::optional<uint64_t> dynamic_symbol(std::string_view name) const;
  std::optional<Section> section(std::string_view name) const;
  const std::vector<Segment>& segments() const { return segments_; }

  // Bytes of the file image at an unbiased virtual address (only file-backed parts).
  std::string_view bytes_at(uint64_t vaddr, uint64_t size) const;
  std::string_view section_bytes(const Section& s) const;

  // The load bias of this file in a process, from its mappings; nullopt if not mapped.
  std::optional<uint64_t> load_bias(const std::vector<Mapping>& maps, const std::string& mapped_path) const;

 private:
  ElfFile() = default;
  std::optional<uint64_t> lookup_in(uint32_t symtab_type, std::string_view name) const;

  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool pie_ = false;
  std::vector<Section> sections_;
  std::vector<Segment> segments_;
};

}  // namespace swprof::target
