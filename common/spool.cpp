// Spool on RocksDB: group-committed appends, whole-transaction visibility, cursors and trimming.
#include "common/spool.h"
#include "common/spool_options.h"

#include <openssl/evp.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

namespace lifeline {
namespace fs = std::filesystem;

namespace {

constexpr char kFormat[] = "lifeline-spool-v1";
constexpr char kEventsCf[] = "events";
constexpr size_t kStateSize = 8 * 4 + 32 * 2 + 8 * 2;

void PutU64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}

uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string SeqKey(uint64_t seq) {
  std::string k;
  PutU64(&k, seq);
  return k;
}

// The same key in a stack buffer, for the append path.
struct SeqKeyBuf {
  char bytes[8];
  explicit SeqKeyBuf(uint64_t seq) {
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((seq >> ((7 - i) * 8)) & 0xff);
  }
  rocksdb::Slice slice() const { return rocksdb::Slice(bytes, 8); }
};

// In-memory mirror of the "state" record.
struct SpoolState {
  uint64_t last_seq = 0;
  uint64_t complete_seq = 0;
  uint64_t complete_commit_lsn = 0;
  int64_t complete_commit_time_us = 0;
  EventHash complete_hash{};
  EventHash tail_hash{};
  uint64_t live_events = 0;
  uint64_t live_bytes = 0;
  // Of the events after complete_seq (an open transaction): counted into live_* only once the
  // transaction completes, so stats describe what readers can see.
  uint64_t open_events = 0;
  uint64_t open_bytes = 0;

  std::string Encode() const {
    std::string s;
    s.reserve(kStateSize);
    PutU64(&s, last_seq);
    PutU64(&s, complete_seq);
    PutU64(&s, complete_commit_lsn);
    PutU64(&s, static_cast<uint64_t>(complete_commit_time_us));
    s.append(reinterpret_cast<const char*>(complete_hash.data()), complete_hash.size());
    s.append(reinterpret_cast<const char*>(tail_hash.data()), tail_hash.size());
    PutU64(&s, live_events);
    PutU64(&s, live_bytes);
    return s;
  }

  static bool Decode(const std::string& s, SpoolState* out) {
    if (s.size() != kStateSize) return false;
    const char* p = s.data();
    out->last_seq = GetU64(p);
    out->complete_seq = GetU64(p + 8);
    out->complete_commit_lsn = GetU64(p + 16);
    out->complete_commit_time_us = static_cast<int64_t>(GetU64(p + 24));
    std::memcpy(out->complete_hash.data(), p + 32, 32);
    std::memcpy(out->tail_hash.data(), p + 64, 32);
    out->live_events = GetU64(p + 96);
    out->live_bytes = GetU64(p + 104);
    return true;
  }
};

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  if (s.IsNotFound()) return Status::NotFound(what + ": " + s.ToString());
  return Status::IOError(what + ": " + s.ToString());
}

// RocksDB's own log goes to the process log, not to a LOG file beside the data: on a full spool
// filesystem that file fails too, and the library aborts on its next write to it.
class RocksLog : public rocksdb::Logger {
 public:
  RocksLog() : rocksdb::Logger(rocksdb::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override { Logv(rocksdb::INFO_LEVEL, format, ap); }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char buf[1024];
    std::vsnprintf(buf, sizeof buf, format, ap);
    if (level >= rocksdb::ERROR_LEVEL) {
      spdlog::error("rocksdb: {}", buf);
    } else {
      spdlog::warn("rocksdb: {}", buf);
    }
  }
};

}  // namespace

rocksdb::Options SpoolRocksOptions() {
  rocksdb::Options o;
  static const auto log = std::make_shared<RocksLog>();
  o.info_log = log;
  o.create_if_missing = false;
  o.create_missing_column_families = false;
  o.compression = rocksdb::kLZ4Compression;
  o.max_open_files = -1;  // required by secondary instances; the spool has few files
  o.keep_log_file_num = 3;
  o.info_log_level = rocksdb::WARN_LEVEL;
  o.write_buffer_size = 64 << 20;
  // The spool is read front to back far more than by point lookups: larger blocks mean fewer
  // block reads, decompressions and checksums per event (4 KiB held about ten events).
  rocksdb::BlockBasedTableOptions table;
  table.block_size = 64 << 10;
  // Every block read is checksummed. Debian's RocksDB is built portable, so its CRC32C runs the
  // table-driven fallback; XXH3 is as strong a check for this and fast without CPU-specific
  // instructions. Tables written with CRC32C stay readable.
  table.checksum = rocksdb::kXXH3;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return o;
}

EventHash HashEventBytes(std::string_view bytes) {
  // OpenSSL 3 looks the algorithm up on every one-shot SHA256() call; on the append path that
  // lookup costs as much as the hash itself, so fetch it once and reuse a context per thread.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  struct Context {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Context() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Context context;
  EventHash h;
  unsigned int len = 0;
  if (sha256 == nullptr || context.ctx == nullptr ||
      EVP_DigestInit_ex2(context.ctx, sha256, nullptr) != 1 ||
      EVP_DigestUpdate(context.ctx, bytes.data(), bytes.size()) != 1 ||
      EVP_DigestFinal_ex(context.ctx, h.data(), &len) != 1 || len != h.size()) {
    // Only a broken OpenSSL installation gets here; the chain cannot be computed without it.
    std::abort();
  }
  return h;
}

Result<v1::ChangeEvent> ParseEvent(const SpoolRecord& record) {
  v1::ChangeEvent ev;
  if (!ev.ParseFromString(record.bytes)) {
    return Status::Corruption("event at seq " + std::to_string(record.seq) +
                              " is not a valid ChangeEvent (" +
                              std::to_string(record.bytes.size()) + " bytes)");
  }
  if (ev.seq() != record.seq) {
    return Status::Corruption("event stored at seq " + std::to_string(record.seq) +
                              " carries seq " + std::to_string(ev.seq()));
  }
  return ev;
}

struct Spool::Impl {
  std::unique_ptr<rocksdb::DB> db;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  rocksdb::ColumnFamilyHandle* events = nullptr;
  std::string secondary_dir;  // reader only; removed on close

  mutable std::mutex mu;
  mutable std::condition_variable appended;
  SpoolState state;  // guarded by mu

  ~Impl() {
    if (db) {
      if (events != nullptr) db->DestroyColumnFamilyHandle(events).PermitUncheckedError();
      if (meta != nullptr) db->DestroyColumnFamilyHandle(meta).PermitUncheckedError();
      db.reset();
    }
    if (!secondary_dir.empty()) {
      std::error_code ec;
      fs::remove_all(secondary_dir, ec);
    }
  }

  // True when neither column family holds a key (a database created but never written).
  bool Empty() const {
    for (auto* cf : {meta, events}) {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf));
      it->SeekToFirst();
      if (it->Valid()) return false;
    }
    return true;
  }

  Status LoadState() {
    std::string value;
    auto s = db->Get(rocksdb::ReadOptions(), meta, "state", &value);
    if (s.IsNotFound()) {
      state = SpoolState{};
      return Status::Ok();
    }
    if (!s.ok()) return FromRocks(s, "reading spool state");
    SpoolState loaded;
    if (!SpoolState::Decode(value, &loaded)) {
      return Status::Corruption("spool state record has " + std::to_string(value.size()) +
                                " bytes, expected " + std::to_string(kStateSize));
    }
    std::lock_guard lock(mu);
    loaded.open_events = 0;
    loaded.open_bytes = 0;
    state = loaded;
    return Status::Ok();
  }
};

Spool::Spool(std::unique_ptr<Impl> impl, std::string dir, bool writable)
    : impl_(std::move(impl)), dir_(std::move(dir)), writable_(writable) {}

Spool::~Spool() = default;

namespace {

// Opens the two column families; `secondary` selects a secondary (reader) instance.
Status OpenDb(const std::string& dir, bool secondary, const std::string& secondary_dir,
              std::unique_ptr<rocksdb::DB>* db, rocksdb::ColumnFamilyHandle** meta,
              rocksdb::ColumnFamilyHandle** events) {
  rocksdb::Options options = SpoolRocksOptions();
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions(options)},
      {kEventsCf, rocksdb::ColumnFamilyOptions(options)}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (secondary) {
    s = rocksdb::DB::OpenAsSecondary(options, dir, secondary_dir, cfs, &handles, &raw);
  } else {
    s = rocksdb::DB::Open(options, dir, cfs, &handles, &raw);
  }
  if (!s.ok()) {
    std::string msg = s.ToString();
    if (msg.find("lock") != std::string::npos || msg.find("LOCK") != std::string::npos) {
      return Status::FailedPrecondition(
          "spool " + dir + " is open for writing by another process (" + msg +
          "); stop that process, or read the spool with `lifeline spool inspect`");
    }
    return FromRocks(s, "opening spool " + dir);
  }
  db->reset(raw);
  *meta = handles[0];
  *events = handles[1];
  return Status::Ok();
}

// A spool directory must be absent, empty, or a RocksDB database carrying our format marker.
Status CheckSpoolDirectory(const std::string& dir, bool for_write) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    if (!for_write) {
      return Status::NotFound("spool directory " + dir +
                              " does not exist; pass the --spool of a capture daemon");
    }
    fs::create_directories(dir, ec);
    if (ec) {
      return Status::InvalidArgument("cannot create spool directory " + dir + ": " + ec.message() +
                                     "; choose a writable --spool path");
    }
    return Status::Ok();
  }
  if (!fs::is_directory(dir, ec)) {
    return Status::InvalidArgument("spool path " + dir + " is not a directory");
  }
  if (for_write && access(dir.c_str(), W_OK | X_OK) != 0) {
    return Status::InvalidArgument("spool directory " + dir +
                                   " is not writable: " + std::strerror(errno) +
                                   "; fix its permissions or choose another --spool");
  }
  bool empty = fs::is_empty(dir, ec);
  if (!for_write && !empty && !fs::exists(fs::path(dir) / "CURRENT", ec) &&
      fs::exists(fs::path(dir) / "LOCK", ec)) {
    return Status::Unavailable("spool " + dir + " is being created by its writer");
  }
  if (!empty && !fs::exists(fs::path(dir) / "CURRENT", ec)) {
    return Status::InvalidArgument("directory " + dir +
                                   " is not a lifeline spool (no RocksDB CURRENT file) and is not "
                                   "empty; pass an empty or new directory as --spool");
  }
  if (empty && !for_write) {
    return Status::Unavailable("spool directory " + dir + " is empty: nothing has been spooled");
  }
  return Status::Ok();
}

// Builds a new spool (both column families and the format marker) in a sibling directory and
// renames it into place, so a reader beside the writer never opens a half-made spool.
Status CreateSpoolDatabase(const std::string& dir) {
  std::string staging = dir + ".creating-" + std::to_string(getpid());
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);  // RocksDB logs an error for a directory it must make
  {
    rocksdb::Options options = SpoolRocksOptions();
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions(options)},
        {kEventsCf, rocksdb::ColumnFamilyOptions(options)}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    auto s = rocksdb::DB::Open(options, staging, cfs, &handles, &raw);
    if (!s.ok()) return FromRocks(s, "creating spool " + dir);
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = db->Put(wo, handles[0], "format", kFormat);
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    if (!s.ok()) return FromRocks(s, "initialising spool " + dir);
    s = db->Close();
    if (!s.ok()) return FromRocks(s, "closing new spool " + dir);
  }
  // rename(2) replaces an empty directory atomically.
  if (std::rename(staging.c_str(), dir.c_str()) != 0) {
    std::string err = std::strerror(errno);
    fs::remove_all(staging, ec);
    return Status::InvalidArgument("cannot move the new spool into " + dir + ": " + err);
  }
  return Status::Ok();
}

bool HasCurrentFile(const std::string& dir) {
  std::error_code ec;
  return fs::exists(fs::path(dir) / "CURRENT", ec);
}

}  // namespace

Result<std::unique_ptr<Spool>> Spool::OpenForWrite(const std::string& dir) {
  LIFELINE_RETURN_IF_ERROR(CheckSpoolDirectory(dir, /*for_write=*/true));
  auto impl = std::make_unique<Impl>();
  bool fresh = !HasCurrentFile(dir);
  if (fresh) LIFELINE_RETURN_IF_ERROR(CreateSpoolDatabase(dir));
  LIFELINE_RETURN_IF_ERROR(OpenDb(dir, false, "", &impl->db, &impl->meta, &impl->events));
  std::string format;
  auto s = impl->db->Get(rocksdb::ReadOptions(), impl->meta, "format", &format);
  if (s.IsNotFound() && impl->Empty()) {
    // A creation cut off between opening the database and writing the marker: finish it.
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = impl->db->Put(wo, impl->meta, "format", kFormat);
    format = kFormat;
  }
  if (!s.ok() || format != kFormat) {
    return Status::InvalidArgument("directory " + dir +
                                   " holds a RocksDB database that is not a lifeline spool");
  }
  LIFELINE_RETURN_IF_ERROR(impl->LoadState().WithContext("spool " + dir));

  std::unique_ptr<Spool> spool(new Spool(std::move(impl), dir, true));
  LIFELINE_RETURN_IF_ERROR(spool->DiscardIncomplete());
  Impl* opened = spool->impl_.get();
  const SpoolState& st = opened->state;
  // The newest event must be the one the state says; anything else means lost or foreign writes.
  if (st.complete_seq > 0) {
    std::string value;
    s = opened->db->Get(rocksdb::ReadOptions(), opened->events, SeqKey(st.complete_seq), &value);
    if (!s.ok() || HashEventBytes(value) != st.complete_hash) {
      return Status::Corruption("spool " + dir + ": the event at seq " +
                                std::to_string(st.complete_seq) +
                                " is missing or does not match the recorded hash; the spool is "
                                "damaged (run `lifeline spool verify`)");
    }
  }
  return spool;
}

Status Spool::DiscardIncomplete() {
  if (!writable_) return Status::FailedPrecondition("spool " + dir_ + " is open read-only");
  std::lock_guard lock(impl_->mu);
  SpoolState& st = impl_->state;
  if (st.last_seq <= st.complete_seq) return Status::Ok();
  uint64_t discarded = st.last_seq - st.complete_seq;
  SpoolState next = st;
  next.last_seq = next.complete_seq;
  next.tail_hash = next.complete_hash;
  next.open_events = 0;
  next.open_bytes = 0;
  rocksdb::WriteBatch batch;
  batch.DeleteRange(impl_->events, SeqKey(st.complete_seq + 1), SeqKey(st.last_seq + 1));
  batch.Put(impl_->meta, "state", next.Encode());
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = impl_->db->Write(wo, &batch);
  if (!s.ok()) return FromRocks(s, "discarding an incomplete transaction in spool " + dir_);
  st = next;
  spdlog::info("spool {}: discarded {} event(s) of an incomplete transaction after seq {}", dir_,
               discarded, st.complete_seq);
  return Status::Ok();
}

namespace {

constexpr std::string_view kReaderDirPrefix = "lifeline-spool-reader-";

// A reader's directory is removed when it closes; one killed first leaves it behind. Its name
// carries the owner's pid, so the next reader removes those whose owner is gone.
void RemoveOrphanedReaderDirs() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/tmp", ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(kReaderDirPrefix)) continue;
    const char* digits = name.c_str() + kReaderDirPrefix.size();
    char* end = nullptr;
    const long pid = std::strtol(digits, &end, 10);
    if (end == digits || *end != '-' || pid <= 0) continue;  // not ours, or an older name
    if (kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // owner alive
    std::error_code ignored;
    fs::remove_all(entry.path(), ignored);
  }
}

}  // namespace

Result<std::unique_ptr<Spool>> Spool::OpenForRead(const std::string& dir) {
  LIFELINE_RETURN_IF_ERROR(CheckSpoolDirectory(dir, /*for_write=*/false));
  RemoveOrphanedReaderDirs();
  auto impl = std::make_unique<Impl>();
  std::string tmpl = "/tmp/" + std::string(kReaderDirPrefix) + std::to_string(getpid()) + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    return Status::IOError(std::string("cannot create a reader directory in /tmp: ") +
                           std::strerror(errno));
  }
  impl->secondary_dir = tmpl;
  LIFELINE_RETURN_IF_ERROR(
      OpenDb(dir, true, impl->secondary_dir, &impl->db, &impl->meta, &impl->events));
  std::string format;
  auto s = impl->db->Get(rocksdb::ReadOptions(), impl->meta, "format", &format);
  if (s.IsNotFound() && impl->Empty()) {
    return Status::Unavailable("spool " + dir + " is being created by its writer");
  }
  if (!s.ok() || format != kFormat) {
    return Status::InvalidArgument("directory " + dir +
                                   " holds a RocksDB database that is not a lifeline spool");
  }
  LIFELINE_RETURN_IF_ERROR(impl->LoadState().WithContext("spool " + dir));
  return std::unique_ptr<Spool>(new Spool(std::move(impl), dir, false));
}

Status Spool::Refresh() {
  if (writable_) return Status::Ok();
  auto s = impl_->db->TryCatchUpWithPrimary();
  if (!s.ok()) return FromRocks(s, "refreshing spool reader " + dir_);
  return impl_->LoadState().WithContext("spool " + dir_);
}

Result<uint64_t> Spool::Append(std::span<v1::ChangeEvent> events,
                               const std::vector<std::pair<std::string, std::string>>& properties) {
  if (!writable_) return Status::FailedPrecondition("spool " + dir_ + " is open read-only");
  if (events.empty() && properties.empty()) return last_complete_seq();
  SpoolState next;
  {
    std::lock_guard lock(impl_->mu);
    next = impl_->state;
  }
  rocksdb::WriteBatch batch;
  std::string bytes;
  for (auto& ev : events) {
    ev.set_seq(++next.last_seq);
    ev.set_prev_hash(next.tail_hash.data(), next.tail_hash.size());
    bytes.clear();
    if (!ev.SerializeToString(&bytes)) {
      return Status::Internal("cannot serialize event for seq " + std::to_string(ev.seq()));
    }
    next.tail_hash = HashEventBytes(bytes);
    next.open_events += 1;
    next.open_bytes += bytes.size();
    batch.Put(impl_->events, SeqKeyBuf(ev.seq()).slice(), bytes);
    if (ev.last_in_txn()) {
      next.complete_seq = ev.seq();
      next.complete_commit_lsn = ev.commit_lsn();
      next.complete_commit_time_us = ev.commit_time_us();
      next.complete_hash = next.tail_hash;
      next.live_events += next.open_events;
      next.live_bytes += next.open_bytes;
      next.open_events = 0;
      next.open_bytes = 0;
    }
  }
  batch.Put(impl_->meta, "state", next.Encode());
  for (const auto& [name, value] : properties) batch.Put(impl_->meta, "prop/" + name, value);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = impl_->db->Write(wo, &batch);
  if (!s.ok()) {
    // Give the events back their unassigned state so a retry starts from the same place.
    for (auto& ev : events) {
      ev.clear_seq();
      ev.clear_prev_hash();
    }
    return FromRocks(s, "appending to spool " + dir_);
  }
  bool completed;
  {
    std::lock_guard lock(impl_->mu);
    completed = next.complete_seq != impl_->state.complete_seq;
    impl_->state = next;
  }
  if (completed) impl_->appended.notify_all();
  return next.last_seq;
}

Result<std::vector<SpoolRecord>> Spool::Read(uint64_t from_seq, size_t max_events,
                                             size_t max_bytes) const {
  uint64_t limit = last_complete_seq();
  std::vector<SpoolRecord> out;
  if (from_seq == 0) from_seq = 1;
  if (from_seq > limit || max_events == 0) return out;
  rocksdb::ReadOptions ro;
  std::string upper = SeqKey(limit + 1);
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->events));
  size_t bytes = 0;
  for (it->Seek(SeqKey(from_seq)); it->Valid() && out.size() < max_events; it->Next()) {
    if (it->key().size() != 8) {
      return Status::Corruption("spool " + dir_ + ": event key of " +
                                std::to_string(it->key().size()) + " bytes");
    }
    SpoolRecord rec{GetU64(it->key().data()), it->value().ToString()};
    bytes += rec.bytes.size();
    out.push_back(std::move(rec));
    if (bytes >= max_bytes) break;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading spool " + dir_);
  return out;
}

std::unique_ptr<SpoolReader> Spool::NewReader() const {
  return std::unique_ptr<SpoolReader>(new SpoolReader(*this));
}

namespace {

// Readahead of a reader's iterator: a backlog is read in large sequential reads rather than one
// pread per block. Not larger: RocksDB sizes its buffer to the readahead plus the block being read,
// so it remakes the buffer at nearly every refill, and with 4 MiB, faulting the new buffer's pages
// in took a sixth of the read (205 ns an event against 167 with 256 KiB).
constexpr size_t kReaderReadahead = 256 << 10;
// Events an iterator serves before it is renewed; it pins the memtables and files it started
// with, which a long backlog drain beside a live writer would otherwise hold for minutes.
constexpr uint64_t kReaderIteratorEvents = 1 << 18;

}  // namespace

struct SpoolReader::Position {
  std::unique_ptr<rocksdb::Iterator> it;
  std::string upper;  // the iterator's exclusive upper bound (seq key); must outlive it
  rocksdb::Slice upper_slice;
  uint64_t limit = 0;  // last complete seq when the iterator was made: it sees nothing after
  uint64_t served = 0;
};

SpoolReader::SpoolReader(const Spool& spool) : spool_(spool), pos_(std::make_unique<Position>()) {}

SpoolReader::~SpoolReader() = default;

Result<size_t> SpoolReader::Visit(uint64_t from_seq, size_t max_events, size_t max_bytes,
                                  const Visitor& visit) {
  if (from_seq == 0) from_seq = 1;
  Position& p = *pos_;
  bool reusable = p.it != nullptr && from_seq <= p.limit && p.served < kReaderIteratorEvents;
  if (!reusable) {
    uint64_t limit = spool_.last_complete_seq();
    if (from_seq > limit || max_events == 0) return size_t{0};
    p.it.reset();
    p.upper = SeqKey(limit + 1);
    p.upper_slice = rocksdb::Slice(p.upper);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &p.upper_slice;
    ro.readahead_size = kReaderReadahead;
    ro.fill_cache = false;  // a one-pass scan; keep the cache for point reads
    p.it.reset(spool_.impl_->db->NewIterator(ro, spool_.impl_->events));
    p.limit = limit;
    p.served = 0;
    p.it->Seek(SeqKeyBuf(from_seq).slice());
  } else if (!p.it->Valid() || GetU64(p.it->key().data()) != from_seq) {
    p.it->Seek(SeqKeyBuf(from_seq).slice());
  }
  size_t count = 0, bytes = 0;
  for (; p.it->Valid() && count < max_events && bytes < max_bytes; p.it->Next()) {
    rocksdb::Slice key = p.it->key();
    if (key.size() != 8) {
      return Status::Corruption("spool " + spool_.dir() + ": event key of " +
                                std::to_string(key.size()) + " bytes");
    }
    rocksdb::Slice value = p.it->value();
    LIFELINE_RETURN_IF_ERROR(
        visit(GetU64(key.data()), std::string_view(value.data(), value.size())));
    ++count;
    bytes += value.size();
  }
  p.served += count;
  if (!p.it->status().ok()) {
    Status st = FromRocks(p.it->status(), "reading spool " + spool_.dir());
    p.it.reset();
    return st;
  }
  if (!p.it->Valid()) p.it.reset();  // at its bound: the next read needs a fresh view
  return count;
}

bool Spool::WaitForEventsAfter(uint64_t seq, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mu);
  return impl_->appended.wait_for(lock, timeout, [&] { return impl_->state.complete_seq > seq; });
}

Status Spool::SetCursor(const std::string& name, uint64_t seq, CursorSync sync) {
  if (!writable_) return Status::FailedPrecondition("spool " + dir_ + " is open read-only");
  std::string v;
  PutU64(&v, seq);
  rocksdb::WriteOptions wo;
  wo.sync = sync == CursorSync::kSynced;
  return FromRocks(impl_->db->Put(wo, impl_->meta, "cursor/" + name, v),
                   "storing cursor " + name + " in spool " + dir_);
}

uint64_t Spool::GetCursor(const std::string& name) const {
  std::string v;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->meta, "cursor/" + name, &v);
  if (!s.ok() || v.size() != 8) return 0;
  return GetU64(v.data());
}

Status Spool::SetProperty(const std::string& name, const std::string& value) {
  if (!writable_) return Status::FailedPrecondition("spool " + dir_ + " is open read-only");
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return FromRocks(impl_->db->Put(wo, impl_->meta, "prop/" + name, value),
                   "storing property " + name + " in spool " + dir_);
}

std::string Spool::GetProperty(const std::string& name) const {
  std::string v;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->meta, "prop/" + name, &v);
  return s.ok() ? v : std::string();
}

Result<uint64_t> Spool::Trim(uint64_t max_seq, int64_t keep_after_commit_time_us) {
  if (!writable_) return Status::FailedPrecondition("spool " + dir_ + " is open read-only");
  max_seq = std::min(max_seq, last_complete_seq());
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->events));
  uint64_t first = 0, end = 0, count = 0, bytes = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    uint64_t seq = GetU64(it->key().data());
    if (seq > max_seq) break;
    v1::ChangeEvent ev;
    if (!ev.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status::Corruption("spool " + dir_ + ": event at seq " + std::to_string(seq) +
                                " does not parse; not trimming past it");
    }
    if (ev.commit_time_us() >= keep_after_commit_time_us) break;
    if (first == 0) first = seq;
    end = seq + 1;
    ++count;
    bytes += it->value().size();
  }
  if (!it->status().ok()) return FromRocks(it->status(), "scanning spool " + dir_);
  if (count == 0) return uint64_t{0};
  SpoolState next;
  {
    std::lock_guard lock(impl_->mu);
    next = impl_->state;
  }
  next.live_events -= count;
  next.live_bytes -= bytes;
  rocksdb::WriteBatch batch;
  batch.DeleteRange(impl_->events, SeqKey(first), SeqKey(end));
  batch.Put(impl_->meta, "state", next.Encode());
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = impl_->db->Write(wo, &batch);
  if (!s.ok()) return FromRocks(s, "trimming spool " + dir_);
  {
    std::lock_guard lock(impl_->mu);
    // Appends may have happened meanwhile; only the live counters change here.
    impl_->state.live_events -= count;
    impl_->state.live_bytes -= bytes;
  }
  return count;
}

uint64_t Spool::last_complete_seq() const {
  std::lock_guard lock(impl_->mu);
  return impl_->state.complete_seq;
}

uint64_t Spool::live_bytes() const {
  std::lock_guard lock(impl_->mu);
  return impl_->state.live_bytes + impl_->state.open_bytes;
}

Lsn Spool::last_complete_commit_lsn() const {
  std::lock_guard lock(impl_->mu);
  return Lsn(impl_->state.complete_commit_lsn);
}

SpoolStats Spool::Stats() const {
  SpoolStats stats;
  {
    std::lock_guard lock(impl_->mu);
    stats.last_seq = impl_->state.complete_seq;
    stats.last_commit_lsn = Lsn(impl_->state.complete_commit_lsn);
    stats.last_commit_time_us = impl_->state.complete_commit_time_us;
    stats.events = impl_->state.live_events;
    stats.bytes = impl_->state.live_bytes;
  }
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->events));
  it->SeekToFirst();
  if (it->Valid() && it->key().size() == 8) {
    uint64_t first = GetU64(it->key().data());
    if (first <= stats.last_seq) stats.first_seq = first;
  }
  std::unique_ptr<rocksdb::Iterator> cur(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->meta));
  for (cur->Seek("cursor/"); cur->Valid() && cur->key().starts_with("cursor/"); cur->Next()) {
    if (cur->value().size() == 8) {
      stats.cursors[cur->key().ToString().substr(7)] = GetU64(cur->value().data());
    }
  }
  return stats;
}

Status Spool::Verify() const {
  SpoolState st;
  {
    std::lock_guard lock(impl_->mu);
    st = impl_->state;
  }
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->events));
  uint64_t expect = 0, count = 0, bytes = 0;
  EventHash prev{};
  bool have_prev = false;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    SpoolRecord rec{GetU64(it->key().data()), it->value().ToString()};
    if (rec.seq > st.complete_seq) {
      // Events of a transaction still open in this writer (or a live writer) are not judged yet.
      if (writable_ && rec.seq > st.last_seq) {
        return Status::Corruption("spool " + dir_ + ": event at seq " + std::to_string(rec.seq) +
                                  " lies beyond the last complete transaction (seq " +
                                  std::to_string(st.complete_seq) + ")");
      }
      break;
    }
    if (expect != 0 && rec.seq != expect) {
      return Status::Corruption("spool " + dir_ + ": seq " + std::to_string(expect) +
                                " is missing (next stored is " + std::to_string(rec.seq) + ")");
    }
    auto ev = ParseEvent(rec);
    if (!ev.ok()) return ev.status().WithContext("spool " + dir_);
    if (rec.seq == 1 && ev->prev_hash() != std::string(32, '\0')) {
      return Status::Corruption("spool " + dir_ + ": seq 1 has a non-zero prev_hash");
    }
    if (have_prev && ev->prev_hash() != std::string(prev.begin(), prev.end())) {
      return Status::Corruption("spool " + dir_ + ": hash chain broken at seq " +
                                std::to_string(rec.seq) +
                                " (its prev_hash does not match the event before it)");
    }
    prev = HashEventBytes(rec.bytes);
    have_prev = true;
    expect = rec.seq + 1;
    ++count;
    bytes += rec.bytes.size();
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading spool " + dir_);
  if (count > 0 && expect - 1 != st.complete_seq) {
    return Status::Corruption("spool " + dir_ + ": state says the last complete seq is " +
                              std::to_string(st.complete_seq) + " but the data ends at " +
                              std::to_string(expect - 1));
  }
  if (count > 0 && prev != st.complete_hash) {
    return Status::Corruption("spool " + dir_ +
                              ": the hash of the last event differs from the recorded hash");
  }
  if (count != st.live_events || bytes != st.live_bytes) {
    return Status::Corruption("spool " + dir_ + ": state counts " + std::to_string(st.live_events) +
                              " events / " + std::to_string(st.live_bytes) +
                              " bytes but the data holds " + std::to_string(count) + " / " +
                              std::to_string(bytes));
  }
  return Status::Ok();
}

}  // namespace lifeline
