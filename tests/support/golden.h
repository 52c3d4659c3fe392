// Golden-test helpers: the expected split of a settlement, compared field
// by field so a failure names the payer that is wrong.
#ifndef MEDSETTLE_TESTS_SUPPORT_GOLDEN_H_
#define MEDSETTLE_TESTS_SUPPORT_GOLDEN_H_

#include <gtest/gtest.h>

#include "engine/types.h"

namespace medsettle::testing {

// Expected amounts; -1 = not checked.
struct Expected {
  engine::Cents total = -1;
  engine::Cents out_of_scope = -1;
  engine::Cents over_limit = -1;
  engine::Cents pre_self_pay = -1;
  engine::Cents in_scope = -1;
  engine::Cents deductible = -1;
  engine::Cents base_fund = -1;
  engine::Cents critical_illness = -1;
  engine::Cents supplementary = -1;
  engine::Cents patient = -1;
};

inline void ExpectSplit(const engine::Settlement& s, const Expected& e) {
  const engine::Amounts& a = s.amounts;
  auto check = [](const char* name, engine::Cents expected, engine::Cents actual) {
    if (expected >= 0) {
      EXPECT_EQ(actual, expected) << name;
    }
  };
  check("total", e.total, a.total_cents);
  check("out_of_scope", e.out_of_scope, a.out_of_scope_cents);
  check("over_limit", e.over_limit, a.over_limit_cents);
  check("pre_self_pay", e.pre_self_pay, a.pre_self_pay_cents);
  check("in_scope", e.in_scope, a.in_scope_cents);
  check("deductible", e.deductible, a.deductible_cents);
  check("base_fund", e.base_fund, a.base_fund_cents);
  check("critical_illness", e.critical_illness, a.critical_illness_cents);
  check("supplementary", e.supplementary, a.supplementary_cents);
  check("patient", e.patient, a.patient_cents);
  // Whatever the case, the payers add up to the bill.
  EXPECT_EQ(a.base_fund_cents + a.critical_illness_cents + a.supplementary_cents + a.patient_cents,
            a.total_cents);
}

}  // namespace medsettle::testing

#endif  // MEDSETTLE_TESTS_SUPPORT_GOLDEN_H_
