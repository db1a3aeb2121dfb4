#include <zstd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "snapshot/format.h"
#include "swprof/common.h"
#include "swprof/snapshot.h"

namespace swprof::snapshot {

namespace {

constexpr size_t kFlushSamples = 20000;  // also flush when this many samples are pending
constexpr int64_t kFlushIntervalUs = 1000000;

uint64_t hash_stack(std::span<const uint32_t> frames) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint32_t f : frames) {
    h ^= f;
    h *= 0x100000001b3ull;
  }
  return h ^ frames.size();
}

}  // namespace

Writer::Writer(const std::string& path, const pb::Header& header) : path_(path) {
  file_ = std::fopen(path.c_str(), "wb");
  if (!file_) throw UserError(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  zstd_ = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(static_cast<ZSTD_CCtx*>(zstd_), ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(static_cast<ZSTD_CCtx*>(zstd_), ZSTD_c_checksumFlag, 1);
  if (std::fwrite(format::kMagic, 1, sizeof format::kMagic, file_) != sizeof format::kMagic)
    failed_ = true;
  bytes_written_ = sizeof format::kMagic;
  write_record(format::kHeader, header);
  if (failed_) throw UserError(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  last_flush_us_ = monotonic_us();
}

Writer::~Writer() {
  if (file_) std::fclose(file_);
  ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(zstd_));
}

void Writer::write_record(uint8_t kind, const google::protobuf::Message& message) {
  if (failed_) return;
  serialized_.clear();
  message.SerializeToString(&serialized_);
  compressed_.resize(ZSTD_compressBound(serialized_.size()));
  size_t n = ZSTD_compress2(static_cast<ZSTD_CCtx*>(zstd_), compressed_.data(), compressed_.size(),
                            serialized_.data(), serialized_.size());
  if (ZSTD_isError(n)) {
    failed_ = true;
    return;
  }
  unsigned char head[format::kRecordHeaderSize];
  uint32_t size = static_cast<uint32_t>(n);
  for (int i = 0; i < 4; ++i) head[i] = static_cast<unsigned char>(size >> (8 * i));
  head[4] = kind;
  // One record is flushed to the kernel at once, so a killed recorder leaves whole records.
  if (std::fwrite(head, 1, sizeof head, file_) != sizeof head || std::fwrite(compressed_.data(), 1, n, file_) != n ||
      std::fflush(file_) != 0) {
    failed_ = true;
    return;
  }
  bytes_written_ += sizeof head + n;
}

uint32_t Writer::intern_string(std::string_view s) {
  auto it = strings_.find(std::string(s));
  if (it != strings_.end()) return it->second;
  uint32_t id = static_cast<uint32_t>(strings_.size());
  string_by_id_.push_back(&strings_.emplace(std::string(s), id).first->first);
  pending_.add_strings(std::string(s));
  return id;
}

uint32_t Writer::intern_frame(const Frame& f) {
  auto [it, inserted] = frames_.try_emplace(f, static_cast<uint32_t>(frames_.size()));
  if (inserted) {
    frame_by_id_.push_back(f);
    auto* pf = pending_.add_frames();
    pf->set_function(f.function);
    pf->set_file(f.file);
    pf->set_line(f.line);
    pf->set_first_line(f.first_line);
  }
  return it->second;
}

uint32_t Writer::intern_stack(std::span<const uint32_t> frames) {
  uint64_t h = hash_stack(frames);
  auto [lo, hi] = stacks_.equal_range(h);
  for (auto it = lo; it != hi; ++it) {
    uint32_t id = it->second;
    std::span<const uint32_t> existing(stack_pool_.data() + stack_offsets_[id],
                                       stack_pool_.data() + stack_offsets_[id + 1]);
    if (std::equal(existing.begin(), existing.end(), frames.begin(), frames.end())) return id;
  }
  uint32_t id = static_cast<uint32_t>(stack_offsets_.size() - 1);
  stack_pool_.insert(stack_pool_.end(), frames.begin(), frames.end());
  stack_offsets_.push_back(static_cast<uint32_t>(stack_pool_.size()));
  stacks_.emplace(h, id);
  auto* ps = pending_.add_stacks();
  ps->mutable_frames()->Add(frames.begin(), frames.end());
  return id;
}

uint32_t Writer::add_thread(int64_t tid, std::string_view name) {
  auto* t = pending_.add_threads();
  t->set_tid(tid);
  t->set_name(std::string(name));
  return threads_++;
}

void Writer::set_thread_name(uint32_t thread, std::string_view name) {
  auto* n = pending_.add_thread_names();
  n->set_thread(thread);
  n->set_name(std::string(name));
}

void Writer::add_segment(const Segment& s) {
  auto* ps = pending_.add_segments();
  ps->set_id(s.id);
  ps->set_thread(s.thread);
  ps->set_start_us(s.start_us);
  ps->set_first_seen_us(s.first_seen_us);
  ps->set_start_bound_us(s.start_bound_us);
  ps->set_root_depth(s.root_depth);
  ps->set_name(s.name);
  ps->set_greenlet(s.greenlet);
  ps->set_task_id(s.task_id);
}

void Writer::end_segment(uint32_t id, int64_t end_us, int64_t gone_us, int64_t end_bound_us) {
  auto* e = pending_.add_segment_ends();
  e->set_id(id);
  e->set_end_us(end_us);
  e->set_gone_us(gone_us);
  e->set_end_bound_us(end_bound_us);
}

void Writer::add_sample(const Sample& s) {
  auto* p = pending_.mutable_samples();
  p->add_time_delta_us(s.time_us - last_sample_time_us_);
  last_sample_time_us_ = s.time_us;
  p->add_thread(s.thread);
  p->add_stack(s.stack);
  p->add_wall_us(static_cast<uint64_t>(std::max<int64_t>(0, s.wall_us)));
  p->add_cpu_us(static_cast<uint64_t>(std::max<int64_t>(0, s.cpu_us)));
  p->add_flags(s.flags);
  p->add_segment(s.segment);
  p->add_greenlet(s.greenlet);
  if (s.sequence >= 0) {
    // Imported dumps keep their sequence; the column exists only in chunks that have it.
    while (p->sequence_size() < p->thread_size() - 1) p->add_sequence(0);
    p->add_sequence(static_cast<uint32_t>(s.sequence) + 1);
  } else if (p->sequence_size()) {
    p->add_sequence(0);
  }
  ++pending_samples_;
  ++samples_written_;
}

void Writer::maybe_flush(bool force) {
  int64_t now = monotonic_us();
  if (!force && pending_samples_ < kFlushSamples && now - last_flush_us_ < kFlushIntervalUs) return;
  last_flush_us_ = now;
  if (pending_.ByteSizeLong() == 0) return;
  write_record(format::kChunk, pending_);
  pending_.Clear();
  pending_samples_ = 0;
  last_sample_time_us_ = 0;  // each chunk's time deltas start from the recording start
}

void Writer::finish(const pb::Footer& footer) {
  maybe_flush(true);
  write_record(format::kFooter, footer);
  if (file_ && std::fclose(file_) != 0) failed_ = true;
  file_ = nullptr;
  if (failed_) throw UserError(fmt::format("writing {} failed: {}", path_, std::strerror(errno ? errno : EIO)));
}

}  // namespace swprof::snapshot
