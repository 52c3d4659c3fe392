// The packed snapshot records (cache/enrollment_codec.h): every field
// round-trips, a typical adult record is small, records written before the
// family presenters existed still decode, and damaged bytes (truncated,
// trailing, unknown version, out-of-range values, a bad presenter list)
// are refused as INTERNAL SNAPSHOT_RECORD_CORRUPT, never decoded into a
// wrong record; a presenter list that cannot be stored is refused on encode.
#include "cache/enrollment_codec.h"

#include <cstdint>
#include <iostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "engine/status.h"
#include "engine/types.h"

namespace medsettle::cache {
namespace {

using engine::Date;

bool SameEnrollment(const engine::Enrollment& a, const engine::Enrollment& b) {
  if (a.out_of_area_filings.size() != b.out_of_area_filings.size()) return false;
  for (size_t k = 0; k < a.out_of_area_filings.size(); ++k) {
    const auto& x = a.out_of_area_filings[k];
    const auto& y = b.out_of_area_filings[k];
    if (x.region_code != y.region_code || x.start_date != y.start_date ||
        x.end_date != y.end_date) {
      return false;
    }
  }
  return a.person_key == b.person_key && a.year == b.year && a.region_code == b.region_code &&
         a.birth_date == b.birth_date && a.category == b.category && a.tier == b.tier &&
         a.assistance == b.assistance && a.paid_date == b.paid_date &&
         a.concentrated == b.concentrated && a.newborn == b.newborn &&
         a.reenrolled_after_gap == b.reenrolled_after_gap && a.status == b.status &&
         a.chronic_conditions == b.chronic_conditions &&
         a.special_diseases == b.special_diseases &&
         a.supplementary.product == b.supplementary.product &&
         a.supplementary.pre_existing == b.supplementary.pre_existing &&
         a.supplementary.continuous == b.supplementary.continuous &&
         a.voucher_revoked_at_unix == b.voucher_revoked_at_unix &&
         a.family_presenter_keys == b.family_presenter_keys;
}

bool SameInstitution(const engine::Institution& a, const engine::Institution& b) {
  return a.institution_id == b.institution_id && a.name == b.name &&
         a.region_code == b.region_code && a.kind == b.kind && a.level == b.level &&
         a.zero_markup == b.zero_markup && a.tcm == b.tcm &&
         a.children_or_maternal == b.children_or_maternal && a.base_level == b.base_level &&
         a.suspended == b.suspended;
}

// A presenter key per n (64 lowercase hex; ascending in n below 4096).
std::string PresenterKey(int n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string key(64, 'e');
  for (int k = 0; k < 3; ++k) key[static_cast<size_t>(k)] = kHex[(n >> (4 * (2 - k))) & 15];
  key[63] = kHex[n & 15];
  return key;
}

std::vector<std::string> PresenterKeys(int count) {
  std::vector<std::string> keys;
  for (int n = 0; n < count; ++n) keys.push_back(PresenterKey(n * 37 + 5));
  return keys;
}

engine::Enrollment TypicalAdult() {
  engine::Enrollment e;
  e.year = 2025;
  e.region_code = 330800;
  e.birth_date = Date::FromYmd(1968, 7, 14);
  e.category = engine::Category::kAdult;
  e.assistance = engine::Assistance::kNone;
  e.paid_date = Date::FromYmd(2024, 11, 20);
  e.concentrated = true;
  e.status = engine::EnrollmentStatus::kActive;
  return e;
}

engine::Enrollment EveryField() {
  engine::Enrollment e = TypicalAdult();
  e.region_code = 500231;
  e.tier = 2;
  e.category = engine::Category::kInfant;
  e.assistance = engine::Assistance::kKeyEntitled;
  e.birth_date = Date::FromYmd(2024, 12, 31);
  e.paid_date = Date::FromYmd(2025, 3, 2);
  e.newborn = true;
  e.reenrolled_after_gap = true;
  e.status = engine::EnrollmentStatus::kSuspended;
  e.chronic_conditions = {"HYPERTENSION", "TB"};
  e.special_diseases = {"UREMIA"};
  e.out_of_area_filings = {{310000, Date::FromYmd(2025, 1, 1), Date::FromYmd(2025, 12, 31)},
                           {330100, Date::FromYmd(2025, 6, 1), Date::FromYmd(2025, 6, 1)}};
  e.supplementary = {"tianyi-yongning-2025", true, true};
  e.voucher_revoked_at_unix = 1'740'000'000;
  e.family_presenter_keys = PresenterKeys(3);
  return e;
}

// EncodeEnrollment of a record that must be encodable.
std::string Encode(const engine::Enrollment& e) {
  absl::StatusOr<std::string> bytes = EncodeEnrollment(e);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

engine::Enrollment RoundTrip(const engine::Enrollment& e) {
  absl::StatusOr<engine::Enrollment> back = DecodeEnrollment(Encode(e));
  EXPECT_TRUE(back.ok()) << back.status();
  return back.ok() ? *back : engine::Enrollment{};
}

std::string Hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (char c : bytes) {
    hex.push_back(kHex[static_cast<unsigned char>(c) >> 4]);
    hex.push_back(kHex[static_cast<unsigned char>(c) & 15]);
  }
  return hex;
}

void ExpectCorrupt(const absl::Status& s, std::string_view what) {
  if (s.ok()) {
    ADD_FAILURE() << what << ": decoded";
  } else {
    EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << what;
    EXPECT_EQ(engine::ReasonOf(s), reason::kSnapshotRecordCorrupt) << what << ": " << s;
  }
}

TEST(EnrollmentCodec, TypicalAdultIsAtMost24Bytes) {
  std::string bytes = Encode(TypicalAdult());
  EXPECT_LE(bytes.size(), 24u);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), kSnapshotRecordFormat);
  if (engine::Enrollment back = RoundTrip(TypicalAdult()); !SameEnrollment(back, TypicalAdult())) {
    ADD_FAILURE() << "typical adult did not round-trip";
  }
}

TEST(EnrollmentCodec, EveryFieldRoundTripsWithoutThePersonKey) {
  engine::Enrollment e = EveryField();
  e.person_key = "not stored";
  engine::Enrollment back = RoundTrip(e);
  EXPECT_TRUE(back.person_key.empty());
  back.person_key = e.person_key;
  if (!SameEnrollment(back, e)) {
    ADD_FAILURE() << "record with every field did not round-trip";
  }
}

TEST(EnrollmentCodec, UnsetDatesAndExtremeValuesRoundTrip) {
  engine::Enrollment e;  // everything unset or zero
  if (!SameEnrollment(RoundTrip(e), e)) {
    ADD_FAILURE() << "empty record";
  }
  e.year = INT32_MIN;
  e.region_code = INT32_MAX;
  e.tier = -1;
  e.paid_date = Date::FromYmd(1900, 1, 1);
  e.birth_date = Date::FromDays(INT32_MAX);
  e.voucher_revoked_at_unix = INT64_MIN;
  e.out_of_area_filings = {{0, Date(), Date::FromDays(INT32_MAX)}};
  if (!SameEnrollment(RoundTrip(e), e)) {
    ADD_FAILURE() << "extreme values";
  }
}

TEST(EnrollmentCodec, RandomRecordsRoundTrip) {
  const uint64_t seed = 20261123;
  std::cout << "seed " << seed << "\n";
  uint64_t state = seed;
  auto next = [&state] {  // splitmix64
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  auto text = [&next] {
    std::string s(next() % 40, '\0');
    for (char& c : s) c = static_cast<char>(next());  // any bytes
    return s;
  };
  for (int n = 0; n < 5000; ++n) {
    engine::Enrollment e;
    e.year = static_cast<int32_t>(next());
    e.region_code = static_cast<int32_t>(next());
    e.tier = static_cast<int32_t>(next() % 5) - 1;
    e.category = static_cast<engine::Category>(next() % engine::kCategoryCount);
    e.assistance = static_cast<engine::Assistance>(next() % engine::kAssistanceCount);
    e.status = static_cast<engine::EnrollmentStatus>(next() % 3);
    if (next() % 4) e.birth_date = Date::FromDays(static_cast<int32_t>(next() % 80000) - 30000);
    if (next() % 4 && e.year > 1900 && e.year < 2199) {
      e.paid_date = Date::FromDays(static_cast<int32_t>(next() % 80000) - 30000);
    }
    e.concentrated = next() % 2;
    e.newborn = next() % 2;
    e.reenrolled_after_gap = next() % 2;
    for (uint64_t k = next() % 4; k > 0; --k) e.chronic_conditions.push_back(text());
    for (uint64_t k = next() % 3; k > 0; --k) e.special_diseases.push_back(text());
    for (uint64_t k = next() % 3; k > 0; --k) {
      int32_t start = static_cast<int32_t>(next() % 80000) - 30000;
      e.out_of_area_filings.push_back({static_cast<int32_t>(next()), Date::FromDays(start),
                                       Date::FromDays(start + static_cast<int32_t>(next() % 900))});
    }
    if (next() % 2) e.supplementary.product = text();
    e.supplementary.pre_existing = next() % 2;
    e.supplementary.continuous = next() % 2;
    if (next() % 3 == 0) e.voucher_revoked_at_unix = static_cast<int64_t>(next());
    if (next() % 5 == 0) {
      std::set<std::string> keys;  // sorted, unique
      for (uint64_t k = 1 + next() % 4; k > 0; --k) {  // short: every prefix is decoded
        keys.insert(PresenterKey(static_cast<int>(next() % 4096)));
      }
      e.family_presenter_keys.assign(keys.begin(), keys.end());
    }
    std::string bytes = Encode(e);
    absl::StatusOr<engine::Enrollment> back = DecodeEnrollment(bytes);
    if (!back.ok() || !SameEnrollment(*back, e)) {
      ADD_FAILURE() << "record " << n << " (seed " << seed << ") did not round-trip";
      break;
    }
    // Every proper prefix is refused, never read as another record.
    for (size_t cut = 0; cut < bytes.size(); ++cut) {
      absl::StatusOr<engine::Enrollment> partial = DecodeEnrollment(bytes.substr(0, cut));
      if (partial.ok()) {
        ADD_FAILURE() << "record " << n << " (seed " << seed << ") cut at " << cut << " decoded";
        return;
      }
    }
  }
}

TEST(EnrollmentCodec, DamagedBytesAreCorrupt) {
  std::string good = Encode(EveryField());
  ExpectCorrupt(DecodeEnrollment("").status(), "empty");
  ExpectCorrupt(DecodeEnrollment(good.substr(0, good.size() - 1)).status(), "truncated");
  ExpectCorrupt(DecodeEnrollment(good + '\0').status(), "trailing byte");
  std::string version2 = good;
  version2[0] = 2;
  ExpectCorrupt(DecodeEnrollment(version2).status(), "unknown version");
  std::string bad_category = good;
  bad_category[1] = static_cast<char>((bad_category[1] & ~7) | 7);
  ExpectCorrupt(DecodeEnrollment(bad_category).status(), "category 7");
  std::string bad_status = good;
  bad_status[1] = static_cast<char>(bad_status[1] | 0xc0);
  ExpectCorrupt(DecodeEnrollment(bad_status).status(), "status 3");
  std::string long_varint = std::string("\x01\x00", 2) + std::string(11, '\xff');
  ExpectCorrupt(DecodeEnrollment(long_varint).status(), "varint too long");
  std::string unknown_flag = Encode(engine::Enrollment{});
  unknown_flag[2] = static_cast<char>(0x80);  // flags varint continues...
  unknown_flag.insert(3, 1, '\x10');          // ...into bit 11
  ExpectCorrupt(DecodeEnrollment(unknown_flag).status(), "unknown flag");
}

// ---- family presenters (亲情账户) -------------------------------------------

TEST(EnrollmentCodec, FamilyPresentersRoundTripAt32BytesEach) {
  const size_t plain = Encode(TypicalAdult()).size();
  for (int count : {0, 1, 2, 5, static_cast<int>(kMaxFamilyPresenters)}) {
    engine::Enrollment e = TypicalAdult();
    e.family_presenter_keys = PresenterKeys(count);
    std::string bytes = Encode(e);
    // Flag bit 10 takes the flags varint to 2 bytes, then the count and keys.
    EXPECT_EQ(bytes.size(), plain + (count == 0 ? 0 : 2 + 32 * static_cast<size_t>(count)))
        << count << " presenters";
    absl::StatusOr<engine::Enrollment> back = DecodeEnrollment(bytes);
    if (!back.ok()) {
      ADD_FAILURE() << count << " presenters: " << back.status();
    } else {
      EXPECT_EQ(back->family_presenter_keys, e.family_presenter_keys) << count << " presenters";
      EXPECT_TRUE(SameEnrollment(*back, e)) << count << " presenters";
    }
  }
  // Next to every other optional part.
  if (engine::Enrollment e = EveryField(); !SameEnrollment(RoundTrip(e), e)) {
    ADD_FAILURE() << "every field with presenters";
  }
}

std::string FromHex(std::string_view hex) {
  std::string bytes;
  for (size_t k = 0; k + 1 < hex.size(); k += 2) {
    bytes.push_back(static_cast<char>(std::stoi(std::string(hex.substr(k, 2)), nullptr, 16)));
  }
  return bytes;
}

TEST(EnrollmentCodec, RecordsWrittenBeforePresentersExistedStillDecode) {
  // Bytes written by the encoder before family presenters existed (flag bit
  // 10 unknown then): TypicalAdult(), and EveryField() without presenters.
  struct Golden {
    std::string name;
    std::string hex;
    engine::Enrollment expected;
  };
  engine::Enrollment every = EveryField();
  every.family_presenter_keys.clear();
  const std::vector<Golden> goldens = {
      {"typical adult", "01496132e0b02800c9b30153", TypicalAdult()},
      {"every older field",
       "01baff07328e883d04d68e0178020c485950455254454e53494f4e02544201065552454d494102e0eb25f2b9"
       "02d805e8a528a0bc0200147469616e79692d796f6e676e696e672d3230323580acb2fb0c",
       every},
  };
  for (const Golden& g : goldens) {
    absl::StatusOr<engine::Enrollment> back = DecodeEnrollment(FromHex(g.hex));
    if (!back.ok()) {
      ADD_FAILURE() << g.name << ": " << back.status();
      continue;
    }
    EXPECT_TRUE(back->family_presenter_keys.empty()) << g.name;
    EXPECT_TRUE(SameEnrollment(*back, g.expected)) << g.name;
    EXPECT_EQ(Hex(Encode(g.expected)), g.hex) << g.name << ": no presenters, the same bytes";
  }
}

TEST(EnrollmentCodec, DamagedPresenterListIsCorrupt) {
  engine::Enrollment e = TypicalAdult();
  e.family_presenter_keys = PresenterKeys(2);
  const std::string good = Encode(e);
  const size_t list_at = good.size() - 1 - 2 * 32;  // the count byte
  ASSERT_EQ(good[list_at], '\x02');
  auto with_count = [&](uint8_t n) {
    std::string bytes = good;
    bytes[list_at] = static_cast<char>(n);
    return bytes;
  };
  ExpectCorrupt(DecodeEnrollment(with_count(0)).status(), "flag set, count 0");
  ExpectCorrupt(DecodeEnrollment(with_count(3)).status(), "count 3 of 2 keys");
  ExpectCorrupt(DecodeEnrollment(with_count(1)).status(), "count 1 of 2 keys (trailing)");
  std::string too_many = good.substr(0, list_at) + '\x11';
  for (int k = 0; k < 17; ++k) too_many += std::string(32, static_cast<char>(k));
  ExpectCorrupt(DecodeEnrollment(too_many).status(), "count 17");
  std::string huge = good.substr(0, list_at) + std::string("\xff\xff\xff\xff\x0f");
  ExpectCorrupt(DecodeEnrollment(huge).status(), "huge count");
  for (size_t cut = list_at; cut < good.size(); ++cut) {
    ExpectCorrupt(DecodeEnrollment(good.substr(0, cut)).status(), "truncated key");
  }
  // The two keys swapped, then the second equal to the first.
  std::string swapped = good.substr(0, list_at + 1) + good.substr(list_at + 33, 32) +
                        good.substr(list_at + 1, 32);
  ExpectCorrupt(DecodeEnrollment(swapped).status(), "keys out of order");
  std::string repeated = good.substr(0, list_at + 1) + good.substr(list_at + 1, 32) +
                         good.substr(list_at + 1, 32);
  ExpectCorrupt(DecodeEnrollment(repeated).status(), "key repeated");
  // A record without the flag but with a list appended: trailing bytes.
  std::string unflagged = Encode(TypicalAdult()) + good.substr(list_at);
  ExpectCorrupt(DecodeEnrollment(unflagged).status(), "list without its flag");
}

TEST(EnrollmentCodec, UnstorablePresenterListsAreRefusedOnEncode) {
  struct Case {
    std::string name;
    std::vector<std::string> keys;
  };
  const std::string a = PresenterKey(1), b = PresenterKey(2);
  std::vector<std::string> seventeen = PresenterKeys(17);
  std::vector<Case> cases = {
      {"uppercase hex", {std::string(64, 'A')}},
      {"63 characters", {std::string(63, 'a')}},
      {"65 characters", {std::string(65, 'a')}},
      {"not hex", {std::string(63, 'a') + "g"}},
      {"empty key", {""}},
      {"out of order", {b, a}},
      {"repeated", {a, a}},
      {"17 keys", seventeen},
      {"the person's own key", {a, b}},
  };
  for (const Case& c : cases) {
    engine::Enrollment e = TypicalAdult();
    e.family_presenter_keys = c.keys;
    if (c.name == "the person's own key") e.person_key = b;
    absl::StatusOr<std::string> bytes = EncodeEnrollment(e);
    if (bytes.ok()) {
      ADD_FAILURE() << c.name << ": encoded";
    } else {
      EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
      EXPECT_EQ(engine::ReasonOf(bytes.status()), reason::kFamilyPresentersInvalid) << c.name;
      EXPECT_EQ(engine::FieldOf(bytes.status()), kFamilyPresenterKeysField) << c.name;
    }
    EXPECT_FALSE(CheckFamilyPresenterKeys(c.keys, e.person_key).ok()) << c.name;
  }
  EXPECT_TRUE(CheckFamilyPresenterKeys({a, b}).ok());
  EXPECT_TRUE(CheckFamilyPresenterKeys({}).ok());
  seventeen.pop_back();
  EXPECT_TRUE(CheckFamilyPresenterKeys(seventeen, a).ok());
}

TEST(InstitutionCodec, EveryFieldRoundTripsAndDamageIsCorrupt) {
  engine::Institution i;
  i.institution_id = "H33080000012";
  i.name = "衢州市人民医院";
  i.region_code = 330802;
  i.kind = engine::InstitutionKind::kPharmacy;
  i.level = 3;
  i.zero_markup = i.tcm = i.children_or_maternal = i.base_level = i.suspended = true;
  std::string bytes = EncodeInstitution(i);
  absl::StatusOr<engine::Institution> back = DecodeInstitution(bytes);
  if (!back.ok()) {
    ADD_FAILURE() << back.status();
  } else {
    EXPECT_TRUE(back->institution_id.empty());
    back->institution_id = i.institution_id;
    EXPECT_TRUE(SameInstitution(*back, i));
  }
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    ExpectCorrupt(DecodeInstitution(bytes.substr(0, cut)).status(), "truncated institution");
  }
  ExpectCorrupt(DecodeInstitution(bytes + "x").status(), "trailing institution");
  std::string version9 = bytes;
  version9[0] = 9;
  ExpectCorrupt(DecodeInstitution(version9).status(), "institution version 9");
}

}  // namespace
}  // namespace medsettle::cache
