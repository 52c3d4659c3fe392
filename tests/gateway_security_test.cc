// Security end to end through a real gateway and a real redis-server: the
// e-insurance code (genuine, current, in scope, not reported lost, single
// use, presented by a bound family member), what each kind of institution
// may settle, whose settlements an institution may read and reverse, ID
// numbers with a wrong check digit, and the audit fields the journal keeps.
// Mutual TLS itself is tests/gateway_tls_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "cache/redis_settlement_store.h"
#include "engine/status.h"
#include "engine/text.h"
#include "gateway/authorization.h"
#include "gateway/credentials/ec_token.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/gateway_harness.h"

namespace medsettle::testing {
namespace {

using engine::Cat;
using Stub = v1::SettlementService::Stub;
namespace creds = credentials;

constexpr engine::RegionCode kQuzhou = 330800;
constexpr std::string_view kKeyId = "vp-2026a";

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string IdOf(int sequence) { return MakeIdNumber("330800", D("1980-06-15"), sequence); }

// Persons of Quzhou 2025: 1 plain, 2 reported their voucher lost 5 minutes
// ago, 3 has person 4 bound as a family presenter (4 is enrolled too), 5 a
// second plain person (for scope and replay tests that need a clean year).
constexpr int kPlain = 1, kLost = 2, kParent = 3, kChild = 4, kOther = 5;

engine::Institution CommunityAtLevel(int level) {
  engine::Institution i = Community(kQuzhou);
  i.institution_id = Cat("C", kQuzhou, "-L", level);
  i.level = level;
  return i;
}

std::vector<engine::Institution> Institutions() {
  return {Hospital(kQuzhou, 2), CommunityAtLevel(1), CommunityAtLevel(2), Pharmacy(kQuzhou)};
}

const std::string kHospital = Hospital(kQuzhou, 2).institution_id;
const std::string kPharmacy = Pharmacy(kQuzhou).institution_id;

v1::SettleRequest Purchase(std::string request_id, int day = 20) {
  v1::SettleRequest r;
  r.set_request_id(std::move(request_id));
  r.mutable_visit()->set_type(v1::VISIT_TYPE_GENERAL_OUTPATIENT);
  r.mutable_visit()->set_service_date(Cat("2025-06-", day));
  AddBillItem(&r, "XA0002", 85, 60);
  AddBillItem(&r, "XC0002", 9800, 1);
  return r;
}

class GatewaySecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_dir_ = std::filesystem::temp_directory_path() /
                Cat("medsettle-issuer-", ::getpid(), "-", ++counter_);
    std::filesystem::create_directories(keys_dir_);
    absl::StatusOr<creds::IssuerSigningKey> key = creds::IssuerSigningKey::Generate();
    ASSERT_TRUE(key.ok()) << key.status();
    signer_ = std::make_unique<creds::IssuerSigningKey>(*std::move(key));
    std::ofstream(keys_dir_ / Cat(kKeyId, ".pub.pem")) << signer_->PublicKeyPem();

    std::vector<SnapshotPerson> persons;
    for (int i = kPlain; i <= kOther; ++i) {
      engine::Enrollment e = Person(kQuzhou, 2025);
      persons.push_back({IdOf(i), e});
    }
    const std::filesystem::path dir = keys_dir_;
    absl::StatusOr<std::unique_ptr<GatewayHarness>> h = GatewayHarness::Start(
        persons, Institutions(),
        [dir](gateway::GatewayConfig& c) { c.ec_token_issuer_keys_dir = dir.string(); });
    if (!h.ok() && h.status().code() == absl::StatusCode::kNotFound) {
      GTEST_SKIP() << h.status().message();
    }
    ASSERT_TRUE(h.ok()) << h.status();
    h_ = *std::move(h);
    // The lost voucher and the family binding need person keys, which the
    // harness computes: load a second snapshot version with them.
    persons[kLost - 1].enrollment.voucher_revoked_at_unix = NowUnix() - 300;
    // The parent bound two presenters: the child, and the person who
    // reported their own voucher lost (as a presenter too).
    persons[kParent - 1].enrollment.family_presenter_keys = {h_->PersonKey(IdOf(kChild)),
                                                             h_->PersonKey(IdOf(kLost))};
    std::sort(persons[kParent - 1].enrollment.family_presenter_keys.begin(),
              persons[kParent - 1].enrollment.family_presenter_keys.end());
    absl::StatusOr<std::string> version = h_->LoadSnapshot(persons, Institutions());
    ASSERT_TRUE(version.ok()) << version.status();
    // The gateway polls snap:current; give it a moment to see the new version.
    std::this_thread::sleep_for(std::chrono::milliseconds(2 * h_->config().snapshot_refresh_ms));
  }

  void TearDown() override {
    h_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(keys_dir_, ignored);
  }

  GatewayHarness& h() { return *h_; }

  // A code for person `who`, issued `age_minutes` ago, valid `minutes`.
  std::string Token(int who, uint8_t scopes = creds::kScopeOutpatient | creds::kScopePharmacy,
                    int age_minutes = 0, int minutes = 5, int presenter = 0,
                    const creds::IssuerSigningKey* signer = nullptr,
                    std::string key_id = std::string(kKeyId)) {
    creds::EcTokenClaims claims;
    claims.key_id = std::move(key_id);
    claims.person_key = h().PersonKey(IdOf(who));
    if (presenter != 0) claims.presenter_key = h().PersonKey(IdOf(presenter));
    claims.issued_at_minute = NowUnix() / 60 - age_minutes;
    claims.expires_at_minute = claims.issued_at_minute + minutes;
    claims.scopes = scopes;
    absl::StatusOr<std::string> token = (signer ? *signer : *signer_).Issue(claims);
    EXPECT_TRUE(token.ok()) << token.status();
    return token.ok() ? *token : std::string();
  }

  CallResult SettleWithToken(std::string_view inst, v1::SettleRequest r, const std::string& token,
                             v1::SettleResponse* out) {
    r.mutable_credential()->set_ec_token(token);
    return h().Call(&Stub::Settle, inst, r, out);
  }

  // The person's year as the gateway reports it (version counts commits).
  int64_t AccumulatorVersion(int who) {
    v1::CheckCoverageRequest r;
    r.mutable_credential()->set_id_card_no(IdOf(who));
    r.set_service_date("2025-12-01");
    v1::CheckCoverageResponse out;
    CallResult c = h().Call(&Stub::CheckCoverage, kHospital, r, &out);
    EXPECT_TRUE(c.ok()) << c.status.error_message();
    return out.year_to_date().version();
  }

  void ExpectRefused(const CallResult& c, grpc::StatusCode code, std::string_view why,
                     std::string_view field = creds::kEcTokenField) {
    EXPECT_EQ(c.code(), code) << c.status.error_message();
    EXPECT_EQ(c.reason, why) << c.status.error_message();
    EXPECT_EQ(c.field, field);
  }

  static inline int counter_ = 0;
  std::filesystem::path keys_dir_;
  std::unique_ptr<creds::IssuerSigningKey> signer_;
  std::unique_ptr<GatewayHarness> h_;
};

// ---- the e-insurance code ---------------------------------------------------

TEST_F(GatewaySecurityTest, ScannedCodeSettlesAPharmacyPurchaseOnceAndAuditsIt) {
  const std::string token = Token(kPlain);
  v1::SettleResponse first;
  CallResult c = SettleWithToken(kPharmacy, Purchase("pos-1"), token, &first);
  ASSERT_TRUE(c.ok()) << c.status.error_message() << " " << c.reason;
  EXPECT_EQ(first.person_key(), h().PersonKey(IdOf(kPlain)));
  EXPECT_EQ(first.presenter_key(), "");

  // Re-sending the same request replays it; a new request with the same
  // code is a replayed code.
  v1::SettleResponse again;
  c = SettleWithToken(kPharmacy, Purchase("pos-1"), token, &again);
  ASSERT_TRUE(c.ok()) << c.status.error_message();
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.settlement_id(), first.settlement_id());

  const int64_t version = AccumulatorVersion(kPlain);
  v1::SettleResponse other;
  ExpectRefused(SettleWithToken(kPharmacy, Purchase("pos-2", 21), token, &other),
                grpc::StatusCode::FAILED_PRECONDITION, creds::reason::kTokenReplayed);
  EXPECT_EQ(AccumulatorVersion(kPlain), version) << "a refused code wrote something";
  // A trial settlement and a coverage check with the used code are refused too.
  v1::SettleRequest trial = Purchase("pos-3", 22);
  trial.mutable_credential()->set_ec_token(token);
  ExpectRefused(h().Call(&Stub::PreSettle, kPharmacy, trial, &other),
                grpc::StatusCode::FAILED_PRECONDITION, creds::reason::kTokenReplayed);
  // A fresh code settles again.
  c = SettleWithToken(kPharmacy, Purchase("pos-4", 23), Token(kPlain), &other);
  EXPECT_TRUE(c.ok()) << c.status.error_message();

  // The record and the journal name the credential kind; under
  // --insecure-dev there is no certificate to fingerprint.
  cache::RedisSettlementStore store(h().redis_client());
  absl::StatusOr<cache::StoredSettlement> record = store.GetSettlement(first.settlement_id());
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->record.credential_kind(), "EC_TOKEN");
  EXPECT_EQ(record->record.presenter_key(), "");
  const std::string pk = h().PersonKey(IdOf(kPlain));
  absl::StatusOr<std::vector<cache::JournalEntry>> journal =
      store.ReadJournal(pk.substr(0, 2), 0, INT64_MAX);
  ASSERT_TRUE(journal.ok()) << journal.status();
  int settled = 0;
  for (const cache::JournalEntry& e : *journal) {
    if (e.settlement.person_key() != pk) continue;
    ++settled;
    EXPECT_EQ(e.kind, cache::JournalKind::kSettle);
    EXPECT_EQ(e.settlement.institution_id(), kPharmacy);
    EXPECT_EQ(e.settlement.credential_kind(), "EC_TOKEN");
    // Never an ID number: the bill is recorded without its credential.
    EXPECT_FALSE(e.settlement.request().has_credential());
  }
  EXPECT_EQ(settled, 2);
}

TEST_F(GatewaySecurityTest, ForgedCodesAreRefused) {
  v1::SettleResponse out;
  // One character inside the person key changed (payload bytes 10..41 are
  // base64 characters 14..55): another person, and the signature no
  // longer holds.
  std::string altered = Token(kPlain);
  const size_t at = creds::kTokenPrefix.size() + 30;
  altered[at] = altered[at] == 'A' ? 'B' : 'A';
  ExpectRefused(SettleWithToken(kPharmacy, Purchase("forged-1"), altered, &out),
                grpc::StatusCode::UNAUTHENTICATED, creds::reason::kTokenSignatureInvalid);

  // Signed by someone else's key under the platform's key id.
  absl::StatusOr<creds::IssuerSigningKey> rogue = creds::IssuerSigningKey::Generate();
  ASSERT_TRUE(rogue.ok());
  ExpectRefused(SettleWithToken(kPharmacy, Purchase("forged-2"),
                                Token(kPlain, creds::kScopePharmacy, 0, 5, 0, &*rogue), &out),
                grpc::StatusCode::UNAUTHENTICATED, creds::reason::kTokenSignatureInvalid);
  // Under a key id the gateway does not know.
  ExpectRefused(SettleWithToken(kPharmacy, Purchase("forged-3"),
                                Token(kPlain, creds::kScopePharmacy, 0, 5, 0, nullptr, "vp-9999"),
                                &out),
                grpc::StatusCode::UNAUTHENTICATED, creds::reason::kTokenKeyUnknown);
  // Not a token at all.
  for (const std::string& junk : {std::string("EC1.not-base64!.x"), std::string("hello"),
                                  std::string(creds::kTokenPrefix) + "AAAA.AAAA",
                                  std::string(2000, 'A')}) {
    ExpectRefused(SettleWithToken(kPharmacy, Purchase("junk"), junk, &out),
                  grpc::StatusCode::INVALID_ARGUMENT, creds::reason::kTokenMalformed);
  }
  EXPECT_EQ(AccumulatorVersion(kPlain), 0);
}

TEST_F(GatewaySecurityTest, ExpiredAndFutureCodesAreRefused) {
  v1::SettleResponse out;
  // Issued 20 minutes ago for 5 minutes: expired beyond the 60 s skew.
  ExpectRefused(SettleWithToken(kPharmacy, Purchase("late"), Token(kPlain, 2, 20, 5), &out),
                grpc::StatusCode::UNAUTHENTICATED, creds::reason::kTokenExpired);
  // Issued 10 minutes in the future.
  ExpectRefused(SettleWithToken(kPharmacy, Purchase("early"), Token(kPlain, 2, -10, 15), &out),
                grpc::StatusCode::UNAUTHENTICATED, creds::reason::kTokenNotYetValid);
  // Valid for two hours: longer than the gateway accepts (60 minutes).
  ExpectRefused(SettleWithToken(kPharmacy, Purchase("long"), Token(kPlain, 2, 0, 120), &out),
                grpc::StatusCode::UNAUTHENTICATED, creds::reason::kTokenLifetimeTooLong);
  EXPECT_EQ(AccumulatorVersion(kPlain), 0);
}

TEST_F(GatewaySecurityTest, CodeScopeMustCoverTheVisit) {
  v1::SettleResponse out;
  // An outpatient-only code at a pharmacy counter.
  ExpectRefused(
      SettleWithToken(kPharmacy, Purchase("scope-1"), Token(kOther, creds::kScopeOutpatient), &out),
      grpc::StatusCode::PERMISSION_DENIED, creds::reason::kTokenScopeMismatch);
  // A pharmacy code for an inpatient discharge at a hospital.
  v1::SettleRequest stay = InpatientBill("scope-2", "", 3, 2025);
  ExpectRefused(SettleWithToken(kHospital, stay, Token(kOther, creds::kScopePharmacy), &out),
                grpc::StatusCode::PERMISSION_DENIED, creds::reason::kTokenScopeMismatch);
  // An inpatient code there settles.
  CallResult c = SettleWithToken(kHospital, stay, Token(kOther, creds::kScopeInpatient), &out);
  EXPECT_TRUE(c.ok()) << c.status.error_message() << " " << c.reason;
}

TEST_F(GatewaySecurityTest, CodeIssuedBeforeALostVoucherReportIsRefused) {
  v1::SettleResponse out;
  // Reported lost 5 minutes ago; this code was issued 8 minutes ago.
  ExpectRefused(SettleWithToken(kPharmacy, Purchase("lost-1"), Token(kLost, 2, 8, 30), &out),
                grpc::StatusCode::FAILED_PRECONDITION, engine::reason::kVoucherRevoked, "");
  // A code issued after the report (the person's new phone) settles.
  CallResult c = SettleWithToken(kPharmacy, Purchase("lost-2"), Token(kLost, 2, 1, 5), &out);
  EXPECT_TRUE(c.ok()) << c.status.error_message() << " " << c.reason;
  // The ID card never depended on the voucher.
  v1::SettleRequest card = Purchase("lost-3", 24);
  card.mutable_credential()->set_id_card_no(IdOf(kLost));
  c = h().Call(&Stub::Settle, kPharmacy, card, &out);
  EXPECT_TRUE(c.ok()) << c.status.error_message();
}

TEST_F(GatewaySecurityTest, BoundFamilyMemberMayPresentTheCodeAndIsRecorded) {
  v1::SettleResponse out;
  CallResult c = SettleWithToken(kPharmacy, Purchase("family-1"),
                                 Token(kParent, 2, 0, 5, /*presenter=*/kChild), &out);
  ASSERT_TRUE(c.ok()) << c.status.error_message() << " " << c.reason;
  EXPECT_EQ(out.person_key(), h().PersonKey(IdOf(kParent)));
  EXPECT_EQ(out.presenter_key(), h().PersonKey(IdOf(kChild)));
  cache::RedisSettlementStore store(h().redis_client());
  absl::StatusOr<cache::StoredSettlement> record = store.GetSettlement(out.settlement_id());
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->record.person_key(), h().PersonKey(IdOf(kParent)));
  EXPECT_EQ(record->record.presenter_key(), h().PersonKey(IdOf(kChild)));

  // Nobody bound the parent to the child, nor anyone to person 1.
  ExpectRefused(SettleWithToken(kPharmacy, Purchase("family-2"),
                                Token(kChild, 2, 0, 5, /*presenter=*/kParent), &out),
                grpc::StatusCode::PERMISSION_DENIED, creds::reason::kPresenterNotBound);
  ExpectRefused(SettleWithToken(kPharmacy, Purchase("family-3"),
                                Token(kPlain, 2, 0, 5, /*presenter=*/kChild), &out),
                grpc::StatusCode::PERMISSION_DENIED, creds::reason::kPresenterNotBound);
}

TEST_F(GatewaySecurityTest, PresenterWhoReportedTheirVoucherLostPresentsOnlyNewerCodes) {
  // kLost reported their own voucher lost 5 minutes ago: a code for the
  // parent that kLost's phone showed 8 minutes ago is void, for a
  // settlement and for a coverage question alike; nothing is written.
  const std::string before = Token(kParent, 2, 8, 30, /*presenter=*/kLost);
  v1::SettleResponse out;
  ExpectRefused(SettleWithToken(kPharmacy, Purchase("presenter-lost-1"), before, &out),
                grpc::StatusCode::FAILED_PRECONDITION, engine::reason::kVoucherRevoked,
                "credential.ec_token");
  v1::CheckCoverageRequest q;
  q.mutable_credential()->set_ec_token(before);
  q.set_service_date("2025-06-01");
  v1::CheckCoverageResponse answer;
  ExpectRefused(h().Call(&Stub::CheckCoverage, kPharmacy, q, &answer),
                grpc::StatusCode::FAILED_PRECONDITION, engine::reason::kVoucherRevoked,
                "credential.ec_token");
  EXPECT_EQ(AccumulatorVersion(kParent), 0);

  // One issued after the report (kLost's new phone) settles, naming kLost.
  CallResult c = SettleWithToken(kPharmacy, Purchase("presenter-lost-2"),
                                 Token(kParent, 2, 1, 5, /*presenter=*/kLost), &out);
  ASSERT_TRUE(c.ok()) << Describe(c);
  EXPECT_EQ(out.presenter_key(), h().PersonKey(IdOf(kLost)));
  EXPECT_EQ(AccumulatorVersion(kParent), 1);
}

TEST_F(GatewaySecurityTest, CommittedRequestStillReplaysAfterItsCodeExpired) {
  // Committed with a code that is now past its window (issued 2 minutes
  // ago for 1 minute, inside the 60 s skew when sent)...
  const std::string token = Token(kOther, 2, 1, 1);
  v1::SettleResponse first;
  CallResult c = SettleWithToken(kPharmacy, Purchase("late-replay"), token, &first);
  ASSERT_TRUE(c.ok()) << c.status.error_message() << " " << c.reason;
  // ...the re-sent request is answered from the record: the caller's retry
  // after a lost answer never turns into a refusal.
  v1::SettleResponse again;
  c = SettleWithToken(kPharmacy, Purchase("late-replay"), token, &again);
  ASSERT_TRUE(c.ok()) << c.status.error_message();
  EXPECT_TRUE(again.replayed());
}

TEST_F(GatewaySecurityTest, WithoutIssuerKeysCodesAreRefused) {
  // A gateway configured without ec_token.issuer_keys_dir.
  absl::StatusOr<std::unique_ptr<GatewayHarness>> bare =
      GatewayHarness::Start({{IdOf(kPlain), Person(kQuzhou, 2025)}}, Institutions());
  ASSERT_TRUE(bare.ok()) << bare.status();
  v1::SettleRequest r = Purchase("nokeys");
  r.mutable_credential()->set_ec_token(Token(kPlain));
  v1::SettleResponse out;
  ExpectRefused((*bare)->Call(&Stub::Settle, kPharmacy, r, &out),
                grpc::StatusCode::FAILED_PRECONDITION, creds::reason::kTokenNotConfigured);
}

// ---- what each kind of institution may do -----------------------------------

TEST_F(GatewaySecurityTest, PharmacySettlesOutpatientOnly) {
  v1::SettleResponse out;
  v1::SettleRequest stay = InpatientBill("ph-stay", IdOf(kPlain), 3, 2025);
  ExpectRefused(h().Call(&Stub::Settle, kPharmacy, stay, &out),
                grpc::StatusCode::PERMISSION_DENIED, gateway::reason::kVisitNotAllowed,
                "visit.type");
  ExpectRefused(h().Call(&Stub::PreSettle, kPharmacy, stay, &out),
                grpc::StatusCode::PERMISSION_DENIED, gateway::reason::kVisitNotAllowed,
                "visit.type");
  v1::SettleRequest chronic = Purchase("ph-chronic");
  chronic.mutable_credential()->set_id_card_no(IdOf(kPlain));
  chronic.mutable_visit()->set_type(v1::VISIT_TYPE_CHRONIC_OUTPATIENT);
  chronic.mutable_visit()->set_condition("HYPERTENSION");
  CallResult c = h().Call(&Stub::PreSettle, kPharmacy, chronic, &out);
  // Allowed at a pharmacy; the engine then judges the certification.
  EXPECT_NE(c.reason, gateway::reason::kVisitNotAllowed);
  EXPECT_EQ(AccumulatorVersion(kPlain), 0);

  // Coverage for a stay at a pharmacy: not covered, with the reason.
  v1::CheckCoverageRequest q;
  q.mutable_credential()->set_id_card_no(IdOf(kPlain));
  q.set_service_date("2025-06-01");
  q.set_visit_type(v1::VISIT_TYPE_INPATIENT);
  v1::CheckCoverageResponse answer;
  c = h().Call(&Stub::CheckCoverage, kPharmacy, q, &answer);
  ASSERT_TRUE(c.ok()) << c.status.error_message();
  EXPECT_FALSE(answer.covered());
  EXPECT_EQ(answer.reason(), gateway::reason::kVisitNotAllowed);
}

TEST_F(GatewaySecurityTest, CommunityCentreSettlesStaysOnlyAtLevelOne) {
  v1::SettleResponse out;
  v1::SettleRequest stay = InpatientBill("cc-stay", IdOf(kPlain), 3, 2025);
  ExpectRefused(h().Call(&Stub::Settle, CommunityAtLevel(2).institution_id, stay, &out),
                grpc::StatusCode::PERMISSION_DENIED, gateway::reason::kVisitNotAllowed,
                "visit.type");
  CallResult c = h().Call(&Stub::Settle, CommunityAtLevel(1).institution_id, stay, &out);
  EXPECT_TRUE(c.ok()) << c.status.error_message() << " " << c.reason;
}

TEST_F(GatewaySecurityTest, InstitutionReadsAndReversesOnlyItsOwnSettlements) {
  v1::SettleRequest bill = Purchase("own-1");
  bill.mutable_credential()->set_id_card_no(IdOf(kPlain));
  v1::SettleResponse settled;
  ASSERT_TRUE(h().Call(&Stub::Settle, kPharmacy, bill, &settled).ok());

  v1::GetSettlementRequest get;
  get.set_settlement_id(settled.settlement_id());
  v1::SettleResponse read;
  ExpectRefused(h().Call(&Stub::GetSettlement, kHospital, get, &read),
                grpc::StatusCode::PERMISSION_DENIED, cache::reason::kNotYourSettlement,
                "settlement_id");
  v1::ReverseRequest reverse;
  reverse.set_request_id("rv-1");
  reverse.set_settlement_id(settled.settlement_id());
  v1::ReverseResponse reversed;
  ExpectRefused(h().Call(&Stub::Reverse, kHospital, reverse, &reversed),
                grpc::StatusCode::PERMISSION_DENIED, cache::reason::kNotYourSettlement,
                "settlement_id");
  // Reconcile is always the caller's own: the hospital's day is empty.
  v1::ReconcileRequest day;
  day.set_date("2025-06-20");
  v1::ReconcileResponse totals;
  ASSERT_TRUE(h().Call(&Stub::Reconcile, kHospital, day, &totals).ok());
  EXPECT_EQ(totals.settled().count(), 0);
  ASSERT_TRUE(h().Call(&Stub::Reconcile, kPharmacy, day, &totals).ok());
  EXPECT_EQ(totals.settled().count(), 1);
  // The owner may.
  EXPECT_TRUE(h().Call(&Stub::GetSettlement, kPharmacy, get, &read).ok());
  EXPECT_TRUE(h().Call(&Stub::Reverse, kPharmacy, reverse, &reversed).ok());
}

// ---- ID numbers -------------------------------------------------------------

TEST_F(GatewaySecurityTest, IdNumberWithAWrongCheckDigitIsRefused) {
  std::string wrong = IdOf(kPlain);
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  v1::SettleRequest bill = Purchase("cd-1");
  bill.mutable_credential()->set_id_card_no(wrong);
  v1::SettleResponse out;
  CallResult c = h().Call(&Stub::Settle, kHospital, bill, &out);
  ExpectRefused(c, grpc::StatusCode::INVALID_ARGUMENT, cache::reason::kIdNumberCheckDigit,
                "credential.id_card_no");
  EXPECT_EQ(c.status.error_message().find(wrong.substr(4, 10)), std::string::npos)
      << "the refusal repeats the number";
  bill.mutable_credential()->set_insurance_card_no(wrong);
  ExpectRefused(h().Call(&Stub::Settle, kHospital, bill, &out),
                grpc::StatusCode::INVALID_ARGUMENT, cache::reason::kIdNumberCheckDigit,
                "credential.insurance_card_no");
  EXPECT_EQ(AccumulatorVersion(kPlain), 0);
}

}  // namespace
}  // namespace medsettle::testing
