// Property tests over seeded random years: for every policy, random people,
// institutions and bills are settled one after another, with reversals in
// between. Each run prints its seed; replay a failure with
// MEDSETTLE_SEED=<seed>. Invariants checked after every settlement:
//   - the payers add up to the bill; nothing is negative;
//   - no fund cap, deductible ceiling or expense ceiling is exceeded, except
//     that uncapped base fund (a maternity top-up "after the cap") may take
//     a fund cap's ledgers above the cap by at most what it paid;
//   - Reverse(Settle(x)) restores the accumulators exactly, and a year with
//     reversals equals the sum of its remaining settlements' deltas;
//   - monotonicity: a larger bill never makes the patient pay less.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <random>

#include "engine/status.h"
#include "engine/text.h"
#include "tests/support/engine_fixture.h"

namespace medsettle::testing {
namespace {

using namespace medsettle::engine;

uint64_t Seed() {
  if (const char* env = std::getenv("MEDSETTLE_SEED")) return std::strtoull(env, nullptr, 10);
  return std::random_device{}();
}

struct Region {
  RegionCode insured;
  RegionCode local_institution;
  int year;
  std::vector<int> tiers;
};

const Region kRegions[] = {
    {330800, 330802, 2024, {0}},
    {330800, 330881, 2025, {0}},
    {500231, 500231, 2024, {1, 2}},
    {330213, 330213, 2025, {0}},
};

const char* const kCodes[] = {"XA0001", "XA0002", "XA0003", "XA0004", "XB0001", "XB0002",
                              "XB0003", "XB0004", "XC0001", "XC0002", "ZA0001", "ZB0001",
                              "ZB0002", "FA0001", "FA0002", "FA0003", "FA0004", "FA0005",
                              "FA0006", "FA0007", "FA0008", "FB0001", "FB0002", "FB0003",
                              "FB0004", "FC0001", "FC0002", "UNKNOWN-1"};

class RandomYear {
 public:
  explicit RandomYear(uint64_t seed) : rng_(seed) {}

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(int percent) { return Uniform(1, 100) <= percent; }

  Enrollment MakePerson(const Region& r) {
    Enrollment e = Person(r.insured, r.year, r.tiers[static_cast<size_t>(Uniform(0, static_cast<int>(r.tiers.size()) - 1))]);
    // The category agrees with the birth date as Fenghua defines it (base
    // date: the day before the year; adults born 20+ years before, infants
    // fewer than 6); students may be any age.
    e.birth_date = Date::FromYmd(r.year - Uniform(0, 90), Uniform(1, 12), Uniform(1, 28));
    e.category = e.birth_date <= Date::FromYmd(r.year - 20, 12, 31) ? Category::kAdult
                 : e.birth_date >= Date::FromYmd(r.year - 6, 1, 1) ? Category::kInfant
                                                                   : Category::kMinor;
    if (Chance(15)) e.category = Category::kStudent;
    e.assistance = static_cast<Assistance>(Uniform(1, 7));
    e.chronic_conditions = {"TB", "HYPERTENSION"};
    e.special_diseases = {"UREMIA"};
    if (Chance(50)) {
      e.supplementary = {"tianyi-yongning-2025", Chance(30), Chance(50)};
    }
    if (Chance(10)) {  // mid-year enrollment: some visits fall in a waiting period
      e.concentrated = false;
      e.paid_date = Date::FromYmd(r.year, Uniform(1, 11), Uniform(1, 28));
    }
    return e;
  }

  Institution MakeInstitution(const Region& r) {
    Institution i;
    const int kind = Uniform(1, 3);
    i = kind == 1 ? Hospital(r.local_institution, Uniform(1, 3))
                  : kind == 2 ? Community(r.local_institution) : Pharmacy(r.local_institution);
    i.zero_markup = Chance(40);
    i.tcm = Chance(25);
    i.children_or_maternal = Chance(15);
    i.base_level = i.level == 1 && Chance(50);
    if (Chance(10)) i.region_code = 110105;  // Beijing: out of area, no filing
    return i;
  }

  Claim MakeClaim(const Region& r) {
    const VisitType type = static_cast<VisitType>(Uniform(1, 7));
    const int lines = IsStay(type) ? Uniform(1, 60) : Uniform(1, 12);
    std::vector<BillLine> bill;
    for (int n = 1; n <= lines; ++n) {
      const char* code = kCodes[Uniform(0, static_cast<int>(std::size(kCodes)) - 1)];
      const std::string quantity = Chance(70) ? std::to_string(Uniform(1, 10))
                                              : Cat(Uniform(0, 9), ".", Uniform(1, 99));
      // Mostly ordinary prices, sometimes very large ones to cross every cap.
      const Cents price = Chance(90) ? Uniform(1, 200'000) : Cents{Uniform(1, 2000)} * 100'000;
      bill.push_back(Line(n, code, quantity, price));
    }
    const Date day = Date::FromYmd(r.year, Uniform(1, 12), Uniform(1, 28));
    Claim c = IsStay(type) ? Stay(type, day.AddDays(-Uniform(0, 20)).ToString(), day.ToString(), bill)
                           : Outpatient(type, day.ToString(), bill);
    if (day.AddDays(-20).year() != r.year && IsStay(type)) c.visit.admission_date = day;
    c.visit.specialty = static_cast<Specialty>(Uniform(0, 3));
    if (type == VisitType::kChronicOutpatient) c.visit.condition = Chance(50) ? "TB" : "HYPERTENSION";
    if (type == VisitType::kSpecialOutpatient) c.visit.condition = "UREMIA";
    c.visit.emergency = Chance(50);
    return c;
  }

 private:
  std::mt19937_64 rng_;
};

// The caps and ceilings of a policy hold on `s.after` (when they held
// before); a fund cap may be passed only by the settlement's uncapped base
// fund (a top-up is paid after the cap but counts in the fund paid).
void ExpectWithinLimits(const Policy& policy, const Enrollment& e, const Accumulators& before,
                        const Settlement& s) {
  const Accumulators& after = s.after;
  Cents uncapped = 0;
  for (const FundDetail& d : s.fund_details) {
    if (d.fund == Fund::kBase && d.uncapped) uncapped += d.paid_cents;
  }
  for (const RemainingLimit& limit : ShippedEngine().Remaining(policy, e, after)) {
    // Remaining() lists caps by person; used may exceed only if it did before.
    Cents used_before = 0;
    for (const RemainingLimit& b : ShippedEngine().Remaining(policy, e, before)) {
      if (b.name == limit.name) used_before = b.used_cents;
    }
    const bool fund_cap = limit.name.ends_with(" fund cap");
    if (used_before <= limit.limit_cents) {
      EXPECT_LE(limit.used_cents, limit.limit_cents + (fund_cap ? uncapped : 0)) << limit.name;
    } else if (fund_cap) {
      // Already above the cap: only uncapped money may add to it.
      EXPECT_LE(limit.used_cents, used_before + uncapped) << limit.name;
    }
    EXPECT_EQ(limit.remaining_cents, std::max<Cents>(0, limit.limit_cents - limit.used_cents))
        << limit.name;
  }
  for (const Scheme& scheme : policy.schemes) {
    if (scheme.segments.empty() || !scheme.segments.back().upto_cents) continue;
    // Fund paid never exceeds ceiling × 100% over the position ledgers.
    EXPECT_LE(after.FundPaid(scheme.position_ledgers) - before.FundPaid(scheme.position_ledgers),
              std::max<Cents>(0, *scheme.segments.back().upto_cents - before.InScope(scheme.position_ledgers)))
        << scheme.name;
  }
}

void ExpectPayersAddUp(const Amounts& a) {
  EXPECT_EQ(a.total_cents, a.base_fund_cents + a.critical_illness_cents + a.supplementary_cents + a.patient_cents);
  EXPECT_EQ(a.total_cents, a.out_of_scope_cents + a.over_limit_cents + a.pre_self_pay_cents + a.in_scope_cents);
  for (Cents v : {a.total_cents, a.out_of_scope_cents, a.over_limit_cents, a.pre_self_pay_cents,
                  a.in_scope_cents, a.deductible_cents, a.base_fund_cents,
                  a.critical_illness_cents, a.supplementary_cents, a.patient_cents}) {
    EXPECT_GE(v, 0);
  }
}

Accumulators Sum(const std::vector<Accumulators>& deltas) {
  Accumulators sum;
  for (const Accumulators& d : deltas) sum.AddTotals(d, +1);
  return sum;
}

TEST(SettleProperty, RandomYearsKeepEveryInvariant) {
  const uint64_t seed = Seed();
  std::printf("MEDSETTLE_SEED=%llu\n", static_cast<unsigned long long>(seed));
  RandomYear random(seed);
  int settled = 0, refused = 0;
  for (int person = 0; person < 400; ++person) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed << " person " << person);
    const Region& region = kRegions[person % std::size(kRegions)];
    const Enrollment e = random.MakePerson(region);
    Accumulators year;
    std::vector<Accumulators> live;  // deltas of settlements not reversed
    for (int visit = 0; visit < 12; ++visit) {
      const Institution institution = random.MakeInstitution(region);
      const Claim claim = random.MakeClaim(region);
      Settlement s;
      absl::Status status = SettleWith(e, institution, year, claim, &s);
      if (!status.ok()) {
        // Only rule refusals are expected from valid random input.
        ASSERT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
        ++refused;
        continue;
      }
      ++settled;
      ExpectPayersAddUp(s.amounts);
      const Policy& policy = *ShippedEngine().policies().FindById(s.policy_id);
      ExpectWithinLimits(policy, e, year, s);

      // Reverse(Settle(x)) restores the year exactly.
      absl::StatusOr<Accumulators> undone = Engine::Reverse(s.after, s.delta);
      ASSERT_TRUE(undone.ok()) << undone.status();
      EXPECT_TRUE(undone->SameTotals(year));

      // A larger bill (one more unit of its first line) never costs the
      // patient less.
      Claim larger = claim;
      BillLine& first = larger.lines.front();
      first.quantity.units += 1;  // one more unit of the last decimal place
      first.amount_cents = *MultiplyQuantity(first.quantity, first.unit_price_cents);
      Settlement bigger;
      ASSERT_TRUE(SettleWith(e, institution, year, larger, &bigger).ok());
      EXPECT_GE(bigger.amounts.patient_cents, s.amounts.patient_cents)
          << "line " << first.code << " in " << s.policy_id;

      year = s.after;
      live.push_back(s.delta);
      // Now and then reverse an earlier settlement of the year.
      if (!live.empty() && random.Chance(20)) {
        const size_t victim = static_cast<size_t>(random.Uniform(0, static_cast<int>(live.size()) - 1));
        absl::StatusOr<Accumulators> reversed = Engine::Reverse(year, live[victim]);
        ASSERT_TRUE(reversed.ok()) << reversed.status();
        year = *reversed;
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(victim));
      }
      EXPECT_TRUE(Sum(live).SameTotals(year));
    }
  }
  std::printf("settled %d, refused %d\n", settled, refused);
  EXPECT_GT(settled, 2000);
}

}  // namespace
}  // namespace medsettle::testing
