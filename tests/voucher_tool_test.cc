// medsettle-voucher in-process (tools/voucher/voucher_tool.h): keygen
// writes a key pair (private 0600) and never overwrites one, issue keys an
// ID number exactly as the gateway does (cache::PersonKeyer over the same
// secret file) and never prints it, --qr draws the code and the token,
// --json the claims, and inspect verifies and refuses an altered token.
#include "tools/voucher/voucher_tool.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cache/person_key.h"
#include "gateway/credentials/ec_token.h"

namespace medsettle::voucher_tool {
namespace {

// Valid GB 11643 numbers (check characters X and 8).
constexpr std::string_view kIdNumber = "11010519491231002X";
constexpr std::string_view kPresenterIdNumber = "330802200001011238";
constexpr std::string_view kSecret = "voucher-tool-test-secret-0123456789abcdef";
constexpr int64_t kIssuedAt = 1'746'518'400;  // 2025-05-06T08:00:00Z

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

size_t CodePoints(std::string_view utf8) {
  size_t n = 0;
  for (char c : utf8) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

class VoucherToolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "voucher_tool_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    keys_ = dir_ + "/keys";
    secret_ = dir_ + "/person-key";
    std::ofstream(secret_, std::ios::binary) << kSecret;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  int Run(std::vector<std::string> args) {
    std::ostringstream out, err;
    int code = voucher_tool::Run(args, out, err);
    out_ = out.str();
    err_ = err.str();
    return code;
  }

  void Keygen(const std::string& kid) {
    ASSERT_EQ(Run({"keygen", "--kid", kid, "--out", keys_}), kExitOk) << err_;
  }

  // Issues with the ID number and returns the token (the last line).
  std::string Issue(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "issue", "--signing-key", keys_ + "/demo1.key.pem", "--kid",
        "demo1", "--id-card",     std::string(kIdNumber),   "--key-file",
        secret_, "--issued-at",   std::to_string(kIssuedAt)};
    args.insert(args.end(), extra.begin(), extra.end());
    EXPECT_EQ(Run(args), kExitOk) << err_;
    std::vector<std::string> lines = Lines(out_);
    return lines.empty() ? std::string() : lines.back();
  }

  std::string dir_, keys_, secret_, out_, err_;
};

TEST_F(VoucherToolTest, KeygenWritesAPrivateKeyOnlyTheOwnerCanRead) {
  Keygen("demo1");
  const std::string private_path = keys_ + "/demo1.key.pem";
  const std::string public_path = keys_ + "/demo1.pub.pem";
  struct stat st {};
  ASSERT_EQ(::stat(private_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(public_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0044u & (st.st_mode & 0077));  // readable, never writable by others
  EXPECT_EQ(st.st_mode & 0022, 0u);

  std::string private_pem = ReadAll(private_path);
  EXPECT_EQ(private_pem.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);
  absl::StatusOr<credentials::IssuerSigningKey> key =
      credentials::IssuerSigningKey::FromPrivateKeyPem(private_pem);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->PublicKeyPem(), ReadAll(public_path));
  EXPECT_NE(out_.find("issuer_keys_dir"), std::string::npos) << out_;

  // The gateway's loader takes the folder as it is: the private key is ignored.
  absl::StatusOr<credentials::IssuerKeyring> ring =
      credentials::IssuerKeyring::LoadDirectory(keys_);
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_EQ(ring->size(), 1u);
  EXPECT_TRUE(ring->Has("demo1"));
}

TEST_F(VoucherToolTest, KeygenRefusesToOverwrite) {
  Keygen("demo1");
  const std::string before = ReadAll(keys_ + "/demo1.key.pem");
  EXPECT_EQ(Run({"keygen", "--kid", "demo1", "--out", keys_}), kExitRefused);
  EXPECT_NE(err_.find("refusing to overwrite"), std::string::npos) << err_;
  EXPECT_EQ(ReadAll(keys_ + "/demo1.key.pem"), before);
  // Only the public half left over is still not overwritten.
  std::filesystem::remove(keys_ + "/demo1.key.pem");
  EXPECT_EQ(Run({"keygen", "--kid", "demo1", "--out", keys_}), kExitRefused);
  EXPECT_FALSE(std::filesystem::exists(keys_ + "/demo1.key.pem"));
}

TEST_F(VoucherToolTest, KeygenUsage) {
  EXPECT_EQ(Run({"keygen", "--kid", "demo1"}), kExitUsage);
  EXPECT_EQ(Run({"keygen", "--out", keys_}), kExitUsage);
  EXPECT_EQ(Run({"keygen", "--kid", "bad.kid", "--out", keys_}), kExitUsage);
  EXPECT_EQ(Run({"keygen", "--kid", std::string(33, 'k'), "--out", keys_}), kExitUsage);
  EXPECT_EQ(Run({"keygen", "--kid", "demo1", "--out", keys_, "--force"}), kExitUsage);
  EXPECT_EQ(Run({"--help"}), kExitOk);
  EXPECT_NE(out_.find("medsettle-voucher"), std::string::npos);
  EXPECT_EQ(Run({}), kExitUsage);
  EXPECT_EQ(Run({"frobnicate"}), kExitUsage);
}

TEST_F(VoucherToolTest, IssueKeysTheIdNumberLikeTheGateway) {
  Keygen("demo1");
  std::string token = Issue({"--presenter-id-card", std::string(kPresenterIdNumber)});
  absl::StatusOr<cache::PersonKeyer> keyer = cache::PersonKeyer::Create(kSecret);
  ASSERT_TRUE(keyer.ok()) << keyer.status();

  absl::StatusOr<credentials::ParsedEcToken> parsed = credentials::ParseEcToken(token);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << " " << out_;
  const credentials::EcTokenClaims& c = parsed->claims;
  EXPECT_EQ(c.person_key, *keyer->KeyOfIdNumber(kIdNumber));
  EXPECT_EQ(c.presenter_key, *keyer->KeyOfIdNumber(kPresenterIdNumber));
  EXPECT_EQ(c.key_id, "demo1");
  EXPECT_EQ(c.issued_at_minute, kIssuedAt / 60);
  EXPECT_EQ(c.expires_at_minute, kIssuedAt / 60 + kDefaultMinutes);
  EXPECT_EQ(c.scopes, credentials::kScopeOutpatient | credentials::kScopePharmacy);
  EXPECT_TRUE(credentials::IsLowerHex(c.nonce, 32));
  // The token is the only output line; no ID number anywhere.
  EXPECT_EQ(out_, token + "\n");
  for (std::string_view id : {kIdNumber, kPresenterIdNumber}) {
    EXPECT_EQ(out_.find(id), std::string::npos);
    EXPECT_EQ(err_.find(id), std::string::npos);
  }
}

TEST_F(VoucherToolTest, IssueWithPersonKeyScopesMinutesNonceAndJson) {
  Keygen("demo1");
  const std::string person(64, 'a');
  ASSERT_EQ(Run({"issue", "--signing-key", keys_ + "/demo1.key.pem", "--person-key",
                 std::string(64, 'A'), "--presenter-key", std::string(64, 'b'), "--scope",
                 "inpatient", "--minutes", "30", "--issued-at", std::to_string(kIssuedAt),
                 "--nonce", "00112233445566778899AABBCCDDEEFF", "--json"}),
            kExitOk)
      << err_;
  // --kid defaults to the key file's name.
  EXPECT_NE(out_.find("\"key_id\":\"demo1\""), std::string::npos) << out_;
  EXPECT_NE(out_.find("\"person_key\":\"" + person + "\""), std::string::npos) << out_;
  EXPECT_NE(out_.find("\"presenter_key\":\"" + std::string(64, 'b') + "\""), std::string::npos);
  EXPECT_NE(out_.find("\"issued_at\":" + std::to_string(kIssuedAt)), std::string::npos);
  EXPECT_NE(out_.find("\"expires_at\":" + std::to_string(kIssuedAt + 30 * 60)), std::string::npos);
  EXPECT_NE(out_.find("\"nonce\":\"00112233445566778899aabbccddeeff\""), std::string::npos);
  EXPECT_NE(out_.find("\"scopes\":\"inpatient\""), std::string::npos);
  size_t at = out_.find("\"token\":\"EC1.");
  ASSERT_NE(at, std::string::npos) << out_;
  std::string token = out_.substr(at + 9, out_.find('"', at + 9) - (at + 9));
  absl::StatusOr<credentials::ParsedEcToken> parsed = credentials::ParseEcToken(token);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->claims.person_key, person);
  EXPECT_EQ(parsed->claims.scopes, credentials::kScopeInpatient);
}

TEST_F(VoucherToolTest, IssueUsageAndRefusals) {
  Keygen("demo1");
  const std::string key = keys_ + "/demo1.key.pem";
  const std::string id(kIdNumber);
  const std::string hex(64, 'a');
  EXPECT_EQ(Run({"issue", "--signing-key", key}), kExitUsage);                   // no person
  EXPECT_EQ(Run({"issue", "--signing-key", key, "--id-card", id}), kExitUsage);  // no key file
  EXPECT_EQ(Run({"issue", "--signing-key", key, "--id-card", id, "--key-file", secret_,
                 "--person-key", hex}),
            kExitUsage);
  EXPECT_EQ(Run({"issue", "--person-key", hex}), kExitUsage);  // no signing key
  EXPECT_EQ(Run({"issue", "--signing-key", key, "--person-key", "abc"}), kExitUsage);
  EXPECT_EQ(Run({"issue", "--signing-key", key, "--person-key", hex, "--scope", "dental"}),
            kExitUsage);
  EXPECT_EQ(Run({"issue", "--signing-key", key, "--person-key", hex, "--minutes", "0"}),
            kExitUsage);
  EXPECT_EQ(Run({"issue", "--signing-key", key, "--person-key", hex, "--nonce", "00"}), kExitUsage);
  EXPECT_EQ(Run({"issue", "--signing-key", key, "--person-key", hex, "--qr", "--json"}),
            kExitUsage);
  EXPECT_EQ(Run({"issue", "--signing-key", key, "--person-key", hex, "--kid", "a.b"}), kExitUsage);
  EXPECT_EQ(Run({"issue", "--signing-key", key, "--person-key", hex, "--bogus", "1"}), kExitUsage);

  // A malformed ID number: refused with the ID number's reason, and the
  // number is not echoed.
  const std::string typo = "11010519491231002";  // 17 characters
  EXPECT_EQ(Run({"issue", "--signing-key", key, "--id-card", typo, "--key-file", secret_}),
            kExitRefused);
  EXPECT_NE(err_.find("ID_NUMBER"), std::string::npos) << err_;
  EXPECT_EQ(err_.find(typo), std::string::npos) << err_;
  // A key file that is too short, a missing signing key, a public key as the signing key.
  std::ofstream(dir_ + "/short", std::ios::binary) << "short";
  EXPECT_EQ(Run({"issue", "--signing-key", key, "--id-card", id, "--key-file", dir_ + "/short"}),
            kExitRefused);
  EXPECT_EQ(Run({"issue", "--signing-key", dir_ + "/none.key.pem", "--person-key", hex}),
            kExitRefused);
  EXPECT_EQ(Run({"issue", "--signing-key", keys_ + "/demo1.pub.pem", "--kid", "demo1",
                 "--person-key", hex}),
            kExitRefused);
  EXPECT_NE(err_.find("ISSUER_KEY_INVALID"), std::string::npos) << err_;
}

TEST_F(VoucherToolTest, QrPrintsTheCodeThenTheToken) {
  Keygen("demo1");
  std::string token = Issue({"--qr", "--presenter-id-card", std::string(kPresenterIdNumber)});
  ASSERT_EQ(token.rfind("EC1.", 0), 0u) << out_;
  EXPECT_TRUE(credentials::ParseEcToken(token).ok());
  std::vector<std::string> lines = Lines(out_);
  ASSERT_GT(lines.size(), 10u);
  EXPECT_NE(out_.find("\u2588"), std::string::npos);
  EXPECT_NE(out_.find("\u2580"), std::string::npos);
  EXPECT_NE(out_.find("\u2584"), std::string::npos);
  // A square of modules: every QR line as wide as the first, which is all
  // quiet zone (light, so full blocks); width = rows × 2 within one.
  const size_t width = CodePoints(lines[0]);
  const size_t rows = lines.size() - 1;
  EXPECT_EQ(lines[0], [&] {
    std::string s;
    for (size_t k = 0; k < width; ++k) s += "\u2588";
    return s;
  }());
  for (size_t k = 0; k < rows; ++k) EXPECT_EQ(CodePoints(lines[k]), width) << "line " << k;
  EXPECT_EQ((width + 1) / 2, rows);
  // Version ≥ 7 for a token with a presenter: 45 modules + 2 × 2 quiet.
  EXPECT_GE(width, 49u);
  EXPECT_EQ(lines.back(), token);
}

TEST_F(VoucherToolTest, RenderQrShape) {
  absl::StatusOr<std::string> qr = RenderQr("hello");
  ASSERT_TRUE(qr.ok()) << qr.status();
  std::vector<std::string> lines = Lines(*qr);
  ASSERT_EQ(lines.size(), 13u);  // version 1: 21 + 4 = 25 modules, 13 character rows
  for (const std::string& line : lines) EXPECT_EQ(CodePoints(line), 25u);
  EXPECT_FALSE(RenderQr(std::string(8000, 'x')).ok());  // beyond version 40
}

TEST_F(VoucherToolTest, InspectVerifiesAndRefusesAnAlteredToken) {
  Keygen("demo1");
  std::string token = Issue();
  const std::string now = std::to_string(kIssuedAt + 60);
  EXPECT_EQ(Run({"inspect", token, "--keys", keys_, "--now", now}), kExitOk) << out_ << err_;
  EXPECT_NE(out_.find("valid"), std::string::npos) << out_;
  EXPECT_NE(out_.find("key_id      demo1"), std::string::npos) << out_;
  EXPECT_NE(out_.find("scopes      outpatient,pharmacy"), std::string::npos) << out_;
  EXPECT_NE(out_.find("2025-05-06T08:00:00Z"), std::string::npos) << out_;

  // Without keys: the claims only.
  EXPECT_EQ(Run({"inspect", token}), kExitOk);
  EXPECT_NE(out_.find("not checked"), std::string::npos) << out_;

  // One payload character changed (inside the person key): still a token,
  // no longer the issuer's.
  std::string altered = token;
  altered[4 + 12] = altered[4 + 12] == 'A' ? 'B' : 'A';
  EXPECT_EQ(Run({"inspect", altered, "--keys", keys_, "--now", now}), kExitRefused);
  EXPECT_NE(out_.find("EC_TOKEN_SIGNATURE_INVALID"), std::string::npos) << out_ << err_;
  EXPECT_EQ(out_.find("\nvalid"), std::string::npos) << out_;

  // Expired, and an unknown key folder.
  EXPECT_EQ(Run({"inspect", token, "--keys", keys_, "--now", std::to_string(kIssuedAt + 3600)}),
            kExitRefused);
  EXPECT_NE(out_.find("EC_TOKEN_EXPIRED"), std::string::npos) << out_;
  std::filesystem::create_directories(dir_ + "/other");
  EXPECT_EQ(Run({"inspect", token, "--keys", dir_ + "/other", "--now", now}), kExitRefused);
  EXPECT_NE(out_.find("EC_TOKEN_KEY_UNKNOWN"), std::string::npos) << out_;

  // Not a token at all.
  EXPECT_EQ(Run({"inspect", "EC1.garbage"}), kExitRefused);
  EXPECT_NE(err_.find("EC_TOKEN_MALFORMED"), std::string::npos) << err_;
  EXPECT_EQ(Run({"inspect"}), kExitUsage);
  EXPECT_EQ(Run({"inspect", token, "--now", "soon"}), kExitUsage);
}

}  // namespace
}  // namespace medsettle::voucher_tool
