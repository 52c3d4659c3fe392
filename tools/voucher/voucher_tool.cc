#include "tools/voucher/voucher_tool.h"

#include <fcntl.h>
#include <qrencode.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <utility>

#include "cache/person_key.h"
#include "engine/status.h"
#include "engine/text.h"
#include "gateway/credentials/ec_token.h"

namespace medsettle::voucher_tool {
namespace {

using engine::Cat;
namespace cred = credentials;

constexpr std::string_view kUsage =
    "usage: medsettle-voucher COMMAND [flags]   (tools/voucher/README.md)\n"
    "  keygen --kid KID --out DIR\n"
    "      writes DIR/KID.key.pem (private, 0600) and DIR/KID.pub.pem (for the gateway)\n"
    "  issue --signing-key DIR/KID.key.pem [--kid KID]\n"
    "        (--id-card NUMBER --key-file SECRETFILE | --person-key HEX)\n"
    "        [--presenter-id-card NUMBER | --presenter-key HEX]\n"
    "        [--scope outpatient,pharmacy,inpatient] [--minutes N] [--issued-at UNIX_SECONDS]\n"
    "        [--nonce HEX32] [--qr | --json]\n"
    "      prints the token (with --qr: the QR code, then the token; --json: the claims)\n"
    "  inspect TOKEN [--keys DIR] [--now UNIX_SECONDS] [--skew-seconds N]\n"
    "      prints the claims; with --keys also verifies: \"valid\" or the refusal (exit 1)\n"
    "exit codes: 0 done, 1 refused or failed, 2 usage\n";

// Files read by the tool are keys and secrets: a few hundred bytes.
constexpr size_t kMaxInputFileBytes = 64 * 1024;

std::string_view MessageOf(const absl::Status& s) {
  return std::string_view(s.message().data(), s.message().size());
}

std::string Describe(const absl::Status& s) {
  return Cat(absl::StatusCodeToString(s.code()), " ", engine::ReasonOf(s), ": ", MessageOf(s));
}

int Fail(std::ostream& err, const absl::Status& s) {
  err << "medsettle-voucher: " << Describe(s) << "\n";
  return kExitRefused;
}

int Usage(std::ostream& err, std::string_view message) {
  err << "medsettle-voucher: " << message << "\n"
      << "run medsettle-voucher --help for usage\n";
  return kExitUsage;
}

// ---- Command line ----

struct Flags {
  std::map<std::string, std::string, std::less<>> named;
  std::set<std::string, std::less<>> switches;
  std::vector<std::string> positional;

  const std::string* Value(std::string_view name) const {
    auto it = named.find(name);
    return it == named.end() ? nullptr : &it->second;
  }
  bool Has(std::string_view name) const { return named.count(name) > 0; }
  bool Switch(std::string_view name) const { return switches.count(name) > 0; }
};

// "--name value" for every name in `with_value`, "--name" alone for every
// name in `switches`; anything else starting with "--" is a usage error.
absl::StatusOr<Flags> ParseFlags(const std::vector<std::string>& args, size_t from,
                                 const std::set<std::string_view>& with_value,
                                 const std::set<std::string_view>& switches) {
  Flags flags;
  for (size_t k = from; k < args.size(); ++k) {
    const std::string& a = args[k];
    if (a.size() < 2 || a.compare(0, 2, "--") != 0) {
      flags.positional.push_back(a);
      continue;
    }
    std::string name = a.substr(2);
    if (switches.count(name) > 0) {
      flags.switches.insert(name);
    } else if (with_value.count(name) > 0) {
      if (k + 1 >= args.size()) return absl::InvalidArgumentError(Cat(a, " needs a value"));
      if (!flags.named.emplace(name, args[k + 1]).second) {
        return absl::InvalidArgumentError(Cat(a, " given twice"));
      }
      ++k;
    } else {
      return absl::InvalidArgumentError(Cat("unknown flag ", a));
    }
  }
  return flags;
}

bool ParseInt(std::string_view s, int64_t* v) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

absl::StatusOr<std::string> ReadFile(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(Cat("cannot read the ", what, " ", path));
  std::string data;
  char buffer[4096];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    data.append(buffer, static_cast<size_t>(in.gcount()));
    if (data.size() > kMaxInputFileBytes) {
      return absl::InvalidArgumentError(Cat("the ", what, " ", path, " is too large"));
    }
  }
  if (in.bad()) return absl::NotFoundError(Cat("cannot read the ", what, " ", path));
  return data;
}

// Writes `data` to a new file `path` with `mode`; never replaces one.
absl::Status WriteNewFile(const std::string& path, std::string_view data, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    return absl::FailedPreconditionError(Cat("cannot create ", path, ": ", std::strerror(errno)));
  }
  bool ok = ::fchmod(fd, mode) == 0;  // whatever the umask
  size_t written = 0;
  while (ok && written < data.size()) {
    ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    written += static_cast<size_t>(n);
  }
  ok = ::fsync(fd) == 0 && ok;
  ok = ::close(fd) == 0 && ok;
  if (!ok) {
    ::unlink(path.c_str());
    return absl::InternalError(Cat("writing ", path, " failed"));
  }
  return absl::OkStatus();
}

std::string UtcTime(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  char buffer[32] = "?";
  if (::gmtime_r(&t, &tm) != nullptr)
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

int64_t NowUnix() { return static_cast<int64_t>(std::time(nullptr)); }

// A JSON string (the values here are ASCII already; escaping is a guard).
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\u%04x", static_cast<unsigned>(c));
      out += hex;
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

// ---- keygen ----

int RunKeygen(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<Flags> flags = ParseFlags(args, 1, {"kid", "out"}, {});
  if (!flags.ok()) return Usage(err, MessageOf(flags.status()));
  const std::string* kid = flags->Value("kid");
  const std::string* dir = flags->Value("out");
  if (kid == nullptr || dir == nullptr || !flags->positional.empty()) {
    return Usage(err, "keygen needs --kid KID and --out DIR");
  }
  if (!cred::IsValidKeyId(*kid)) {
    return Usage(err, Cat("--kid must be 1..", cred::kMaxKeyIdLength, " of [A-Za-z0-9_-]"));
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(*dir, ec);
  if (ec) {
    return Fail(err,
                absl::FailedPreconditionError(Cat("cannot create ", *dir, ": ", ec.message())));
  }
  const std::string private_path = (fs::path(*dir) / Cat(*kid, ".key.pem")).string();
  const std::string public_path = (fs::path(*dir) / Cat(*kid, ".pub.pem")).string();
  for (const std::string& path : {private_path, public_path}) {
    if (fs::exists(fs::symlink_status(path, ec))) {
      return Fail(err, absl::AlreadyExistsError(Cat(
                           path, " exists; refusing to overwrite a key (choose another --kid)")));
    }
  }
  absl::StatusOr<cred::IssuerSigningKey> key = cred::IssuerSigningKey::Generate();
  if (!key.ok()) return Fail(err, key.status());
  std::string private_pem = key->PrivateKeyPem();
  std::string public_pem = key->PublicKeyPem();
  if (private_pem.empty() || public_pem.empty()) {
    return Fail(err, absl::InternalError("encoding the key as PEM failed"));
  }
  if (absl::Status s = WriteNewFile(private_path, private_pem, 0600); !s.ok()) return Fail(err, s);
  if (absl::Status s = WriteNewFile(public_path, public_pem, 0644); !s.ok()) {
    ::unlink(private_path.c_str());
    return Fail(err, s);
  }
  std::fill(private_pem.begin(), private_pem.end(), '\0');
  out << "wrote " << private_path << " (private key, mode 0600: keep it on the voucher platform)\n"
      << "wrote " << public_path
      << " (public key: copy it into the gateway's ec_token.issuer_keys_dir)\n";
  return kExitOk;
}

// ---- issue ----

// Where a person (or presenter) key comes from: --<id_flag> NUMBER keyed
// with --key-file, or --<key_flag> HEX.
struct KeySource {
  std::string_view id_flag;
  std::string_view key_flag;
};

int RunIssue(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<Flags> flags =
      ParseFlags(args, 1,
                 {"signing-key", "kid", "id-card", "key-file", "person-key", "presenter-id-card",
                  "presenter-key", "scope", "minutes", "issued-at", "nonce"},
                 {"qr", "json"});
  if (!flags.ok()) return Usage(err, MessageOf(flags.status()));
  if (!flags->positional.empty())
    return Usage(err, Cat("unexpected argument ", flags->positional[0]));
  if (flags->Switch("qr") && flags->Switch("json"))
    return Usage(err, "give --qr or --json, not both");

  const std::string* signing_key_path = flags->Value("signing-key");
  if (signing_key_path == nullptr) return Usage(err, "issue needs --signing-key DIR/KID.key.pem");
  cred::EcTokenClaims claims;
  if (const std::string* kid = flags->Value("kid")) {
    claims.key_id = *kid;
  } else {
    // The key file's own name, when it follows keygen's KID.key.pem.
    std::string name = std::filesystem::path(*signing_key_path).filename().string();
    constexpr std::string_view kSuffix = ".key.pem";
    if (name.size() > kSuffix.size() &&
        name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0) {
      claims.key_id = name.substr(0, name.size() - kSuffix.size());
    }
  }
  if (!cred::IsValidKeyId(claims.key_id)) {
    return Usage(err, Cat("--kid must be 1..", cred::kMaxKeyIdLength,
                          " of [A-Za-z0-9_-] (or name the signing key KID.key.pem)"));
  }

  // Person and presenter keys. The keyer is built once, when an ID number
  // needs it.
  std::optional<cache::PersonKeyer> keyer;
  auto key_of = [&](KeySource source, std::string* key, bool required) -> std::optional<int> {
    const std::string* id = flags->Value(source.id_flag);
    const std::string* hex = flags->Value(source.key_flag);
    if (id != nullptr && hex != nullptr) {
      return Usage(err, Cat("give --", source.id_flag, " or --", source.key_flag, ", not both"));
    }
    if (hex != nullptr) {
      *key = Lower(*hex);
      if (!cred::IsLowerHex(*key, 64)) {
        return Usage(err, Cat("--", source.key_flag, " must be 64 hex characters"));
      }
      return std::nullopt;
    }
    if (id == nullptr) {
      if (required) {
        return Usage(err, Cat("give --", source.id_flag, " NUMBER --key-file SECRETFILE, or --",
                              source.key_flag, " HEX"));
      }
      return std::nullopt;
    }
    if (!keyer) {
      const std::string* key_file = flags->Value("key-file");
      if (key_file == nullptr) {
        return Usage(err, Cat("--", source.id_flag,
                              " needs --key-file SECRETFILE (the gateway's "
                              "pseudonymisation secret)"));
      }
      absl::StatusOr<std::string> secret = ReadFile(*key_file, "key file");
      if (!secret.ok()) return Fail(err, secret.status());
      absl::StatusOr<cache::PersonKeyer> created = cache::PersonKeyer::Create(*secret);
      std::fill(secret->begin(), secret->end(), '\0');
      if (!created.ok()) return Fail(err, created.status());
      keyer.emplace(*std::move(created));
    }
    absl::StatusOr<std::string> computed = keyer->KeyOfIdNumber(*id);
    if (!computed.ok()) {
      return Fail(err,
                  engine::Refusal(computed.status().code(), engine::ReasonOf(computed.status()),
                                  engine::FieldOf(computed.status()),
                                  Cat("--", source.id_flag, ": ", MessageOf(computed.status()))));
    }
    *key = *std::move(computed);
    return std::nullopt;
  };
  if (std::optional<int> code = key_of({"id-card", "person-key"}, &claims.person_key, true)) {
    return *code;
  }
  if (std::optional<int> code =
          key_of({"presenter-id-card", "presenter-key"}, &claims.presenter_key, false)) {
    return *code;
  }
  if (flags->Has("key-file") && !keyer) {
    return Usage(err, "--key-file is used only with --id-card or --presenter-id-card");
  }

  absl::StatusOr<uint8_t> scopes =
      cred::ParseScopes(flags->Value("scope") ? *flags->Value("scope") : "outpatient,pharmacy");
  if (!scopes.ok()) return Usage(err, Cat("--scope: ", MessageOf(scopes.status())));
  claims.scopes = *scopes;

  int64_t minutes = kDefaultMinutes;
  if (const std::string* m = flags->Value("minutes")) {
    if (!ParseInt(*m, &minutes) || minutes < 1 || minutes > kMaxMinutes) {
      return Usage(err, Cat("--minutes must be a whole number from 1 to ", kMaxMinutes));
    }
  }
  int64_t issued_at = NowUnix();
  if (const std::string* at = flags->Value("issued-at")) {
    if (!ParseInt(*at, &issued_at) || issued_at < 0) {
      return Usage(err, "--issued-at must be Unix seconds (≥ 0)");
    }
  }
  claims.issued_at_minute = issued_at / 60;
  claims.expires_at_minute = claims.issued_at_minute + minutes;
  if (const std::string* nonce = flags->Value("nonce")) {
    claims.nonce = Lower(*nonce);
    if (!cred::IsLowerHex(claims.nonce, 32)) return Usage(err, "--nonce must be 32 hex characters");
  }

  absl::StatusOr<std::string> pem = ReadFile(*signing_key_path, "signing key");
  if (!pem.ok()) return Fail(err, pem.status());
  absl::StatusOr<cred::IssuerSigningKey> key = cred::IssuerSigningKey::FromPrivateKeyPem(*pem);
  std::fill(pem->begin(), pem->end(), '\0');
  if (!key.ok()) {
    return Fail(err, engine::Refusal(key.status().code(), engine::ReasonOf(key.status()), "",
                                     Cat(*signing_key_path, ": ", MessageOf(key.status()))));
  }
  absl::StatusOr<std::string> token = key->Issue(claims);
  if (!token.ok()) return Fail(err, token.status());
  // Read back what was signed (the nonce, when it was drawn here).
  absl::StatusOr<cred::ParsedEcToken> parsed = cred::ParseEcToken(*token);
  if (!parsed.ok()) return Fail(err, parsed.status());
  const cred::EcTokenClaims& c = parsed->claims;

  if (flags->Switch("json")) {
    out << "{\"token\":" << Quote(*token) << ",\"person_key\":" << Quote(c.person_key)
        << ",\"presenter_key\":" << (c.presenter_key.empty() ? "null" : Quote(c.presenter_key))
        << ",\"key_id\":" << Quote(c.key_id) << ",\"issued_at\":" << c.issued_at_minute * 60
        << ",\"expires_at\":" << c.expires_at_minute * 60 << ",\"nonce\":" << Quote(c.nonce)
        << ",\"scopes\":" << Quote(cred::ScopesToString(c.scopes)) << "}\n";
  } else {
    if (flags->Switch("qr")) {
      absl::StatusOr<std::string> qr = RenderQr(*token);
      if (!qr.ok()) return Fail(err, qr.status());
      out << *qr;
    }
    out << *token << "\n";
  }
  out.flush();
  return out ? kExitOk : kExitRefused;
}

// ---- inspect ----

int RunInspect(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<Flags> flags = ParseFlags(args, 1, {"keys", "now", "skew-seconds"}, {});
  if (!flags.ok()) return Usage(err, MessageOf(flags.status()));
  if (flags->positional.size() != 1) return Usage(err, "inspect needs exactly one TOKEN");
  const std::string& token = flags->positional[0];
  cred::VerifyOptions options;
  options.now_unix = NowUnix();
  if (const std::string* now = flags->Value("now")) {
    if (!ParseInt(*now, &options.now_unix)) return Usage(err, "--now must be Unix seconds");
  }
  if (const std::string* skew = flags->Value("skew-seconds")) {
    int64_t v = 0;
    if (!ParseInt(*skew, &v) || v < 0 || v > 86400) {
      return Usage(err, "--skew-seconds must be from 0 to 86400");
    }
    options.clock_skew_seconds = static_cast<int>(v);
  }

  absl::StatusOr<cred::ParsedEcToken> parsed = cred::ParseEcToken(token);
  if (!parsed.ok()) return Fail(err, parsed.status());
  const cred::EcTokenClaims& c = parsed->claims;
  auto time_line = [](int64_t minute) { return Cat(UtcTime(minute * 60), " (", minute * 60, ")"); };
  out << "key_id      " << c.key_id << "\n"
      << "person_key  " << c.person_key << "\n"
      << "presenter   "
      << (c.presenter_key.empty() ? "(none: the person presents)" : c.presenter_key) << "\n"
      << "issued_at   " << time_line(c.issued_at_minute) << "\n"
      << "expires_at  " << time_line(c.expires_at_minute) << "\n"
      << "nonce       " << c.nonce << "\n"
      << "scopes      " << cred::ScopesToString(c.scopes) << "\n";

  const std::string* keys_dir = flags->Value("keys");
  if (keys_dir == nullptr) {
    out << "signature   not checked (give --keys DIR to verify)\n";
    return kExitOk;
  }
  absl::StatusOr<cred::IssuerKeyring> keyring = cred::IssuerKeyring::LoadDirectory(*keys_dir);
  if (!keyring.ok()) return Fail(err, keyring.status());
  absl::StatusOr<cred::EcTokenClaims> verified = cred::VerifyEcToken(token, *keyring, options);
  if (!verified.ok()) {
    out << "refused     " << engine::ReasonOf(verified.status()) << ": "
        << MessageOf(verified.status()) << "\n";
    return kExitRefused;
  }
  out << "valid\n";
  return kExitOk;
}

}  // namespace

absl::StatusOr<std::string> RenderQr(std::string_view text) {
  std::string input(text);  // NUL-terminated for libqrencode
  if (input.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("QR text must not contain NUL");
  }
  struct QrFree {
    void operator()(QRcode* q) const { QRcode_free(q); }
  };
  std::unique_ptr<QRcode, QrFree> qr(
      QRcode_encodeString(input.c_str(), 0, QR_ECLEVEL_M, QR_MODE_8, 1));
  if (qr == nullptr || qr->width <= 0 || qr->data == nullptr) {
    return absl::InternalError(Cat("libqrencode could not encode ", text.size(), " bytes"));
  }
  constexpr int kQuiet = 2;
  const int width = qr->width;
  const int size = width + 2 * kQuiet;
  // Light (or outside the symbol: the quiet zone, and the half row below an
  // odd-sized image) → drawn; byte for byte `qrencode -l M -m 2 -t UTF8`.
  auto light = [&](int y, int x) {
    int qy = y - kQuiet, qx = x - kQuiet;
    if (qy < 0 || qx < 0 || qy >= width || qx >= width) return true;
    return (qr->data[static_cast<size_t>(qy) * static_cast<size_t>(width) +
                     static_cast<size_t>(qx)] &
            1) == 0;
  };
  std::string out;
  for (int y = 0; y < size; y += 2) {
    for (int x = 0; x < size; ++x) {
      bool top = light(y, x), bottom = light(y + 1, x);
      out += top && bottom ? "\u2588" : top ? "\u2580" : bottom ? "\u2584" : " ";
    }
    out.push_back('\n');
  }
  return out;
}

int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << kUsage;
    return kExitUsage;
  }
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h" || (&a == &args[0] && a == "help")) {
      out << kUsage;
      return kExitOk;
    }
  }
  const std::string& command = args[0];
  if (command == "keygen") return RunKeygen(args, out, err);
  if (command == "issue") return RunIssue(args, out, err);
  if (command == "inspect") return RunInspect(args, out, err);
  return Usage(err, Cat("unknown command ", command));
}

}  // namespace medsettle::voucher_tool
