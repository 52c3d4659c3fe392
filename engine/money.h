// Money and ratio arithmetic. Amounts are int64 分 (Cents), ratios basis
// points (10000 = 100%). RoundHalfUpDiv is the one rounding function of the
// project: every ratio applied to money goes through it. No floating point.
#ifndef MEDSETTLE_ENGINE_MONEY_H_
#define MEDSETTLE_ENGINE_MONEY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace medsettle::engine {

using Cents = int64_t;
using BasisPoints = int32_t;
// 128-bit intermediate for Σ amount × ratio (GCC/Clang extension).
__extension__ typedef __int128 Int128;

inline constexpr BasisPoints kFullRatioBp = 10000;
// Largest bill or line amount accepted: 10^12 分 (ten billion yuan). Keeps
// every sum and product of the engine far inside int64/int128.
inline constexpr Cents kMaxAmountCents = 1'000'000'000'000;

// numerator / denominator rounded half up. REQUIRES: numerator >= 0,
// denominator > 0, result fits int64.
int64_t RoundHalfUpDiv(Int128 numerator, int64_t denominator);

// round(amount × ratio_bp / 10000), half up. REQUIRES: amount >= 0.
inline Cents ApplyRatio(Cents amount_cents, BasisPoints ratio_bp) {
  return RoundHalfUpDiv(static_cast<Int128>(amount_cents) * ratio_bp,
                        kFullRatioBp);
}

// ceil(numerator / denominator). REQUIRES: numerator >= 0, denominator > 0.
int64_t CeilDiv(Int128 numerator, int64_t denominator);

// An exact decimal quantity: units / 10^scale, scale 0..4.
struct Quantity {
  int64_t units = 0;
  int32_t scale = 0;
  friend bool operator==(const Quantity&, const Quantity&) = default;
};

inline constexpr int32_t kMaxQuantityScale = 4;

// Parses "2", "0.5", "1.2500" (no sign, no exponent, at most 4 places,
// value ≤ 10^9). nullopt when malformed.
std::optional<Quantity> ParseQuantity(std::string_view text);
std::string FormatQuantity(const Quantity& q);

// round(quantity × unit_price), half up; nullopt when above kMaxAmountCents.
// REQUIRES: unit_price_cents >= 0.
std::optional<Cents> MultiplyQuantity(const Quantity& q, Cents unit_price_cents);

// Parses an exact yuan amount ("800", "8916.5", "8916.50") into 分; nullopt
// when malformed, negative, more than 2 decimals or above kMaxAmountCents.
std::optional<Cents> ParseYuan(std::string_view text);
// Parses an exact percentage ("85", "92.5") into basis points (0..10000).
std::optional<BasisPoints> ParsePercent(std::string_view text);

// "1234.50" (no grouping), "-3.00" for negatives.
std::string FormatYuan(Cents cents);
// "85%", "92.5%", "8.25%".
std::string FormatPercent(BasisPoints bp);

}  // namespace medsettle::engine

#endif  // MEDSETTLE_ENGINE_MONEY_H_
