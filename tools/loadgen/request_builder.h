// The requests of a run, as a pure function of (seed, sequence number):
// call n of a run with seed S is the same bill for the same person at the
// same institution whatever the concurrency, the timing or the order in
// which calls are built (each call draws from its own generator seeded by
// S and n). Request ids are "<run id>-<n>", unique within a run; the run id
// makes them unique across runs.
//
// Scenarios (the mix, weights configurable):
//   pharmacy    a purchase at a PHARMACY: 1–5 drug lines, general
//               outpatient, paid by e-insurance code when a signing key is
//               given (else the ID number)
//   outpatient  a visit at a HOSPITAL or COMMUNITY centre: a consultation
//               and 1–6 other lines, general outpatient
//   inpatient   a discharge at a HOSPITAL: 50–5,000 lines (log-uniform),
//               items cycling through the catalog, a stay of 3–20 days
// Institution and person are drawn together: an institution of the kind
// the scenario needs (and allowed as a caller), then an eligible person of
// its region, on a day of the person's insurance year.
//
// Immutable after Create; Build is const and thread-safe.
#ifndef MEDSETTLE_TOOLS_LOADGEN_REQUEST_BUILDER_H_
#define MEDSETTLE_TOOLS_LOADGEN_REQUEST_BUILDER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "medsettle/v1/settlement.pb.h"
#include "tools/loadgen/population.h"

namespace medsettle::loadgen {

enum class Scenario { kPharmacy = 0, kOutpatient = 1, kInpatient = 2 };
inline constexpr int kScenarioCount = 3;
std::string_view ScenarioName(Scenario s);

// Weights of the scenarios (any non-negative integers, not all 0).
struct Mix {
  std::array<int, kScenarioCount> weights = {60, 30, 10};
  std::string ToString() const;  // "pharmacy=60,outpatient=30,inpatient=10"
};
// "pharmacy=60,outpatient=30,inpatient=10" (any subset; unnamed ones 0).
// INVALID_ARGUMENT naming --mix.
absl::StatusOr<Mix> ParseMix(std::string_view text);

// The in-process voucher platform: signs e-insurance codes as
// medsettle-voucher issue does (gateway/credentials/ec_token.h).
struct VoucherIssuer;

struct BuilderOptions {
  uint64_t seed = 1;
  std::string run_id = "lg";
  Mix mix;
  // Institutions calls may be sent as (mutual TLS: the certificates'); empty:
  // every institution of the CSV that is not suspended.
  std::vector<std::string> callers;
  // Lines of an inpatient bill, inclusive.
  int inpatient_min_lines = 50;
  int inpatient_max_lines = 5000;
};

// One call's content.
struct CallPlan {
  uint64_t seq = 0;
  Scenario scenario = Scenario::kPharmacy;
  std::string institution_id;
  ::medsettle::v1::SettleRequest settle;          // for Settle and PreSettle
  ::medsettle::v1::CheckCoverageRequest coverage;  // for CheckCoverage (same person and day)
};

class RequestBuilder {
 public:
  // `population` must outlive the builder.
  // INVALID_ARGUMENT when no scenario of a non-zero weight has an
  // institution to call as with persons in its region. Scenarios that have
  // none get weight 0 and a line in notes() (e.g. a pharmacy's certificate
  // cannot send inpatient bills).
  static absl::StatusOr<std::unique_ptr<RequestBuilder>> Create(const Population& population,
                                                                const BuilderOptions& options);
  ~RequestBuilder();

  // Signs pharmacy purchases' e-insurance codes with the PEM private key
  // `signing_key_pem` under `key_id`, person keys from the gateway's
  // pseudonymisation secret. INVALID_ARGUMENT when the key does not load.
  absl::Status EnableVoucher(std::string_view signing_key_pem, std::string_view key_id,
                             std::string_view person_key_secret);
  bool voucher_enabled() const { return issuer_ != nullptr; }

  // Call `seq` of the run. `now_unix` is the issue time of an e-insurance
  // code (the only part that is not a function of seed and seq).
  CallPlan Build(uint64_t seq, int64_t now_unix) const;

  const std::vector<std::string>& notes() const { return notes_; }
  const Mix& effective_mix() const { return mix_; }

 private:
  RequestBuilder() = default;
  struct Site {
    size_t institution;             // index into population_.institutions
    std::vector<size_t> persons;    // eligible persons of its region
  };
  void AddItem(::medsettle::v1::SettleRequest* request, const CatalogItem& item, int64_t quantity,
               uint64_t* rng) const;

  const Population* population_ = nullptr;
  BuilderOptions options_;
  Mix mix_;
  int total_weight_ = 0;
  std::array<std::vector<Site>, kScenarioCount> sites_;
  std::vector<size_t> drugs_;        // catalog indices of X*/Z* items
  std::vector<size_t> services_;     // F* items other than maternity
  std::vector<size_t> inpatient_items_;
  std::optional<size_t> consultation_;  // FA0001
  std::vector<std::string> notes_;
  std::unique_ptr<VoucherIssuer> issuer_;
};

// The generator every call draws from (SplitMix64): tested for
// reproducibility; exposed for the tests.
uint64_t SplitMix64(uint64_t* state);

}  // namespace medsettle::loadgen

#endif  // MEDSETTLE_TOOLS_LOADGEN_REQUEST_BUILDER_H_
