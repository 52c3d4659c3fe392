// The contract layer (proto/contract/convert.h): every format rule refuses
// with its stable reason and the full proto field path; results map to the
// wire field by field; accumulators survive a round trip.
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/status.h"
#include "proto/contract/convert.h"

namespace medsettle::contract {
namespace {

using engine::FieldOf;
using engine::ReasonOf;

// ---- valid records; each case breaks one thing ----------------------------

v1::Enrollment ValidEnrollment() {
  v1::Enrollment e;
  e.set_person_key("pk-test-0001");
  e.set_year(2024);
  e.set_region_code("330802");
  e.set_birth_date("1968-04-12");
  e.set_category(v1::CATEGORY_ADULT);
  e.set_tier(0);
  e.set_assistance(v1::ASSISTANCE_DIBAO);
  e.set_paid_date("2023-12-05");
  e.set_concentrated(true);
  e.set_status(v1::ENROLLMENT_STATUS_ACTIVE);
  e.add_chronic_conditions("HTN");
  e.add_special_diseases("UREMIA");
  v1::OutOfAreaFiling* f = e.add_out_of_area_filings();
  f->set_region_code("330100");
  f->set_start_date("2024-03-01");
  f->set_end_date("2024-08-31");
  e.add_out_of_area_filings()->CopyFrom(*f);
  e.mutable_supplementary()->set_product("tianyi-yongning-2025");
  e.mutable_supplementary()->set_continuous(true);
  e.set_voucher_revoked_at("2024-06-01T09:30:00+08:00");
  e.add_family_presenter_keys(std::string(64, 'a'));  // sorted, as the engine keeps them
  e.add_family_presenter_keys(std::string(63, 'b') + "0");
  return e;
}

v1::Institution ValidInstitution() {
  v1::Institution i;
  i.set_institution_id("H33080200021");
  i.set_name("衢州市柯城区人民医院");
  i.set_region_code("330802");
  i.set_kind(v1::INSTITUTION_KIND_HOSPITAL);
  i.set_level(2);
  i.set_zero_markup(true);
  i.set_tcm(true);
  return i;
}

v1::SettleRequest ValidRequest() {
  v1::SettleRequest r;
  r.set_request_id("req-0001");
  r.mutable_credential()->set_insurance_card_no("A33080212345");
  v1::Visit* v = r.mutable_visit();
  v->set_type(v1::VISIT_TYPE_INPATIENT);
  v->set_admission_date("2024-05-06");
  v->set_discharge_date("2024-05-14");
  v->set_condition("");
  for (int n = 1; n <= 3; ++n) {
    v1::BillItem* item = r.add_items();
    item->set_line_no(n);
    item->set_code("FA0003");
    item->set_name("床位费");
    item->set_quantity("2.5");
    item->set_unit_price_cents(4500);
    item->set_amount_cents(11250);
  }
  return r;
}

v1::Accumulators ValidAccumulators() {
  v1::Accumulators a;
  a.set_person_key("pk-test-0001");
  a.set_year(2024);
  v1::LedgerTotals* general = a.add_ledgers();
  general->set_ledger(v1::LEDGER_GENERAL_OUTPATIENT);
  general->set_deductible_paid_cents(10000);
  general->set_in_scope_cents(35000);
  general->set_fund_paid_cents(15000);
  general->set_visits(3);
  v1::LedgerTotals* inpatient = a.add_ledgers();
  inpatient->set_ledger(v1::LEDGER_INPATIENT);
  inpatient->set_deductible_paid_cents(80000);
  inpatient->set_in_scope_cents(1888648);
  inpatient->set_fund_paid_cents(1537351);
  inpatient->set_visits(1);
  a.mutable_critical_illness()->set_burden_cents(351297);
  a.mutable_critical_illness()->set_paid_cents(0);
  v1::SupplementaryTotals* r1 = a.add_supplementary();
  r1->set_responsibility(1);
  r1->set_base_cents(719051);
  r1->set_paid_cents(170715);
  v1::SupplementaryTotals* r2 = a.add_supplementary();
  r2->set_responsibility(2);
  r2->set_base_cents(173600);
  r2->set_paid_cents(18720);
  a.set_version(7);
  return a;
}

// A table case: break one field of a valid record, expect one refusal.
template <typename Message>
struct Case {
  std::string name;
  std::function<void(Message*)> breaks;
  std::string reason;
  std::string field;
};

template <typename Message, typename Converted, typename Convert>
void ExpectRefusals(const Message& valid, const std::vector<Case<Message>>& cases,
                    Convert convert) {
  {
    Converted out;
    absl::Status status = convert(valid, &out);
    ASSERT_TRUE(status.ok()) << "the valid record is refused: " << status;
  }
  for (const Case<Message>& c : cases) {
    SCOPED_TRACE(c.name);
    Message broken = valid;
    c.breaks(&broken);
    Converted out;
    absl::Status status = convert(broken, &out);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_EQ(ReasonOf(status), c.reason) << status;
    EXPECT_EQ(FieldOf(status), c.field) << status;
  }
}

// ---- enrollment -----------------------------------------------------------

TEST(EnrollmentFromProto, RefusesEachMalformedField) {
  using C = Case<v1::Enrollment>;
  std::vector<C> cases = {
      {"year zero", [](auto* e) { e->set_year(0); }, "ENROLLMENT_INVALID", "enrollment.year"},
      {"year far future", [](auto* e) { e->set_year(2500); }, "ENROLLMENT_INVALID",
       "enrollment.year"},
      {"region five digits", [](auto* e) { e->set_region_code("33080"); }, "REGION_CODE_INVALID",
       "enrollment.region_code"},
      {"region seven digits", [](auto* e) { e->set_region_code("3308020"); }, "REGION_CODE_INVALID",
       "enrollment.region_code"},
      {"region letters", [](auto* e) { e->set_region_code("33O802"); }, "REGION_CODE_INVALID",
       "enrollment.region_code"},
      {"region empty", [](auto* e) { e->set_region_code(""); }, "REGION_CODE_INVALID",
       "enrollment.region_code"},
      {"region not a division", [](auto* e) { e->set_region_code("000000"); },
       "REGION_CODE_INVALID", "enrollment.region_code"},
      {"region with a sign", [](auto* e) { e->set_region_code("-33080"); }, "REGION_CODE_INVALID",
       "enrollment.region_code"},
      {"birth date missing", [](auto* e) { e->clear_birth_date(); }, "DATE_MISSING",
       "enrollment.birth_date"},
      {"birth date not a day", [](auto* e) { e->set_birth_date("1968-02-30"); }, "DATE_INVALID",
       "enrollment.birth_date"},
      {"birth date other format", [](auto* e) { e->set_birth_date("1968/04/12"); }, "DATE_INVALID",
       "enrollment.birth_date"},
      {"category unspecified", [](auto* e) { e->set_category(v1::CATEGORY_UNSPECIFIED); },
       "ENUM_UNSPECIFIED", "enrollment.category"},
      {"category unknown number", [](auto* e) { e->set_category(static_cast<v1::Category>(42)); },
       "ENUM_UNSPECIFIED", "enrollment.category"},
      {"tier negative", [](auto* e) { e->set_tier(-1); }, "ENROLLMENT_INVALID", "enrollment.tier"},
      {"tier three", [](auto* e) { e->set_tier(3); }, "ENROLLMENT_INVALID", "enrollment.tier"},
      {"assistance unspecified", [](auto* e) { e->set_assistance(v1::ASSISTANCE_UNSPECIFIED); },
       "ENUM_UNSPECIFIED", "enrollment.assistance"},
      {"paid date malformed", [](auto* e) { e->set_paid_date("2023-12-5"); }, "DATE_INVALID",
       "enrollment.paid_date"},
      {"status unspecified", [](auto* e) { e->set_status(v1::ENROLLMENT_STATUS_UNSPECIFIED); },
       "ENUM_UNSPECIFIED", "enrollment.status"},
      {"filing region", [](auto* e) { e->mutable_out_of_area_filings(1)->set_region_code("33"); },
       "REGION_CODE_INVALID", "enrollment.out_of_area_filings[1].region_code"},
      {"filing start missing",
       [](auto* e) { e->mutable_out_of_area_filings(0)->clear_start_date(); }, "DATE_MISSING",
       "enrollment.out_of_area_filings[0].start_date"},
      {"filing end malformed",
       [](auto* e) { e->mutable_out_of_area_filings(1)->set_end_date("2024-13-01"); },
       "DATE_INVALID", "enrollment.out_of_area_filings[1].end_date"},
      {"filing ends before it starts",
       [](auto* e) { e->mutable_out_of_area_filings(0)->set_end_date("2024-02-29"); }, "DATE_ORDER",
       "enrollment.out_of_area_filings[0].end_date"},
      {"voucher revocation not RFC 3339",
       [](auto* e) { e->set_voucher_revoked_at("2024-06-01 09:30"); }, "DATE_INVALID",
       "enrollment.voucher_revoked_at"},
      {"presenter key uppercase",
       [](auto* e) { e->set_family_presenter_keys(1, std::string(64, 'B')); },
       "ENROLLMENT_INVALID", "enrollment.family_presenter_keys[1]"},
      {"presenter key short",
       [](auto* e) { e->set_family_presenter_keys(0, std::string(63, 'a')); },
       "ENROLLMENT_INVALID", "enrollment.family_presenter_keys[0]"},
      {"presenter key repeated",
       [](auto* e) { e->add_family_presenter_keys(std::string(64, 'a')); }, "ENROLLMENT_INVALID",
       "enrollment.family_presenter_keys[2]"},
      {"presenter is the person",
       [](auto* e) {
         e->set_person_key(std::string(64, 'c'));
         e->add_family_presenter_keys(std::string(64, 'c'));
       },
       "ENROLLMENT_INVALID", "enrollment.family_presenter_keys[2]"},
      {"more than 16 presenters",
       [](auto* e) {
         for (char c = '0'; c <= '9'; ++c) e->add_family_presenter_keys(std::string(64, c));
         for (char c = 'c'; c <= 'f'; ++c) e->add_family_presenter_keys(std::string(64, c));
         e->add_family_presenter_keys(std::string(63, 'e') + "0");  // 17
       },
       "ENROLLMENT_INVALID", "enrollment.family_presenter_keys"},
  };
  ExpectRefusals<v1::Enrollment, engine::Enrollment>(
      ValidEnrollment(), cases, [](const v1::Enrollment& in, engine::Enrollment* out) {
        return EnrollmentFromProto(in, out);
      });
}

TEST(EnrollmentFromProto, ConvertsEveryField) {
  engine::Enrollment e;
  ASSERT_TRUE(EnrollmentFromProto(ValidEnrollment(), &e).ok());
  EXPECT_EQ(e.person_key, "pk-test-0001");
  EXPECT_EQ(e.year, 2024);
  EXPECT_EQ(e.region_code, 330802);
  EXPECT_EQ(e.birth_date, engine::Date::FromYmd(1968, 4, 12));
  EXPECT_EQ(e.category, engine::Category::kAdult);
  EXPECT_EQ(e.assistance, engine::Assistance::kDibao);
  EXPECT_EQ(e.paid_date, engine::Date::FromYmd(2023, 12, 5));
  EXPECT_TRUE(e.concentrated);
  EXPECT_EQ(e.status, engine::EnrollmentStatus::kActive);
  EXPECT_EQ(e.chronic_conditions, std::vector<std::string>{"HTN"});
  EXPECT_EQ(e.special_diseases, std::vector<std::string>{"UREMIA"});
  ASSERT_EQ(e.out_of_area_filings.size(), 2u);
  EXPECT_EQ(e.out_of_area_filings[0].region_code, 330100);
  EXPECT_EQ(e.out_of_area_filings[0].end_date, engine::Date::FromYmd(2024, 8, 31));
  EXPECT_EQ(e.supplementary.product, "tianyi-yongning-2025");
  EXPECT_TRUE(e.supplementary.continuous);
  EXPECT_FALSE(e.supplementary.pre_existing);
  EXPECT_EQ(e.voucher_revoked_at_unix, engine::ParseRfc3339("2024-06-01T01:30:00Z"));
  EXPECT_EQ(e.family_presenter_keys,
            (std::vector<std::string>{std::string(64, 'a'), std::string(63, 'b') + "0"}));
}

TEST(EnrollmentFromProto, FamilyPresentersMayBeAbsentOrUnsortedAndEndSorted) {
  v1::Enrollment in = ValidEnrollment();
  in.clear_family_presenter_keys();
  engine::Enrollment e;
  ASSERT_TRUE(EnrollmentFromProto(in, &e).ok());
  EXPECT_TRUE(e.family_presenter_keys.empty());
  const std::string a(64, '1'), b(64, '7'), c(64, 'f');
  for (const std::string* key : {&c, &a, &b}) in.add_family_presenter_keys(*key);
  ASSERT_TRUE(EnrollmentFromProto(in, &e).ok());
  EXPECT_EQ(e.family_presenter_keys, (std::vector<std::string>{a, b, c}));
  v1::Enrollment out;
  EnrollmentToProto(e, &out);
  ASSERT_EQ(out.family_presenter_keys_size(), 3);
  EXPECT_EQ(out.family_presenter_keys(0), a);
  EXPECT_EQ(out.family_presenter_keys(2), c);
}

TEST(EnrollmentFromProto, OptionalDatesMayBeEmpty) {
  v1::Enrollment in = ValidEnrollment();
  in.clear_paid_date();  // concentrated enrollment without a recorded payment date
  in.clear_voucher_revoked_at();
  engine::Enrollment e;
  ASSERT_TRUE(EnrollmentFromProto(in, &e).ok());
  EXPECT_FALSE(e.paid_date.valid());
  EXPECT_FALSE(e.voucher_revoked_at_unix.has_value());
}

TEST(EnrollmentFromProto, RootPrefixesThePath) {
  v1::Enrollment in = ValidEnrollment();
  in.clear_birth_date();
  engine::Enrollment e;
  EXPECT_EQ(FieldOf(EnrollmentFromProto(in, &e, "snapshot.enrollment")),
            "snapshot.enrollment.birth_date");
  EXPECT_EQ(FieldOf(EnrollmentFromProto(in, &e, "")), "birth_date");
}

TEST(EnrollmentToProto, RoundTripsEveryField) {
  v1::Enrollment in = ValidEnrollment();
  in.set_newborn(true);
  in.set_reenrolled_after_gap(true);
  engine::Enrollment e;
  ASSERT_TRUE(EnrollmentFromProto(in, &e).ok());
  v1::Enrollment out;
  EnrollmentToProto(e, &out);
  engine::Enrollment again;
  ASSERT_TRUE(EnrollmentFromProto(out, &again).ok());
  EXPECT_EQ(out.region_code(), "330802");
  EXPECT_EQ(out.birth_date(), "1968-04-12");
  EXPECT_EQ(out.voucher_revoked_at(), "2024-06-01T09:30:00+08:00");  // same instant, CST
  EXPECT_TRUE(out.newborn() && out.reenrolled_after_gap());
  EXPECT_EQ(out.family_presenter_keys_size(), 2);
  // The record survives wire and back unchanged, presenter keys included.
  in.set_voucher_revoked_at(out.voucher_revoked_at());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(in, out))
      << in.DebugString() << "\nvs\n" << out.DebugString();
  EXPECT_EQ(again.voucher_revoked_at_unix, e.voucher_revoked_at_unix);
}

// ---- institution ----------------------------------------------------------

TEST(InstitutionFromProto, RefusesEachMalformedField) {
  using C = Case<v1::Institution>;
  std::vector<C> cases = {
      {"region", [](auto* i) { i->set_region_code("3308021"); }, "REGION_CODE_INVALID",
       "institution.region_code"},
      {"kind unspecified", [](auto* i) { i->set_kind(v1::INSTITUTION_KIND_UNSPECIFIED); },
       "ENUM_UNSPECIFIED", "institution.kind"},
      {"level zero", [](auto* i) { i->set_level(0); }, "INSTITUTION_INVALID", "institution.level"},
      {"level four", [](auto* i) { i->set_level(4); }, "INSTITUTION_INVALID", "institution.level"},
  };
  ExpectRefusals<v1::Institution, engine::Institution>(
      ValidInstitution(), cases, [](const v1::Institution& in, engine::Institution* out) {
        return InstitutionFromProto(in, out);
      });
}

TEST(InstitutionFromProto, ConvertsEveryField) {
  v1::Institution in = ValidInstitution();
  in.set_children_or_maternal(true);
  in.set_base_level(true);
  in.set_suspended(true);
  engine::Institution i;
  ASSERT_TRUE(InstitutionFromProto(in, &i).ok());
  EXPECT_EQ(i.institution_id, "H33080200021");
  EXPECT_EQ(i.name, "衢州市柯城区人民医院");
  EXPECT_EQ(i.region_code, 330802);
  EXPECT_EQ(i.kind, engine::InstitutionKind::kHospital);
  EXPECT_EQ(i.level, 2);
  EXPECT_TRUE(i.zero_markup && i.tcm && i.children_or_maternal && i.base_level && i.suspended);
  v1::Institution back;
  InstitutionToProto(i, &back);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(in, back)) << back.DebugString();
}

// ---- request → claim ------------------------------------------------------

TEST(ClaimFromProto, RefusesEachMalformedField) {
  using C = Case<v1::SettleRequest>;
  std::vector<C> cases = {
      {"no credential", [](auto* r) { r->clear_credential(); }, "CREDENTIAL_MISSING",
       "request.credential"},
      {"credential without kind", [](auto* r) { r->mutable_credential()->clear_kind(); },
       "CREDENTIAL_MISSING", "request.credential"},
      {"empty e-insurance token", [](auto* r) { r->mutable_credential()->set_ec_token(""); },
       "CREDENTIAL_MISSING", "request.credential"},
      {"visit type unspecified",
       [](auto* r) { r->mutable_visit()->set_type(v1::VISIT_TYPE_UNSPECIFIED); },
       "VISIT_TYPE_UNSPECIFIED", "request.visit.type"},
      {"visit type unknown number",
       [](auto* r) { r->mutable_visit()->set_type(static_cast<v1::VisitType>(99)); },
       "VISIT_TYPE_UNSPECIFIED", "request.visit.type"},
      {"specialty set to unspecified",
       [](auto* r) { r->mutable_visit()->set_specialty(v1::SPECIALTY_UNSPECIFIED); },
       "ENUM_UNSPECIFIED", "request.visit.specialty"},
      {"service date malformed", [](auto* r) { r->mutable_visit()->set_service_date("20240514"); },
       "DATE_INVALID", "request.visit.service_date"},
      {"admission date malformed",
       [](auto* r) { r->mutable_visit()->set_admission_date("2024-05-32"); }, "DATE_INVALID",
       "request.visit.admission_date"},
      {"discharge date malformed",
       [](auto* r) { r->mutable_visit()->set_discharge_date("tomorrow"); }, "DATE_INVALID",
       "request.visit.discharge_date"},
      {"quantity with five places", [](auto* r) { r->mutable_items(1)->set_quantity("1.23456"); },
       "QUANTITY_INVALID", "request.items[1].quantity"},
      {"quantity negative", [](auto* r) { r->mutable_items(2)->set_quantity("-1"); },
       "QUANTITY_INVALID", "request.items[2].quantity"},
      {"quantity empty", [](auto* r) { r->mutable_items(0)->set_quantity(""); }, "QUANTITY_INVALID",
       "request.items[0].quantity"},
      {"unit price negative", [](auto* r) { r->mutable_items(0)->set_unit_price_cents(-1); },
       "PRICE_INVALID", "request.items[0].unit_price_cents"},
      {"amount negative", [](auto* r) { r->mutable_items(2)->set_amount_cents(-11250); },
       "PRICE_INVALID", "request.items[2].amount_cents"},
      {"too many items",
       [](auto* r) {
         while (r->items_size() <= engine::kMaxBillLines) r->add_items()->CopyFrom(r->items(0));
       },
       "TOO_MANY_ITEMS", "request.items"},
  };
  ExpectRefusals<v1::SettleRequest, engine::Claim>(
      ValidRequest(), cases,
      [](const v1::SettleRequest& in, engine::Claim* out) { return ClaimFromProto(in, out); });
}

TEST(ClaimFromProto, ConvertsEveryField) {
  v1::SettleRequest in = ValidRequest();
  in.mutable_visit()->set_condition("TB");
  in.mutable_visit()->set_emergency(true);
  in.mutable_items(2)->set_code("XB0001");
  engine::Claim claim;
  ASSERT_TRUE(ClaimFromProto(in, &claim).ok());
  EXPECT_EQ(claim.request_id, "req-0001");
  EXPECT_EQ(claim.credential, engine::CredentialKind::kInsuranceCard);
  EXPECT_EQ(claim.visit.type, engine::VisitType::kInpatient);
  EXPECT_FALSE(claim.visit.service_date.valid());  // empty = unset
  EXPECT_EQ(claim.visit.admission_date, engine::Date::FromYmd(2024, 5, 6));
  EXPECT_EQ(claim.visit.discharge_date, engine::Date::FromYmd(2024, 5, 14));
  EXPECT_EQ(claim.visit.specialty, engine::Specialty::kNone);  // unset
  EXPECT_EQ(claim.visit.condition, "TB");
  EXPECT_TRUE(claim.visit.emergency);
  ASSERT_EQ(claim.lines.size(), 3u);
  EXPECT_EQ(claim.lines[2].line_no, 3);
  EXPECT_EQ(claim.lines[2].code, "XB0001");
  EXPECT_EQ(claim.lines[2].name, "床位费");
  EXPECT_EQ(claim.lines[2].quantity, (engine::Quantity{25, 1}));
  EXPECT_EQ(claim.lines[2].unit_price_cents, 4500);
  EXPECT_EQ(claim.lines[2].amount_cents, 11250);
}

TEST(ClaimFromProto, CredentialKinds) {
  v1::SettleRequest in = ValidRequest();
  engine::Claim claim;
  in.mutable_credential()->set_id_card_no("330802196804120000");
  ASSERT_TRUE(ClaimFromProto(in, &claim).ok());
  EXPECT_EQ(claim.credential, engine::CredentialKind::kIdCard);
  in.mutable_credential()->set_ec_token("ec-token");
  ASSERT_TRUE(ClaimFromProto(in, &claim).ok());
  EXPECT_EQ(claim.credential, engine::CredentialKind::kEcToken);
}

TEST(ClaimFromProto, SpecialtyExplicitlySet) {
  v1::SettleRequest in = ValidRequest();
  in.mutable_visit()->set_specialty(v1::SPECIALTY_TCM);
  engine::Claim claim;
  ASSERT_TRUE(ClaimFromProto(in, &claim).ok());
  EXPECT_EQ(claim.visit.specialty, engine::Specialty::kTcm);
  in.mutable_visit()->set_specialty(v1::SPECIALTY_PEDIATRICS);
  ASSERT_TRUE(ClaimFromProto(in, &claim).ok());
  EXPECT_EQ(claim.visit.specialty, engine::Specialty::kPediatrics);
}

TEST(ClaimFromProto, ReusedClaimTakesTheNewLinesOnly) {
  engine::Claim claim;
  ASSERT_TRUE(ClaimFromProto(ValidRequest(), &claim).ok());
  v1::SettleRequest shorter = ValidRequest();
  shorter.mutable_items()->DeleteSubrange(1, 2);
  shorter.mutable_visit()->set_specialty(v1::SPECIALTY_TCM);
  ASSERT_TRUE(ClaimFromProto(shorter, &claim).ok());
  EXPECT_EQ(claim.lines.size(), 1u);
  ASSERT_TRUE(ClaimFromProto(ValidRequest(), &claim).ok());
  EXPECT_EQ(claim.visit.specialty, engine::Specialty::kNone);  // not left from before
}

TEST(ClaimFromProto, GatewayRootGivesRelativePaths) {
  v1::SettleRequest in = ValidRequest();
  in.mutable_items(1)->set_quantity("x");
  engine::Claim claim;
  EXPECT_EQ(FieldOf(ClaimFromProto(in, &claim, "")), "items[1].quantity");
}

// ---- accumulators ---------------------------------------------------------

TEST(AccumulatorsFromProto, RefusesEachMalformedField) {
  using C = Case<v1::Accumulators>;
  std::vector<C> cases = {
      {"ledger unspecified",
       [](auto* a) { a->mutable_ledgers(0)->set_ledger(v1::LEDGER_UNSPECIFIED); },
       "ENUM_UNSPECIFIED", "year_to_date.ledgers[0].ledger"},
      {"ledger unknown number",
       [](auto* a) { a->mutable_ledgers(1)->set_ledger(static_cast<v1::Ledger>(7)); },
       "ENUM_UNSPECIFIED", "year_to_date.ledgers[1].ledger"},
      {"ledger twice", [](auto* a) { a->add_ledgers()->CopyFrom(a->ledgers(0)); },
       "ACCUMULATORS_INVALID", "year_to_date.ledgers[2].ledger"},
      {"deductible paid negative",
       [](auto* a) { a->mutable_ledgers(1)->set_deductible_paid_cents(-1); },
       "ACCUMULATORS_INVALID", "year_to_date.ledgers[1].deductible_paid_cents"},
      {"in scope negative", [](auto* a) { a->mutable_ledgers(0)->set_in_scope_cents(-5); },
       "ACCUMULATORS_INVALID", "year_to_date.ledgers[0].in_scope_cents"},
      {"fund paid negative", [](auto* a) { a->mutable_ledgers(1)->set_fund_paid_cents(-5); },
       "ACCUMULATORS_INVALID", "year_to_date.ledgers[1].fund_paid_cents"},
      {"visits negative", [](auto* a) { a->mutable_ledgers(0)->set_visits(-1); },
       "ACCUMULATORS_INVALID", "year_to_date.ledgers[0].visits"},
      {"critical illness burden negative",
       [](auto* a) { a->mutable_critical_illness()->set_burden_cents(-1); }, "ACCUMULATORS_INVALID",
       "year_to_date.critical_illness.burden_cents"},
      {"critical illness paid negative",
       [](auto* a) { a->mutable_critical_illness()->set_paid_cents(-1); }, "ACCUMULATORS_INVALID",
       "year_to_date.critical_illness.paid_cents"},
      {"responsibility zero", [](auto* a) { a->mutable_supplementary(1)->set_responsibility(0); },
       "ACCUMULATORS_INVALID", "year_to_date.supplementary[1].responsibility"},
      {"responsibility five", [](auto* a) { a->mutable_supplementary(0)->set_responsibility(5); },
       "ACCUMULATORS_INVALID", "year_to_date.supplementary[0].responsibility"},
      {"responsibility twice", [](auto* a) { a->mutable_supplementary(1)->set_responsibility(1); },
       "ACCUMULATORS_INVALID", "year_to_date.supplementary[1].responsibility"},
      {"supplementary base negative",
       [](auto* a) { a->mutable_supplementary(0)->set_base_cents(-1); }, "ACCUMULATORS_INVALID",
       "year_to_date.supplementary[0].base_cents"},
      {"supplementary paid negative",
       [](auto* a) { a->mutable_supplementary(1)->set_paid_cents(-1); }, "ACCUMULATORS_INVALID",
       "year_to_date.supplementary[1].paid_cents"},
      {"version negative", [](auto* a) { a->set_version(-1); }, "ACCUMULATORS_INVALID",
       "year_to_date.version"},
  };
  ExpectRefusals<v1::Accumulators, engine::Accumulators>(
      ValidAccumulators(), cases, [](const v1::Accumulators& in, engine::Accumulators* out) {
        return AccumulatorsFromProto(in, out);
      });
}

TEST(AccumulatorsFromProto, ProtoLedgerIsEngineLedgerPlusOne) {
  engine::Accumulators a;
  ASSERT_TRUE(AccumulatorsFromProto(ValidAccumulators(), &a).ok());
  EXPECT_EQ(a.ledger(engine::Ledger::kGeneralOutpatient).fund_paid_cents, 15000);
  EXPECT_EQ(a.ledger(engine::Ledger::kInpatient).in_scope_cents, 1888648);
  EXPECT_EQ(a.ledger(engine::Ledger::kInpatient).visits, 1);
  EXPECT_EQ(a.ledger(engine::Ledger::kChronicOutpatient), engine::LedgerTotals());
  EXPECT_EQ(a.critical_illness_burden_cents, 351297);
  EXPECT_EQ(a.supplementary[0].base_cents, 719051);
  EXPECT_EQ(a.supplementary[1].paid_cents, 18720);
  EXPECT_EQ(a.supplementary[2], engine::SupplementaryTotals());
  EXPECT_EQ(a.version, 7);
}

TEST(AccumulatorsFromProto, UnsetIsAFreshYear) {
  engine::Accumulators a;
  a.ledger(engine::Ledger::kDelivery).visits = 3;  // overwritten, not merged
  ASSERT_TRUE(AccumulatorsFromProto(v1::Accumulators(), &a).ok());
  EXPECT_TRUE(a.SameTotals(engine::Accumulators()));
  EXPECT_EQ(a.version, 0);
}

TEST(Accumulators, RoundTripEngineProtoEngine) {
  engine::Accumulators original;
  for (int i = 0; i < engine::kLedgerCount; ++i) {
    engine::LedgerTotals& t = original.ledgers[static_cast<size_t>(i)];
    t.deductible_paid_cents = 100 * i;
    t.in_scope_cents = 10000 + i;
    t.fund_paid_cents = 5000 + i;
    t.visits = i;
  }
  original.ledger(engine::Ledger::kSpecialOutpatient) = engine::LedgerTotals();  // omitted
  original.critical_illness_burden_cents = 1234567;
  original.critical_illness_paid_cents = 89;
  original.supplementary[0] = {600000, 30000};
  original.supplementary[3] = {1, 1};
  original.version = 42;

  v1::Accumulators wire;
  AccumulatorsToProto(original, "pk-test-0001", 2025, &wire);
  EXPECT_EQ(wire.person_key(), "pk-test-0001");
  EXPECT_EQ(wire.year(), 2025);
  ASSERT_EQ(wire.ledgers_size(), engine::kLedgerCount - 1);  // the all-zero one left out
  EXPECT_EQ(wire.ledgers(0).ledger(), v1::LEDGER_GENERAL_OUTPATIENT);
  EXPECT_EQ(wire.ledgers(1).ledger(), v1::LEDGER_CHRONIC_OUTPATIENT);
  EXPECT_EQ(wire.ledgers(2).ledger(), v1::LEDGER_INPATIENT);  // in ledger order
  EXPECT_EQ(wire.ledgers(4).ledger(), v1::LEDGER_DELIVERY);
  EXPECT_EQ(wire.ledgers(4).visits(), 5);
  ASSERT_EQ(wire.supplementary_size(), 2);
  EXPECT_EQ(wire.supplementary(0).responsibility(), 1);
  EXPECT_EQ(wire.supplementary(1).responsibility(), 4);
  EXPECT_EQ(wire.version(), 42);

  engine::Accumulators back;
  ASSERT_TRUE(AccumulatorsFromProto(wire, &back).ok());
  EXPECT_TRUE(back.SameTotals(original));
  EXPECT_EQ(back.version, original.version);
}

TEST(Accumulators, RoundTripProtoEngineProto) {
  const v1::Accumulators original = ValidAccumulators();
  engine::Accumulators a;
  ASSERT_TRUE(AccumulatorsFromProto(original, &a).ok());
  v1::Accumulators back;
  AccumulatorsToProto(a, original.person_key(), original.year(), &back);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(original, back))
      << original.DebugString() << "\nvs\n"
      << back.DebugString();
}

TEST(Accumulators, AllZeroHasNoLedgers) {
  v1::Accumulators wire;
  AccumulatorsToProto(engine::Accumulators(), "pk", 2024, &wire);
  EXPECT_EQ(wire.ledgers_size(), 0);
  EXPECT_EQ(wire.supplementary_size(), 0);
  EXPECT_TRUE(wire.has_critical_illness());
}

// ---- enums and formats ----------------------------------------------------

TEST(Enums, VisitTypesMapOneToOne) {
  for (int n = 1; n < engine::kVisitTypeCount; ++n) {
    const auto proto = static_cast<v1::VisitType>(n);
    ASSERT_TRUE(v1::VisitType_IsValid(n));
    std::optional<engine::VisitType> type = VisitTypeFromProto(proto);
    ASSERT_TRUE(type.has_value()) << n;
    EXPECT_EQ(static_cast<int>(*type), n);
    EXPECT_EQ(VisitTypeToProto(*type), proto);
  }
  EXPECT_FALSE(VisitTypeFromProto(v1::VISIT_TYPE_UNSPECIFIED).has_value());
  EXPECT_FALSE(VisitTypeFromProto(static_cast<v1::VisitType>(engine::kVisitTypeCount)));
}

TEST(Enums, LedgersAreShiftedByOne) {
  for (int n = 0; n < engine::kLedgerCount; ++n) {
    const auto ledger = static_cast<engine::Ledger>(n);
    EXPECT_EQ(static_cast<int>(LedgerToProto(ledger)), n + 1);
    EXPECT_EQ(LedgerFromProto(LedgerToProto(ledger)), ledger);
  }
  EXPECT_FALSE(LedgerFromProto(v1::LEDGER_UNSPECIFIED).has_value());
}

TEST(Formats, TimestampsAreOptionalRfc3339) {
  std::optional<int64_t> unix_seconds = 5;
  ASSERT_TRUE(ParseTimestampField("", "voucher_issued_at", &unix_seconds).ok());
  EXPECT_FALSE(unix_seconds.has_value());
  ASSERT_TRUE(
      ParseTimestampField("2025-03-18T10:02:47+08:00", "voucher_issued_at", &unix_seconds).ok());
  EXPECT_EQ(unix_seconds, engine::ParseRfc3339("2025-03-18T02:02:47Z"));
  absl::Status bad = ParseTimestampField("2025-03-18", "voucher_issued_at", &unix_seconds);
  EXPECT_EQ(ReasonOf(bad), "DATE_INVALID");
  EXPECT_EQ(FieldOf(bad), "voucher_issued_at");
}

TEST(Formats, RequiredAndOptionalDates) {
  engine::Date date = engine::Date::FromYmd(2024, 1, 1);
  EXPECT_EQ(ReasonOf(ParseDateField("", true, "service_date", &date)), "DATE_MISSING");
  ASSERT_TRUE(ParseDateField("", false, "service_date", &date).ok());
  EXPECT_FALSE(date.valid());
  ASSERT_TRUE(ParseDateField("2024-02-29", true, "service_date", &date).ok());
  EXPECT_EQ(date, engine::Date::FromYmd(2024, 2, 29));
}

// ---- settlement → response ------------------------------------------------

TEST(SettlementToProto, MapsEveryPart) {
  engine::Claim claim;
  claim.request_id = "req-9";
  claim.visit.type = engine::VisitType::kInpatient;
  claim.lines.resize(2);
  claim.lines[0].code = "FA0003";
  claim.lines[1].code = "XB0002";

  engine::Settlement s;
  s.policy_id = "quzhou-2024";
  s.settlement_date = engine::Date::FromYmd(2024, 5, 14);
  s.amounts = {.total_cents = 1000,
               .out_of_scope_cents = 100,
               .over_limit_cents = 50,
               .pre_self_pay_cents = 35,
               .in_scope_cents = 815,
               .deductible_cents = 200,
               .base_fund_cents = 500,
               .critical_illness_cents = 10,
               .supplementary_cents = 5,
               .patient_cents = 485};
  s.base_fund_ratio_bp = 8500;
  s.filing_to_follow = true;
  s.fund_details.push_back({engine::Fund::kBase, "inpatient", 615, 500, 149500, false});
  s.fund_details.push_back({engine::Fund::kSupplementary, "responsibility-1", 20, 5, 0, true});
  // Lines in another order than the claim: codes come by line_index.
  s.lines.push_back({.line_no = 7,
                     .line_index = 1,
                     .item_class = engine::ItemClass::kB,
                     .amount_cents = 400,
                     .over_limit_cents = 50,
                     .pre_self_pay_cents = 35,
                     .in_scope_cents = 315,
                     .out_of_scope_cents = 0,
                     .tcm_bonus = true});
  s.lines.push_back({.line_no = 3,
                     .line_index = 0,
                     .item_class = engine::ItemClass::kUnknown,
                     .amount_cents = 600,
                     .out_of_scope_cents = 100});
  engine::TraceStep step{.rule = engine::TraceRule::kDeductible,
                         .source = "十四.3",
                         .subject = "inpatient",
                         .amount_cents = 200,
                         .base_cents = 80000};
  s.trace.push_back(step);
  s.claim_later.push_back({.product = "tianyi-yongning-2025",
                           .responsibility = 3,
                           .name = "drugs",
                           .base_cents = std::nullopt,
                           .estimated_cents = 77,
                           .reason = "claimed later"});
  s.delta.ledger(engine::Ledger::kInpatient) = {200, 815, 500, 1};
  s.delta.version = 1;
  s.after = s.delta;
  s.after.ledger(engine::Ledger::kGeneralOutpatient).visits = 2;
  s.after.version = 8;

  v1::SettleResponse r;
  r.set_settlement_id("left over from a previous use");
  SettlementToProto(s, claim, "pk-9", "H1", &r);

  EXPECT_EQ(r.settlement_id(), "");  // overwritten, not merged
  EXPECT_EQ(r.policy_id(), "quzhou-2024");
  EXPECT_EQ(r.request_id(), "req-9");
  EXPECT_EQ(r.institution_id(), "H1");
  EXPECT_EQ(r.person_key(), "pk-9");
  EXPECT_EQ(r.visit_type(), v1::VISIT_TYPE_INPATIENT);
  EXPECT_EQ(r.settlement_date(), "2024-05-14");
  EXPECT_TRUE(r.filing_to_follow());
  EXPECT_EQ(r.base_fund_ratio_bp(), 8500);
  EXPECT_EQ(r.amounts().total_cents(), 1000);
  EXPECT_EQ(r.amounts().out_of_scope_cents(), 100);
  EXPECT_EQ(r.amounts().over_limit_cents(), 50);
  EXPECT_EQ(r.amounts().pre_self_pay_cents(), 35);
  EXPECT_EQ(r.amounts().in_scope_cents(), 815);
  EXPECT_EQ(r.amounts().deductible_cents(), 200);
  EXPECT_EQ(r.amounts().base_fund_cents(), 500);
  EXPECT_EQ(r.amounts().critical_illness_cents(), 10);
  EXPECT_EQ(r.amounts().supplementary_cents(), 5);
  EXPECT_EQ(r.amounts().patient_cents(), 485);

  ASSERT_EQ(r.fund_details_size(), 2);
  EXPECT_EQ(r.fund_details(0).fund(), v1::FUND_BASE);
  EXPECT_EQ(r.fund_details(0).scheme(), "inpatient");
  EXPECT_EQ(r.fund_details(0).eligible_cents(), 615);
  EXPECT_EQ(r.fund_details(0).cap_remaining_cents(), 149500);
  EXPECT_EQ(r.fund_details(1).fund(), v1::FUND_SUPPLEMENTARY);
  EXPECT_TRUE(r.fund_details(1).uncapped());

  ASSERT_EQ(r.lines_size(), 2);
  EXPECT_EQ(r.lines(0).line_no(), 7);
  EXPECT_EQ(r.lines(0).code(), "XB0002");
  EXPECT_EQ(r.lines(0).item_class(), v1::ITEM_CLASS_B);
  EXPECT_EQ(r.lines(0).over_limit_cents(), 50);
  EXPECT_EQ(r.lines(0).pre_self_pay_cents(), 35);
  EXPECT_EQ(r.lines(0).in_scope_cents(), 315);
  EXPECT_TRUE(r.lines(0).tcm_bonus());
  EXPECT_EQ(r.lines(1).code(), "FA0003");
  EXPECT_EQ(r.lines(1).item_class(), v1::ITEM_CLASS_UNKNOWN);
  EXPECT_EQ(r.lines(1).out_of_scope_cents(), 100);

  ASSERT_EQ(r.trace_size(), 1);
  EXPECT_EQ(r.trace(0).rule(), engine::TraceRuleId(engine::TraceRule::kDeductible));
  EXPECT_EQ(r.trace(0).source(), "十四.3");
  EXPECT_EQ(r.trace(0).amount_cents(), 200);
  EXPECT_EQ(r.trace(0).note(), engine::DescribeTraceStep(step));

  ASSERT_EQ(r.claim_later_size(), 1);
  EXPECT_EQ(r.claim_later(0).product(), "tianyi-yongning-2025");
  EXPECT_EQ(r.claim_later(0).responsibility(), 3);
  EXPECT_FALSE(r.claim_later(0).has_base_cents());  // unknown
  EXPECT_EQ(r.claim_later(0).name(), "drugs");
  EXPECT_EQ(r.claim_later(0).estimated_cents(), 77);
  EXPECT_EQ(r.claim_later(0).reason(), "claimed later");

  EXPECT_EQ(r.year_to_date().person_key(), "pk-9");
  EXPECT_EQ(r.year_to_date().year(), 2024);
  EXPECT_EQ(r.year_to_date().version(), 8);
  ASSERT_EQ(r.year_to_date().ledgers_size(), 2);
  EXPECT_EQ(r.year_to_date().ledgers(0).ledger(), v1::LEDGER_GENERAL_OUTPATIENT);
  EXPECT_EQ(r.accumulator_delta().year(), 2024);
  EXPECT_EQ(r.accumulator_delta().version(), 1);
  ASSERT_EQ(r.accumulator_delta().ledgers_size(), 1);
  EXPECT_EQ(r.accumulator_delta().ledgers(0).ledger(), v1::LEDGER_INPATIENT);
  EXPECT_EQ(r.accumulator_delta().ledgers(0).fund_paid_cents(), 500);

  // Left to the caller.
  EXPECT_EQ(r.status(), v1::SETTLEMENT_STATUS_UNSPECIFIED);
  EXPECT_EQ(r.settled_at(), "");
}

}  // namespace
}  // namespace medsettle::contract
