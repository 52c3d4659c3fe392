// Mutual TLS end to end: a real gateway (in-process) serving TLS that
// requires and verifies client certificates, over a real redis-server, with
// a PKI made by deploy/pki/make-dev-pki.sh (tests/support/gateway_harness.h,
// HarnessOptions::tls):
//
//   identity   the verified certificate names the institution (SAN URI, or
//              the CN); a header claiming another institution is ignored;
//              the settlement's audit records the certificate's SHA-256
//   refused    no client certificate, another CA's, an expired one: no
//              connection; a certificate of an institution the registry
//              does not know: PERMISSION_DENIED INSTITUTION_UNKNOWN; a
//              server name that is not in the server certificate: no
//              connection
//   limits     an institution over its rate limit: RESOURCE_EXHAUSTED
//              RATE_LIMITED, the others unaffected
//   rotation   new server certificate, key and CA bundle files are picked
//              up by new connections after the reload interval, without a
//              restart
//   revocation (tls.crl_dir) a revoked certificate: no connection, the
//              others served; a CRL published while the gateway runs
//              refuses the next handshake, no restart, while connections
//              opened before stay; an expired CRL refuses every
//              certificate of its CA until the next is published; the
//              start refuses a CRL folder that would not protect (no CRL
//              of the CA, expired, another CA's or forged, not rehashed,
//              only under a name OpenSSL never opens such as <hash>.r00,
//              dangling, a certificate in it, two CRLs of one lastUpdate)
#include <grpc/grpc_security_constants.h>
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cache/redis_settlement_store.h"
#include "engine/status.h"
#include "engine/text.h"
#include "gateway/authenticator.h"
#include "gateway/counters.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/gateway_harness.h"

namespace medsettle::testing {
namespace {

using engine::Cat;
using Stub = v1::SettlementService::Stub;
using Clock = std::chrono::steady_clock;
using WallClock = std::chrono::system_clock;  // what CRL times are compared with

constexpr engine::RegionCode kQuzhou = 330800;
constexpr char kUnknownInstitution[] = "H9999999999";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs a shell command; its standard output, or nullopt when it failed.
std::optional<std::string> Shell(const std::string& command) {
  std::FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  std::string out;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  if (pclose(pipe) != 0) return std::nullopt;
  return out;
}

// openssl's SHA-256 fingerprint of a PEM certificate file, as 64 lowercase
// hex digits (the gateway's format).
std::string OpensslFingerprint(const std::string& pem_file) {
  std::optional<std::string> out =
      Shell(Cat("openssl x509 -noout -fingerprint -sha256 -in '", pem_file, "'"));
  if (!out) return "";
  std::string hex;
  for (char c : out->substr(out->find('=') + 1)) {
    if (std::isxdigit(static_cast<unsigned char>(c))) {
      hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return hex;
}

// `t` as openssl ca's -crl_lastupdate/-crl_nextupdate take it
// (YYYYMMDDHHMMSSZ, UTC).
std::string AsnTime(WallClock::time_point t) {
  const std::time_t seconds = WallClock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%d%H%M%SZ", &tm);
  return text;
}

// Replaces `to` with a copy of `from` in one rename (no half-written file
// is ever visible to the gateway's file watcher).
void ReplaceFile(const std::string& from, const std::string& to, const std::string& extra = "") {
  const std::string temp = to + ".new";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << ReadFile(from) << extra;
  }
  std::filesystem::rename(temp, to);
}

class GatewayTlsTest : public ::testing::Test {
 protected:
  void SetUp() override { StartHarness(false); }

  // The gateway over mutual TLS; with `crl`, also checking revocation
  // (HarnessOptions::crl) and re-reading the TLS files only hourly, so that
  // what a CRL changes cannot be the files' reload.
  void StartHarness(bool crl) {
    std::vector<SnapshotPerson> persons;
    for (int i = 1; i <= 8; ++i) persons.push_back({QuzhouId(i), Person(kQuzhou, 2024)});
    std::vector<engine::Institution> institutions;
    for (int level = 1; level <= 3; ++level) institutions.push_back(Hospital(kQuzhou, level));
    institutions.push_back(Pharmacy(kQuzhou));
    HarnessOptions options;
    options.tls = true;
    options.extra_certificates = {kUnknownInstitution};
    options.crl = crl;
    absl::StatusOr<std::unique_ptr<GatewayHarness>> h = GatewayHarness::Start(
        persons, institutions,
        [crl](gateway::GatewayConfig& c) {
          c.tls_reload_interval_s = crl ? 3600 : 1;
          // The pharmacy's limit is tight and refills slowly: three calls.
          c.rate_limit_overrides = {{Pharmacy(kQuzhou).institution_id, {0.001, 3}}};
        },
        options);
    if (!h.ok() && h.status().code() == absl::StatusCode::kNotFound) {
      GTEST_SKIP() << h.status().message();
    }
    ASSERT_TRUE(h.ok()) << h.status();
    h_ = *std::move(h);
    ASSERT_TRUE(h_->tls());
  }

  GatewayHarness& h() { return *h_; }
  std::string Pki(const std::string& relative) const { return h_->pki_dir() + "/" + relative; }

  // A channel to the gateway trusting `ca` and presenting `base`.pem and
  // `base`.key.pem (relative to the PKI folder).
  std::unique_ptr<Stub> StubWith(const std::string& ca, const std::string& base,
                                 const std::string& server_name = "") {
    return v1::SettlementService::NewStub(GatewayHarness::TlsChannelTo(
        h().gateway().port(), Pki(ca), Pki(base + ".pem"), Pki(base + ".key.pem"), server_name));
  }

  CallResult Coverage(Stub& stub, const std::string& institution = "") {
    v1::CheckCoverageResponse out;
    return GatewayHarness::Call(stub, &Stub::CheckCoverage, institution,
                                CoverageRequest(QuzhouId(1)), &out, 10000);
  }

  std::unique_ptr<GatewayHarness> h_;
};

TEST_F(GatewayTlsTest, TheVerifiedCertificateNamesTheInstitutionAndIsAudited) {
  const std::string inst = Hospital(kQuzhou, 2).institution_id;
  v1::SettleResponse settled;
  CallResult s = h().Call(&Stub::Settle, inst, InpatientBill("tls-1", QuzhouId(2)), &settled);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(settled.institution_id(), inst);

  // A header naming another institution changes nothing under mutual TLS.
  v1::ReconcileRequest reconcile;
  reconcile.set_date("2024-06-12");
  v1::ReconcileResponse totals;
  CallResult r = GatewayHarness::Call(h().StubFor(inst), &Stub::Reconcile,
                                      Hospital(kQuzhou, 1).institution_id, reconcile, &totals);
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(totals.institution_id(), inst);
  EXPECT_EQ(totals.settled().count(), 1);

  // The journal's audit fields carry the client certificate's SHA-256.
  const std::string expected = OpensslFingerprint(Pki(inst + ".pem"));
  ASSERT_EQ(expected.size(), 64u);
  cache::RedisSettlementStore store(h().redis_client());
  absl::StatusOr<std::vector<cache::JournalEntry>> journal =
      store.ReadJournal(h().PersonKey(QuzhouId(2)).substr(0, 2), 0, INT64_MAX);
  ASSERT_TRUE(journal.ok()) << journal.status();
  ASSERT_EQ(journal->size(), 1u);
  EXPECT_EQ(journal->front().settlement.institution_id(), inst);
  EXPECT_EQ(journal->front().settlement.certificate_fingerprint(), expected);
}

TEST_F(GatewayTlsTest, AConnectionWithoutAClientCertificateIsRefused) {
  CallResult c = Coverage(h().stub(), Hospital(kQuzhou, 1).institution_id);  // header only
  EXPECT_EQ(c.code(), grpc::StatusCode::UNAVAILABLE) << Describe(c);
  EXPECT_EQ(c.reason, "");  // refused by the handshake, before any handler
}

TEST_F(GatewayTlsTest, ACertificateOfAnotherCaIsRefused) {
  const std::string inst = Hospital(kQuzhou, 2).institution_id;
  std::unique_ptr<Stub> stub = StubWith("ca.pem", "other-ca/" + inst);
  CallResult c = Coverage(*stub);
  EXPECT_EQ(c.code(), grpc::StatusCode::UNAVAILABLE) << Describe(c);
  EXPECT_EQ(c.reason, "");
  // The same institution with the right CA's certificate is served.
  EXPECT_TRUE(Coverage(*StubWith("ca.pem", inst)).ok());
}

TEST_F(GatewayTlsTest, AnExpiredCertificateIsRefused) {
  const std::string inst = Hospital(kQuzhou, 2).institution_id;
  std::unique_ptr<Stub> stub = StubWith("ca.pem", "expired/" + inst);
  CallResult c = Coverage(*stub);
  EXPECT_EQ(c.code(), grpc::StatusCode::UNAVAILABLE) << Describe(c);
  EXPECT_EQ(c.reason, "");
}

TEST_F(GatewayTlsTest, AnInstitutionTheRegistryDoesNotKnowIsPermissionDenied) {
  CallResult c = Coverage(h().StubFor(kUnknownInstitution));
  EXPECT_EQ(c.code(), grpc::StatusCode::PERMISSION_DENIED) << Describe(c);
  EXPECT_EQ(c.reason, "INSTITUTION_UNKNOWN");
}

TEST_F(GatewayTlsTest, WithoutASanUriTheCommonNameNamesTheInstitution) {
  const std::string inst = Hospital(kQuzhou, 1).institution_id;
  std::unique_ptr<Stub> stub = StubWith("ca.pem", "cn-only/" + inst);
  v1::ReconcileRequest reconcile;
  reconcile.set_date("2024-06-12");
  v1::ReconcileResponse totals;
  CallResult c = GatewayHarness::Call(*stub, &Stub::Reconcile, "", reconcile, &totals);
  ASSERT_TRUE(c.ok()) << Describe(c);
  EXPECT_EQ(totals.institution_id(), inst);
}

TEST_F(GatewayTlsTest, TheClientChecksTheServerCertificatesNames) {
  const std::string inst = Hospital(kQuzhou, 1).institution_id;
  // 127.0.0.1 and localhost are in the development server certificate...
  EXPECT_TRUE(Coverage(*StubWith("ca.pem", inst, "localhost")).ok());
  // ...another name is not.
  CallResult c = Coverage(*StubWith("ca.pem", inst, "gateway.example.org"));
  EXPECT_EQ(c.code(), grpc::StatusCode::UNAVAILABLE) << Describe(c);
}

TEST_F(GatewayTlsTest, AnInstitutionOverItsRateLimitIsRefusedTheOthersAreNot) {
  const std::string pharmacy = Pharmacy(kQuzhou).institution_id;
  for (int i = 0; i < 3; ++i) {
    CallResult ok = Coverage(h().StubFor(pharmacy));
    ASSERT_TRUE(ok.ok()) << i << ": " << Describe(ok);
  }
  CallResult limited = Coverage(h().StubFor(pharmacy));
  EXPECT_EQ(limited.code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << Describe(limited);
  EXPECT_EQ(limited.reason, "RATE_LIMITED");
  EXPECT_NE(limited.status.error_message().find(pharmacy), std::string::npos);
  // Another connection of the same institution shares its bucket.
  CallResult again = Coverage(*StubWith("ca.pem", pharmacy));
  EXPECT_EQ(again.reason, "RATE_LIMITED") << Describe(again);
  // Other institutions are not limited by the pharmacy's flood (the
  // harness leaves the default limit off).
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(Coverage(h().StubFor(Hospital(kQuzhou, 3).institution_id)).ok());
  }
  EXPECT_EQ(h().gateway().counters().rate_limited_refusals.load(), 2u);
}

// The server certificate a new connection is shown, as openssl would print
// its fingerprint; "" when the call failed.
std::string ServerFingerprintSeenBy(Stub& stub, const std::string& scratch_file) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::CheckCoverageResponse out;
  if (!stub.CheckCoverage(&context, CoverageRequest(QuzhouId(1)), &out).ok()) return "";
  std::vector<grpc::string_ref> pem =
      context.auth_context()->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pem.size() != 1) return "";
  std::ofstream(scratch_file, std::ios::binary | std::ios::trunc)
      << std::string(pem[0].data(), pem[0].size());
  return OpensslFingerprint(scratch_file);
}

TEST_F(GatewayTlsTest, NewServerCertificateAndCaAreServedAfterTheReloadIntervalWithoutRestart) {
  const std::string inst = Hospital(kQuzhou, 2).institution_id;
  const std::string scratch = h().tls_dir() + "/seen.pem";
  const int port = h().gateway().port();
  // A second, unrelated PKI: a new CA, server certificate and key.
  const std::string pki2 = h().redis().dir() + "/pki2";
  ASSERT_EQ(std::system(Cat("bash '", MEDSETTLE_SOURCE_DIR, "/deploy/pki/make-dev-pki.sh' '",
                            pki2, "' ", inst, " >'", pki2, ".log' 2>&1")
                            .c_str()),
            0)
      << ReadFile(pki2 + ".log");
  auto stub2 = [&](const std::string& ca, const std::string& base) {
    return v1::SettlementService::NewStub(
        GatewayHarness::TlsChannelTo(port, ca, base + ".pem", base + ".key.pem"));
  };

  // Before: the first PKI's server certificate; a connection made now stays.
  std::unique_ptr<Stub> before = StubWith("ca.pem", inst);
  ASSERT_EQ(ServerFingerprintSeenBy(*before, scratch), OpensslFingerprint(Pki("server.pem")));
  EXPECT_EQ(ServerFingerprintSeenBy(*stub2(pki2 + "/ca.pem", pki2 + "/" + inst), scratch), "");

  // Rotate: the client CA bundle gains the new CA (institutions of both are
  // accepted during the change-over), then the new server key and
  // certificate, each file replaced in one rename.
  ReplaceFile(Pki("ca.pem"), h().config().tls_client_ca_file, ReadFile(pki2 + "/ca.pem"));
  ReplaceFile(pki2 + "/server.key.pem", h().config().tls_key_file);
  ReplaceFile(pki2 + "/server.pem", h().config().tls_cert_file);
  const auto rotated = Clock::now();

  // New connections trusting only the new CA get through once the files
  // are re-read (every 1 s here).
  std::string seen;
  while (Clock::now() - rotated < std::chrono::seconds(15)) {
    seen = ServerFingerprintSeenBy(*stub2(pki2 + "/ca.pem", pki2 + "/" + inst), scratch);
    if (!seen.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const auto took_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - rotated).count();
  EXPECT_EQ(seen, OpensslFingerprint(pki2 + "/server.pem")) << "after " << took_ms << " ms";
  std::printf("new server certificate served %lld ms after the files changed\n",
              static_cast<long long>(took_ms));

  // Same gateway, same port: no restart.
  EXPECT_EQ(h().gateway().port(), port);
  // An institution certificate of the old CA is still accepted (the bundle
  // holds both CAs) on a new connection that trusts the new server CA...
  EXPECT_FALSE(ServerFingerprintSeenBy(*stub2(pki2 + "/ca.pem", Pki(inst)), scratch).empty());
  // ...but a new connection trusting only the old CA no longer is.
  EXPECT_EQ(ServerFingerprintSeenBy(*stub2(Pki("ca.pem"), Pki(inst)), scratch), "");
  // The connection made before the rotation keeps working.
  EXPECT_TRUE(Coverage(*before).ok());
}

// ---- Revocation: tls.crl_dir ----

// The gateway over mutual TLS with revocation checked against a copy of the
// PKI's crl/ (the CA's CRL, nothing revoked yet).
class GatewayCrlTest : public GatewayTlsTest {
 protected:
  void SetUp() override { StartHarness(true); }

  const std::string& CrlDir() const { return h_->config().tls_crl_dir; }
  std::string Scratch(const std::string& name) const { return h_->redis().dir() + "/" + name; }

  // The CA's next CRL, revoking `institution`'s certificate, made the
  // operator's way (make-dev-pki.sh --revoke) on a copy of the PKI, which
  // the harness shares read only; the new CRL's path ("" after a failure).
  std::string RevokingCrl(const std::string& institution) {
    const std::string copy = Scratch("pki-revoke");
    const std::string log = copy + ".log";
    const int status = std::system(
        Cat("rm -rf '", copy, "' && cp -a '", h().pki_dir(), "' '", copy, "' && bash '",
            MEDSETTLE_SOURCE_DIR, "/deploy/pki/make-dev-pki.sh' --revoke ", institution, " '",
            copy, "' >'", log, "' 2>&1")
            .c_str());
    if (status != 0) {
      ADD_FAILURE() << ReadFile(log);
      return "";
    }
    return copy + "/crl/crl-000002.pem";
  }

  // Publishes `crl` the documented way: into the CRL folder under its own
  // name (it sorts after those there), then openssl rehash.
  void Publish(const std::string& crl) {
    std::filesystem::copy_file(crl,
                               CrlDir() + "/" + std::filesystem::path(crl).filename().string());
    ASSERT_TRUE(Shell(Cat("openssl rehash '", CrlDir(), "' 2>&1")).has_value());
  }

  // A CRL of the test CA made with `openssl ca -gencrl ARGS` (its times)
  // from a database of its own, so that each has its own CRL number.
  void MakeCrl(const std::string& out, const std::string& args) {
    static int made = 0;
    const std::string db = Scratch(Cat("ca-db-", ++made));
    std::filesystem::create_directories(db);
    std::ofstream(db + "/index.txt");
    std::ofstream(db + "/crlnumber") << Cat("0", made, "\n");
    std::ofstream(db + "/ca.cnf") << "[ca]\ndefault_ca = c\n[c]\ndatabase = " << db
                                  << "/index.txt\ncrlnumber = " << db
                                  << "/crlnumber\ndefault_md = sha256\n";
    const std::optional<std::string> out_text =
        Shell(Cat("openssl ca -batch -config '", db, "/ca.cnf' -gencrl -cert '", Pki("ca.pem"),
                  "' -keyfile '", Pki("ca.key.pem"), "' ", args, " -out '", out, "' 2>&1"));
    ASSERT_TRUE(out_text.has_value()) << args;
  }

  // A fresh folder for a CRL test.
  std::string Folder(const std::string& name) {
    const std::string dir = Scratch(name);
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
  }
};

TEST_F(GatewayCrlTest, ARevokedCertificateIsRefusedAnotherInstitutionsIsServed) {
  const std::string revoked = Hospital(kQuzhou, 2).institution_id;
  const std::string other = Hospital(kQuzhou, 3).institution_id;
  EXPECT_NE(h().gateway().transport_description().find("revocation checked against the CRLs in " +
                                                       CrlDir()),
            std::string::npos)
      << h().gateway().transport_description();
  // The CA's CRL lists nothing yet: both are served.
  ASSERT_TRUE(Coverage(*StubWith("ca.pem", revoked)).ok());
  ASSERT_TRUE(Coverage(*StubWith("ca.pem", other)).ok());

  // The CA revokes one certificate; its next CRL joins the first, and a
  // gateway started now checks against both (the later lastUpdate wins).
  const std::string crl = RevokingCrl(revoked);
  ASSERT_FALSE(crl.empty());
  Publish(crl);
  ASSERT_TRUE(h().RestartGateway().ok());
  CallResult refused = Coverage(*StubWith("ca.pem", revoked));
  EXPECT_EQ(refused.code(), grpc::StatusCode::UNAVAILABLE) << Describe(refused);
  EXPECT_EQ(refused.reason, "");  // refused by the handshake, before any handler
  CallResult served = Coverage(*StubWith("ca.pem", other));
  EXPECT_TRUE(served.ok()) << Describe(served);
  // A CRL revokes certificates, not institutions: another certificate of
  // the same institution (its CN-only one) is served. Shutting an
  // institution out is the registry's suspension.
  CallResult same_institution = Coverage(*StubWith("ca.pem", "cn-only/" + revoked));
  EXPECT_TRUE(same_institution.ok()) << Describe(same_institution);
}

TEST_F(GatewayCrlTest, ACrlPublishedWhileRunningRefusesTheNextHandshakeOpenConnectionsStay) {
  const std::string revoked = Hospital(kQuzhou, 2).institution_id;
  const std::string other = Hospital(kQuzhou, 3).institution_id;
  // CheckCoverage calls the running gateway answered OK; a restart would
  // start them again from 0.
  const auto coverage_ok = [this] {
    const auto& calls = h().gateway().counters().calls;
    return calls[static_cast<int>(gateway::Method::kCheckCoverage)][0].load();
  };
  std::unique_ptr<Stub> before = StubWith("ca.pem", revoked);
  ASSERT_TRUE(Coverage(*before).ok());
  const uint64_t ok_before = coverage_ok();
  ASSERT_GE(ok_before, 1u);

  const std::string crl = RevokingCrl(revoked);
  ASSERT_FALSE(crl.empty());
  Publish(crl);
  // The very next handshake is refused: OpenSSL looks the folder up at
  // every handshake (the TLS files' reload interval is an hour here).
  CallResult refused = Coverage(*StubWith("ca.pem", revoked));
  EXPECT_EQ(refused.code(), grpc::StatusCode::UNAVAILABLE) << Describe(refused);
  EXPECT_EQ(refused.reason, "");
  CallResult served = Coverage(*StubWith("ca.pem", other));
  EXPECT_TRUE(served.ok()) << Describe(served);
  // A connection opened before keeps working: certificates are checked at
  // the handshake only, until the gateway closes the connection at its
  // maximum age (30 minutes) and the reconnection is refused.
  CallResult open = Coverage(*before);
  EXPECT_TRUE(open.ok()) << Describe(open);
  // No restart: the gateway that served before counted both calls since.
  EXPECT_EQ(coverage_ok(), ok_before + 2);
}

TEST_F(GatewayCrlTest, AnExpiredCrlRefusesEveryCertificateOfItsCaUntilTheNextIsPublished) {
  using std::chrono::seconds;
  const std::string inst = Hospital(kQuzhou, 2).institution_id;
  const std::string other = Hospital(kQuzhou, 3).institution_id;
  // A gateway whose only CRL of the CA expires 20 s from now (time enough
  // to start and connect on a loaded machine or under a sanitizer).
  // OpenSSL compares nextUpdate with time(): expired from that second on.
  constexpr seconds kLifetime(20);
  const WallClock::time_point next_update =
      std::chrono::floor<seconds>(WallClock::now()) + kLifetime;
  const std::string dir = Folder("short-lived-crl");
  MakeCrl(dir + "/crl-000001.pem",
          Cat("-crl_lastupdate ", AsnTime(next_update - std::chrono::hours(1)),
              " -crl_nextupdate ", AsnTime(next_update)));
  ASSERT_TRUE(Shell(Cat("openssl rehash '", dir, "' 2>&1")).has_value());
  gateway::GatewayConfig config = h().config();
  config.tls_crl_dir = dir;
  absl::StatusOr<std::unique_ptr<gateway::GatewayServer>> g = gateway::GatewayServer::Start(config);
  ASSERT_TRUE(g.ok()) << g.status();
  auto stub = [&](const std::string& base) {
    return v1::SettlementService::NewStub(GatewayHarness::TlsChannelTo(
        (*g)->port(), Pki("ca.pem"), Pki(base + ".pem"), Pki(base + ".key.pem")));
  };
  const auto too_slow = [&] {
    return WallClock::now() >= next_update
               ? Cat(" (only after the CRL's nextUpdate ", AsnTime(next_update),
                     ": this machine took longer than ", kLifetime.count(),
                     " s to start the gateway and connect)")
               : std::string();
  };
  std::unique_ptr<Stub> before = stub(inst);
  const CallResult first = Coverage(*before);
  ASSERT_TRUE(first.ok()) << Describe(first) << too_slow();

  // Once nextUpdate has passed, no new handshake of the CA's certificates
  // gets through (fail closed). Only a handshake begun after nextUpdate
  // counts: a refusal before it proves nothing about expiry, a success
  // after it is the failure this test is about.
  const WallClock::time_point deadline = next_update + seconds(20);
  std::optional<CallResult> refused;
  int served_after = 0;
  std::string before_expiry;  // what calls before nextUpdate got, if not OK
  while (WallClock::now() < deadline) {
    const WallClock::time_point tried = WallClock::now();
    CallResult r = Coverage(*stub(other));
    if (tried < next_update) {
      if (!r.ok()) before_expiry = Describe(r);
    } else if (r.ok()) {
      ++served_after;
    } else {
      refused = r;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ASSERT_TRUE(refused.has_value())
      << "no new handshake begun after the CRL's nextUpdate " << AsnTime(next_update)
      << " was refused by " << AsnTime(deadline) << " (" << served_after << " served)";
  EXPECT_EQ(served_after, 0) << "handshakes begun after nextUpdate " << AsnTime(next_update)
                             << " were served: the expired CRL failed open";
  EXPECT_EQ(refused->code(), grpc::StatusCode::UNAVAILABLE) << Describe(*refused);
  EXPECT_EQ(refused->reason, "");  // refused by the handshake, before any handler
  if (!before_expiry.empty()) {
    std::printf("note: a call before nextUpdate was not served: %s\n", before_expiry.c_str());
  }
  // Every certificate of the CA, not one: another institution's as well;
  // the gateway itself still serves the connection opened before (an open
  // connection is not checked again).
  CallResult third = Coverage(*stub(Hospital(kQuzhou, 1).institution_id));
  EXPECT_EQ(third.code(), grpc::StatusCode::UNAVAILABLE) << Describe(third);
  CallResult open = Coverage(*before);
  EXPECT_TRUE(open.ok()) << Describe(open);

  // The CA's next CRL (a later lastUpdate) lets them in again, no restart.
  MakeCrl(dir + "/crl-000002.pem", "-crldays 30");
  ASSERT_TRUE(Shell(Cat("openssl rehash '", dir, "' 2>&1")).has_value());
  CallResult served = Coverage(*stub(other));
  EXPECT_TRUE(served.ok()) << Describe(served);
}

TEST_F(GatewayCrlTest, TheStartRefusesACrlFolderThatWouldNotProtect) {
  struct Case {
    std::string name;
    std::function<void(const std::string& dir)> fill;
    std::string needle;  // in the message
    absl::StatusCode code = absl::StatusCode::kInvalidArgument;
  };
  const std::string ca = "CN=medsettle development CA,O=medsettle development";
  auto copy = [&](const std::string& from) {
    return [this, from](const std::string& dir) {
      ASSERT_TRUE(Shell(Cat("cp -a '", Pki(from), "'/. '", dir, "'")).has_value());
    };
  };
  // The CA's subject hash, as openssl prints it for the CRLs' names.
  std::optional<std::string> hash_out =
      Shell(Cat("openssl x509 -noout -subject_hash -in '", Pki("ca.pem"), "'"));
  ASSERT_TRUE(hash_out.has_value());
  const std::string hash = hash_out->substr(0, 8);
  std::string upper_hash = hash;
  for (char& c : upper_hash) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  // The CA's only CRL under `name`, a copy or a link to crl-000001.pem.
  auto only_as = [this](const std::string& name, bool link) {
    return [this, name, link](const std::string& dir) {
      if (link) {
        std::filesystem::copy_file(Pki("crl/crl-000001.pem"), dir + "/crl-000001.pem");
        std::filesystem::create_symlink("crl-000001.pem", dir + "/" + name);
      } else {
        std::filesystem::copy_file(Pki("crl/crl-000001.pem"), dir + "/" + name);
      }
    };
  };
  const std::string unread = " is a CRL without a hashed name (<issuer-hash>.rN), so gRPC never "
                             "reads it: ";
  const std::vector<Case> cases = {
      {"no folder", [](const std::string& dir) { std::filesystem::remove_all(dir); },
       "not a folder", absl::StatusCode::kNotFound},
      {"no CRL of the CA", [](const std::string&) {}, "no CRL of the client CA " + ca},
      {"another CA's CRL", copy("other-ca/crl"), "no CRL of the client CA " + ca},
      {"an expired CRL", copy("expired-crl"), "expired on 2020-02-01 00:00:00 UTC"},
      {"a CRL in the CA's name, signed by another key", copy("forged-crl"),
       "names the client CA " + ca + " as its issuer but is not signed by its key"},
      {"a CRL without its hashed name",
       [this](const std::string& dir) {
         std::filesystem::copy_file(Pki("crl/crl-000001.pem"), dir + "/crl-000001.pem");
       },
       "crl-000001.pem is a CRL without a hashed name (<issuer-hash>.rN), so gRPC never reads it: "
       "run `openssl rehash "},
      {"a CRL under a name openssl rehash skips",
       [&](const std::string& dir) {
         copy("crl")(dir);
         std::filesystem::copy_file(Pki("crl/crl-000001.pem"), dir + "/crl-000002.pem.tmp");
       },
       "crl-000002.pem.tmp is a CRL without a hashed name (<issuer-hash>.rN), so gRPC never reads "
       "it: rename it to end in .pem"},
      // OpenSSL opens only "%08lx.r%d": never a leading zero, an upper case
      // hash.
      {"the CA's only CRL as <hash>.r00", only_as(hash + ".r00", false),
       hash + ".r00" + unread + "rename it to end in .pem"},
      {"the CA's only CRL behind a <hash>.r00 link", only_as(hash + ".r00", true),
       hash + ".r00 (-> crl-000001.pem)" + unread + "delete that link"},
      {"the CA's only CRL behind a <HASH>.r0 link", only_as(upper_hash + ".r0", true),
       upper_hash + ".r0 (-> crl-000001.pem)" + unread + "delete that link"},
      {"a link to a deleted CRL",
       [&](const std::string& dir) {
         copy("crl")(dir);
         std::filesystem::remove(dir + "/crl-000001.pem");
       },
       "cannot be read (a link to a deleted CRL?)"},
      {"a certificate",
       [&](const std::string& dir) {
         copy("crl")(dir);
         std::filesystem::copy_file(Pki("other-ca/ca.pem"), dir + "/other-ca.pem");
         ASSERT_TRUE(Shell(Cat("openssl rehash '", dir, "' 2>&1")).has_value());
       },
       "is a certificate's hashed name: gRPC would trust that certificate like a CA of "
       "tls.client_ca_file"},
      {"the newest CRL expired, an older one current",
       [this](const std::string& dir) {
         MakeCrl(dir + "/crl-000001.pem",
                 "-crl_lastupdate 20210101000000Z -crl_nextupdate 20991231000000Z");
         MakeCrl(dir + "/crl-000002.pem",
                 "-crl_lastupdate 20220101000000Z -crl_nextupdate 20230101000000Z");
         ASSERT_TRUE(Shell(Cat("openssl rehash '", dir, "' 2>&1")).has_value());
       },
       "expired on 2023-01-01 00:00:00 UTC: OpenSSL would fall back to the older"},
      {"two CRLs with the same lastUpdate",
       [this](const std::string& dir) {
         for (const char* name : {"/crl-000001.pem", "/crl-000002.pem"}) {
           MakeCrl(dir + name, "-crl_lastupdate 20210101000000Z -crl_nextupdate 20991231000000Z");
         }
         ASSERT_TRUE(Shell(Cat("openssl rehash '", dir, "' 2>&1")).has_value());
       },
       "with the same lastUpdate: OpenSSL uses whichever it reads first"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string dir = Folder("crl-case");
    c.fill(dir);
    gateway::GatewayConfig config = h().config();
    config.tls_crl_dir = dir;
    absl::StatusOr<std::unique_ptr<gateway::GatewayServer>> g =
        gateway::GatewayServer::Start(config);
    ASSERT_FALSE(g.ok());
    EXPECT_EQ(g.status().code(), c.code) << g.status();
    EXPECT_EQ(engine::FieldOf(g.status()), "tls.crl_dir");
    EXPECT_EQ(engine::ReasonOf(g.status()), c.code == absl::StatusCode::kNotFound
                                                ? "TLS_FILE_UNREADABLE"
                                                : "TLS_FILE_INVALID");
    EXPECT_NE(g.status().message().find(c.needle), std::string::npos) << g.status().message();
    EXPECT_NE(g.status().message().find(dir), std::string::npos) << g.status().message();
  }
  // The PKI's own folder passes (the fixture's gateway started with it).
  EXPECT_GT(h().gateway().port(), 0);
}

// The identity rules on certificates made here with openssl (self-signed:
// IdentityOfCertificate parses, the handshake verifies).
TEST(CertificateIdentity, SanUriFirstThenCnAndTheFingerprint) {
  const std::string dir = ::testing::TempDir() + "/cert-identity";
  std::filesystem::create_directories(dir);
  auto make = [&](const std::string& name, const std::string& subject,
                  const std::string& san) -> std::string {
    const std::string pem = dir + "/" + name + ".pem";
    std::string command =
        Cat("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout '", dir,
            "/", name, ".key' -out '", pem, "' -days 1 -subj '", subject, "'");
    if (!san.empty()) command += Cat(" -addext 'subjectAltName=", san, "'");
    EXPECT_TRUE(Shell(command + " 2>/dev/null").has_value()) << command;
    return pem;
  };
  struct Case {
    std::string name;
    std::string subject;
    std::string san;
    std::string institution;  // "" = refused with `reason`
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"san-wins", "/CN=C-OTHER", "URI:medsettle://institution/H1,DNS:h1.example", "H1", ""},
      {"other-uris-ignored", "/CN=H2", "URI:https://example.org/x,email:a@b.c", "H2", ""},
      {"cn-only", "/O=x/CN=P3.a_b-c", "", "P3.a_b-c", ""},
      {"two-uris", "/CN=H1",
       "URI:medsettle://institution/H1,URI:medsettle://institution/H2", "",
       "INSTITUTION_IDENTITY_INVALID"},
      {"bad-uri-id", "/CN=H1", "URI:medsettle://institution/H 1", "",
       "INSTITUTION_IDENTITY_INVALID"},
      {"bad-cn", "/CN=not an id", "", "", "INSTITUTION_IDENTITY_INVALID"},
      {"nothing", "/O=medsettle", "DNS:h1.example", "", "INSTITUTION_IDENTITY_MISSING"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string pem_file = make(c.name, c.subject, c.san);
    absl::StatusOr<gateway::CallerIdentity> id = gateway::IdentityOfCertificate(ReadFile(pem_file));
    if (c.institution.empty()) {
      ASSERT_FALSE(id.ok());
      EXPECT_EQ(id.status().code(), absl::StatusCode::kUnauthenticated);
      EXPECT_EQ(engine::ReasonOf(id.status()), c.reason) << id.status();
      continue;
    }
    ASSERT_TRUE(id.ok()) << id.status();
    EXPECT_EQ(id->institution_id, c.institution);
    EXPECT_EQ(id->certificate_fingerprint, OpensslFingerprint(pem_file));
  }
  EXPECT_EQ(engine::ReasonOf(gateway::IdentityOfCertificate("not a certificate").status()),
            "INSTITUTION_IDENTITY_INVALID");
}

}  // namespace
}  // namespace medsettle::testing
