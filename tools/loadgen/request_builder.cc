#include "tools/loadgen/request_builder.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>

#include "cache/person_key.h"
#include "engine/text.h"
#include "gateway/credentials/ec_token.h"

namespace medsettle::loadgen {

using engine::Cat;

struct VoucherIssuer {
  credentials::IssuerSigningKey key;
  std::string key_id;
  cache::PersonKeyer keyer;
};

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

namespace {

constexpr std::array<std::string_view, kScenarioCount> kNames = {"pharmacy", "outpatient",
                                                                 "inpatient"};

// A whole number in [0, n).
uint64_t Below(uint64_t* rng, uint64_t n) { return n == 0 ? 0 : SplitMix64(rng) % n; }
int64_t Between(uint64_t* rng, int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(Below(rng, static_cast<uint64_t>(hi - lo + 1)));
}
double Unit(uint64_t* rng) { return static_cast<double>(SplitMix64(rng) >> 11) * 0x1.0p-53; }

int DaysInMonth(int year, int month) {
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}

struct Day {
  int year, month, day;
  Day Plus(int days) const {
    Day d = *this;
    while (days-- > 0) {
      if (++d.day > DaysInMonth(d.year, d.month)) {
        d.day = 1;
        if (++d.month > 12) {
          d.month = 1;
          ++d.year;
        }
      }
    }
    return d;
  }
  std::string Text() const {
    char buffer[48];
    std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02d", year, month, day);
    return buffer;
  }
};

bool KindServes(Scenario s, const InstitutionRow& row) {
  switch (s) {
    case Scenario::kPharmacy:
      return row.kind == "PHARMACY";
    case Scenario::kOutpatient:
      return row.kind == "HOSPITAL" || row.kind == "COMMUNITY";
    case Scenario::kInpatient:
      return row.kind == "HOSPITAL";
  }
  return false;
}

}  // namespace

std::string_view ScenarioName(Scenario s) { return kNames[static_cast<size_t>(s)]; }

std::string Mix::ToString() const {
  std::string out;
  for (int i = 0; i < kScenarioCount; ++i) {
    if (i > 0) out += ",";
    out += Cat(kNames[static_cast<size_t>(i)], "=", weights[static_cast<size_t>(i)]);
  }
  return out;
}

absl::StatusOr<Mix> ParseMix(std::string_view text) {
  Mix mix;
  mix.weights = {0, 0, 0};
  std::set<std::string, std::less<>> seen;
  for (std::string_view part : SplitCsv(text)) {
    const size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      return absl::InvalidArgumentError(Cat("--mix: \"", part, "\" is not NAME=WEIGHT"));
    }
    const std::string_view name = part.substr(0, eq);
    const std::string_view value = part.substr(eq + 1);
    auto it = std::find(kNames.begin(), kNames.end(), name);
    if (it == kNames.end()) {
      return absl::InvalidArgumentError(
          Cat("--mix: unknown scenario \"", name, "\" (pharmacy, outpatient, inpatient)"));
    }
    if (!seen.insert(std::string(name)).second) {
      return absl::InvalidArgumentError(Cat("--mix: ", name, " given twice"));
    }
    int weight = -1;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), weight);
    if (ec != std::errc() || ptr != value.data() + value.size() || weight < 0 || weight > 1000000) {
      return absl::InvalidArgumentError(Cat("--mix: weight of ", name, " must be 0..1000000"));
    }
    mix.weights[static_cast<size_t>(it - kNames.begin())] = weight;
  }
  if (mix.weights[0] + mix.weights[1] + mix.weights[2] == 0) {
    return absl::InvalidArgumentError("--mix: every weight is 0");
  }
  return mix;
}

RequestBuilder::~RequestBuilder() = default;

absl::StatusOr<std::unique_ptr<RequestBuilder>> RequestBuilder::Create(
    const Population& population, const BuilderOptions& options) {
  std::unique_ptr<RequestBuilder> b(new RequestBuilder());
  b->population_ = &population;
  b->options_ = options;
  b->mix_ = options.mix;
  const std::set<std::string, std::less<>> callers(options.callers.begin(),
                                                   options.callers.end());
  for (size_t i = 0; i < population.institutions.size(); ++i) {
    const InstitutionRow& row = population.institutions[i];
    if (callers.empty() ? row.suspended : callers.count(row.id) == 0) continue;
    std::vector<size_t> persons;
    for (size_t p = 0; p < population.persons.size(); ++p) {
      if (population.persons[p].region_code == row.region_code) persons.push_back(p);
    }
    if (persons.empty()) continue;
    for (int s = 0; s < kScenarioCount; ++s) {
      if (KindServes(static_cast<Scenario>(s), row)) {
        b->sites_[static_cast<size_t>(s)].push_back(Site{i, persons});
      }
    }
  }
  for (int s = 0; s < kScenarioCount; ++s) {
    int& weight = b->mix_.weights[static_cast<size_t>(s)];
    if (weight > 0 && b->sites_[static_cast<size_t>(s)].empty()) {
      b->notes_.push_back(Cat(kNames[static_cast<size_t>(s)], " left out of the mix: no ",
                              callers.empty() ? "institution" : "calling institution",
                              " of its kind with persons in its region"));
      weight = 0;
    }
    b->total_weight_ += weight;
  }
  if (b->total_weight_ == 0) {
    return absl::InvalidArgumentError(
        "no scenario of the mix can be sent: no institution of a fitting kind with persons in "
        "its region (check --institution / the certificate, --persons, --institutions, --mix)");
  }
  const std::vector<CatalogItem>& catalog = population.catalog;
  for (size_t i = 0; i < catalog.size(); ++i) {
    const std::string& code = catalog[i].code;
    if (code.empty()) continue;
    const bool maternity = code == "FA0005" || code == "FA0006" || code == "FA0007";
    if (code[0] == 'X' || code[0] == 'Z') b->drugs_.push_back(i);
    if (code[0] == 'F' && !maternity && code != "FA0001") b->services_.push_back(i);
    if (code == "FA0001") b->consultation_ = i;
    if (!maternity && catalog[i].item_class != 'C') b->inpatient_items_.push_back(i);
  }
  if (b->drugs_.empty() || b->inpatient_items_.empty()) {
    return absl::InvalidArgumentError("--catalog has no drug (X*, Z*) or no inpatient item");
  }
  if (b->services_.empty()) b->services_ = b->drugs_;
  return b;
}

absl::Status RequestBuilder::EnableVoucher(std::string_view signing_key_pem,
                                           std::string_view key_id,
                                           std::string_view person_key_secret) {
  if (!credentials::IsValidKeyId(key_id)) {
    return absl::InvalidArgumentError(
        Cat("--voucher-kid \"", key_id, "\" is not 1..32 of [A-Za-z0-9_-]"));
  }
  absl::StatusOr<credentials::IssuerSigningKey> key =
      credentials::IssuerSigningKey::FromPrivateKeyPem(signing_key_pem);
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        Cat("--voucher-key does not hold an Ed25519 private key: ", std::string(key.status().message())));
  }
  absl::StatusOr<cache::PersonKeyer> keyer = cache::PersonKeyer::Create(person_key_secret);
  if (!keyer.ok()) {
    return absl::InvalidArgumentError(Cat("--key-file: ", std::string(keyer.status().message())));
  }
  issuer_.reset(new VoucherIssuer{*std::move(key), std::string(key_id), *std::move(keyer)});
  return absl::OkStatus();
}

void RequestBuilder::AddItem(::medsettle::v1::SettleRequest* request, const CatalogItem& item,
                             int64_t quantity, uint64_t* rng) const {
  const int64_t unit = item.price_cap_cents > 0
                           ? std::max<int64_t>(1, item.price_cap_cents * Between(rng, 50, 100) / 100)
                           : Between(rng, 50, 9000);
  ::medsettle::v1::BillItem* line = request->add_items();
  line->set_line_no(request->items_size());
  line->set_code(item.code);
  line->set_name(item.name);
  line->set_quantity(std::to_string(quantity));
  line->set_unit_price_cents(unit);
  line->set_amount_cents(unit * quantity);  // exact: integer quantity
}

CallPlan RequestBuilder::Build(uint64_t seq, int64_t now_unix) const {
  uint64_t rng = options_.seed;
  rng = SplitMix64(&rng) ^ (seq * 0xd1342543de82ef95ULL);
  (void)SplitMix64(&rng);

  CallPlan plan;
  plan.seq = seq;
  // The scenario by weight.
  int64_t pick = static_cast<int64_t>(Below(&rng, static_cast<uint64_t>(total_weight_)));
  int s = 0;
  while (pick >= mix_.weights[static_cast<size_t>(s)]) pick -= mix_.weights[static_cast<size_t>(s++)];
  plan.scenario = static_cast<Scenario>(s);
  const std::vector<Site>& sites = sites_[static_cast<size_t>(s)];
  const Site& site = sites[Below(&rng, sites.size())];
  const InstitutionRow& institution = population_->institutions[site.institution];
  const Person& person = population_->persons[site.persons[Below(&rng, site.persons.size())]];
  plan.institution_id = institution.id;

  // A day of the person's year that leaves room for a 20-day stay.
  const Day day{person.year, static_cast<int>(Between(&rng, 2, 11)),
                static_cast<int>(Between(&rng, 1, 28))};
  ::medsettle::v1::SettleRequest& r = plan.settle;
  r.set_request_id(Cat(options_.run_id, "-", seq));
  const std::vector<CatalogItem>& catalog = population_->catalog;
  ::medsettle::v1::VisitType visit_type = ::medsettle::v1::VISIT_TYPE_GENERAL_OUTPATIENT;
  switch (plan.scenario) {
    case Scenario::kPharmacy: {
      r.mutable_visit()->set_type(visit_type);
      r.mutable_visit()->set_service_date(day.Text());
      const int64_t lines = Between(&rng, 1, 5);
      for (int64_t i = 0; i < lines; ++i) {
        AddItem(&r, catalog[drugs_[Below(&rng, drugs_.size())]], Between(&rng, 1, 60), &rng);
      }
      break;
    }
    case Scenario::kOutpatient: {
      r.mutable_visit()->set_type(visit_type);
      r.mutable_visit()->set_service_date(day.Text());
      if (consultation_) AddItem(&r, catalog[*consultation_], 1, &rng);
      const int64_t lines = Between(&rng, 1, 6);
      for (int64_t i = 0; i < lines; ++i) {
        const bool drug = Below(&rng, 2) == 0;
        const std::vector<size_t>& from = drug ? drugs_ : services_;
        AddItem(&r, catalog[from[Below(&rng, from.size())]], drug ? Between(&rng, 1, 30) : 1, &rng);
      }
      break;
    }
    case Scenario::kInpatient: {
      visit_type = ::medsettle::v1::VISIT_TYPE_INPATIENT;
      const int stay = static_cast<int>(Between(&rng, 3, 20));
      r.mutable_visit()->set_type(visit_type);
      r.mutable_visit()->set_admission_date(day.Text());
      r.mutable_visit()->set_discharge_date(day.Plus(stay).Text());
      // Log-uniform line count: most stays are short bills, a few are long.
      const double lo = std::log(static_cast<double>(options_.inpatient_min_lines));
      const double hi = std::log(static_cast<double>(options_.inpatient_max_lines) + 0.999);
      const int lines = std::clamp(static_cast<int>(std::exp(lo + (hi - lo) * Unit(&rng))),
                                   options_.inpatient_min_lines, options_.inpatient_max_lines);
      const size_t start = Below(&rng, inpatient_items_.size());
      for (int i = 0; i < lines; ++i) {
        const CatalogItem& item =
            catalog[inpatient_items_[(start + static_cast<size_t>(i)) % inpatient_items_.size()]];
        const bool per_day = item.code == "FA0002" || item.code == "FA0003";
        AddItem(&r, item, per_day ? 1 : Between(&rng, 1, 10), &rng);
      }
      break;
    }
  }
  const bool token = plan.scenario == Scenario::kPharmacy && issuer_ != nullptr;
  if (token) {
    credentials::EcTokenClaims claims;
    claims.key_id = issuer_->key_id;
    claims.person_key = issuer_->keyer.KeyOfIdNumber(person.id_number).value_or("");
    claims.issued_at_minute = now_unix / 60;
    claims.expires_at_minute = claims.issued_at_minute + 5;
    uint64_t nonce_state = rng ^ 0x6e6f6e6365ULL;  // a function of seed and seq
    char nonce[33];
    std::snprintf(nonce, sizeof nonce, "%016llx%016llx",
                  static_cast<unsigned long long>(SplitMix64(&nonce_state)),
                  static_cast<unsigned long long>(SplitMix64(&nonce_state)));
    // The run id enters the nonce too: the gateway remembers nonces, and
    // the same seed in another run must not collide.
    uint64_t run_state = std::hash<std::string>{}(options_.run_id);
    const uint64_t mixed = SplitMix64(&run_state);
    std::snprintf(nonce + 16, 17, "%016llx",
                  static_cast<unsigned long long>(SplitMix64(&nonce_state) ^ mixed));
    claims.nonce = nonce;
    claims.scopes = credentials::kScopePharmacy;
    absl::StatusOr<std::string> issued = issuer_->key.Issue(claims);
    if (issued.ok()) {
      r.mutable_credential()->set_ec_token(*issued);
    } else {
      r.mutable_credential()->set_id_card_no(person.id_number);
    }
  } else {
    r.mutable_credential()->set_id_card_no(person.id_number);
  }
  plan.coverage.mutable_credential()->set_id_card_no(person.id_number);
  plan.coverage.set_service_date(r.visit().type() == ::medsettle::v1::VISIT_TYPE_INPATIENT
                                     ? r.visit().discharge_date()
                                     : r.visit().service_date());
  plan.coverage.set_visit_type(visit_type);
  return plan;
}

}  // namespace medsettle::loadgen
