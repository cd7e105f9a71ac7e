// AES-256-GCM sealing of row images through OpenSSL's EVP interface, and key files.
#include "common/event_seal.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "common/event_format.h"

namespace lifeline {
namespace {

constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

// One context per thread, reset for each event (allocating one per event costs more than the
// cipher on small rows).
EVP_CIPHER_CTX* ThreadContext() {
  thread_local CipherContext ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  EVP_CIPHER_CTX_reset(ctx.get());
  return ctx.get();
}

void AppendField(std::string& out, std::string_view field) {
  const auto n = static_cast<uint32_t>(field.size());
  const char len[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                       static_cast<char>(n >> 8), static_cast<char>(n)};
  out.append(len, 4).append(field);
}

// The additional authenticated data of the header's diagram.
std::string AssociatedData(const v1::ChangeEvent& ev, const v1::Sealed& sealed) {
  std::string out = "lifeline.seal.v1";
  out.reserve(160);
  AppendField(out, ev.source().system_id());
  AppendField(out, ev.source().database());
  AppendField(out, ev.source().slot_name());
  AppendField(out, ev.relation().schema());
  AppendField(out, ev.relation().table());
  AppendField(out, std::to_string(static_cast<int>(ev.op())));
  AppendField(out, std::to_string(ev.xid()));
  AppendField(out, std::to_string(ev.commit_lsn()));
  AppendField(out, std::to_string(ev.event_lsn()));
  AppendField(out, std::to_string(ev.index_in_txn()));
  AppendField(out, std::to_string(ev.commit_time_us()));
  AppendField(out, sealed.key_id());
  AppendField(out, sealed.has_record_key() ? "-" + sealed.record_key() : std::string());
  return out;
}

bool IsHex(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) != 0;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  return std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
}

bool ValidKeyId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string KeyIdOfFile(const std::string& path) {
  return std::filesystem::path(path).stem().string();
}

Result<Keyring> Keyring::Load(const std::vector<std::string>& files) {
  Keyring ring;
  for (const std::string& file : files) {
    struct stat st {};
    if (stat(file.c_str(), &st) != 0) {
      return Status::InvalidArgument("cannot read encryption key file " + file + ": " +
                                     std::strerror(errno) + "; make one with 'lifeline keygen " +
                                     file + "'");
    }
    if (!S_ISREG(st.st_mode)) {
      return Status::InvalidArgument("encryption key file " + file + " is not a regular file");
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
      return Status::InvalidArgument("encryption key file " + file +
                                     " may be read or changed by other users; chmod 600 " + file +
                                     " (and give it to the user lifeline runs as)");
    }
    std::ifstream in(file);
    std::string line, rest;
    if (!in || !std::getline(in, line)) {
      return Status::InvalidArgument("cannot read encryption key file " + file +
                                     ": check that this user may read it");
    }
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    while (std::getline(in, rest)) {
      for (char c : rest) {
        if (!std::isspace(static_cast<unsigned char>(c))) {
          return Status::InvalidArgument("encryption key file " + file +
                                         " holds more than one line; it must be one line of 64 "
                                         "hex digits (make one with 'lifeline keygen FILE')");
        }
      }
    }
    bool hex = line.size() == 64;
    for (char c : line) hex = hex && IsHex(c);
    if (!hex) {
      return Status::InvalidArgument("encryption key file " + file +
                                     " does not hold a key: expected one line of 64 hex " +
                                     "digits (32 bytes), found " + std::to_string(line.size()) +
                                     " characters; make one with 'lifeline keygen FILE'");
    }
    Key key;
    key.file = file;
    key.id = KeyIdOfFile(file);
    if (!ValidKeyId(key.id)) {
      return Status::InvalidArgument("encryption key file " + file + " gives the key id '" +
                                     key.id +
                                     "': name key files with letters, digits, '-', '_' or '.' "
                                     "(at most 64), e.g. 2026-11.key");
    }
    if (const Key* other = ring.Find(key.id); other != nullptr) {
      return Status::InvalidArgument("encryption key files " + other->file + " and " + file +
                                     " give the same key id '" + key.id +
                                     "'; every key file needs its own name");
    }
    for (size_t i = 0; i < 32; ++i) {
      key.bytes[i] =
          static_cast<unsigned char>(HexValue(line[2 * i]) * 16 + HexValue(line[2 * i + 1]));
    }
    ring.keys_.push_back(std::move(key));
  }
  return ring;
}

const Keyring::Key* Keyring::Find(const std::string& id) const {
  for (const Key& k : keys_) {
    if (k.id == id) return &k;
  }
  return nullptr;
}

std::string Keyring::sealing_key_id() const {
  return keys_.empty() ? "" : keys_.back().id;
}

std::string Keyring::Describe() const {
  if (keys_.empty()) return "none";
  std::string out;
  for (const Key& k : keys_) out += (out.empty() ? "" : ", ") + k.id + " (" + k.file + ")";
  return out;
}

Status Keyring::Seal(v1::ChangeEvent& event) const {
  if (keys_.empty() || event.has_sealed() || (!event.has_before() && !event.has_after())) {
    return Status::Ok();
  }
  const Key& key = keys_.back();
  v1::Sealed sealed;
  sealed.set_key_id(key.id);
  if (auto record_key = RecordKeyText(event)) sealed.set_record_key(*std::move(record_key));
  unsigned char nonce[kNonceBytes];
  if (RAND_bytes(nonce, sizeof nonce) != 1) {
    return Status::Internal("sealing an event: the random number generator failed");
  }
  sealed.set_nonce(nonce, sizeof nonce);

  thread_local v1::SealedRows rows;
  thread_local std::string plain;
  rows.Clear();
  if (event.has_before()) rows.mutable_before()->Swap(event.mutable_before());
  if (event.has_after()) rows.mutable_after()->Swap(event.mutable_after());
  event.clear_before();
  event.clear_after();
  plain.clear();
  rows.SerializeToString(&plain);

  const std::string aad = AssociatedData(event, sealed);
  std::string* out = sealed.mutable_ciphertext();
  out->resize(plain.size() + kTagBytes);
  auto* dst = reinterpret_cast<unsigned char*>(out->data());
  EVP_CIPHER_CTX* ctx = ThreadContext();
  int n = 0, total = 0;
  bool ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.bytes.data(), nonce) == 1 &&
            EVP_EncryptUpdate(ctx, nullptr, &n, reinterpret_cast<const unsigned char*>(aad.data()),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_EncryptUpdate(ctx, dst, &n, reinterpret_cast<const unsigned char*>(plain.data()),
                              static_cast<int>(plain.size())) == 1;
  total = n;
  ok = ok && EVP_EncryptFinal_ex(ctx, dst + total, &n) == 1;
  total += n;
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                                 dst + total) == 1;
  if (!ok || static_cast<size_t>(total) != plain.size()) {
    // Put the rows back: the event must not leave here half sealed.
    if (rows.has_before()) event.mutable_before()->Swap(rows.mutable_before());
    if (rows.has_after()) event.mutable_after()->Swap(rows.mutable_after());
    return Status::Internal("sealing an event: OpenSSL AES-256-GCM failed");
  }
  *event.mutable_sealed() = std::move(sealed);
  return Status::Ok();
}

Status Keyring::Open(v1::ChangeEvent& event) const {
  if (!event.has_sealed()) return Status::Ok();
  const v1::Sealed& sealed = event.sealed();
  const Key* key = Find(sealed.key_id());
  if (key == nullptr) {
    return Status::FailedPrecondition("the event is sealed with key id '" + sealed.key_id() +
                                      "', which no key file gives " + "(loaded: " + Describe() +
                                      "); pass that key's file with --encryption-key-file");
  }
  if (sealed.nonce().size() != kNonceBytes || sealed.ciphertext().size() < kTagBytes) {
    return Status::Corruption(
        "sealed rows: authentication failed (malformed nonce or "
        "ciphertext under key '" +
        sealed.key_id() + "'); the record was altered");
  }
  const std::string aad = AssociatedData(event, sealed);
  const std::string& ct = sealed.ciphertext();
  const size_t body = ct.size() - kTagBytes;
  thread_local std::string plain;
  plain.resize(body);
  auto* dst = reinterpret_cast<unsigned char*>(plain.data());
  const auto* src = reinterpret_cast<const unsigned char*>(ct.data());
  std::array<unsigned char, kTagBytes> tag{};
  std::memcpy(tag.data(), src + body, kTagBytes);
  EVP_CIPHER_CTX* ctx = ThreadContext();
  int n = 0, total = 0;
  bool ok =
      EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key->bytes.data(),
                         reinterpret_cast<const unsigned char*>(sealed.nonce().data())) == 1 &&
      EVP_DecryptUpdate(ctx, nullptr, &n, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(ctx, dst, &n, src, static_cast<int>(body)) == 1;
  total = n;
  ok = ok &&
       EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes), tag.data()) == 1;
  ok = ok && EVP_DecryptFinal_ex(ctx, dst + total, &n) == 1;
  if (!ok) {
    return Status::Corruption("sealed rows: authentication failed under key '" + key->id + "' (" +
                              key->file +
                              "): the record was altered, moved to another event, or sealed "
                              "with a different key of the same id");
  }
  thread_local v1::SealedRows rows;
  if (!rows.ParseFromString(plain)) {
    return Status::Corruption("sealed rows: the opened payload is not a row image");
  }
  event.clear_sealed();
  if (rows.has_before()) {
    event.mutable_before()->Swap(rows.mutable_before());
  } else {
    event.clear_before();
  }
  if (rows.has_after()) {
    event.mutable_after()->Swap(rows.mutable_after());
  } else {
    event.clear_after();
  }
  return Status::Ok();
}

Status WriteNewKeyFile(const std::string& path) {
  if (!ValidKeyId(KeyIdOfFile(path))) {
    return Status::InvalidArgument("key file name " + path + " gives the key id '" +
                                   KeyIdOfFile(path) +
                                   "': use letters, digits, '-', '_' or '.', e.g. 2026-11.key");
  }
  unsigned char key[32];
  if (RAND_bytes(key, sizeof key) != 1) {
    return Status::Internal("keygen: the random number generator failed");
  }
  static const char kHex[] = "0123456789abcdef";
  std::string line;
  for (unsigned char b : key) {
    line += kHex[b >> 4];
    line += kHex[b & 15];
  }
  line += '\n';
  OPENSSL_cleanse(key, sizeof key);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    return Status::InvalidArgument("cannot create key file " + path + ": " + std::strerror(e) +
                                   (e == EEXIST ? " (a key file is never overwritten; pick a new "
                                                  "name, e.g. the month)"
                                                : ""));
  }
  bool ok = ::fchmod(fd, 0600) == 0 &&
            ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
            ::fsync(fd) == 0;
  int e = errno;
  ::close(fd);
  OPENSSL_cleanse(line.data(), line.size());
  if (!ok) {
    ::unlink(path.c_str());
    return Status::IOError("cannot write key file " + path + ": " + std::strerror(e));
  }
  return Status::Ok();
}

}  // namespace lifeline
