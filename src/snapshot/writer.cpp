#include <pthread.h>
#include <signal.h>
#include <zstd.h>

#include <algorithm>
#include <utility>

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

void Writer::ZstdFree::operator()(void* context) const { ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(context)); }

Writer::Writer(const std::string& path, const pb::Header& header, OutputFile::Mode mode)
    : out_(path, mode), zstd_(ZSTD_createCCtx()) {
  auto* cctx = static_cast<ZSTD_CCtx*>(zstd_.get());
  if (!cctx) throw std::bad_alloc();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  if (out_.write({reinterpret_cast<const char*>(format::kMagic), sizeof format::kMagic}))
    bytes_written_ = sizeof format::kMagic;
  if (!write_record(format::kHeader, header)) throw UserError(out_.error_message());
  last_flush_us_ = monotonic_us();
  // The chunk thread takes no signal (the sampling thread's sleep must wake up for SIGINT) and
  // runs at the creator's ordinary priority: the recorder makes only its sampling thread real-time,
  // after this.
  sigset_t all, before;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &before);
  chunk_thread_ = std::thread([this] { write_chunks(); });
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
}

Writer::~Writer() { stop_chunk_thread(); }

void Writer::write_chunks() {
  std::unique_lock lock(chunks_mutex_);
  for (;;) {
    chunks_changed_.wait(lock, [this] { return closing_ || !chunks_.empty(); });
    if (chunks_.empty()) return;  // closing, and all handed over is written
    HandedOver next = std::move(chunks_.front());
    chunks_.pop_front();
    lock.unlock();
    std::exception_ptr error;
    try {
      // (Sizing a chunk walks all of it: here, not on the sampling thread. An empty one is left out.)
      if (next.chunk->ByteSizeLong() > 0 && write_record(format::kChunk, *next.chunk))
        samples_in_file_ += next.samples;
      next.chunk->Clear();
    } catch (...) {
      error = std::current_exception();
      next.chunk.reset();
    }
    lock.lock();
    if (error && !chunk_error_) chunk_error_ = error;
    if (next.chunk && spare_.size() < kChunksInFlight) spare_.push_back(std::move(next.chunk));
    chunks_changed_.notify_all();
  }
}

void Writer::stop_chunk_thread() {
  if (!chunk_thread_.joinable()) return;
  {
    std::lock_guard lock(chunks_mutex_);
    closing_ = true;
  }
  chunks_changed_.notify_all();
  chunk_thread_.join();
}

void Writer::rethrow_chunk_error() {
  std::exception_ptr error;
  {
    std::lock_guard lock(chunks_mutex_);
    error = std::exchange(chunk_error_, nullptr);
  }
  if (error) std::rethrow_exception(error);
}

std::string Writer::error_message() const { return failed() ? out_.error_message() : std::string(); }

bool Writer::write_record(uint8_t kind, const google::protobuf::Message& message) {
  if (out_.failed()) return false;
  serialized_.clear();
  message.SerializeToString(&serialized_);
  // One write() per record: the 5-byte head and the compressed payload together.
  record_.resize(format::kRecordHeaderSize + ZSTD_compressBound(serialized_.size()));
  size_t n = ZSTD_compress2(static_cast<ZSTD_CCtx*>(zstd_.get()), record_.data() + format::kRecordHeaderSize,
                            record_.size() - format::kRecordHeaderSize, serialized_.data(), serialized_.size());
  if (ZSTD_isError(n)) throw std::bad_alloc();  // the only way compression into a bound-sized buffer fails
  uint32_t size = static_cast<uint32_t>(n);
  for (int i = 0; i < 4; ++i) record_[i] = static_cast<char>(size >> (8 * i));
  record_[4] = static_cast<char>(kind);
  record_.resize(format::kRecordHeaderSize + n);
  if (!out_.write(record_)) {
    // A record cut short by a full disk would read as a truncated file anyway; removing it keeps
    // the file exactly the whole records before it (and gives the space back).
    out_.truncate(bytes_written_);
    failed_.store(true, std::memory_order_release);  // after out_ has its error: error_message()
    return false;
  }
  bytes_written_ += record_.size();
  return true;
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

uint32_t Writer::add_thread(int64_t tid, std::string_view name, uint32_t process) {
  auto* t = pending_.add_threads();
  t->set_tid(tid);
  t->set_name(std::string(name));
  t->set_process(process);
  return threads_++;
}

uint32_t Writer::add_process(const Process& p) {
  auto* pp = pending_.add_processes();
  pp->set_pid(p.pid);
  for (const auto& a : p.command) pp->add_command(a);
  pp->set_python_version(p.python_version);
  pp->set_note(p.note);
  pp->set_parent(p.parent);
  pp->set_found_us(p.found_us);
  return ++processes_;
}

void Writer::set_thread_name(uint32_t thread, std::string_view name) {
  auto* n = pending_.add_thread_names();
  n->set_thread(thread);
  n->set_name(std::string(name));
}

void Writer::add_context(const Context& c) {
  auto* pc = pending_.add_contexts();
  pc->set_index(c.index);
  pc->set_kind(static_cast<uint32_t>(c.kind));
  pc->set_name(c.name);
  pc->set_thread(c.thread);
  pc->set_address(c.address);
}

void Writer::add_segment(const Segment& s) {
  ++segments_;
  auto* ps = pending_.add_segments();
  ps->set_id(s.id);
  ps->set_thread(s.thread);
  ps->set_start_us(s.start_us);
  ps->set_first_seen_us(s.first_seen_us);
  ps->set_start_bound_us(s.start_bound_us);
  ps->set_began_before_recording(s.began_before_recording);
  ps->set_root_depth(s.root_depth);
  ps->set_name(s.name);
  ps->set_greenlet(s.greenlet);
  ps->set_task_id(s.task_id);
}

void Writer::end_segment(uint32_t id, int64_t end_us, int64_t gone_us, int64_t end_bound_us, bool still_running) {
  auto* e = pending_.add_segment_ends();
  e->set_id(id);
  e->set_end_us(end_us);
  e->set_gone_us(gone_us);
  e->set_end_bound_us(end_bound_us);
  e->set_still_running(still_running);
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
  // Columns that most recordings do not need exist only in chunks that have such samples.
  auto sparse = [&](auto* column, auto value) {
    if (value) {
      while (column->size() < p->thread_size() - 1) column->Add(0);
      column->Add(value);
    } else if (column->size()) {
      column->Add(0);
    }
  };
  sparse(p->mutable_context_depth(), s.context_depth);
  // Imported dumps keep their sequence, stored + 1 so that 0 is "none".
  sparse(p->mutable_sequence(), s.sequence >= 0 ? static_cast<uint32_t>(s.sequence) + 1 : 0u);
  sparse(p->mutable_offcpu_reason(), s.offcpu_reason);
  sparse(p->mutable_runqueue_us(), static_cast<uint64_t>(std::max<int64_t>(0, s.runqueue_us)));
  ++pending_samples_;
  ++samples_written_;
}

void Writer::maybe_flush(bool force) {
  int64_t now = monotonic_us();
  if (!force && pending_samples_ < kFlushSamples && now - last_flush_us_ < kFlushIntervalUs) return;
  last_flush_us_ = now;
  rethrow_chunk_error();
  {
    std::unique_lock lock(chunks_mutex_);
    chunks_changed_.wait(lock, [this] { return chunks_.size() < kChunksInFlight; });
    HandedOver chunk{nullptr, pending_samples_};
    if (!spare_.empty()) {
      chunk.chunk = std::move(spare_.back());
      spare_.pop_back();
    } else {
      chunk.chunk = std::make_unique<pb::Chunk>();
    }
    chunk.chunk->Swap(&pending_);  // pending_ takes the spare's cleared buffers
    chunks_.push_back(std::move(chunk));
  }
  chunks_changed_.notify_all();
  pending_samples_ = 0;
  last_sample_time_us_ = 0;  // each chunk's time deltas start from the recording start
}

bool Writer::finish(const pb::Footer& footer, const std::function<void(const std::string& written)>& verify) {
  maybe_flush(true);
  stop_chunk_thread();  // every chunk is on disk (or the disk refused) before the footer
  rethrow_chunk_error();
  write_record(format::kFooter, footer);
  if (out_.failed()) return false;
  try {
    out_.commit(verify);
  } catch (const UserError&) {
    if (!out_.failed()) throw;  // refused by `verify`, not by the disk
    return false;
  }
  return true;
}

}  // namespace swprof::snapshot
