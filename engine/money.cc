#include "engine/money.h"

#include <cassert>
#include <cstdlib>

namespace medsettle::engine {

int64_t RoundHalfUpDiv(Int128 numerator, int64_t denominator) {
  assert(numerator >= 0 && denominator > 0);
  // 64-bit division is several times faster; every line amount × ratio
  // (≤ 10^16) takes this path.
  constexpr int64_t kFast = int64_t{1} << 61;
  if (numerator < kFast && denominator < kFast) {
    const int64_t n = static_cast<int64_t>(numerator);
    return (n * 2 + denominator) / (denominator * 2);
  }
  return static_cast<int64_t>((numerator * 2 + denominator) / (static_cast<Int128>(denominator) * 2));
}

int64_t CeilDiv(Int128 numerator, int64_t denominator) {
  assert(numerator >= 0 && denominator > 0);
  return static_cast<int64_t>((numerator + denominator - 1) / denominator);
}

namespace {

// Parses an unsigned decimal with at most `max_places` decimals into
// value × 10^max_places; nullopt when malformed or above `limit`.
std::optional<int64_t> ParseFixed(std::string_view text, int max_places, int64_t limit) {
  if (text.empty() || text.size() > 24) return std::nullopt;
  Int128 value = 0;
  int places = -1;  // -1 until the decimal point is seen
  bool digits = false;
  for (char c : text) {
    if (c == '.') {
      if (places >= 0 || !digits) return std::nullopt;
      places = 0;
      continue;
    }
    if (c < '0' || c > '9') return std::nullopt;
    digits = true;
    if (places >= 0 && ++places > max_places) return std::nullopt;
    value = value * 10 + (c - '0');
    if (value > static_cast<Int128>(limit) * 10000) return std::nullopt;
  }
  if (places == 0) return std::nullopt;  // "12." is not a number
  for (int p = places < 0 ? 0 : places; p < max_places; ++p) value *= 10;
  if (value > limit) return std::nullopt;
  return static_cast<int64_t>(value);
}

int64_t Pow10(int n) {
  int64_t r = 1;
  while (n-- > 0) r *= 10;
  return r;
}

}  // namespace

std::optional<Quantity> ParseQuantity(std::string_view text) {
  size_t dot = text.find('.');
  int32_t scale = dot == std::string_view::npos ? 0 : static_cast<int32_t>(text.size() - dot - 1);
  if (scale > kMaxQuantityScale) return std::nullopt;
  std::optional<int64_t> units = ParseFixed(text, scale, 1'000'000'000 * Pow10(scale));
  if (!units) return std::nullopt;
  return Quantity{*units, scale};
}

std::string FormatQuantity(const Quantity& q) {
  std::string digits = std::to_string(q.units);
  if (q.scale == 0) return digits;
  if (digits.size() <= static_cast<size_t>(q.scale)) {
    digits.insert(0, static_cast<size_t>(q.scale) + 1 - digits.size(), '0');
  }
  digits.insert(digits.size() - static_cast<size_t>(q.scale), ".");
  return digits;
}

std::optional<Cents> MultiplyQuantity(const Quantity& q, Cents unit_price_cents) {
  assert(unit_price_cents >= 0);
  static constexpr int64_t kScale[] = {1, 10, 100, 1000, 10000};
  if (q.units < 0 || q.scale < 0 || q.scale > kMaxQuantityScale) return std::nullopt;
  // Everything fits int64: an accepted product is at most 10^12 × 10^4.
  int64_t product = 0;
  if (__builtin_mul_overflow(q.units, unit_price_cents, &product)) return std::nullopt;
  const int64_t scale = kScale[q.scale];
  if (product > kMaxAmountCents * scale) return std::nullopt;
  if (scale == 1) return product;
  return (product * 2 + scale) / (scale * 2);  // half up
}

std::optional<Cents> ParseYuan(std::string_view text) {
  return ParseFixed(text, 2, kMaxAmountCents);
}

std::optional<BasisPoints> ParsePercent(std::string_view text) {
  std::optional<int64_t> bp = ParseFixed(text, 2, kFullRatioBp);
  if (!bp) return std::nullopt;
  return static_cast<BasisPoints>(*bp);
}

std::string FormatYuan(Cents cents) {
  bool negative = cents < 0;
  uint64_t magnitude = negative ? 0 - static_cast<uint64_t>(cents) : static_cast<uint64_t>(cents);
  std::string out = std::to_string(magnitude / 100);
  uint64_t fraction = magnitude % 100;
  out += '.';
  out += static_cast<char>('0' + fraction / 10);
  out += static_cast<char>('0' + fraction % 10);
  return negative ? "-" + out : out;
}

std::string FormatPercent(BasisPoints bp) {
  std::string out = std::to_string(bp / 100);
  int fraction = bp % 100;
  if (fraction != 0) {
    out += '.';
    out += static_cast<char>('0' + fraction / 10);
    if (fraction % 10 != 0) out += static_cast<char>('0' + fraction % 10);
  }
  return out + "%";
}

}  // namespace medsettle::engine
