// Sealing of row images: round trip, tampering anywhere, wrong key, a blob moved to another event,
// key rotation, and the key files' checks.
#include "common/event_seal.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "common/event_format.h"
#include "tests/support/sample_events.h"
#include "tests/support/test_env.h"

namespace lifeline {
namespace {

using testing::TempDir;

std::string WriteKey(const TempDir& dir, const std::string& name, const std::string& hex,
                     mode_t mode = 0600) {
  std::string path = dir.Sub(name);
  std::ofstream(path) << hex << "\n";
  chmod(path.c_str(), mode);
  return path;
}

std::string NewKey(const TempDir& dir, const std::string& name) {
  std::string path = dir.Sub(name);
  EXPECT_TRUE(WriteNewKeyFile(path).ok());
  return path;
}

Keyring Load(const std::vector<std::string>& files) {
  auto r = Keyring::Load(files);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *std::move(r) : Keyring();
}

v1::ChangeEvent UpdateEvent() {
  v1::ChangeEvent ev = testing::SampleEvent(731, 2, 5);
  ev.set_op(v1::OP_UPDATE);
  *ev.mutable_before() = ev.after();
  ev.mutable_after()->mutable_values(1)->set_text("sealed-marker-Ada Lovelace");
  return ev;
}

TEST(EventSeal, RoundTripRestoresTheRowsAndHidesThem) {
  TempDir dir;
  Keyring ring = Load({NewKey(dir, "2026-11.key")});
  const v1::ChangeEvent clear = UpdateEvent();
  v1::ChangeEvent ev = clear;
  ASSERT_TRUE(ring.Seal(ev).ok());
  EXPECT_FALSE(ev.has_before());
  EXPECT_FALSE(ev.has_after());
  ASSERT_TRUE(ev.has_sealed());
  EXPECT_EQ(ev.sealed().key_id(), "2026-11");
  EXPECT_EQ(ev.sealed().nonce().size(), 12u);
  EXPECT_EQ(ev.SerializeAsString().find("sealed-marker"), std::string::npos);
  // The record key stays in clear and is what the clear event's key was.
  EXPECT_EQ(RecordKeyText(ev), RecordKeyText(clear));
  EXPECT_EQ(ev.commit_lsn(), clear.commit_lsn());
  EXPECT_EQ(ev.relation().SerializeAsString(), clear.relation().SerializeAsString());

  ASSERT_TRUE(ring.Open(ev).ok());
  EXPECT_EQ(ev.SerializeAsString(), clear.SerializeAsString());
}

TEST(EventSeal, TwoSealsOfOneEventDiffer) {
  TempDir dir;
  Keyring ring = Load({NewKey(dir, "k.key")});
  v1::ChangeEvent a = UpdateEvent(), b = UpdateEvent();
  ASSERT_TRUE(ring.Seal(a).ok());
  ASSERT_TRUE(ring.Seal(b).ok());
  EXPECT_NE(a.sealed().nonce(), b.sealed().nonce());
  EXPECT_NE(a.sealed().ciphertext(), b.sealed().ciphertext());
}

TEST(EventSeal, EventsWithoutRowsAndSealedEventsAreLeftAlone) {
  TempDir dir;
  Keyring ring = Load({NewKey(dir, "k.key")});
  v1::ChangeEvent hb;
  hb.set_op(v1::OP_HEARTBEAT);
  hb.set_message("lifeline.heartbeat");
  ASSERT_TRUE(ring.Seal(hb).ok());
  EXPECT_FALSE(hb.has_sealed());
  v1::ChangeEvent ev = UpdateEvent();
  ASSERT_TRUE(ring.Seal(ev).ok());
  const std::string once = ev.SerializeAsString();
  ASSERT_TRUE(ring.Seal(ev).ok());  // a retried spool write seals nothing twice
  EXPECT_EQ(ev.SerializeAsString(), once);
  // An empty keyring seals nothing; a clear event opens as itself.
  v1::ChangeEvent clear = UpdateEvent();
  ASSERT_TRUE(Keyring().Seal(clear).ok());
  EXPECT_FALSE(clear.has_sealed());
  ASSERT_TRUE(ring.Open(clear).ok());
  EXPECT_EQ(clear.SerializeAsString(), UpdateEvent().SerializeAsString());
}

TEST(EventSeal, AnyAlteredByteOfTheBlobFailsAuthentication) {
  TempDir dir;
  Keyring ring = Load({NewKey(dir, "k.key")});
  v1::ChangeEvent sealed = UpdateEvent();
  ASSERT_TRUE(ring.Seal(sealed).ok());
  const std::string ct = sealed.sealed().ciphertext();
  for (size_t i = 0; i < ct.size(); ++i) {
    v1::ChangeEvent ev = sealed;
    (*ev.mutable_sealed()->mutable_ciphertext())[i] ^= 0x01;
    Status st = ring.Open(ev);
    ASSERT_EQ(st.code(), StatusCode::kCorruption) << "byte " << i;
    EXPECT_NE(st.message().find("authentication failed"), std::string::npos);
    EXPECT_TRUE(ev.has_sealed()) << "a failed open leaves the event sealed";
    EXPECT_FALSE(ev.has_after());
  }
  for (size_t i = 0; i < 12; ++i) {
    v1::ChangeEvent ev = sealed;
    (*ev.mutable_sealed()->mutable_nonce())[i] ^= 0x80;
    EXPECT_EQ(ring.Open(ev).code(), StatusCode::kCorruption) << "nonce byte " << i;
  }
  v1::ChangeEvent cut = sealed;
  cut.mutable_sealed()->mutable_ciphertext()->resize(10);
  EXPECT_EQ(ring.Open(cut).code(), StatusCode::kCorruption);
  // The clear record key is authenticated too: a key changed to steer the record fails.
  v1::ChangeEvent rekeyed = sealed;
  rekeyed.mutable_sealed()->set_record_key("00000000-0000-0000-0000-000000000000");
  EXPECT_EQ(ring.Open(rekeyed).code(), StatusCode::kCorruption);
  v1::ChangeEvent unkeyed = sealed;
  unkeyed.mutable_sealed()->clear_record_key();
  EXPECT_EQ(ring.Open(unkeyed).code(), StatusCode::kCorruption);
}

TEST(EventSeal, ABlobMovedToAnotherEventFails) {
  TempDir dir;
  Keyring ring = Load({NewKey(dir, "k.key")});
  v1::ChangeEvent a = UpdateEvent();
  ASSERT_TRUE(ring.Seal(a).ok());
  auto moved = [&](auto change) {
    v1::ChangeEvent other = a;
    change(other);
    return ring.Open(other).code();
  };
  EXPECT_EQ(moved([](v1::ChangeEvent& e) { e.set_event_lsn(e.event_lsn() + 8); }),
            StatusCode::kCorruption);
  EXPECT_EQ(moved([](v1::ChangeEvent& e) { e.set_commit_lsn(e.commit_lsn() + 8); }),
            StatusCode::kCorruption);
  EXPECT_EQ(moved([](v1::ChangeEvent& e) { e.set_index_in_txn(e.index_in_txn() + 1); }),
            StatusCode::kCorruption);
  EXPECT_EQ(moved([](v1::ChangeEvent& e) { e.set_op(v1::OP_DELETE); }), StatusCode::kCorruption);
  EXPECT_EQ(moved([](v1::ChangeEvent& e) { e.mutable_relation()->set_table("other"); }),
            StatusCode::kCorruption);
  EXPECT_EQ(moved([](v1::ChangeEvent& e) { e.mutable_source()->set_system_id("42"); }),
            StatusCode::kCorruption);
  EXPECT_EQ(moved([](v1::ChangeEvent& e) { e.set_xid(e.xid() + 1); }), StatusCode::kCorruption);
  // The blob of one event put into its neighbour.
  v1::ChangeEvent b = UpdateEvent();
  b.set_index_in_txn(3);
  b.set_event_lsn(b.event_lsn() + 100);
  ASSERT_TRUE(ring.Seal(b).ok());
  *b.mutable_sealed() = a.sealed();
  EXPECT_EQ(ring.Open(b).code(), StatusCode::kCorruption);
  // Fields outside the binding (seq, prev_hash: the spool's hash chain covers them) do not matter.
  v1::ChangeEvent reseq = a;
  reseq.set_seq(99);
  EXPECT_TRUE(ring.Open(reseq).ok());
}

TEST(EventSeal, AWrongKeyOrAMissingKeyIsNamed) {
  TempDir dir, other;
  Keyring ring = Load({NewKey(dir, "2026-11.key")});
  v1::ChangeEvent ev = UpdateEvent();
  ASSERT_TRUE(ring.Seal(ev).ok());
  // Another key under the same id: authentication fails.
  Keyring impostor = Load({NewKey(other, "2026-11.key")});
  v1::ChangeEvent a = ev;
  Status st = impostor.Open(a);
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_NE(st.message().find("authentication failed"), std::string::npos) << st.message();
  // No key of that id: the message names the id and what was loaded.
  Keyring unrelated = Load({NewKey(other, "2025-01.key")});
  v1::ChangeEvent b = ev;
  st = unrelated.Open(b);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("'2026-11'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("2025-01 ("), std::string::npos) << st.message();
  v1::ChangeEvent c = ev;
  st = Keyring().Open(c);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("loaded: none"), std::string::npos) << st.message();
  EXPECT_EQ(st.ExitCode(), 2);
}

TEST(EventSeal, RotationNewestSealsAndEveryKeyOpens) {
  TempDir dir;
  std::string old_key = NewKey(dir, "2026-10.key");
  Keyring before = Load({old_key});
  v1::ChangeEvent old_ev = UpdateEvent();
  ASSERT_TRUE(before.Seal(old_ev).ok());

  std::string new_key = NewKey(dir, "2026-11.key");
  Keyring after = Load({old_key, new_key});
  EXPECT_EQ(after.sealing_key_id(), "2026-11");
  v1::ChangeEvent new_ev = UpdateEvent();
  ASSERT_TRUE(after.Seal(new_ev).ok());
  EXPECT_EQ(new_ev.sealed().key_id(), "2026-11");
  v1::ChangeEvent a = old_ev, b = new_ev;
  EXPECT_TRUE(after.Open(a).ok());
  EXPECT_TRUE(after.Open(b).ok());
  EXPECT_EQ(a.after().values(1).text(), "sealed-marker-Ada Lovelace");
  // Once no event sealed with the old key is kept, the old key can go.
  Keyring retired = Load({new_key});
  v1::ChangeEvent c = old_ev;
  EXPECT_EQ(retired.Open(c).code(), StatusCode::kFailedPrecondition);
}

TEST(EventSeal, BadKeyFilesAreRefusedNamingTheFile) {
  TempDir dir;
  const std::string hex(64, 'a');
  auto refused = [](const std::vector<std::string>& files, const std::string& want) {
    auto r = Keyring::Load(files);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().ExitCode(), 2);
    EXPECT_NE(r.status().message().find(want), std::string::npos) << r.status().message();
  };
  std::string readable = WriteKey(dir, "readable.key", hex, 0644);
  refused({readable}, "readable.key");
  refused({readable}, "chmod 600");
  std::string group = WriteKey(dir, "group.key", hex, 0640);
  refused({group}, "group.key");
  std::string short_key = WriteKey(dir, "short.key", hex.substr(0, 62));
  refused({short_key}, "short.key");
  refused({short_key}, "64 hex digits");
  std::string not_hex = WriteKey(dir, "nothex.key", std::string(63, 'a') + "g");
  refused({not_hex}, "nothex.key");
  refused({dir.Sub("absent.key")}, "absent.key");
  std::string a = WriteKey(dir, "same.key", hex);
  TempDir other;
  std::string b = WriteKey(other, "same.key", std::string(64, 'b'));
  refused({a, b}, "same key id 'same'");
  std::string good = WriteKey(dir, "good.key", hex + "  ");
  EXPECT_TRUE(Keyring::Load({good}).ok());
}

TEST(EventSeal, KeygenWritesAPrivateKeyAndNeverOverwrites) {
  TempDir dir;
  std::string path = dir.Sub("fresh.key");
  ASSERT_TRUE(WriteNewKeyFile(path).ok());
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(Keyring::Load({path}).ok());
  Status again = WriteNewKeyFile(path);
  EXPECT_FALSE(again.ok());
  EXPECT_NE(again.message().find("never overwritten"), std::string::npos) << again.message();
  std::string second = dir.Sub("second.key");
  ASSERT_TRUE(WriteNewKeyFile(second).ok());
  std::string k1, k2;
  std::ifstream(path) >> k1;
  std::ifstream(second) >> k2;
  EXPECT_NE(k1, k2);
}

}  // namespace
}  // namespace lifeline
