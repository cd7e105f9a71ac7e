// The spool: appends, whole-transaction visibility, reopen, cursors, trim, readers, bad input.
#include "common/spool.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/support/sample_events.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

using testing::SampleEvent;
using testing::SampleTransaction;
using testing::TempDir;

std::unique_ptr<Spool> OpenWriter(const std::string& dir) {
  auto s = Spool::OpenForWrite(dir);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

uint64_t AppendAll(Spool& spool, std::vector<v1::ChangeEvent> events) {
  auto r = spool.Append(events);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : 0;
}

TEST(SpoolTest, AssignsContiguousSeqsAndChainsHashes) {
  TempDir tmp;
  auto spool = OpenWriter(tmp.Sub("spool"));
  ASSERT_TRUE(spool);
  EXPECT_EQ(AppendAll(*spool, SampleTransaction(100, 3)), 3u);
  EXPECT_EQ(AppendAll(*spool, SampleTransaction(101, 2)), 5u);
  auto recs = spool->Read(1, 100);
  ASSERT_TRUE(recs.ok());
  ASSERT_EQ(recs->size(), 5u);
  std::string prev(32, '\0');
  for (size_t i = 0; i < recs->size(); ++i) {
    auto ev = ParseEvent((*recs)[i]);
    ASSERT_TRUE(ev.ok());
    EXPECT_EQ(ev->seq(), i + 1);
    EXPECT_EQ(ev->prev_hash(), prev);
    EventHash h = HashEventBytes((*recs)[i].bytes);
    prev.assign(h.begin(), h.end());
  }
  EXPECT_TRUE(spool->Verify().ok()) << spool->Verify().ToString();
  SpoolStats st = spool->Stats();
  EXPECT_EQ(st.first_seq, 1u);
  EXPECT_EQ(st.last_seq, 5u);
  EXPECT_EQ(st.events, 5u);
  EXPECT_EQ(st.last_commit_lsn.value(), SampleEvent(101, 0, 1).commit_lsn());
}

TEST(SpoolTest, ReadersSeeOnlyCompleteTransactions) {
  TempDir tmp;
  auto spool = OpenWriter(tmp.Sub("spool"));
  ASSERT_TRUE(spool);
  auto txn = SampleTransaction(200, 5);
  // A batch that ends inside the transaction.
  std::vector<v1::ChangeEvent> head(txn.begin(), txn.begin() + 3);
  EXPECT_EQ(AppendAll(*spool, head), 3u);
  EXPECT_EQ(spool->last_complete_seq(), 0u);
  EXPECT_TRUE(spool->Read(1, 100)->empty());
  EXPECT_FALSE(spool->WaitForEventsAfter(0, std::chrono::milliseconds(10)));
  EXPECT_TRUE(spool->Verify().ok()) << spool->Verify().ToString();
  std::vector<v1::ChangeEvent> tail(txn.begin() + 3, txn.end());
  EXPECT_EQ(AppendAll(*spool, tail), 5u);
  EXPECT_TRUE(spool->WaitForEventsAfter(0, std::chrono::milliseconds(10)));
  EXPECT_EQ(spool->Read(1, 100)->size(), 5u);
  EXPECT_EQ(spool->Stats().events, 5u);
}

TEST(SpoolTest, ReopenDiscardsTheIncompleteTransaction) {
  TempDir tmp;
  std::string dir = tmp.Sub("spool");
  {
    auto spool = OpenWriter(dir);
    ASSERT_TRUE(spool);
    AppendAll(*spool, SampleTransaction(300, 2));
    auto txn = SampleTransaction(301, 4);
    AppendAll(*spool, std::vector<v1::ChangeEvent>(txn.begin(), txn.begin() + 2));
  }
  auto spool = OpenWriter(dir);
  ASSERT_TRUE(spool);
  EXPECT_EQ(spool->last_complete_seq(), 2u);
  EXPECT_TRUE(spool->Verify().ok()) << spool->Verify().ToString();
  // The source sends the transaction again; it gets the seqs the discarded part had.
  EXPECT_EQ(AppendAll(*spool, SampleTransaction(301, 4)), 6u);
  EXPECT_TRUE(spool->Verify().ok()) << spool->Verify().ToString();
  EXPECT_EQ(spool->Stats().events, 6u);
}

TEST(SpoolTest, CursorsAndPropertiesPersist) {
  TempDir tmp;
  std::string dir = tmp.Sub("spool");
  {
    auto spool = OpenWriter(dir);
    ASSERT_TRUE(spool);
    EXPECT_EQ(spool->GetCursor("shipper"), 0u);
    ASSERT_TRUE(spool->SetCursor("shipper", 17).ok());
    ASSERT_TRUE(spool->SetProperty("source.system_id", "7312").ok());
  }
  auto spool = OpenWriter(dir);
  ASSERT_TRUE(spool);
  EXPECT_EQ(spool->GetCursor("shipper"), 17u);
  EXPECT_EQ(spool->GetProperty("source.system_id"), "7312");
  EXPECT_EQ(spool->GetProperty("nope"), "");
  EXPECT_EQ(spool->Stats().cursors.at("shipper"), 17u);
}

// The shipper stores its cursor unsynced between syncs: that must survive its process being
// killed (only the machine failing may take it back to an earlier value).
TEST(SpoolTest, AnUnsyncedCursorSurvivesKillNine) {
  TempDir tmp;
  std::string dir = tmp.Sub("spool");
  { ASSERT_TRUE(OpenWriter(dir)); }
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(ready[0]);
    auto spool = Spool::OpenForWrite(dir);
    if (!spool.ok() || !(*spool)->SetCursor("shipper", 41, Spool::CursorSync::kUnsynced).ok()) {
      _exit(3);
    }
    if (write(ready[1], "+", 1) != 1) _exit(4);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char byte = 0;
  ssize_t got = read(ready[0], &byte, 1);
  close(ready[0]);
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_EQ(got, 1) << "the child could not store its cursor (exit " << WEXITSTATUS(status) << ")";
  ASSERT_TRUE(WIFSIGNALED(status));
  auto spool = OpenWriter(dir);
  ASSERT_TRUE(spool);
  EXPECT_EQ(spool->GetCursor("shipper"), 41u);
}

TEST(SpoolTest, TrimKeepsUnshippedAndRecentEvents) {
  TempDir tmp;
  auto spool = OpenWriter(tmp.Sub("spool"));
  ASSERT_TRUE(spool);
  for (uint32_t xid = 1; xid <= 10; ++xid) AppendAll(*spool, SampleTransaction(xid, 2));
  // Shipped through seq 12 (xid 6); retention keeps commits at or after xid 4's time.
  int64_t keep_after = SampleEvent(4, 0, 1).commit_time_us();
  auto trimmed = spool->Trim(12, keep_after);
  ASSERT_TRUE(trimmed.ok()) << trimmed.status().ToString();
  EXPECT_EQ(*trimmed, 6u);  // xids 1..3
  SpoolStats st = spool->Stats();
  EXPECT_EQ(st.first_seq, 7u);
  EXPECT_EQ(st.events, 14u);
  // Nothing past the cursor goes, however old.
  trimmed = spool->Trim(12, INT64_MAX);
  ASSERT_TRUE(trimmed.ok());
  EXPECT_EQ(*trimmed, 6u);
  EXPECT_EQ(spool->Stats().first_seq, 13u);
  EXPECT_TRUE(spool->Verify().ok()) << spool->Verify().ToString();
  EXPECT_EQ(spool->Read(1, 100)->front().seq, 13u);
}

TEST(SpoolTest, ReaderFollowsALiveWriter) {
  TempDir tmp;
  std::string dir = tmp.Sub("spool");
  auto writer = OpenWriter(dir);
  ASSERT_TRUE(writer);
  AppendAll(*writer, SampleTransaction(1, 3));
  auto reader = Spool::OpenForRead(dir);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ((*reader)->Read(1, 100)->size(), 3u);
  auto txn = SampleTransaction(2, 4);
  AppendAll(*writer, std::vector<v1::ChangeEvent>(txn.begin(), txn.begin() + 1));
  ASSERT_TRUE((*reader)->Refresh().ok());
  EXPECT_EQ((*reader)->Read(1, 100)->size(), 3u) << "an open transaction stays invisible";
  AppendAll(*writer, std::vector<v1::ChangeEvent>(txn.begin() + 1, txn.end()));
  ASSERT_TRUE((*reader)->Refresh().ok());
  EXPECT_EQ((*reader)->Read(1, 100)->size(), 7u);
  EXPECT_TRUE((*reader)->Verify().ok());
  EXPECT_FALSE((*reader)->Append(txn).ok());
}

// Every (seq, bytes) a SpoolReader visits from `from`, in calls of at most `per_call` events.
std::vector<SpoolRecord> VisitAll(SpoolReader& reader, uint64_t from, size_t per_call) {
  std::vector<SpoolRecord> out;
  for (int calls = 0; calls < 1000; ++calls) {
    auto n = reader.Visit(from, per_call, 64 << 20, [&](uint64_t seq, std::string_view bytes) {
      out.push_back({seq, std::string(bytes)});
      return Status::Ok();
    });
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    if (!n.ok() || *n == 0) break;
    EXPECT_LE(*n, per_call);
    from = out.back().seq + 1;
  }
  return out;
}

TEST(SpoolTest, SequentialReaderMatchesReadAndSeesOnlyCompleteTransactions) {
  TempDir tmp;
  auto spool = OpenWriter(tmp.Sub("spool"));
  ASSERT_TRUE(spool);
  for (uint32_t xid = 1; xid <= 10; ++xid) AppendAll(*spool, SampleTransaction(xid, 3));
  auto reader = spool->NewReader();
  auto visited = VisitAll(*reader, 1, 4);
  auto read = spool->Read(1, 1000);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(visited.size(), 30u);
  ASSERT_EQ(read->size(), 30u);
  for (size_t i = 0; i < visited.size(); ++i) {
    EXPECT_EQ(visited[i].seq, i + 1);
    EXPECT_EQ(visited[i].bytes, (*read)[i].bytes) << "seq " << i + 1;
  }
  // An open transaction stays invisible; once complete, the same reader goes on into it.
  auto txn = SampleTransaction(11, 4);
  AppendAll(*spool, std::vector<v1::ChangeEvent>(txn.begin(), txn.begin() + 2));
  EXPECT_TRUE(VisitAll(*reader, 31, 100).empty());
  AppendAll(*spool, std::vector<v1::ChangeEvent>(txn.begin() + 2, txn.end()));
  auto tail = VisitAll(*reader, 31, 100);
  ASSERT_EQ(tail.size(), 4u);
  EXPECT_EQ(tail.front().seq, 31u);
  EXPECT_EQ(tail.back().seq, 34u);
  // Going back (a producer restarted at its cursor) reads the same events again.
  auto again = VisitAll(*reader, 5, 7);
  ASSERT_EQ(again.size(), 30u);
  EXPECT_EQ(again.front().seq, 5u);
  EXPECT_EQ(again[1].bytes, visited[5].bytes);
}

TEST(SpoolTest, SequentialReaderStopsAtTheByteBudgetAndOnTheVisitorsError) {
  TempDir tmp;
  auto spool = OpenWriter(tmp.Sub("spool"));
  ASSERT_TRUE(spool);
  AppendAll(*spool, SampleTransaction(1, 6));
  auto reader = spool->NewReader();
  size_t seen = 0;
  auto n = reader->Visit(1, 100, 1, [&](uint64_t, std::string_view) {
    ++seen;
    return Status::Ok();
  });
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u) << "at least one event, then the byte budget is spent";
  std::vector<uint64_t> seqs;
  n = reader->Visit(2, 100, 64 << 20, [&](uint64_t seq, std::string_view) {
    if (seq == 4) return Status::Corruption("bad event 4");
    seqs.push_back(seq);
    return Status::Ok();
  });
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{2, 3}));
  auto rest = VisitAll(*reader, 4, 100);
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest.front().seq, 4u);
  EXPECT_TRUE(VisitAll(*reader, 7, 100).empty());
  EXPECT_TRUE(VisitAll(*reader, 0, 100).size() == 6u) << "seq 0 reads from the first";
}

TEST(SpoolTest, ASecondWriterIsRefusedWithAClearMessage) {
  TempDir tmp;
  std::string dir = tmp.Sub("spool");
  auto first = OpenWriter(dir);
  ASSERT_TRUE(first);
  auto second = Spool::OpenForWrite(dir);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("another process"), std::string::npos)
      << second.status().ToString();
}

TEST(SpoolTest, RejectsDirectoriesThatAreNotSpools) {
  TempDir tmp;
  std::ofstream(tmp.Sub("file")) << "x";
  auto under_file = Spool::OpenForWrite(tmp.Sub("file") + "/spool");
  ASSERT_FALSE(under_file.ok());
  EXPECT_EQ(under_file.status().ExitCode(), 2) << under_file.status().ToString();

  std::filesystem::create_directories(tmp.Sub("other"));
  std::ofstream(tmp.Sub("other/notes.txt")) << "x";
  auto other = Spool::OpenForWrite(tmp.Sub("other"));
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("not a lifeline spool"), std::string::npos);

  auto missing = Spool::OpenForRead(tmp.Sub("missing"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(SpoolTest, VerifyFindsATamperedEventAndAMissingOne) {
  TempDir tmp;
  std::string dir = tmp.Sub("spool");
  {
    auto spool = OpenWriter(dir);
    ASSERT_TRUE(spool);
    for (uint32_t xid = 1; xid <= 3; ++xid) AppendAll(*spool, SampleTransaction(xid, 2));
    ASSERT_TRUE(spool->Verify().ok());
  }
  // Alter seq 3 behind the spool's back, directly in RocksDB.
  auto tamper = [&](bool remove) {
    rocksdb::Options o;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
        {"events", rocksdb::ColumnFamilyOptions()}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, dir, cfs, &handles, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::string key("\0\0\0\0\0\0\0\x03", 8);
    if (remove) {
      ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), handles[1], key).ok());
    } else {
      std::string value;
      ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), handles[1], key, &value).ok());
      v1::ChangeEvent ev;
      ASSERT_TRUE(ev.ParseFromString(value));
      ev.mutable_after()->mutable_values(1)->set_text("Mallory");
      ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), handles[1], key, ev.SerializeAsString()).ok());
    }
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  };
  tamper(false);
  {
    auto reader = Spool::OpenForRead(dir);
    ASSERT_TRUE(reader.ok());
    Status st = (*reader)->Verify();
    EXPECT_EQ(st.code(), StatusCode::kCorruption);
    EXPECT_NE(st.message().find("hash chain broken at seq 4"), std::string::npos) << st.ToString();
  }
  tamper(true);
  auto reader = Spool::OpenForRead(dir);
  ASSERT_TRUE(reader.ok());
  Status st = (*reader)->Verify();
  EXPECT_NE(st.message().find("seq 3 is missing"), std::string::npos) << st.ToString();
}

// A reader killed before it closes leaves its directory in /tmp; the next reader removes the
// directories of owners that are gone and leaves those of live ones.
TEST(Spool, ReaderDirectoriesOfDeadOwnersAreRemoved) {
  TempDir tmp;
  const std::string dir = tmp.Sub("spool");
  {
    auto writer = OpenWriter(dir);
    ASSERT_NE(writer, nullptr);
    AppendAll(*writer, SampleTransaction(1, 2));
  }
  pid_t gone = fork();
  ASSERT_GE(gone, 0);
  if (gone == 0) _exit(0);
  ASSERT_EQ(waitpid(gone, nullptr, 0), gone);
  namespace fs = std::filesystem;
  const fs::path orphan = "/tmp/lifeline-spool-reader-" + std::to_string(gone) + "-test01";
  const fs::path alive = "/tmp/lifeline-spool-reader-" + std::to_string(getpid()) + "-test02";
  const fs::path foreign = "/tmp/lifeline-spool-reader-notapid";
  for (const auto& d : {orphan, alive, foreign}) {
    fs::create_directories(d);
    std::ofstream(d / "LOG") << "left behind\n";
  }
  {
    auto reader = Spool::OpenForRead(dir);
    ASSERT_TRUE(reader.ok()) << reader.status().ToString();
    EXPECT_FALSE(fs::exists(orphan)) << "its owner " << gone << " is gone";
    EXPECT_TRUE(fs::exists(alive)) << "its owner (this process) lives";
    EXPECT_TRUE(fs::exists(foreign)) << "not a name lifeline makes";
  }
  std::error_code ec;
  fs::remove_all(alive, ec);
  fs::remove_all(foreign, ec);
}

}  // namespace
}  // namespace lifeline
