#include "proto/contract/convert.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "engine/date.h"
#include "engine/money.h"
#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::contract {
namespace {

namespace reason = engine::reason;
using engine::Cat;
using engine::InvalidField;

// Quotes client text for a message, shortened so a huge field cannot blow
// up the error (cut on a UTF-8 character boundary).
std::string Quoted(std::string_view text) {
  constexpr size_t kMax = 40;
  if (text.size() <= kMax) return Cat("\"", text, "\"");
  size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return Cat("\"", text.substr(0, cut), "...\"");
}

// Paths are composed only when a refusal is built, never on success. An
// empty root means the message is the request itself (the gateway's case).
std::string Path(std::string_view root, std::string_view leaf) {
  return root.empty() ? std::string(leaf) : Cat(root, ".", leaf);
}
std::string Path(std::string_view root, std::string_view repeated, int index,
                 std::string_view leaf) {
  return Path(root, Cat(repeated, "[", index, "].", leaf));
}

// A field path, made into text only when a refusal needs it:
// root.leaf, or root.repeated[index].leaf when index >= 0.
struct FieldRef {
  std::string_view root;
  std::string_view leaf;
  std::string_view repeated = {};
  int index = -1;
  std::string str() const {
    return index < 0 ? Path(root, leaf) : Path(root, repeated, index, leaf);
  }
};

absl::Status EnumUnspecified(std::string field, int value) {
  std::string message = value == 0
                            ? Cat(field, ": must be set (the *_UNSPECIFIED value is refused)")
                            : Cat(field, ": unknown value ", value);
  return InvalidField(reason::kEnumUnspecified, field, message);
}

// ---- enum tables: explicit, one case per value --------------------------

std::optional<engine::Category> CategoryFromProto(v1::Category v) {
  switch (v) {
    case v1::CATEGORY_ADULT: return engine::Category::kAdult;
    case v1::CATEGORY_INFANT: return engine::Category::kInfant;
    case v1::CATEGORY_MINOR: return engine::Category::kMinor;
    case v1::CATEGORY_STUDENT: return engine::Category::kStudent;
    default: return std::nullopt;  // UNSPECIFIED or a number not in the contract
  }
}

std::optional<engine::Assistance> AssistanceFromProto(v1::Assistance v) {
  switch (v) {
    case v1::ASSISTANCE_NONE: return engine::Assistance::kNone;
    case v1::ASSISTANCE_TEKUN: return engine::Assistance::kTekun;
    case v1::ASSISTANCE_DIBAO: return engine::Assistance::kDibao;
    case v1::ASSISTANCE_DIBAO_EDGE: return engine::Assistance::kDibaoEdge;
    case v1::ASSISTANCE_POVERTY_RELAPSE: return engine::Assistance::kPovertyRelapse;
    case v1::ASSISTANCE_SEVERE_DISABILITY: return engine::Assistance::kSevereDisability;
    case v1::ASSISTANCE_KEY_ENTITLED: return engine::Assistance::kKeyEntitled;
    default: return std::nullopt;
  }
}

std::optional<engine::EnrollmentStatus> StatusFromProto(v1::EnrollmentStatus v) {
  switch (v) {
    case v1::ENROLLMENT_STATUS_ACTIVE: return engine::EnrollmentStatus::kActive;
    case v1::ENROLLMENT_STATUS_SUSPENDED: return engine::EnrollmentStatus::kSuspended;
    default: return std::nullopt;
  }
}

std::optional<engine::InstitutionKind> KindFromProto(v1::InstitutionKind v) {
  switch (v) {
    case v1::INSTITUTION_KIND_HOSPITAL: return engine::InstitutionKind::kHospital;
    case v1::INSTITUTION_KIND_COMMUNITY: return engine::InstitutionKind::kCommunity;
    case v1::INSTITUTION_KIND_PHARMACY: return engine::InstitutionKind::kPharmacy;
    default: return std::nullopt;
  }
}

// SPECIALTY_UNSPECIFIED is not "none": an unset field is.
std::optional<engine::Specialty> SpecialtyFromProto(v1::Specialty v) {
  switch (v) {
    case v1::SPECIALTY_PSYCHIATRY: return engine::Specialty::kPsychiatry;
    case v1::SPECIALTY_PEDIATRICS: return engine::Specialty::kPediatrics;
    case v1::SPECIALTY_TCM: return engine::Specialty::kTcm;
    default: return std::nullopt;
  }
}

v1::ItemClass ItemClassToProto(engine::ItemClass v) {
  switch (v) {
    case engine::ItemClass::kUnspecified: return v1::ITEM_CLASS_UNSPECIFIED;
    case engine::ItemClass::kA: return v1::ITEM_CLASS_A;
    case engine::ItemClass::kB: return v1::ITEM_CLASS_B;
    case engine::ItemClass::kC: return v1::ITEM_CLASS_C;
    case engine::ItemClass::kUnknown: return v1::ITEM_CLASS_UNKNOWN;
  }
  return v1::ITEM_CLASS_UNSPECIFIED;
}

v1::Fund FundToProto(engine::Fund v) {
  switch (v) {
    case engine::Fund::kUnspecified: return v1::FUND_UNSPECIFIED;
    case engine::Fund::kBase: return v1::FUND_BASE;
    case engine::Fund::kCriticalIllness: return v1::FUND_CRITICAL_ILLNESS;
    case engine::Fund::kSupplementary: return v1::FUND_SUPPLEMENTARY;
  }
  return v1::FUND_UNSPECIFIED;
}

absl::Status CheckNonNegative(int64_t value, const FieldRef& ref) {
  if (value >= 0) return absl::OkStatus();
  std::string field = ref.str();
  return InvalidField(reason::kAccumulatorsInvalid, field,
                      Cat(field, ": must not be negative, got ", value));
}

// The formats, on lazily named fields.
absl::Status DateField(std::string_view text, bool required, const FieldRef& ref,
                       engine::Date* out) {
  if (text.empty()) {
    if (required) {
      std::string field = ref.str();
      return InvalidField(reason::kDateMissing, field, Cat(field, ": date is required"));
    }
    *out = engine::Date();
    return absl::OkStatus();
  }
  std::optional<engine::Date> date = engine::Date::Parse(text);
  if (!date) {
    std::string field = ref.str();
    return InvalidField(reason::kDateInvalid, field,
                        Cat(field, ": not a YYYY-MM-DD date: ", Quoted(text)));
  }
  *out = *date;
  return absl::OkStatus();
}

absl::Status TimestampField(std::string_view text, const FieldRef& ref,
                            std::optional<int64_t>* out_unix) {
  if (text.empty()) {
    *out_unix = std::nullopt;
    return absl::OkStatus();
  }
  std::optional<int64_t> unix_seconds = engine::ParseRfc3339(text);
  if (!unix_seconds) {
    std::string field = ref.str();
    return InvalidField(reason::kDateInvalid, field,
                        Cat(field, ": not an RFC 3339 timestamp: ", Quoted(text)));
  }
  *out_unix = unix_seconds;
  return absl::OkStatus();
}

absl::Status RegionCodeField(std::string_view text, const FieldRef& ref, engine::RegionCode* out) {
  engine::RegionCode code = 0;
  bool digits = text.size() == 6;
  for (size_t i = 0; digits && i < text.size(); ++i) {
    digits = text[i] >= '0' && text[i] <= '9';
    code = code * 10 + (text[i] - '0');
  }
  if (!digits || !engine::IsValidRegionCode(code)) {
    std::string field = ref.str();
    return InvalidField(reason::kRegionCodeInvalid, field,
                        Cat(field, ": not a 6-digit division code: ", Quoted(text)));
  }
  *out = code;
  return absl::OkStatus();
}

absl::Status VisitFromProto(const v1::Visit& in, engine::Visit* out, std::string_view root) {
  std::optional<engine::VisitType> type = VisitTypeFromProto(in.type());
  if (!type) {
    std::string field = Path(root, "visit.type");
    return InvalidField(reason::kVisitTypeUnspecified, field,
                        in.type() == v1::VISIT_TYPE_UNSPECIFIED
                            ? Cat(field, ": must be set")
                            : Cat(field, ": unknown value ", static_cast<int>(in.type())));
  }
  out->type = *type;
  // Which dates a visit type needs is the engine's rule (ValidateClaim);
  // here an empty date is simply unset.
  if (absl::Status s = DateField(in.service_date(), false, FieldRef{root, "visit.service_date"},
                                 &out->service_date);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = DateField(in.admission_date(), false, FieldRef{root, "visit.admission_date"},
                                 &out->admission_date);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = DateField(in.discharge_date(), false, FieldRef{root, "visit.discharge_date"},
                                 &out->discharge_date);
      !s.ok()) {
    return s;
  }
  out->specialty = engine::Specialty::kNone;
  if (in.has_specialty()) {
    std::optional<engine::Specialty> specialty = SpecialtyFromProto(in.specialty());
    if (!specialty) {
      return EnumUnspecified(Path(root, "visit.specialty"), static_cast<int>(in.specialty()));
    }
    out->specialty = *specialty;
  }
  out->condition = in.condition();
  out->emergency = in.emergency();
  return absl::OkStatus();
}

absl::Status LineFromProto(const v1::BillItem& in, int index, engine::BillLine* out,
                           std::string_view root) {
  out->line_no = in.line_no();
  out->code = in.code();
  out->name = in.name();
  std::optional<engine::Quantity> quantity = engine::ParseQuantity(in.quantity());
  if (!quantity) {
    std::string field = Path(root, "items", index, "quantity");
    return InvalidField(reason::kQuantityInvalid, field,
                        Cat(field, ": not an exact decimal of at most ", engine::kMaxQuantityScale,
                            " places: ", Quoted(in.quantity())));
  }
  out->quantity = *quantity;
  if (in.unit_price_cents() < 0) {
    std::string field = Path(root, "items", index, "unit_price_cents");
    return InvalidField(reason::kPriceInvalid, field,
                        Cat(field, ": must not be negative, got ", in.unit_price_cents()));
  }
  if (in.amount_cents() < 0) {
    std::string field = Path(root, "items", index, "amount_cents");
    return InvalidField(reason::kPriceInvalid, field,
                        Cat(field, ": must not be negative, got ", in.amount_cents()));
  }
  out->unit_price_cents = in.unit_price_cents();
  out->amount_cents = in.amount_cents();
  return absl::OkStatus();
}

engine::CredentialKind CredentialKindOf(const v1::Credential& c) {
  switch (c.kind_case()) {
    case v1::Credential::kIdCardNo:
      return c.id_card_no().empty() ? engine::CredentialKind::kUnspecified
                                    : engine::CredentialKind::kIdCard;
    case v1::Credential::kInsuranceCardNo:
      return c.insurance_card_no().empty() ? engine::CredentialKind::kUnspecified
                                           : engine::CredentialKind::kInsuranceCard;
    case v1::Credential::kEcToken:
      return c.ec_token().empty() ? engine::CredentialKind::kUnspecified
                                  : engine::CredentialKind::kEcToken;
    case v1::Credential::KIND_NOT_SET: break;
  }
  return engine::CredentialKind::kUnspecified;
}

}  // namespace

// ---- field formats ----------------------------------------------------------

absl::Status ParseDateField(std::string_view text, bool required, std::string_view field,
                            engine::Date* out) {
  return DateField(text, required, FieldRef{"", field}, out);
}

absl::Status ParseTimestampField(std::string_view text, std::string_view field,
                                 std::optional<int64_t>* out_unix) {
  return TimestampField(text, FieldRef{"", field}, out_unix);
}

absl::Status ParseRegionCodeField(std::string_view text, std::string_view field,
                                  engine::RegionCode* out) {
  return RegionCodeField(text, FieldRef{"", field}, out);
}

// ---- enums ------------------------------------------------------------------

std::optional<engine::VisitType> VisitTypeFromProto(v1::VisitType value) {
  switch (value) {
    case v1::VISIT_TYPE_GENERAL_OUTPATIENT: return engine::VisitType::kGeneralOutpatient;
    case v1::VISIT_TYPE_CHRONIC_OUTPATIENT: return engine::VisitType::kChronicOutpatient;
    case v1::VISIT_TYPE_SPECIAL_OUTPATIENT: return engine::VisitType::kSpecialOutpatient;
    case v1::VISIT_TYPE_INPATIENT: return engine::VisitType::kInpatient;
    case v1::VISIT_TYPE_PRENATAL_CHECK: return engine::VisitType::kPrenatalCheck;
    case v1::VISIT_TYPE_DELIVERY_NATURAL: return engine::VisitType::kDeliveryNatural;
    case v1::VISIT_TYPE_DELIVERY_CAESAREAN: return engine::VisitType::kDeliveryCaesarean;
    default: return std::nullopt;
  }
}

v1::VisitType VisitTypeToProto(engine::VisitType value) {
  switch (value) {
    case engine::VisitType::kUnspecified: return v1::VISIT_TYPE_UNSPECIFIED;
    case engine::VisitType::kGeneralOutpatient: return v1::VISIT_TYPE_GENERAL_OUTPATIENT;
    case engine::VisitType::kChronicOutpatient: return v1::VISIT_TYPE_CHRONIC_OUTPATIENT;
    case engine::VisitType::kSpecialOutpatient: return v1::VISIT_TYPE_SPECIAL_OUTPATIENT;
    case engine::VisitType::kInpatient: return v1::VISIT_TYPE_INPATIENT;
    case engine::VisitType::kPrenatalCheck: return v1::VISIT_TYPE_PRENATAL_CHECK;
    case engine::VisitType::kDeliveryNatural: return v1::VISIT_TYPE_DELIVERY_NATURAL;
    case engine::VisitType::kDeliveryCaesarean: return v1::VISIT_TYPE_DELIVERY_CAESAREAN;
  }
  return v1::VISIT_TYPE_UNSPECIFIED;
}

std::optional<engine::Ledger> LedgerFromProto(v1::Ledger value) {
  switch (value) {
    case v1::LEDGER_GENERAL_OUTPATIENT: return engine::Ledger::kGeneralOutpatient;
    case v1::LEDGER_CHRONIC_OUTPATIENT: return engine::Ledger::kChronicOutpatient;
    case v1::LEDGER_SPECIAL_OUTPATIENT: return engine::Ledger::kSpecialOutpatient;
    case v1::LEDGER_INPATIENT: return engine::Ledger::kInpatient;
    case v1::LEDGER_PRENATAL: return engine::Ledger::kPrenatal;
    case v1::LEDGER_DELIVERY: return engine::Ledger::kDelivery;
    default: return std::nullopt;
  }
}

v1::Ledger LedgerToProto(engine::Ledger value) {
  switch (value) {
    case engine::Ledger::kGeneralOutpatient: return v1::LEDGER_GENERAL_OUTPATIENT;
    case engine::Ledger::kChronicOutpatient: return v1::LEDGER_CHRONIC_OUTPATIENT;
    case engine::Ledger::kSpecialOutpatient: return v1::LEDGER_SPECIAL_OUTPATIENT;
    case engine::Ledger::kInpatient: return v1::LEDGER_INPATIENT;
    case engine::Ledger::kPrenatal: return v1::LEDGER_PRENATAL;
    case engine::Ledger::kDelivery: return v1::LEDGER_DELIVERY;
  }
  return v1::LEDGER_UNSPECIFIED;
}

// ---- proto → engine ---------------------------------------------------------

namespace {

bool IsPersonKeyShape(std::string_view key) {
  return key.size() == 64 && engine::IsLowerHex(key);
}

// family_presenter_keys: each 64 lowercase hex, none repeated nor the
// person's own, at most kMaxFamilyPresenterKeys; sorted into `*out`.
absl::Status FamilyPresenterKeysField(const v1::Enrollment& in, std::string_view root,
                                      std::vector<std::string>* out) {
  const int n = in.family_presenter_keys_size();
  if (n > kMaxFamilyPresenterKeys) {
    std::string field = Path(root, "family_presenter_keys");
    return InvalidField(reason::kEnrollmentInvalid, field,
                        Cat(field, ": ", n, " keys, at most ", kMaxFamilyPresenterKeys));
  }
  out->assign(in.family_presenter_keys().begin(), in.family_presenter_keys().end());
  for (int i = 0; i < n; ++i) {
    const std::string& key = in.family_presenter_keys(i);
    auto refuse = [&](std::string_view why) {
      std::string field = Path(root, Cat("family_presenter_keys[", i, "]"));
      return InvalidField(reason::kEnrollmentInvalid, field, Cat(field, ": ", why));
    };
    if (!IsPersonKeyShape(key)) return refuse("not a person key (64 lowercase hex characters)");
    if (key == in.person_key()) return refuse("the person's own key");
    for (int j = 0; j < i; ++j) {
      if (in.family_presenter_keys(j) == key) {
        return refuse(Cat("repeats family_presenter_keys[", j, "]"));
      }
    }
  }
  std::sort(out->begin(), out->end());
  return absl::OkStatus();
}

}  // namespace

absl::Status EnrollmentFromProto(const v1::Enrollment& in, engine::Enrollment* out,
                                 std::string_view root) {
  out->person_key = in.person_key();
  if (in.year() < 1900 || in.year() > 2199) {
    std::string field = Path(root, "year");
    return InvalidField(reason::kEnrollmentInvalid, field,
                        Cat(field, ": not an insurance year: ", in.year()));
  }
  out->year = in.year();
  if (absl::Status s =
          RegionCodeField(in.region_code(), FieldRef{root, "region_code"}, &out->region_code);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          DateField(in.birth_date(), true, FieldRef{root, "birth_date"}, &out->birth_date);
      !s.ok()) {
    return s;
  }
  std::optional<engine::Category> category = CategoryFromProto(in.category());
  if (!category) return EnumUnspecified(Path(root, "category"), static_cast<int>(in.category()));
  out->category = *category;
  if (in.tier() < 0 || in.tier() > 2) {
    std::string field = Path(root, "tier");
    return InvalidField(reason::kEnrollmentInvalid, field,
                        Cat(field, ": must be 0, 1 or 2, got ", in.tier()));
  }
  out->tier = in.tier();
  std::optional<engine::Assistance> assistance = AssistanceFromProto(in.assistance());
  if (!assistance) {
    return EnumUnspecified(Path(root, "assistance"), static_cast<int>(in.assistance()));
  }
  out->assistance = *assistance;
  // A concentrated-period enrollment may carry no payment date; whether one
  // is needed is a coverage rule (engine BenefitStart).
  if (absl::Status s =
          DateField(in.paid_date(), false, FieldRef{root, "paid_date"}, &out->paid_date);
      !s.ok()) {
    return s;
  }
  out->concentrated = in.concentrated();
  out->reenrolled_after_gap = in.reenrolled_after_gap();
  out->newborn = in.newborn();
  std::optional<engine::EnrollmentStatus> status = StatusFromProto(in.status());
  if (!status) return EnumUnspecified(Path(root, "status"), static_cast<int>(in.status()));
  out->status = *status;
  out->chronic_conditions.assign(in.chronic_conditions().begin(), in.chronic_conditions().end());
  out->special_diseases.assign(in.special_diseases().begin(), in.special_diseases().end());

  out->out_of_area_filings.resize(static_cast<size_t>(in.out_of_area_filings_size()));
  for (int i = 0; i < in.out_of_area_filings_size(); ++i) {
    const v1::OutOfAreaFiling& f = in.out_of_area_filings(i);
    engine::OutOfAreaFiling& filing = out->out_of_area_filings[static_cast<size_t>(i)];
    if (absl::Status s = RegionCodeField(f.region_code(),
                                         FieldRef{root, "region_code", "out_of_area_filings", i},
                                         &filing.region_code);
        !s.ok()) {
      return s;
    }
    if (absl::Status s =
            DateField(f.start_date(), true, FieldRef{root, "start_date", "out_of_area_filings", i},
                      &filing.start_date);
        !s.ok()) {
      return s;
    }
    if (absl::Status s =
            DateField(f.end_date(), true, FieldRef{root, "end_date", "out_of_area_filings", i},
                      &filing.end_date);
        !s.ok()) {
      return s;
    }
    if (filing.end_date < filing.start_date) {
      std::string field = Path(root, "out_of_area_filings", i, "end_date");
      return InvalidField(reason::kDateOrder, field,
                          Cat(field, ": ", f.end_date(), " is before the start ", f.start_date()));
    }
  }

  out->supplementary.product = in.supplementary().product();
  out->supplementary.pre_existing = in.supplementary().pre_existing();
  out->supplementary.continuous = in.supplementary().continuous();
  if (absl::Status s = FamilyPresenterKeysField(in, root, &out->family_presenter_keys); !s.ok()) {
    return s;
  }
  return TimestampField(in.voucher_revoked_at(), FieldRef{root, "voucher_revoked_at"},
                        &out->voucher_revoked_at_unix);
}

absl::Status InstitutionFromProto(const v1::Institution& in, engine::Institution* out,
                                  std::string_view root) {
  out->institution_id = in.institution_id();
  out->name = in.name();
  if (absl::Status s =
          RegionCodeField(in.region_code(), FieldRef{root, "region_code"}, &out->region_code);
      !s.ok()) {
    return s;
  }
  std::optional<engine::InstitutionKind> kind = KindFromProto(in.kind());
  if (!kind) return EnumUnspecified(Path(root, "kind"), static_cast<int>(in.kind()));
  out->kind = *kind;
  if (in.level() < 1 || in.level() > 3) {
    std::string field = Path(root, "level");
    return InvalidField(reason::kInstitutionInvalid, field,
                        Cat(field, ": must be 1, 2 or 3, got ", in.level()));
  }
  out->level = in.level();
  out->zero_markup = in.zero_markup();
  out->tcm = in.tcm();
  out->children_or_maternal = in.children_or_maternal();
  out->base_level = in.base_level();
  out->suspended = in.suspended();
  return absl::OkStatus();
}

absl::Status ClaimFromProto(const v1::SettleRequest& in, engine::Claim* out,
                            std::string_view root) {
  out->request_id = in.request_id();
  out->credential = CredentialKindOf(in.credential());
  if (out->credential == engine::CredentialKind::kUnspecified) {
    std::string field = Path(root, "credential");
    return InvalidField(reason::kCredentialMissing, field,
                        Cat(field,
                            ": exactly one of id_card_no, insurance_card_no, "
                            "ec_token must be set and non-empty"));
  }
  if (absl::Status s = VisitFromProto(in.visit(), &out->visit, root); !s.ok()) return s;
  if (in.items_size() > engine::kMaxBillLines) {
    std::string field = Path(root, "items");
    return InvalidField(
        reason::kTooManyItems, field,
        Cat(field, ": ", in.items_size(), " items, at most ", engine::kMaxBillLines));
  }
  // resize keeps the capacity of a reused Claim, and of its lines' strings.
  out->lines.resize(static_cast<size_t>(in.items_size()));
  for (int i = 0; i < in.items_size(); ++i) {
    if (absl::Status s = LineFromProto(in.items(i), i, &out->lines[static_cast<size_t>(i)], root);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status AccumulatorsFromProto(const v1::Accumulators& in, engine::Accumulators* out,
                                   std::string_view root) {
  *out = engine::Accumulators();
  std::array<bool, engine::kLedgerCount> seen_ledger{};
  for (int i = 0; i < in.ledgers_size(); ++i) {
    const v1::LedgerTotals& t = in.ledgers(i);
    std::optional<engine::Ledger> ledger = LedgerFromProto(t.ledger());
    if (!ledger) {
      return EnumUnspecified(Path(root, "ledgers", i, "ledger"), static_cast<int>(t.ledger()));
    }
    const size_t slot = static_cast<size_t>(*ledger);
    if (seen_ledger[slot]) {
      std::string field = Path(root, "ledgers", i, "ledger");
      return InvalidField(reason::kAccumulatorsInvalid, field,
                          Cat(field, ": ledger ", v1::Ledger_Name(t.ledger()), " is listed twice"));
    }
    seen_ledger[slot] = true;
    for (const auto& [value, leaf] :
         {std::pair<int64_t, std::string_view>{t.deductible_paid_cents(), "deductible_paid_cents"},
          {t.in_scope_cents(), "in_scope_cents"},
          {t.fund_paid_cents(), "fund_paid_cents"},
          {t.visits(), "visits"}}) {
      if (absl::Status s = CheckNonNegative(value, FieldRef{root, leaf, "ledgers", i}); !s.ok())
        return s;
    }
    engine::LedgerTotals& totals = out->ledger(*ledger);
    totals.deductible_paid_cents = t.deductible_paid_cents();
    totals.in_scope_cents = t.in_scope_cents();
    totals.fund_paid_cents = t.fund_paid_cents();
    totals.visits = t.visits();
  }

  const v1::CriticalIllnessTotals& ci = in.critical_illness();
  if (absl::Status s =
          CheckNonNegative(ci.burden_cents(), FieldRef{root, "critical_illness.burden_cents"});
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckNonNegative(ci.paid_cents(), FieldRef{root, "critical_illness.paid_cents"});
      !s.ok()) {
    return s;
  }
  out->critical_illness_burden_cents = ci.burden_cents();
  out->critical_illness_paid_cents = ci.paid_cents();

  std::array<bool, engine::kResponsibilityCount> seen_responsibility{};
  for (int i = 0; i < in.supplementary_size(); ++i) {
    const v1::SupplementaryTotals& t = in.supplementary(i);
    if (t.responsibility() < 1 || t.responsibility() > engine::kResponsibilityCount) {
      std::string field = Path(root, "supplementary", i, "responsibility");
      return InvalidField(
          reason::kAccumulatorsInvalid, field,
          Cat(field, ": must be 1..", engine::kResponsibilityCount, ", got ", t.responsibility()));
    }
    const size_t slot = static_cast<size_t>(t.responsibility() - 1);
    if (seen_responsibility[slot]) {
      std::string field = Path(root, "supplementary", i, "responsibility");
      return InvalidField(reason::kAccumulatorsInvalid, field,
                          Cat(field, ": responsibility ", t.responsibility(), " is listed twice"));
    }
    seen_responsibility[slot] = true;
    if (absl::Status s =
            CheckNonNegative(t.base_cents(), FieldRef{root, "base_cents", "supplementary", i});
        !s.ok()) {
      return s;
    }
    if (absl::Status s =
            CheckNonNegative(t.paid_cents(), FieldRef{root, "paid_cents", "supplementary", i});
        !s.ok()) {
      return s;
    }
    out->supplementary[slot].base_cents = t.base_cents();
    out->supplementary[slot].paid_cents = t.paid_cents();
  }

  if (absl::Status s = CheckNonNegative(in.version(), FieldRef{root, "version"}); !s.ok()) return s;
  out->version = in.version();
  return absl::OkStatus();
}

// ---- engine → proto ---------------------------------------------------------

void AccumulatorsToProto(const engine::Accumulators& in, std::string_view person_key, int32_t year,
                         v1::Accumulators* out) {
  out->Clear();
  out->set_person_key(std::string(person_key));
  out->set_year(year);
  for (int i = 0; i < engine::kLedgerCount; ++i) {
    const auto ledger = static_cast<engine::Ledger>(i);
    const engine::LedgerTotals& t = in.ledger(ledger);
    if (t == engine::LedgerTotals()) continue;
    v1::LedgerTotals* totals = out->add_ledgers();
    totals->set_ledger(LedgerToProto(ledger));
    totals->set_deductible_paid_cents(t.deductible_paid_cents);
    totals->set_in_scope_cents(t.in_scope_cents);
    totals->set_fund_paid_cents(t.fund_paid_cents);
    totals->set_visits(t.visits);
  }
  v1::CriticalIllnessTotals* ci = out->mutable_critical_illness();
  ci->set_burden_cents(in.critical_illness_burden_cents);
  ci->set_paid_cents(in.critical_illness_paid_cents);
  for (int r = 0; r < engine::kResponsibilityCount; ++r) {
    const engine::SupplementaryTotals& t = in.supplementary[static_cast<size_t>(r)];
    if (t == engine::SupplementaryTotals()) continue;
    v1::SupplementaryTotals* totals = out->add_supplementary();
    totals->set_responsibility(r + 1);
    totals->set_base_cents(t.base_cents);
    totals->set_paid_cents(t.paid_cents);
  }
  out->set_version(in.version);
}

namespace {
std::string RegionCodeText(engine::RegionCode code) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%06d", static_cast<int>(code));
  return buffer;
}
}  // namespace

// Engine enum numbers equal the contract's (records.proto), so these casts
// are exact; the FromProto tables above are the checked direction.
void EnrollmentToProto(const engine::Enrollment& in, v1::Enrollment* out) {
  out->Clear();
  out->set_person_key(in.person_key);
  out->set_year(in.year);
  out->set_region_code(RegionCodeText(in.region_code));
  out->set_birth_date(in.birth_date.ToString());
  out->set_category(static_cast<v1::Category>(in.category));
  out->set_tier(in.tier);
  out->set_assistance(static_cast<v1::Assistance>(in.assistance));
  out->set_paid_date(in.paid_date.ToString());
  out->set_concentrated(in.concentrated);
  out->set_newborn(in.newborn);
  out->set_reenrolled_after_gap(in.reenrolled_after_gap);
  out->set_status(static_cast<v1::EnrollmentStatus>(in.status));
  for (const std::string& c : in.chronic_conditions) out->add_chronic_conditions(c);
  for (const std::string& d : in.special_diseases) out->add_special_diseases(d);
  for (const engine::OutOfAreaFiling& f : in.out_of_area_filings) {
    v1::OutOfAreaFiling* filing = out->add_out_of_area_filings();
    filing->set_region_code(RegionCodeText(f.region_code));
    filing->set_start_date(f.start_date.ToString());
    filing->set_end_date(f.end_date.ToString());
  }
  out->mutable_supplementary()->set_product(in.supplementary.product);
  out->mutable_supplementary()->set_pre_existing(in.supplementary.pre_existing);
  out->mutable_supplementary()->set_continuous(in.supplementary.continuous);
  if (in.voucher_revoked_at_unix) {
    out->set_voucher_revoked_at(engine::FormatRfc3339(*in.voucher_revoked_at_unix, 8 * 60));
  }
  for (const std::string& key : in.family_presenter_keys) out->add_family_presenter_keys(key);
}

void InstitutionToProto(const engine::Institution& in, v1::Institution* out) {
  out->Clear();
  out->set_institution_id(in.institution_id);
  out->set_name(in.name);
  out->set_region_code(RegionCodeText(in.region_code));
  out->set_kind(static_cast<v1::InstitutionKind>(in.kind));
  out->set_level(in.level);
  out->set_zero_markup(in.zero_markup);
  out->set_tcm(in.tcm);
  out->set_children_or_maternal(in.children_or_maternal);
  out->set_base_level(in.base_level);
  out->set_suspended(in.suspended);
}

void AmountsToProto(const engine::Amounts& in, v1::Amounts* out) {
  out->set_total_cents(in.total_cents);
  out->set_out_of_scope_cents(in.out_of_scope_cents);
  out->set_over_limit_cents(in.over_limit_cents);
  out->set_pre_self_pay_cents(in.pre_self_pay_cents);
  out->set_in_scope_cents(in.in_scope_cents);
  out->set_deductible_cents(in.deductible_cents);
  out->set_base_fund_cents(in.base_fund_cents);
  out->set_critical_illness_cents(in.critical_illness_cents);
  out->set_supplementary_cents(in.supplementary_cents);
  out->set_patient_cents(in.patient_cents);
}

void SettlementToProto(const engine::Settlement& s, const engine::Claim& claim,
                       std::string_view person_key, std::string_view institution_id,
                       v1::SettleResponse* out) {
  out->Clear();
  out->set_policy_id(std::string(s.policy_id));
  out->set_request_id(claim.request_id);
  out->set_institution_id(std::string(institution_id));
  out->set_person_key(std::string(person_key));
  out->set_visit_type(VisitTypeToProto(claim.visit.type));
  out->set_settlement_date(s.settlement_date.ToString());
  out->set_filing_to_follow(s.filing_to_follow);
  out->set_base_fund_ratio_bp(s.base_fund_ratio_bp);

  AmountsToProto(s.amounts, out->mutable_amounts());

  for (const engine::FundDetail& d : s.fund_details) {
    v1::FundDetail* detail = out->add_fund_details();
    detail->set_fund(FundToProto(d.fund));
    detail->set_scheme(std::string(d.scheme));
    detail->set_eligible_cents(d.eligible_cents);
    detail->set_paid_cents(d.paid_cents);
    detail->set_cap_remaining_cents(d.cap_remaining_cents);
    detail->set_uncapped(d.uncapped);
  }

  for (const engine::LineResult& l : s.lines) {
    v1::LineResult* line = out->add_lines();
    line->set_line_no(l.line_no);
    if (l.line_index < claim.lines.size()) line->set_code(claim.lines[l.line_index].code);
    line->set_item_class(ItemClassToProto(l.item_class));
    line->set_amount_cents(l.amount_cents);
    line->set_over_limit_cents(l.over_limit_cents);
    line->set_pre_self_pay_cents(l.pre_self_pay_cents);
    line->set_in_scope_cents(l.in_scope_cents);
    line->set_out_of_scope_cents(l.out_of_scope_cents);
    line->set_tcm_bonus(l.tcm_bonus);
  }

  const int32_t year = s.settlement_date.valid() ? s.settlement_date.year() : 0;
  AccumulatorsToProto(s.after, person_key, year, out->mutable_year_to_date());
  AccumulatorsToProto(s.delta, person_key, year, out->mutable_accumulator_delta());

  for (const engine::TraceStep& step : s.trace) {
    v1::TraceStep* trace = out->add_trace();
    trace->set_rule(std::string(engine::TraceRuleId(step.rule)));
    trace->set_source(std::string(step.source));
    trace->set_amount_cents(step.amount_cents);
    trace->set_note(engine::DescribeTraceStep(step));
  }

  for (const engine::ClaimLaterItem& c : s.claim_later) {
    v1::ClaimLater* later = out->add_claim_later();
    later->set_product(std::string(c.product));
    later->set_responsibility(c.responsibility);
    later->set_name(std::string(c.name));
    if (c.base_cents) later->set_base_cents(*c.base_cents);  // unset = unknown
    if (c.estimated_cents) later->set_estimated_cents(*c.estimated_cents);
    later->set_reason(std::string(c.reason));
  }
}

}  // namespace medsettle::contract
