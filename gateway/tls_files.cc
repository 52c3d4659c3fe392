#include "gateway/tls_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

#include "engine/status.h"
#include "engine/text.h"
#include "gateway/credentials/openssl_ptr.h"

namespace medsettle::gateway {

using engine::Cat;
namespace {

using credentials::BioPtr;
using credentials::CrlPtr;
using credentials::MemBio;
using credentials::NoPassphrase;
using credentials::PkeyPtr;
using credentials::X509Ptr;

// One TLS file: its key, flag and what it holds, for messages.
struct TlsFile {
  std::string_view key;
  std::string_view flag;
  std::string_view what;
  const std::string& path;
};

absl::StatusOr<std::string> ReadTlsFile(const TlsFile& f) {
  std::ifstream in(f.path, std::ios::binary);
  std::stringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) {
    return engine::Refusal(absl::StatusCode::kNotFound, reason::kTlsFileUnreadable, f.key,
                           Cat("cannot read ", f.what, " ", f.path, " (", f.key, ", ", f.flag,
                               ")"));
  }
  return text.str();
}

absl::Status TlsInvalid(const TlsFile& f, std::string_view problem) {
  return engine::Refusal(absl::StatusCode::kInvalidArgument, reason::kTlsFileInvalid, f.key,
                         Cat(f.path, " (", f.key, "): ", problem));
}

// Every PEM certificate in `pem`, in order.
std::vector<X509Ptr> Certificates(const std::string& pem) {
  std::vector<X509Ptr> certs;
  BioPtr bio = MemBio(pem);
  if (bio == nullptr) return certs;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  ERR_clear_error();  // the end of the input is reported as an error
  return certs;
}

std::string NameText(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string SubjectOf(X509* cert) { return NameText(X509_get_subject_name(cert)); }

// "2026-12-24 00:38 UTC", with ":11" seconds when `seconds` (CRLs: OpenSSL
// orders them by lastUpdate to the second).
std::string TimeText(const ASN1_TIME* time, bool seconds = false) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return "?";
  char text[32];
  if (seconds) {
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
  } else {
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", &tm);
  }
  return text;
}

std::string NotAfterOf(X509* cert) { return TimeText(X509_get0_notAfter(cert)); }

// ---- Certificate revocation lists (tls.crl_dir) ----
//
// gRPC 1.51 hands the folder to OpenSSL's hashed-folder lookup and checks
// every certificate of the client's chain against it. Observed with
// OpenSSL 3.0 (docs/SECURITY.md; tests/gateway_tls_test.cc shows the
// gateway's side):
//   - a revoked certificate: the handshake fails;
//   - a CA without a CRL in the folder: gRPC ignores OpenSSL's "unable to
//     get CRL" and accepts that CA's certificates unchecked (fails open);
//   - a CA whose CRLs are all expired or not yet valid, or whose CRL in use
//     has a bad signature: every handshake of its certificates fails;
//   - a CA's CRLs are read as <hash>.r0, .r1, ... (the names "%08lx.r%d"
//     prints: never "69ab9ea1.r00" or "69AB9EA1.r0") up to the first name that
//     is missing or does not load (a link to a deleted file hides every
//     later CRL), and looked up again at every handshake from the next
//     number on: a CRL added under a new .rN counts at once, a file
//     rewritten in place is not read again until a restart;
//   - of the CRLs read, a current one beats an expired one, then the later
//     lastUpdate wins, and of two equal the one read first: so an expired
//     newest CRL silently hands over to an older current one that misses
//     the later revocations;
//   - certificates under <hash>.N names are trusted like the CAs of
//     tls.client_ca_file.
// CheckCrlDir refuses, at start, a folder in which any of this would let a
// revoked certificate through or shut a CA's institutions out. It demands
// CRLs of the CAs of tls.client_ca_file only: an intermediate CA that
// clients send in their chain but that is not in the bundle has none
// demanded, and without its CRL its certificates pass unchecked
// (docs/SECURITY.md, Revocation). Afterwards gRPC reads the folder by
// itself.

// The certificates and CRLs of a PEM text.
struct PemObjects {
  int certificates = 0;
  std::vector<CrlPtr> crls;
};

PemObjects ReadPemObjects(const std::string& pem) {
  PemObjects out;
  BioPtr bio = MemBio(pem);
  STACK_OF(X509_INFO)* infos =
      bio == nullptr ? nullptr : PEM_X509_INFO_read_bio(bio.get(), nullptr, NoPassphrase, nullptr);
  ERR_clear_error();
  if (infos == nullptr) return out;
  for (int i = 0; i < sk_X509_INFO_num(infos); ++i) {
    X509_INFO* info = sk_X509_INFO_value(infos, i);
    if (info->x509 != nullptr) ++out.certificates;
    if (info->crl != nullptr) {
      out.crls.emplace_back(info->crl);
      info->crl = nullptr;
    }
  }
  sk_X509_INFO_pop_free(infos, X509_INFO_free);
  return out;
}

// A name OpenSSL's folder lookup opens: exactly what it prints with
// "%08lx.r%d" for CRLs and "%08lx.%d" for certificates (openssl rehash makes
// both), i.e. 8 lowercase hex digits, then N in decimal without a sign or a
// leading zero. It never opens "69ab9ea1.r00", "69ab9ea1.r+1" or
// "69AB9EA1.r0".
struct HashedName {
  unsigned long hash = 0;
  bool crl = false;
  int number = 0;
};

std::optional<HashedName> ParseHashedName(std::string_view name) {
  if (name.size() < 10 || name[8] != '.' || !engine::IsLowerHex(name.substr(0, 8))) {
    return std::nullopt;
  }
  HashedName h;
  std::from_chars(name.data(), name.data() + 8, h.hash, 16);
  std::string_view number = name.substr(9);
  if (number.front() == 'r') {
    h.crl = true;
    number.remove_prefix(1);
  }
  const bool decimal =
      !number.empty() && (number.size() == 1 || number.front() != '0') &&
      std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!decimal) return std::nullopt;
  const char* end = number.data() + number.size();
  auto [ptr, ec] = std::from_chars(number.data(), end, h.number);
  if (ec != std::errc() || ptr != end) return std::nullopt;  // beyond int: never reached
  return h;
}

// A name openssl rehash takes for one of its own links when the file is a
// link (8 hex digits of either case, a dot and more): it reads the number
// loosely, takes "69ab9ea1.r00", "69AB9EA1.r0" or "69ab9ea1.r+0" for the
// 69ab9ea1.r0 it would make and keeps that link instead of making the name
// OpenSSL opens (seen with OpenSSL 3.0), so rehashing does not repair it.
bool RehashTakesForItsLink(std::string_view name) {
  if (name.size() < 10 || name[8] != '.') return false;
  return std::all_of(name.begin(), name.begin() + 8,
                     [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

std::string HashText(unsigned long hash) {
  char text[16];
  std::snprintf(text, sizeof text, "%08lx", hash);
  return text;
}

std::optional<std::string> ReadText(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) return std::nullopt;  // follows links
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) return std::nullopt;
  return text.str();
}

// "69ab9ea1.r0 (-> crl-000001.pem)" for a link, else the name.
std::string Shown(const std::filesystem::directory_entry& entry) {
  std::string shown = entry.path().filename().string();
  std::error_code error;
  if (entry.is_symlink(error)) {
    const std::filesystem::path target = std::filesystem::read_symlink(entry.path(), error);
    if (!error) shown += Cat(" (-> ", target.string(), ")");
  }
  return shown;
}

// Checks tls.crl_dir against the client CAs `cas` (see above); a phrase for
// the start banner.
absl::StatusOr<std::string> CheckCrlDir(const GatewayConfig& config,
                                        const std::vector<X509Ptr>& cas) {
  namespace fs = std::filesystem;
  const TlsFile dir{"tls.crl_dir", "--tls-crl-dir", "the CRL folder", config.tls_crl_dir};
  const std::string rehash = Cat("run `openssl rehash ", dir.path, "`");
  const auto unreadable = [&](std::string_view why) {
    return engine::Refusal(absl::StatusCode::kNotFound, reason::kTlsFileUnreadable, dir.key,
                           Cat("cannot read ", dir.what, " ", dir.path, " (", dir.key, ", ",
                               dir.flag, "): ", why));
  };
  std::error_code error;
  if (!fs::is_directory(dir.path, error)) return unreadable("not a folder");
  std::vector<fs::directory_entry> entries;
  for (fs::directory_iterator it(dir.path, error), end; !error && it != end; it.increment(error)) {
    entries.push_back(*it);
  }
  if (error) return unreadable(error.message());
  std::sort(entries.begin(), entries.end(),
            [](const fs::directory_entry& a, const fs::directory_entry& b) {
              return a.path().filename() < b.path().filename();
            });

  // What gRPC reads: the CRLs under <hash>.rN names.
  struct Loaded {
    std::string name;
    CrlPtr crl;
  };
  std::vector<Loaded> loaded;
  std::map<unsigned long, std::set<int>> numbers;  // hash -> N of its .rN names
  std::vector<fs::path> hashed_paths;
  std::vector<const fs::directory_entry*> crl_files;  // CRLs under other names
  for (const fs::directory_entry& entry : entries) {
    const std::string name = entry.path().filename().string();
    const std::optional<HashedName> hashed = ParseHashedName(name);
    if (hashed && !hashed->crl) {
      return TlsInvalid(dir, Cat(Shown(entry),
                                 " is a certificate's hashed name: gRPC would trust that "
                                 "certificate like a CA of tls.client_ca_file; keep only CRLs "
                                 "in the folder (move the certificate out, delete ",
                                 name, ")"));
    }
    const std::optional<std::string> text = ReadText(entry.path());
    if (hashed) {
      if (!text) {
        return TlsInvalid(dir, Cat(Shown(entry),
                                   " cannot be read (a link to a deleted CRL?): OpenSSL stops "
                                   "at it and never reads that CA's later CRLs; delete it and ",
                                   rehash));
      }
      PemObjects objects = ReadPemObjects(*text);
      if (objects.crls.empty() || objects.certificates > 0) {
        return TlsInvalid(dir, Cat(Shown(entry),
                                   " is not a PEM CRL: OpenSSL stops at it and never reads that "
                                   "CA's later CRLs; keep only CRLs in the folder and ",
                                   rehash));
      }
      for (CrlPtr& crl : objects.crls) {
        int ok = 0;
        const unsigned long hash =
            X509_NAME_hash_ex(X509_CRL_get_issuer(crl.get()), nullptr, nullptr, &ok);
        if (ok != 1 || hash != hashed->hash) {
          return TlsInvalid(dir, Cat(Shown(entry), " holds a CRL of ",
                                     NameText(X509_CRL_get_issuer(crl.get())),
                                     ", which OpenSSL looks up as ", HashText(hash),
                                     ".rN, not under this name; ", rehash));
        }
        loaded.push_back({Shown(entry), std::move(crl)});
      }
      numbers[hashed->hash].insert(hashed->number);
      hashed_paths.push_back(entry.path());
      continue;
    }
    if (!text) continue;  // a subfolder, or unreadable: OpenSSL does not read it either
    const PemObjects objects = ReadPemObjects(*text);
    if (objects.certificates > 0) {
      return TlsInvalid(dir, Cat(name,
                                 " holds a certificate: `openssl rehash` would give it a hashed "
                                 "name and gRPC would trust it like a CA of "
                                 "tls.client_ca_file; keep only CRLs in the folder"));
    }
    if (!objects.crls.empty()) crl_files.push_back(&entry);
  }
  // A CRL gRPC cannot find under a hashed name protects nothing.
  for (const fs::directory_entry* file : crl_files) {
    const bool named = std::any_of(hashed_paths.begin(), hashed_paths.end(),
                                   [&](const fs::path& p) {
                                     std::error_code ignored;
                                     return fs::equivalent(p, file->path(), ignored);
                                   });
    if (!named) {
      const std::string name = file->path().filename().string();
      std::error_code link_error;
      const bool link = file->is_symlink(link_error);
      // openssl rehash names only files ending in these (of any case).
      std::string extension = file->path().extension().string();
      for (char& c : extension) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const bool rehashable = extension == ".pem" || extension == ".crl" || extension == ".crt" ||
                              extension == ".cer";
      std::string fix;
      if (link && RehashTakesForItsLink(name)) {
        fix = "delete that link (OpenSSL opens only <8 lowercase hex digits>.rN, N without a "
              "leading zero, and openssl rehash may keep this link instead of making that "
              "name), keep the CRL in the folder as a .pem file and ";
      } else if (!rehashable) {
        fix = "rename it to end in .pem (openssl rehash names only .pem, .crt, .cer and .crl "
              "files), ";
      }
      return TlsInvalid(dir, Cat(Shown(*file),
                                 " is a CRL without a hashed name (<issuer-hash>.rN), so gRPC "
                                 "never reads it: ",
                                 fix, rehash));
    }
  }
  for (const auto& [hash, taken] : numbers) {
    int next = 0;
    for (int n : taken) {
      if (n != next) {
        return TlsInvalid(dir, Cat(HashText(hash), ".r", next, " is missing: OpenSSL reads .r0, "
                                   ".r1, ... up to the first gap and never reads ",
                                   HashText(hash), ".r", n, "; ", rehash));
      }
      ++next;
    }
  }

  // A CRL naming a client CA must be signed by it: in use it would fail
  // every handshake of that CA's certificates.
  const auto signed_by = [](const Loaded& l, X509* ca) {
    EVP_PKEY* key = X509_get0_pubkey(ca);
    const bool ok = X509_NAME_cmp(X509_CRL_get_issuer(l.crl.get()), X509_get_subject_name(ca)) ==
                        0 &&
                    key != nullptr && X509_CRL_verify(l.crl.get(), key) == 1;
    ERR_clear_error();
    return ok;
  };
  for (const Loaded& l : loaded) {
    bool names_a_ca = false;
    bool signed_by_a_ca = false;
    for (const X509Ptr& ca : cas) {
      names_a_ca |=
          X509_NAME_cmp(X509_CRL_get_issuer(l.crl.get()), X509_get_subject_name(ca.get())) == 0;
      signed_by_a_ca |= signed_by(l, ca.get());
    }
    if (names_a_ca && !signed_by_a_ca) {
      return TlsInvalid(dir, Cat(l.name, " names the client CA ",
                                 NameText(X509_CRL_get_issuer(l.crl.get())),
                                 " as its issuer but is not signed by its key: in use it would "
                                 "fail every handshake of that CA's certificates; delete it "
                                 "(and its file) and ",
                                 rehash));
    }
  }
  // Every client CA: a current CRL, and its newest CRL current, since OpenSSL
  // prefers a current older CRL to an expired newer one.
  const ASN1_TIME* soonest = nullptr;
  for (const X509Ptr& ca : cas) {
    const std::string subject = SubjectOf(ca.get());
    std::vector<const Loaded*> of_ca;
    for (const Loaded& l : loaded) {
      if (signed_by(l, ca.get())) of_ca.push_back(&l);
    }
    if (of_ca.empty()) {
      return TlsInvalid(dir, Cat("no CRL of the client CA ", subject,
                                 " (under its hashed name ",
                                 HashText(X509_NAME_hash_ex(X509_get_subject_name(ca.get()),
                                                            nullptr, nullptr, nullptr)),
                                 ".rN): gRPC would accept that CA's certificates without a "
                                 "revocation check; put the CA's current CRL in the folder and ",
                                 rehash));
    }
    const Loaded* newest = nullptr;  // the latest lastUpdate that is not in the future
    for (const Loaded* l : of_ca) {
      const ASN1_TIME* last = X509_CRL_get0_lastUpdate(l->crl.get());
      if (X509_cmp_current_time(last) >= 0) continue;
      if (newest == nullptr ||
          ASN1_TIME_compare(last, X509_CRL_get0_lastUpdate(newest->crl.get())) > 0) {
        newest = l;
      }
    }
    if (newest == nullptr) {
      return TlsInvalid(dir, Cat("every CRL of the client CA ", subject,
                                 " is not yet valid (lastUpdate ",
                                 TimeText(X509_CRL_get0_lastUpdate(of_ca.front()->crl.get()), true),
                                 " is after this machine's clock): every handshake of that CA's "
                                 "certificates would fail"));
    }
    const auto current = [](const Loaded* l) {
      const ASN1_TIME* next = X509_CRL_get0_nextUpdate(l->crl.get());
      return X509_cmp_current_time(X509_CRL_get0_lastUpdate(l->crl.get())) < 0 &&
             (next == nullptr || X509_cmp_current_time(next) > 0);
    };
    const ASN1_TIME* next = X509_CRL_get0_nextUpdate(newest->crl.get());
    if (!current(newest)) {
      const auto older = std::find_if(of_ca.begin(), of_ca.end(), current);
      return TlsInvalid(
          dir, Cat("the newest CRL of the client CA ", subject, ", ", newest->name,
                   ", expired on ", TimeText(next, true),
                   older == of_ca.end()
                       ? std::string(": every handshake of that CA's certificates would fail")
                       : Cat(": OpenSSL would fall back to the older ", (*older)->name,
                             ", which misses the revocations since"),
                   "; publish the CA's next CRL"));
    }
    for (const Loaded* l : of_ca) {
      if (l != newest &&
          ASN1_TIME_compare(X509_CRL_get0_lastUpdate(l->crl.get()),
                            X509_CRL_get0_lastUpdate(newest->crl.get())) == 0 &&
          X509_CRL_match(l->crl.get(), newest->crl.get()) != 0) {
        return TlsInvalid(dir, Cat(newest->name, " and ", l->name,
                                   " are different CRLs of the client CA ", subject,
                                   " with the same lastUpdate: OpenSSL uses whichever it reads "
                                   "first; publish the CA's next CRL (a later lastUpdate)"));
      }
    }
    if (next != nullptr && (soonest == nullptr || ASN1_TIME_compare(next, soonest) < 0)) {
      soonest = next;
    }
  }
  return Cat("revocation checked against the CRLs in ", dir.path,
             soonest == nullptr ? std::string(" (no next update given)")
                                : Cat(" (next update due by ", TimeText(soonest), ")"));
}

}  // namespace

absl::StatusOr<std::string> CheckTlsFiles(const GatewayConfig& config) {
  const TlsFile cert_file{"tls.cert_file", "--tls-cert", "the server certificate file",
                          config.tls_cert_file};
  const TlsFile key_file{"tls.key_file", "--tls-key", "the server key file", config.tls_key_file};
  const TlsFile ca_file{"tls.client_ca_file", "--tls-client-ca", "the client CA file",
                        config.tls_client_ca_file};
  absl::StatusOr<std::string> cert_pem = ReadTlsFile(cert_file);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = ReadTlsFile(key_file);
  if (!key_pem.ok()) return key_pem.status();
  absl::StatusOr<std::string> ca_pem = ReadTlsFile(ca_file);
  if (!ca_pem.ok()) return ca_pem.status();

  const std::vector<X509Ptr> chain = Certificates(*cert_pem);
  if (chain.empty()) return TlsInvalid(cert_file, "no PEM certificate in it");
  X509* leaf = chain.front().get();
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
    return TlsInvalid(cert_file, Cat("the server certificate expired on ", NotAfterOf(leaf)));
  }
  BioPtr key_bio = MemBio(*key_pem);
  PkeyPtr key(
      key_bio == nullptr ? nullptr
                         : PEM_read_bio_PrivateKey(key_bio.get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return TlsInvalid(key_file, "no unencrypted PEM private key in it");
  }
  const bool key_matches = X509_check_private_key(leaf, key.get()) == 1;
  ERR_clear_error();
  if (!key_matches) {
    return TlsInvalid(key_file, Cat("the key does not belong to the server certificate in ",
                                    config.tls_cert_file));
  }
  const std::vector<X509Ptr> cas = Certificates(*ca_pem);
  if (cas.empty()) return TlsInvalid(ca_file, "no PEM certificate in it");
  std::string revocation;
  if (!config.tls_crl_dir.empty()) {
    absl::StatusOr<std::string> crls = CheckCrlDir(config, cas);
    if (!crls.ok()) return crls.status();
    revocation = Cat("; ", *crls);
  }
  return Cat("server certificate ", SubjectOf(leaf), ", valid until ", NotAfterOf(leaf), "; ",
             static_cast<int64_t>(cas.size()), " client CA certificate",
             cas.size() == 1 ? "" : "s", "; files re-read every ",
             config.tls_reload_interval_s, " s", revocation);
}

namespace {

int64_t UnixOf(const ASN1_TIME* time) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

TlsExpiry ReadTlsExpiry(const GatewayConfig& config) {
  TlsExpiry out;
  if (config.insecure_dev) return out;
  if (std::optional<std::string> pem = ReadText(config.tls_cert_file)) {
    std::vector<X509Ptr> certs = Certificates(*pem);
    if (!certs.empty()) out.server_not_after_unix = UnixOf(X509_get0_notAfter(certs[0].get()));
  }
  if (config.tls_crl_dir.empty()) return out;
  std::map<std::string, int64_t> latest;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(config.tls_crl_dir, error)) {
    if (!entry.is_regular_file(error)) continue;
    std::optional<std::string> pem = ReadText(entry.path());
    if (!pem) continue;
    for (const CrlPtr& crl : ReadPemObjects(*pem).crls) {
      int64_t& next = latest[NameText(X509_CRL_get_issuer(crl.get()))];
      next = std::max(next, UnixOf(X509_CRL_get0_nextUpdate(crl.get())));
    }
  }
  out.crl_next_update_unix.assign(latest.begin(), latest.end());
  return out;
}

}  // namespace medsettle::gateway
