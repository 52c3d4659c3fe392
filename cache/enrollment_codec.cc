#include "cache/enrollment_codec.h"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::cache {
namespace {

using engine::Cat;

// Enrollment flag bits (format 1).
constexpr uint64_t kConcentrated = 1u << 0;
constexpr uint64_t kNewborn = 1u << 1;
constexpr uint64_t kReenrolledAfterGap = 1u << 2;
constexpr uint64_t kPreExisting = 1u << 3;
constexpr uint64_t kContinuous = 1u << 4;
constexpr uint64_t kHasBirthDate = 1u << 5;
constexpr uint64_t kHasPaidDate = 1u << 6;
constexpr uint64_t kHasLists = 1u << 7;
constexpr uint64_t kHasProduct = 1u << 8;
constexpr uint64_t kHasVoucherRevoked = 1u << 9;
constexpr uint64_t kHasFamilyPresenters = 1u << 10;
constexpr uint64_t kKnownFlags = (1u << 11) - 1;

constexpr size_t kPresenterKeyBytes = 32;  // a person key's 64 hex characters, raw

constexpr int32_t kEpoch2000Days = 10957;  // 2000-01-01 as days since 1970
constexpr int32_t kBaseYear = 2000;

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void PutSigned(std::string& out, int64_t v) { PutVarint(out, ZigZag(v)); }
void PutBytes(std::string& out, std::string_view s) {
  PutVarint(out, s.size());
  out.append(s);
}

// Days since 1 January of `year` (no Date arithmetic needed to decode).
int32_t YearStartDays(int32_t year) {
  if (year < 1900 || year > 2199) return kEpoch2000Days;  // any fixed base
  return engine::Date::FromYmd(year, 1, 1).days();
}

bool IsLowerHexKey(std::string_view key) {
  return key.size() == 2 * kPresenterKeyBytes && engine::IsLowerHex(key);
}

// REQUIRES: IsLowerHexKey(key).
void PutRawKey(std::string& out, std::string_view key) { out += engine::BytesOfLowerHex(key); }

std::string HexOf(std::string_view raw) { return engine::LowerHex(raw); }

absl::Status Corrupt(std::string_view what) {
  return engine::Refusal(absl::StatusCode::kInternal, reason::kSnapshotRecordCorrupt, "",
                         Cat("snapshot record corrupt: ", what));
}

// Reads format-1 fields from `bytes`; the first failure sticks.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : rest_(bytes) {}

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  bool at_end() const { return rest_.empty(); }

  uint8_t Byte(std::string_view what) {
    if (!ok()) return 0;
    if (rest_.empty()) {
      Fail(Cat("truncated before ", what));
      return 0;
    }
    uint8_t b = static_cast<uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }
  uint64_t Varint(std::string_view what) {
    uint64_t v = 0;
    for (int shift = 0; ok(); shift += 7) {
      if (shift > 63) {
        Fail(Cat("varint too long in ", what));
        return 0;
      }
      uint8_t b = Byte(what);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return 0;
  }
  int64_t Signed(std::string_view what) { return UnZigZag(Varint(what)); }
  // A signed value plus `base` that must fit an int32.
  int32_t Int32(std::string_view what, int64_t base = 0) {
    int64_t v = Signed(what);
    constexpr int64_t kFar = int64_t{1} << 34;  // |v| and |base| below: no overflow
    if (v > kFar || v < -kFar) {
      Fail(Cat(what, " out of range"));
      return 0;
    }
    v += base;
    if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
      Fail(Cat(what, " out of range"));
      return 0;
    }
    return static_cast<int32_t>(v);
  }
  std::string Bytes(std::string_view what) {
    uint64_t n = Varint(what);
    if (!ok()) return {};
    return Fixed(n, what);
  }
  // Exactly `n` bytes.
  std::string Fixed(uint64_t n, std::string_view what) {
    if (!ok()) return {};
    if (n > rest_.size()) {
      Fail(Cat("truncated inside ", what));
      return {};
    }
    std::string s(rest_.substr(0, n));
    rest_.remove_prefix(n);
    return s;
  }
  // A count of items each at least one byte long.
  uint64_t Count(std::string_view what) {
    uint64_t n = Varint(what);
    if (ok() && n > rest_.size()) Fail(Cat("count of ", what, " exceeds the record"));
    return ok() ? n : 0;
  }
  void Fail(std::string message) {
    if (ok()) error_ = std::move(message);
  }

 private:
  std::string_view rest_;
  std::string error_;
};

void PutStrings(std::string& out, const std::vector<std::string>& list) {
  PutVarint(out, list.size());
  for (const std::string& s : list) PutBytes(out, s);
}

std::vector<std::string> GetStrings(Reader& in, std::string_view what) {
  std::vector<std::string> list;
  uint64_t n = in.Count(what);
  list.reserve(n);
  for (uint64_t k = 0; k < n && in.ok(); ++k) list.push_back(in.Bytes(what));
  return list;
}

}  // namespace

absl::Status CheckFamilyPresenterKeys(const std::vector<std::string>& keys,
                                      std::string_view person_key) {
  auto invalid = [](std::string_view why) {
    return engine::InvalidField(reason::kFamilyPresentersInvalid, kFamilyPresenterKeysField,
                                Cat("family_presenter_keys: ", why));
  };
  if (keys.size() > kMaxFamilyPresenters) {
    return invalid(Cat(keys.size(), " keys, at most ", kMaxFamilyPresenters, " allowed"));
  }
  for (size_t k = 0; k < keys.size(); ++k) {
    if (!IsLowerHexKey(keys[k])) {
      return invalid(Cat("key ", k, " is not 64 lowercase hex characters"));
    }
    if (k > 0 && !(keys[k - 1] < keys[k])) {
      return invalid(Cat("key ", k,
                         keys[k - 1] == keys[k] ? " repeats the one before"
                                                : " is out of order (keep them sorted)"));
    }
    if (!person_key.empty() && keys[k] == person_key) {
      return invalid(Cat("key ", k, " is the person's own key"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> EncodeEnrollment(const engine::Enrollment& e) {
  if (absl::Status s = CheckFamilyPresenterKeys(e.family_presenter_keys, e.person_key); !s.ok()) {
    return s;
  }
  std::string out;
  out.reserve(16);
  out.push_back(static_cast<char>(kSnapshotRecordFormat));
  out.push_back(static_cast<char>((static_cast<unsigned>(e.category) & 7u) |
                                  ((static_cast<unsigned>(e.assistance) & 7u) << 3) |
                                  ((static_cast<unsigned>(e.status) & 3u) << 6)));
  const bool has_lists = !e.chronic_conditions.empty() || !e.special_diseases.empty() ||
                         !e.out_of_area_filings.empty();
  uint64_t flags = 0;
  if (e.concentrated) flags |= kConcentrated;
  if (e.newborn) flags |= kNewborn;
  if (e.reenrolled_after_gap) flags |= kReenrolledAfterGap;
  if (e.supplementary.pre_existing) flags |= kPreExisting;
  if (e.supplementary.continuous) flags |= kContinuous;
  if (e.birth_date.valid()) flags |= kHasBirthDate;
  if (e.paid_date.valid()) flags |= kHasPaidDate;
  if (has_lists) flags |= kHasLists;
  if (!e.supplementary.product.empty()) flags |= kHasProduct;
  if (e.voucher_revoked_at_unix.has_value()) flags |= kHasVoucherRevoked;
  if (!e.family_presenter_keys.empty()) flags |= kHasFamilyPresenters;
  PutVarint(out, flags);
  PutSigned(out, static_cast<int64_t>(e.year) - kBaseYear);
  PutSigned(out, e.region_code);
  PutSigned(out, e.tier);
  if (e.birth_date.valid()) {
    PutSigned(out, static_cast<int64_t>(e.birth_date.days()) - kEpoch2000Days);
  }
  if (e.paid_date.valid()) {
    PutSigned(out, static_cast<int64_t>(e.paid_date.days()) - YearStartDays(e.year));
  }
  if (has_lists) {
    PutStrings(out, e.chronic_conditions);
    PutStrings(out, e.special_diseases);
    PutVarint(out, e.out_of_area_filings.size());
    for (const engine::OutOfAreaFiling& f : e.out_of_area_filings) {
      PutSigned(out, f.region_code);
      PutSigned(out, f.start_date.days());
      PutSigned(out, static_cast<int64_t>(f.end_date.days()) - f.start_date.days());
    }
  }
  if (!e.supplementary.product.empty()) PutBytes(out, e.supplementary.product);
  if (e.voucher_revoked_at_unix.has_value()) PutSigned(out, *e.voucher_revoked_at_unix);
  if (!e.family_presenter_keys.empty()) {
    PutVarint(out, e.family_presenter_keys.size());
    for (const std::string& key : e.family_presenter_keys) PutRawKey(out, key);
  }
  return out;
}

absl::StatusOr<engine::Enrollment> DecodeEnrollment(std::string_view bytes) {
  Reader in(bytes);
  uint8_t format = in.Byte("the format version");
  if (in.ok() && format != kSnapshotRecordFormat) {
    return Corrupt(Cat("unknown enrollment format version ", static_cast<int>(format)));
  }
  engine::Enrollment e;
  uint8_t enums = in.Byte("the enum byte");
  unsigned category = enums & 7u, assistance = (enums >> 3) & 7u, status = enums >> 6;
  if (category >= static_cast<unsigned>(engine::kCategoryCount)) in.Fail("category out of range");
  if (status > static_cast<unsigned>(engine::EnrollmentStatus::kSuspended)) {
    in.Fail("status out of range");
  }
  e.category = static_cast<engine::Category>(category);
  e.assistance = static_cast<engine::Assistance>(assistance);  // 3 bits: all 8 are valid
  e.status = static_cast<engine::EnrollmentStatus>(status);
  uint64_t flags = in.Varint("the flags");
  if (in.ok() && (flags & ~kKnownFlags) != 0) in.Fail("unknown flag bits");
  e.concentrated = (flags & kConcentrated) != 0;
  e.newborn = (flags & kNewborn) != 0;
  e.reenrolled_after_gap = (flags & kReenrolledAfterGap) != 0;
  e.supplementary.pre_existing = (flags & kPreExisting) != 0;
  e.supplementary.continuous = (flags & kContinuous) != 0;
  e.year = in.Int32("the year", kBaseYear);
  e.region_code = in.Int32("the region code");
  e.tier = in.Int32("the tier");
  if (flags & kHasBirthDate) {
    e.birth_date = engine::Date::FromDays(in.Int32("the birth date", kEpoch2000Days));
  }
  if (flags & kHasPaidDate) {
    e.paid_date = engine::Date::FromDays(in.Int32("the paid date", YearStartDays(e.year)));
  }
  if (flags & kHasLists) {
    e.chronic_conditions = GetStrings(in, "chronic conditions");
    e.special_diseases = GetStrings(in, "special diseases");
    uint64_t n = in.Count("filings");
    for (uint64_t k = 0; k < n && in.ok(); ++k) {
      engine::OutOfAreaFiling f;
      f.region_code = in.Int32("a filing's region");
      int32_t start = in.Int32("a filing's start");
      f.start_date = engine::Date::FromDays(start);
      f.end_date = engine::Date::FromDays(in.Int32("a filing's end", start));
      e.out_of_area_filings.push_back(f);
    }
  }
  if (flags & kHasProduct) e.supplementary.product = in.Bytes("the supplementary product");
  if (flags & kHasVoucherRevoked) e.voucher_revoked_at_unix = in.Signed("the voucher revocation");
  if (flags & kHasFamilyPresenters) {
    // The flag is set only for a non-empty list: 0 is as corrupt as 17.
    uint64_t n = in.Varint("the family presenter count");
    if (in.ok() && (n == 0 || n > kMaxFamilyPresenters)) {
      in.Fail(Cat("family presenter count ", n, " out of range"));
    }
    for (uint64_t k = 0; k < n && in.ok(); ++k) {
      std::string raw = in.Fixed(kPresenterKeyBytes, "a family presenter key");
      if (!in.ok()) break;
      std::string key = HexOf(raw);
      if (!e.family_presenter_keys.empty() && !(e.family_presenter_keys.back() < key)) {
        in.Fail("family presenter keys out of order");
        break;
      }
      e.family_presenter_keys.push_back(std::move(key));
    }
  }
  if (in.ok() && !in.at_end()) in.Fail("trailing bytes");
  if (!in.ok()) return Corrupt(Cat("enrollment: ", in.error()));
  return e;
}

std::string EncodeInstitution(const engine::Institution& i) {
  std::string out;
  out.push_back(static_cast<char>(kSnapshotRecordFormat));
  out.push_back(static_cast<char>((static_cast<unsigned>(i.kind) & 3u) |
                                  (i.zero_markup ? 1u << 2 : 0u) | (i.tcm ? 1u << 3 : 0u) |
                                  (i.children_or_maternal ? 1u << 4 : 0u) |
                                  (i.base_level ? 1u << 5 : 0u) | (i.suspended ? 1u << 6 : 0u)));
  PutSigned(out, i.level);
  PutSigned(out, i.region_code);
  PutBytes(out, i.name);
  return out;
}

absl::StatusOr<engine::Institution> DecodeInstitution(std::string_view bytes) {
  Reader in(bytes);
  uint8_t format = in.Byte("the format version");
  if (in.ok() && format != kSnapshotRecordFormat) {
    return Corrupt(Cat("unknown institution format version ", static_cast<int>(format)));
  }
  engine::Institution i;
  uint8_t bits = in.Byte("the flag byte");
  if (bits & 0x80) in.Fail("unknown flag bits");
  i.kind = static_cast<engine::InstitutionKind>(bits & 3u);  // 2 bits: all 4 are valid
  i.zero_markup = (bits & (1u << 2)) != 0;
  i.tcm = (bits & (1u << 3)) != 0;
  i.children_or_maternal = (bits & (1u << 4)) != 0;
  i.base_level = (bits & (1u << 5)) != 0;
  i.suspended = (bits & (1u << 6)) != 0;
  i.level = in.Int32("the level");
  i.region_code = in.Int32("the region code");
  i.name = in.Bytes("the name");
  if (in.ok() && !in.at_end()) in.Fail("trailing bytes");
  if (!in.ok()) return Corrupt(Cat("institution: ", in.error()));
  return i;
}

}  // namespace medsettle::cache
