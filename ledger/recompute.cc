#include "ledger/recompute.h"

#include <google/protobuf/util/message_differencer.h>

#include <optional>

#include "engine/status.h"
#include "engine/text.h"
#include "proto/contract/convert.h"
#include "proto/contract/ledger_record.h"

namespace medsettle::ledger {
namespace {

using engine::Cat;
using google::protobuf::util::MessageDifferencer;

absl::Status Undecodable(const v1::LedgerRecord& record, std::string_view what,
                         const absl::Status& why) {
  return engine::Refusal(absl::StatusCode::kInternal, contract::reason::kLedgerRecordInvalid, "",
                         Cat("settlement ", record.settlement_id(), ": its ", what,
                             " does not decode: ", std::string(why.message())));
}

}  // namespace

absl::StatusOr<Recomputed> Recompute(const engine::Engine& engine,
                                     const v1::LedgerRecord& record) {
  // The record keeps the bill without its credential (never an ID number);
  // the engine needs only its kind.
  v1::SettleRequest bill = record.request();
  if (record.credential_kind() == "EC_TOKEN") {
    bill.mutable_credential()->set_ec_token("recorded");
  } else if (record.credential_kind() == "INSURANCE_CARD") {
    bill.mutable_credential()->set_insurance_card_no("recorded");
  } else {
    bill.mutable_credential()->set_id_card_no("recorded");
  }
  engine::Claim claim;
  if (absl::Status s = contract::ClaimFromProto(bill, &claim); !s.ok()) {
    return Undecodable(record, "bill", s);
  }
  engine::Enrollment enrollment;
  if (absl::Status s = contract::EnrollmentFromProto(record.enrollment(), &enrollment); !s.ok()) {
    return Undecodable(record, "enrollment", s);
  }
  engine::Institution institution;
  if (absl::Status s = contract::InstitutionFromProto(record.institution(), &institution);
      !s.ok()) {
    return Undecodable(record, "institution", s);
  }
  engine::Accumulators before;
  if (absl::Status s = contract::AccumulatorsFromProto(record.year_to_date_before(), &before);
      !s.ok()) {
    return Undecodable(record, "year to date before", s);
  }
  std::optional<int64_t> issued_at;
  if (record.voucher_issued_at_unix() != 0) issued_at = record.voucher_issued_at_unix();
  engine::Settlement settlement;
  if (absl::Status s = engine.Settle({.enrollment = &enrollment,
                                      .institution = &institution,
                                      .year_to_date = &before,
                                      .claim = &claim,
                                      .voucher_issued_at_unix = issued_at},
                                     &settlement);
      !s.ok()) {
    return s;
  }
  Recomputed out;
  contract::SettlementToProto(settlement, claim, record.person_key(), record.institution_id(),
                              &out.response);
  const v1::SettleResponse& recorded = record.response();
  out.response.set_settlement_id(recorded.settlement_id());
  out.response.set_status(recorded.status());
  out.response.set_settled_at(recorded.settled_at());
  out.response.set_presenter_key(recorded.presenter_key());
  out.response.set_replayed(recorded.replayed());
  // protobuf's own report: one line per difference, "modified:
  // amounts.base_fund_cents: 12000 -> 11800".
  std::string report;
  MessageDifferencer differ;
  differ.ReportDifferencesToString(&report);
  if (!differ.Compare(recorded, out.response)) {
    size_t start = 0;
    while (start < report.size()) {
      size_t end = report.find('\n', start);
      if (end == std::string::npos) end = report.size();
      if (end > start) out.differences.push_back(report.substr(start, end - start));
      start = end + 1;
    }
  }
  return out;
}

}  // namespace medsettle::ledger
