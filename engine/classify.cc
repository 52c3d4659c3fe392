// Bill classification (POLICY-NOTES "Computation conventions" 1): over-limit
// first, then the class-B pre-self-pay share, then in scope; class C and
// codes not in the catalog are out of scope.
#include <algorithm>

#include "engine/internal.h"

namespace medsettle::engine::internal {

void ClassifyBill(const Catalog& catalog, const Claim& claim, std::vector<LineResult>* lines,
                  BillSplit* split, std::vector<TraceStep>* trace) {
  *split = BillSplit();
  lines->resize(claim.lines.size());
  for (size_t i = 0; i < claim.lines.size(); ++i) {
    const BillLine& bill = claim.lines[i];
    LineResult& line = (*lines)[i];
    line = LineResult();
    line.line_no = bill.line_no;
    line.line_index = static_cast<uint32_t>(i);
    line.amount_cents = bill.amount_cents;
    split->total_cents += bill.amount_cents;

    const CatalogItem* item = catalog.Find(bill.code);
    if (item == nullptr) {
      line.item_class = ItemClass::kUnknown;
      line.out_of_scope_cents = bill.amount_cents;
      split->out_of_scope_cents += bill.amount_cents;
      ++split->unknown_lines;
      trace->push_back(TraceStep{.rule = TraceRule::kUnknownItem,
                                 .amount_cents = bill.amount_cents,
                                 .count = bill.line_no});
      continue;
    }
    line.item_class = item->item_class;
    Cents rest = bill.amount_cents;
    if (item->price_cap_cents) {
      // ValidateClaim bounded quantity × unit price, and the cap is checked
      // against the same bound, so the capped total always exists.
      Cents cap_total = MultiplyQuantity(bill.quantity, *item->price_cap_cents).value_or(kMaxAmountCents);
      line.over_limit_cents = std::max<Cents>(0, rest - cap_total);
      rest -= line.over_limit_cents;
    }
    switch (item->item_class) {
      case ItemClass::kA:
        line.in_scope_cents = rest;
        break;
      case ItemClass::kB:
        line.pre_self_pay_cents = ApplyRatio(rest, item->selfpay_ratio_bp);
        line.in_scope_cents = rest - line.pre_self_pay_cents;
        break;
      default:
        line.out_of_scope_cents = rest;
        break;
    }
    line.tcm_bonus = item->tcm && line.in_scope_cents > 0;  // cleared if no bonus applies
    split->over_limit_cents += line.over_limit_cents;
    split->pre_self_pay_cents += line.pre_self_pay_cents;
    split->in_scope_cents += line.in_scope_cents;
    split->out_of_scope_cents += line.out_of_scope_cents;
    if (line.tcm_bonus) split->tcm_in_scope_cents += line.in_scope_cents;
  }
}

}  // namespace medsettle::engine::internal
