// A day's settlements of one institution in the national medical insurance
// platform's reconciliation terms: 3201 (医药机构费用结算对总账, totals per
// clearing type) and 3202 (对明细账, one line per settlement and per
// refund). The mapping of our payers to the platform's fields
// (docs/OPERATIONS.md, "Reconciling with the national platform"):
//
//   medfee_sumamt      total                 医疗费总额
//   fulamt_ownpay_amt  out of scope          全自费金额
//   overlmt_selfpay    over limit            超限价自费
//   preselfpay_amt     pre-self-pay          先行自付金额
//   inscp_scp_amt      in scope              符合政策范围金额
//   act_pay_dedc       deductible            实际支付起付线
//   hifp_pay           base fund             基本医疗保险统筹基金支出
//   hifmi_pay          critical illness      居民大病保险资金支出
//   oth_pay            supplementary (惠民保) 其他支出
//   fund_pay_sumamt    hifp + hifmi + oth    基金支付总额
//   acct_pay           0 (residents have no personal account) 个人账户支出
//   psn_part_amt       patient               个人负担总金额
//   psn_cash_pay       patient (acct_pay 0)  个人现金支出
//
// insutype is 390 (城乡居民基本医疗保险); clr_type 21 for stays and
// deliveries, 41 for a pharmacy's purchases, 11 for other outpatient
// visits; setl_optins the institution's division code. Reversals are
// refunds (refd_setl_flag 1): 3202 lists each as a line of its own with
// negative amounts, and 3201 counts both lines in fixmedins_setl_cnt and
// nets the amounts — the platform's totals "including refunds".
// Amounts are yuan with two decimals, from integer 分 (exact).
#ifndef MEDSETTLE_TOOLS_LEDGER_NATIONAL_FORMAT_H_
#define MEDSETTLE_TOOLS_LEDGER_NATIONAL_FORMAT_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "engine/types.h"
#include "medsettle/v1/ledger.pb.h"

namespace medsettle::ledger_tool {

// One line of 3202: a settlement, or its refund.
struct DetailLine {
  std::string setl_id;   // the settlement id (a refund: the settlement's)
  std::string mdtrt_id;  // the institution's request id
  std::string psn_no;    // the pseudonymous person key (never an ID number)
  std::string clr_type;
  int64_t setl_time_unix_ms = 0;  // settled or refunded at
  bool refund = false;            // refd_setl_flag
  engine::Amounts amounts;        // negative for a refund
};

// 3201 for one clearing type.
struct TotalsRow {
  std::string clr_type;
  int64_t count = 0;        // fixmedins_setl_cnt: settlements + refunds
  engine::Amounts amounts;  // net of refunds
};

struct DayStatement {
  std::string institution_id;
  std::string setl_optins;  // the institution's division code
  std::string date;         // stmt_begndate = stmt_enddate
  std::vector<TotalsRow> totals;    // by clr_type
  std::vector<DetailLine> detail;   // settlement order, each refund after its settlement
};

// The clearing type of a settlement.
std::string_view ClearingType(v1::VisitType visit, v1::InstitutionKind kind);

// Adds `record` (and `reversal`, when reversed) to `statement`.
void AddSettlement(const v1::LedgerRecord& record, const v1::LedgerReversal* reversal,
                   DayStatement* statement);

// "12.30", "-0.05": exact, from 分.
std::string Yuan(int64_t cents);

// The statement as CSV (two sections: "# 3201" then "# 3202", each with a
// header line) or as one JSON object {"3201": [...], "3202": [...]}.
std::string StatementCsv(const DayStatement& statement);
std::string StatementJson(const DayStatement& statement);

}  // namespace medsettle::ledger_tool

#endif  // MEDSETTLE_TOOLS_LEDGER_NATIONAL_FORMAT_H_
