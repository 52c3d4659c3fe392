#include "proto/contract/ledger_record.h"

#include <optional>

#include "engine/status.h"
#include "engine/text.h"
#include "proto/contract/convert.h"

namespace medsettle::contract {
namespace {

using engine::Cat;

absl::Status Invalid(std::string_view where, std::string_view what) {
  return engine::Refusal(absl::StatusCode::kInternal, reason::kLedgerRecordInvalid, "",
                         Cat("settlement record ", where, ": ", what));
}

absl::Status EffectOfParts(const v1::Accumulators& delta, const v1::Amounts& amounts,
                           std::string_view date, std::string_view id, RecordEffect* out) {
  if (absl::Status s = AccumulatorsFromProto(delta, &out->delta, "delta"); !s.ok()) {
    return Invalid(id, Cat("its accumulator delta: ", std::string(s.message())));
  }
  AmountsFromProto(amounts, &out->amounts);
  std::optional<engine::Date> d = engine::Date::Parse(date);
  if (!d.has_value()) return Invalid(id, Cat("its settlement date '", date, "'"));
  out->settlement_date = *d;
  return absl::OkStatus();
}

}  // namespace

void AmountsFromProto(const v1::Amounts& in, engine::Amounts* out) {
  out->total_cents = in.total_cents();
  out->out_of_scope_cents = in.out_of_scope_cents();
  out->over_limit_cents = in.over_limit_cents();
  out->pre_self_pay_cents = in.pre_self_pay_cents();
  out->in_scope_cents = in.in_scope_cents();
  out->deductible_cents = in.deductible_cents();
  out->base_fund_cents = in.base_fund_cents();
  out->critical_illness_cents = in.critical_illness_cents();
  out->supplementary_cents = in.supplementary_cents();
  out->patient_cents = in.patient_cents();
}

void BuildLedgerRecord(const v1::SettleRequest& request, const engine::Enrollment& enrollment,
                       const engine::Institution& institution,
                       const engine::Accumulators& year_to_date_before,
                       const v1::SettleResponse& response, const RecordContext& context,
                       v1::LedgerRecord* out) {
  out->Clear();
  out->set_format(kLedgerRecordFormat);
  out->set_settlement_id(context.settlement_id);
  out->set_institution_id(context.institution_id);
  out->set_request_id(request.request_id());
  out->set_person_key(context.person_key);
  out->set_content_hash(context.content_hash);
  out->set_credential_kind(context.credential_kind);
  out->set_presenter_key(context.presenter_key);
  out->set_certificate_fingerprint(context.certificate_fingerprint);
  out->set_settled_at_unix_ms(context.settled_at_unix_ms);
  out->set_settlement_date(response.settlement_date());
  std::optional<engine::Date> date = engine::Date::Parse(response.settlement_date());
  out->set_year(date.has_value() ? date->year() : 0);
  // The bill as submitted, never the credential (an ID number must not
  // reach Redis, the journal or the ledger).
  v1::SettleRequest* bill = out->mutable_request();
  bill->set_request_id(request.request_id());
  *bill->mutable_visit() = request.visit();
  *bill->mutable_items() = request.items();
  EnrollmentToProto(enrollment, out->mutable_enrollment());
  out->mutable_enrollment()->set_person_key(context.person_key);
  InstitutionToProto(institution, out->mutable_institution());
  out->set_snapshot_version(context.snapshot_version);
  out->set_policy_id(response.policy_id());
  out->set_policy_sha256(context.policy_sha256);
  out->set_catalog_sha256(context.catalog_sha256);
  AccumulatorsToProto(year_to_date_before, context.person_key, out->year(),
                      out->mutable_year_to_date_before());
  out->set_voucher_issued_at_unix(context.voucher_issued_at_unix);
  *out->mutable_response() = response;
}

absl::Status EffectOf(const v1::LedgerRecord& record, RecordEffect* out) {
  return EffectOfParts(record.response().accumulator_delta(), record.response().amounts(),
                       record.settlement_date(), record.settlement_id(), out);
}

absl::Status EffectOf(const v1::LedgerReversal& reversal, RecordEffect* out) {
  return EffectOfParts(reversal.delta(), reversal.amounts(), reversal.settlement_date(),
                       Cat(reversal.settlement_id(), " (reversal)"), out);
}

namespace {

// A LedgerRecord or LedgerReversal from its bytes, of a format this
// version knows, naming its settlement and person.
template <typename Message>
absl::Status ParseStored(std::string_view bytes, std::string_view where,
                         std::string_view type_name, Message* out) {
  if (!out->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Invalid(where, Cat("does not parse as a ", type_name));
  }
  if (out->format() != kLedgerRecordFormat) {
    return Invalid(where, Cat("format ", out->format(), " is not known to this version (",
                              kLedgerRecordFormat, ")"));
  }
  if (out->settlement_id().empty() || out->person_key().empty()) {
    return Invalid(where, "has no settlement id or person key");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseLedgerRecord(std::string_view bytes, std::string_view where,
                               v1::LedgerRecord* out) {
  return ParseStored(bytes, where, "LedgerRecord", out);
}

absl::Status ParseLedgerReversal(std::string_view bytes, std::string_view where,
                                 v1::LedgerReversal* out) {
  return ParseStored(bytes, where, "LedgerReversal", out);
}

}  // namespace medsettle::contract
