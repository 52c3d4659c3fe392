#include "tools/recordgen/record_samples.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <openssl/evp.h>
#include <zdict.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>
#include <sstream>
#include <utility>

#include "engine/date.h"
#include "engine/money.h"
#include "engine/status.h"
#include "engine/text.h"
#include "medsettle/v1/ledger.pb.h"
#include "proto/contract/convert.h"
#include "proto/contract/ledger_record.h"
#include "engine/files/loaded_engine.h"

namespace medsettle::recordgen {
namespace {

using engine::Cat;
using engine::Date;
using engine::VisitType;

constexpr int kUtcOffsetMinutes = 480;  // the bureau's clock: China Standard Time

// ---- Randomness: splitmix64, identical on every platform ----

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  int Below(int n) { return static_cast<int>(Next() % static_cast<uint64_t>(n)); }
  int Between(int lo, int hi) { return lo + Below(hi - lo + 1); }  // inclusive
  bool Percent(int p) { return Below(100) < p; }
  // An index drawn with the given weights.
  int Weighted(std::initializer_list<int> weights) {
    int total = 0;
    for (int w : weights) total += w;
    int x = Below(total);
    int i = 0;
    for (int w : weights) {
      if (x < w) return i;
      x -= w;
      ++i;
    }
    return i - 1;
  }
  std::string Hex(int digits) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(static_cast<size_t>(digits));
    uint64_t bits = 0;
    for (int k = 0; k < digits; ++k) {
      if (k % 16 == 0) bits = Next();
      out.push_back(kHex[bits & 15]);
      bits >>= 4;
    }
    return out;
  }
  std::string Digits(int digits) {
    std::string out;
    for (int k = 0; k < digits; ++k) out.push_back(static_cast<char>('0' + Below(10)));
    return out;
  }

 private:
  uint64_t state_;
};

uint64_t Mix(uint64_t a, uint64_t b) { return Rng(a * 0x9e3779b97f4a7c15ull ^ b).Next(); }

uint64_t Fnv1a(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : text) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

std::string Padded(int64_t value, int width) {
  std::string digits = std::to_string(value);
  if (static_cast<int>(digits.size()) < width) {
    digits.insert(0, static_cast<size_t>(width) - digits.size(), '0');
  }
  return digits;
}

// ---- The regions and their registry ----

struct RegionInfo {
  engine::RegionCode code;   // the insuring region (a policy's `regions`)
  std::string_view city;     // for hospital names
  std::string_view short_name;
};
constexpr RegionInfo kRegions[] = {
    {330800, "衢州市", "衢州"}, {500231, "垫江县", "垫江"}, {330213, "奉化区", "奉化"}};

struct DistrictInfo {
  engine::RegionCode code;
  int region;  // index into kRegions
  std::string_view name;
  std::array<std::string_view, 4> streets;
};
constexpr DistrictInfo kDistricts[] = {
    {330802, 0, "柯城区", {"府山", "荷花", "信安", "白云"}},
    {330803, 0, "衢江区", {"樟潭", "浮石", "廿里", "莲花"}},
    {330822, 0, "常山县", {"天马", "紫港", "金川", "球川"}},
    {330824, 0, "开化县", {"华埠", "芹阳", "池淮", "音坑"}},
    {330825, 0, "龙游县", {"东华", "龙洲", "湖镇", "詹家"}},
    {330881, 0, "江山市", {"双塔", "虎山", "清湖", "贺村"}},
    {500231, 1, "垫江县", {"桂溪", "桂阳", "新民", "澄溪"}},
    {330213, 2, "奉化区", {"锦屏", "岳林", "江口", "溪口"}},
};

struct RegionYear {
  int region;
  int year;
  std::string_view product;  // the supplementary product sold there
};
constexpr RegionYear kRegionYears[] = {
    {0, 2024, ""}, {0, 2025, ""}, {1, 2024, ""}, {2, 2025, "tianyi-yongning-2025"}};

constexpr std::string_view kPharmacyBrands[] = {"国大药房", "老百姓大药房", "益丰大药房",
                                                "天天好大药房", "九州大药房", "瑞人堂医药",
                                                "华东大药房", "惠民大药房"};
constexpr std::string_view kChronic[] = {"HYPERTENSION", "DIABETES", "TB", "COPD"};
constexpr std::string_view kSpecial[] = {"UREMIA", "CANCER", "HEMOPHILIA"};
constexpr engine::RegionCode kFilingRegions[] = {310000, 330100, 440300};
constexpr std::string_view kReversalReasons[] = {
    "患者退药", "收费项目录入错误，重新结算", "patient returned the medicine",
    "duplicate charge", "医保类别选择错误", "患者要求自费结算", "结算信息有误",
    "wrong quantity entered", "取消住院结算，补录费用后重新结算"};

// How an institution's HIS or POS names its requests.
enum class IdStyle : uint8_t { kUuid, kInstitutionDaySeq, kPosTime, kHisVisit };

struct Registered {
  engine::Institution institution;
  std::string fingerprint;  // SHA-256 of its client certificate
  IdStyle style = IdStyle::kUuid;
  int64_t sequence = 0;     // its request counter
};

class Registry {
 public:
  explicit Registry(Rng& rng) {
    int seq[std::size(kDistricts)] = {};
    auto add = [&](size_t district, engine::InstitutionKind kind, int level, std::string name,
                   IdStyle style) {
      Registered r;
      engine::Institution& i = r.institution;
      const DistrictInfo& d = kDistricts[district];
      constexpr char kPrefix[] = {'?', 'H', 'C', 'P'};
      i.institution_id = Cat(kPrefix[static_cast<int>(kind)], d.code, Padded(++seq[district], 5));
      i.name = std::move(name);
      i.region_code = d.code;
      i.kind = kind;
      i.level = level;
      i.zero_markup = level >= 2 || kind == engine::InstitutionKind::kCommunity;
      i.base_level = kind == engine::InstitutionKind::kCommunity || level == 1;
      r.fingerprint = rng.Hex(64);
      r.style = style;
      r.sequence = rng.Below(100000);
      all_.push_back(std::move(r));
      by_region_kind_[d.region][static_cast<int>(kind)].push_back(all_.size() - 1);
      return &all_.back().institution;
    };
    for (size_t r = 0; r < std::size(kRegions); ++r) {
      const RegionInfo& region = kRegions[r];
      std::vector<size_t> districts;
      for (size_t d = 0; d < std::size(kDistricts); ++d) {
        if (kDistricts[d].region == static_cast<int>(r)) districts.push_back(d);
      }
      const size_t main = districts.front();
      // The city's hospitals.
      add(main, engine::InstitutionKind::kHospital, 3, Cat(region.city, "人民医院"),
          IdStyle::kHisVisit);
      add(main, engine::InstitutionKind::kHospital, 3, Cat(region.city, "中医院"),
          IdStyle::kHisVisit)->tcm = true;
      add(main, engine::InstitutionKind::kHospital, 2, Cat(region.city, "妇幼保健院"),
          IdStyle::kInstitutionDaySeq)->children_or_maternal = true;
      add(main, engine::InstitutionKind::kHospital, 2, Cat(region.city, "第二人民医院"),
          IdStyle::kHisVisit);
      const int pharmacies = districts.size() == 1 ? 24 : 6;
      const int communities = districts.size() == 1 ? 8 : 3;
      for (size_t d : districts) {
        const DistrictInfo& district = kDistricts[d];
        if (districts.size() > 1) {
          add(d, engine::InstitutionKind::kHospital, 2, Cat(district.name, "人民医院"),
              IdStyle::kHisVisit);
        }
        add(d, engine::InstitutionKind::kHospital, 1,
            Cat(region.short_name, district.streets[rng.Below(4)], "医院"),
            IdStyle::kInstitutionDaySeq);
        for (int k = 0; k < communities; ++k) {
          add(d, engine::InstitutionKind::kCommunity, 1,
              Cat(district.name, district.streets[k % 4],
                  k < 4 ? "街道社区卫生服务中心" : "镇卫生院"),
              IdStyle::kInstitutionDaySeq);
        }
        for (int k = 0; k < pharmacies; ++k) {
          add(d, engine::InstitutionKind::kPharmacy, 1,
              Cat(region.short_name, kPharmacyBrands[rng.Below(std::size(kPharmacyBrands))],
                  district.streets[k % 4], k < 4 ? "" : Cat(k / 4 + 1, "号"), "店"),
              rng.Percent(50) ? IdStyle::kPosTime : IdStyle::kUuid);
        }
      }
    }
  }

  // One of the region's institutions of `kind`; hospitals by level,
  // busier the higher.
  Registered& Pick(Rng& rng, int region, engine::InstitutionKind kind) {
    const std::vector<size_t>& list = by_region_kind_[region][static_cast<int>(kind)];
    if (kind == engine::InstitutionKind::kHospital) {
      const int level = 3 - rng.Weighted({50, 38, 12});
      for (int tries = 0; tries < 32; ++tries) {
        Registered& r = all_[list[static_cast<size_t>(rng.Below(static_cast<int>(list.size())))]];
        if (r.institution.level == level) return r;
      }
    }
    return all_[list[static_cast<size_t>(rng.Below(static_cast<int>(list.size())))]];
  }

  // The institution's next request id at `unix_seconds` (`stay`: an
  // inpatient account, else an outpatient one, where the HIS tells them apart).
  static std::string RequestId(Registered& r, Rng& rng, int64_t unix_seconds, bool stay) {
    const int64_t local = unix_seconds + kUtcOffsetMinutes * 60;
    const Date day = Date::FromDays(static_cast<int32_t>(local / 86400));
    const std::string ymd = Cat(day.year(), Padded(day.month(), 2), Padded(day.day(), 2));
    const int64_t second = local % 86400;
    ++r.sequence;
    switch (r.style) {
      case IdStyle::kUuid: {
        std::string h = rng.Hex(32);
        h[12] = '4';
        h[16] = "89ab"[rng.Below(4)];
        return Cat(h.substr(0, 8), "-", h.substr(8, 4), "-", h.substr(12, 4), "-",
                   h.substr(16, 4), "-", h.substr(20));
      }
      case IdStyle::kInstitutionDaySeq:
        return Cat(r.institution.institution_id, ymd, Padded(r.sequence % 1000000, 6));
      case IdStyle::kPosTime:
        return Cat("POS", ymd, Padded(second / 3600, 2), Padded(second / 60 % 60, 2),
                   Padded(second % 60, 2), "-", Padded(r.sequence % 10000, 4));
      case IdStyle::kHisVisit:
        return Cat(stay ? "ZY" : "MZ", ymd.substr(2), Padded(r.sequence % 100000, 5),
                   "-", Padded(1 + rng.Below(3), 2));
    }
    return rng.Hex(32);
  }

 private:
  std::vector<Registered> all_;
  std::vector<size_t> by_region_kind_[std::size(kRegions)][engine::kInstitutionKindCount];
};

// ---- Persons ----

struct PersonState {
  engine::Enrollment enrollment;
  std::string id_number;
  int region = 0;  // index into kRegions
  engine::Accumulators year_to_date;
};

// GB 11643-1999: ISO 7064 MOD 11-2 over the first 17 digits.
char CheckDigit(std::string_view first17) {
  static constexpr int kWeights[] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (int k = 0; k < 17; ++k) sum += (first17[static_cast<size_t>(k)] - '0') * kWeights[k];
  return "10X98765432"[sum % 11];
}

PersonState SynthPerson(Rng& rng) {
  PersonState p;
  const RegionYear& ry = kRegionYears[rng.Weighted({30, 30, 20, 20})];
  p.region = ry.region;
  std::vector<size_t> districts;
  for (size_t d = 0; d < std::size(kDistricts); ++d) {
    if (kDistricts[d].region == ry.region) districts.push_back(d);
  }
  const DistrictInfo& district =
      kDistricts[districts[static_cast<size_t>(rng.Below(static_cast<int>(districts.size())))]];
  engine::Enrollment& e = p.enrollment;
  e.person_key = rng.Hex(64);
  e.year = ry.year;
  e.region_code = district.code;
  e.tier = ry.region == 1 ? 1 + rng.Weighted({70, 30}) : 0;
  e.category = static_cast<engine::Category>(1 + rng.Weighted({72, 4, 14, 10}));
  int age = 0;
  switch (e.category) {
    case engine::Category::kInfant: age = rng.Below(3); break;
    case engine::Category::kMinor: age = 3 + rng.Below(15); break;
    case engine::Category::kStudent: age = 6 + rng.Below(15); break;
    default: age = 18 + rng.Below(73); break;
  }
  e.birth_date = Date::FromYmd(e.year - age, 1, 1).AddDays(rng.Below(age == 0 ? 150 : 365));
  e.newborn = age == 0 && rng.Percent(60);
  e.assistance = rng.Percent(86) ? engine::Assistance::kNone
                                 : static_cast<engine::Assistance>(2 + rng.Below(6));
  const int paid = rng.Weighted({8, 7, 85});  // government-paid, mid-year, concentrated
  if (paid == 0) {
    e.concentrated = true;
  } else if (paid == 1 || e.newborn) {
    e.paid_date = Date::FromYmd(e.year, 1, 1).AddDays(rng.Below(e.newborn ? 60 : 200));
  } else {
    e.concentrated = true;
    e.paid_date = Date::FromYmd(e.year - 1, 9, 1).AddDays(rng.Below(110));
  }
  e.reenrolled_after_gap = rng.Percent(2);
  e.status = engine::EnrollmentStatus::kActive;
  if (rng.Percent(age >= 45 ? 35 : 3)) {
    const int first = rng.Below(4);
    e.chronic_conditions.emplace_back(kChronic[first]);
    if (rng.Percent(30)) e.chronic_conditions.emplace_back(kChronic[(first + 1) % 4]);
  }
  if (rng.Percent(3)) e.special_diseases.emplace_back(kSpecial[rng.Below(3)]);
  if (rng.Percent(2)) {
    engine::OutOfAreaFiling f;
    f.region_code = kFilingRegions[rng.Below(3)];
    f.start_date = Date::FromYmd(e.year, 1, 1).AddDays(rng.Below(180));
    f.end_date = f.start_date.AddDays(90 + rng.Below(180));
    e.out_of_area_filings.push_back(f);
  }
  if (!ry.product.empty() && rng.Percent(45)) {
    e.supplementary.product = std::string(ry.product);
    e.supplementary.pre_existing = rng.Percent(20);
    e.supplementary.continuous = rng.Percent(70);
  }
  if (rng.Percent(1)) {
    // Reported lost early in the year; codes issued since are valid.
    const Date day = Date::FromYmd(e.year, 1, 2).AddDays(rng.Below(40));
    e.voucher_revoked_at_unix = int64_t{day.days()} * 86400 + rng.Below(86400);
  }
  if (rng.Percent(6)) {
    const int n = 1 + rng.Below(2);
    for (int k = 0; k < n; ++k) e.family_presenter_keys.push_back(rng.Hex(64));
    std::sort(e.family_presenter_keys.begin(), e.family_presenter_keys.end());
  }
  const std::string birth = e.birth_date.ToString();
  p.id_number = Cat(district.code, birth.substr(0, 4), birth.substr(5, 2), birth.substr(8, 2),
                    rng.Digits(3));
  p.id_number.push_back(CheckDigit(p.id_number));
  return p;
}

// ---- Bills ----

enum class Unit : uint8_t { kBox, kTablet, kDose, kOnce, kDay };

struct PriceRange {
  std::string_view code;
  engine::Cents low;
  engine::Cents high;
  Unit unit;
};
// Typical prices (分 per unit) of the demo catalog's items. Codes not listed
// (a catalog that grew) get a price from their class and cap.
constexpr PriceRange kPrices[] = {
    {"XA0001", 1180, 1650, Unit::kBox},    {"XA0002", 850, 1500, Unit::kBox},
    {"XA0003", 250, 340, Unit::kTablet},   {"XA0004", 600, 900, Unit::kBox},
    {"XB0001", 2300, 4500, Unit::kBox},    {"XB0002", 1800, 3000, Unit::kOnce},
    {"XB0003", 4500, 9000, Unit::kBox},    {"XB0004", 36000, 45000, Unit::kOnce},
    {"XC0001", 150000, 900000, Unit::kOnce}, {"XC0002", 5800, 19800, Unit::kBox},
    {"ZA0001", 1500, 4500, Unit::kDose},   {"ZB0001", 2500, 3600, Unit::kBox},
    {"ZB0002", 1200, 1800, Unit::kBox},    {"FA0001", 500, 1200, Unit::kOnce},
    {"FA0002", 1500, 2500, Unit::kDay},    {"FA0003", 3000, 6000, Unit::kDay},
    {"FA0004", 1500, 2500, Unit::kOnce},   {"FA0005", 8000, 20000, Unit::kOnce},
    {"FA0006", 150000, 250000, Unit::kOnce}, {"FA0007", 300000, 500000, Unit::kOnce},
    {"FA0008", 38000, 42000, Unit::kOnce}, {"FB0001", 20000, 35000, Unit::kOnce},
    {"FB0002", 45000, 70000, Unit::kOnce}, {"FB0003", 800000, 2500000, Unit::kOnce},
    {"FB0004", 1500000, 2800000, Unit::kOnce}, {"FC0001", 20000, 60000, Unit::kDay},
    {"FC0002", 100000, 800000, Unit::kOnce},
};

class BillMaker {
 public:
  BillMaker(const engine::Catalog& catalog, const std::vector<std::string>& codes, uint64_t seed)
      : catalog_(catalog), seed_(seed) {
    for (const std::string& code : codes) {
      const engine::CatalogItem* item = catalog.Find(code);
      if (item == nullptr) continue;
      if (code[0] == 'X' || code[0] == 'Z') {
        drugs_.push_back(item);
        if (item->item_class != engine::ItemClass::kC) covered_drugs_.push_back(item);
        // Injections and hospital-only drugs are not sold over the counter.
        if (UnitOf(code) != Unit::kOnce) counter_drugs_.push_back(item);
      }
      if (code[0] == 'F' && item->item_class != engine::ItemClass::kC) services_.push_back(item);
    }
  }

  bool Has(std::string_view code) const { return catalog_.Find(code) != nullptr; }

  // Appends `quantity` × `code` at the institution's price (in the catalog:
  // its name; else a local code of the HIS).
  void Add(v1::SettleRequest* r, std::string_view code, std::string_view quantity,
           const Registered& at) {
    const engine::CatalogItem* item = catalog_.Find(code);
    v1::BillItem* line = r->add_items();
    line->set_line_no(r->items_size());
    line->set_code(std::string(code));
    line->set_name(item != nullptr ? item->name : Cat("院内自制项目 ", code));
    line->set_quantity(std::string(quantity));
    const engine::Cents price = PriceAt(at, code, item);
    line->set_unit_price_cents(price);
    const std::optional<engine::Quantity> q = engine::ParseQuantity(quantity);
    line->set_amount_cents(q ? engine::MultiplyQuantity(*q, price).value_or(0) : 0);
  }

  // A drug as dispensed: its usual quantity for one purchase.
  void AddDrug(v1::SettleRequest* r, Rng& rng, const engine::CatalogItem* item,
               const Registered& at) {
    Add(r, item->code, Quantity(rng, UnitOf(item->code)), at);
  }

  const engine::CatalogItem* AnyDrug(Rng& rng) const { return Pick(rng, drugs_); }
  const engine::CatalogItem* CounterDrug(Rng& rng) const { return Pick(rng, counter_drugs_); }
  const engine::CatalogItem* CoveredDrug(Rng& rng) const { return Pick(rng, covered_drugs_); }
  const engine::CatalogItem* AnyService(Rng& rng) const { return Pick(rng, services_); }

  static std::string Quantity(Rng& rng, Unit unit) {
    switch (unit) {
      case Unit::kBox:
        if (rng.Percent(5)) return rng.Percent(50) ? "0.5" : "1.5";
        return std::to_string(1 + rng.Weighted({55, 30, 10, 5}));
      case Unit::kTablet: return std::to_string(7 * (1 + rng.Below(4)));
      case Unit::kDose: return std::to_string(3 + rng.Below(12));
      case Unit::kOnce:
      case Unit::kDay: return std::to_string(1 + rng.Weighted({85, 12, 3}));
    }
    return "1";
  }

  static Unit UnitOf(std::string_view code) {
    for (const PriceRange& p : kPrices) {
      if (p.code == code) return p.unit;
    }
    return code[0] == 'F' ? Unit::kOnce : Unit::kBox;
  }

 private:
  static const engine::CatalogItem* Pick(Rng& rng,
                                         const std::vector<const engine::CatalogItem*>& from) {
    return from[static_cast<size_t>(rng.Below(static_cast<int>(from.size())))];
  }

  // An institution's price for an item is fixed (its price list); it may
  // exceed the catalog's cap (the over-limit share).
  engine::Cents PriceAt(const Registered& at, std::string_view code,
                        const engine::CatalogItem* item) const {
    engine::Cents low = 500;
    engine::Cents high = 5000;
    bool listed = false;
    for (const PriceRange& p : kPrices) {
      if (p.code == code) {
        low = p.low;
        high = p.high;
        listed = true;
      }
    }
    if (!listed && item != nullptr && item->price_cap_cents) {
      low = *item->price_cap_cents * 8 / 10;
      high = *item->price_cap_cents * 11 / 10;
    }
    const uint64_t h = Mix(Mix(seed_, Fnv1a(at.institution.institution_id)), Fnv1a(code));
    engine::Cents price =
        low + static_cast<engine::Cents>(h % static_cast<uint64_t>(high - low + 1));
    // Price lists end in whole jiao above 10 yuan.
    if (price >= 1000) price -= price % 10;
    return price;
  }

  const engine::Catalog& catalog_;
  uint64_t seed_;
  std::vector<const engine::CatalogItem*> drugs_;
  std::vector<const engine::CatalogItem*> covered_drugs_;
  std::vector<const engine::CatalogItem*> counter_drugs_;
  std::vector<const engine::CatalogItem*> services_;
};

// The drugs of a certified condition (those the catalog has).
std::vector<std::string_view> ConditionDrugs(std::string_view condition) {
  if (condition == "HYPERTENSION") return {"XA0003", "XB0001"};
  if (condition == "DIABETES") return {"XA0002", "XB0003"};
  if (condition == "TB") return {"XA0004"};
  if (condition == "COPD") return {"XB0001", "ZB0001"};
  if (condition == "UREMIA") return {"FA0008"};
  if (condition == "CANCER") return {"XC0001", "XB0002"};
  if (condition == "HEMOPHILIA") return {"XB0004"};
  return {};
}

// ---- One settlement ----

struct Draw {
  v1::SettleRequest request;
  Registered* institution = nullptr;
  SampleKind kind = SampleKind::kPharmacy;
  int64_t settled_at_ms = 0;
};

int64_t LocalTimeMs(Rng& rng, Date day, int from_minute, int to_minute) {
  const int64_t second = int64_t{rng.Between(from_minute, to_minute)} * 60 + rng.Below(60);
  return ((int64_t{day.days()} * 86400 + second) - kUtcOffsetMinutes * 60) * 1000 +
         rng.Below(1000);
}

class Generator {
 public:
  Generator(const RuleSet& rules, const GenerateOptions& options)
      : rules_(rules),
        options_(options),
        rng_(options.seed),
        registry_(rng_),
        bills_(rules.engine->catalog(), rules.catalog_codes, options.seed) {
    const int persons = std::max(64, options.settlements / 4);
    for (int k = 0; k < persons; ++k) persons_.push_back(SynthPerson(rng_));
  }

  absl::Status Run(std::vector<Sample>* out) {
    for (int32_t n = 0; n < options_.settlements; ++n) {
      if (absl::Status s = OneSettlement(out); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

 private:
  absl::Status OneSettlement(std::vector<Sample>* out) {
    absl::Status last;
    for (int attempt = 0; attempt < 200; ++attempt) {
      PersonState& person =
          persons_[static_cast<size_t>(rng_.Below(static_cast<int>(persons_.size())))];
      Draw draw = DrawVisit(person);
      engine::Claim claim;
      // As the gateway: the contract's conversion, then the engine.
      if (absl::Status s = contract::ClaimFromProto(draw.request, &claim, ""); !s.ok()) {
        return engine::Refusal(absl::StatusCode::kInternal, "SAMPLE_INVALID", "",
                               Cat("the generator drew an invalid bill: ",
                                   std::string(s.message())));
      }
      const engine::Institution& institution = draw.institution->institution;
      const int64_t settled_s = draw.settled_at_ms / 1000;
      std::optional<int64_t> voucher_issued_at;
      std::string presenter_key;
      if (claim.credential == engine::CredentialKind::kEcToken) {
        voucher_issued_at = (settled_s - 20 - rng_.Below(600)) / 60 * 60;
        const auto& presenters = person.enrollment.family_presenter_keys;
        if (!presenters.empty() && rng_.Percent(35)) {
          presenter_key = presenters[static_cast<size_t>(
              rng_.Below(static_cast<int>(presenters.size())))];
        }
      }
      engine::SettleInput input{.enrollment = &person.enrollment,
                                .institution = &institution,
                                .year_to_date = &person.year_to_date,
                                .claim = &claim,
                                .voucher_issued_at_unix = voucher_issued_at};
      engine::Settlement settlement;
      last = rules_.engine->Settle(input, &settlement);
      if (!last.ok()) continue;  // refused settlements are not stored: draw again

      v1::SettleResponse response;
      contract::SettlementToProto(settlement, claim, person.enrollment.person_key,
                                  institution.institution_id, &response);
      response.set_presenter_key(presenter_key);
      const std::string settlement_id = SettlementId(person.enrollment.person_key,
                                                     draw.settled_at_ms);
      response.set_settlement_id(settlement_id);
      response.set_status(v1::SETTLEMENT_STATUS_SETTLED);
      response.set_settled_at(engine::FormatRfc3339(settled_s, kUtcOffsetMinutes));
      v1::LedgerRecord record;
      contract::BuildLedgerRecord(
          draw.request, person.enrollment, institution, person.year_to_date, response,
          {.settlement_id = settlement_id,
           .institution_id = institution.institution_id,
           .person_key = person.enrollment.person_key,
           .content_hash = ContentHash(draw.request),
           .credential_kind = std::string(CredentialKindName(claim.credential)),
           .presenter_key = presenter_key,
           .certificate_fingerprint = draw.institution->fingerprint,
           .settled_at_unix_ms = draw.settled_at_ms,
           .snapshot_version = SnapshotVersion(draw.settled_at_ms),
           .policy_sha256 = PolicyDigest(settlement.policy_id),
           .catalog_sha256 = Sha256Hex(Cat("catalog ", options_.seed)),
           .voucher_issued_at_unix = voucher_issued_at.value_or(0)},
          &record);
      person.year_to_date = settlement.after;
      out->push_back({.kind = draw.kind,
                      .visit_type = claim.visit.type,
                      .lines = static_cast<int32_t>(claim.lines.size()),
                      .bytes = record.SerializeAsString()});
      if (rng_.Percent(options_.reversal_percent)) {
        Reverse(record, *draw.institution, person, out);
      }
      return absl::OkStatus();
    }
    return engine::Refusal(absl::StatusCode::kInternal, "SAMPLE_REFUSED", "",
                           Cat("the engine refused 200 draws in a row; the last: ",
                               std::string(last.message())));
  }

  // As SettlementHandler::Reverse builds and stores it.
  void Reverse(const v1::LedgerRecord& settled, Registered& at, PersonState& person,
               std::vector<Sample>* out) {
    const int64_t now_ms =
        settled.settled_at_unix_ms() +
        (at.institution.kind == engine::InstitutionKind::kPharmacy
             ? int64_t{rng_.Between(60, 1800)} * 1000
             : int64_t{rng_.Between(300, 4 * 3600)} * 1000) +
        rng_.Below(1000);
    v1::ReverseResponse response;
    response.set_reversal_id(Cat(settled.settlement_id(), "-r"));
    response.set_settlement_id(settled.settlement_id());
    response.set_status(v1::SETTLEMENT_STATUS_REVERSED);
    *response.mutable_amounts() = settled.response().amounts();
    response.set_reversed_at(engine::FormatRfc3339(now_ms / 1000, kUtcOffsetMinutes));
    response.set_reason(std::string(kReversalReasons[rng_.Below(std::size(kReversalReasons))]));

    v1::LedgerReversal reversal;
    reversal.set_format(contract::kLedgerRecordFormat);
    reversal.set_settlement_id(settled.settlement_id());
    reversal.set_institution_id(at.institution.institution_id);
    reversal.set_request_id(Registry::RequestId(
        at, rng_, now_ms / 1000,
        engine::IsStay(static_cast<VisitType>(settled.response().visit_type()))));
    reversal.set_reason(response.reason());
    reversal.set_certificate_fingerprint(at.fingerprint);
    reversal.set_reversed_at_unix_ms(now_ms);
    reversal.set_person_key(settled.person_key());
    reversal.set_year(settled.year());
    reversal.set_settlement_date(settled.settlement_date());
    *reversal.mutable_amounts() = settled.response().amounts();
    *reversal.mutable_delta() = settled.response().accumulator_delta();
    *reversal.mutable_response() = response;
    reversal.set_settle_request_id(settled.request_id());

    contract::RecordEffect effect;
    if (contract::EffectOf(settled, &effect).ok()) {
      absl::StatusOr<engine::Accumulators> after =
          engine::Engine::Reverse(person.year_to_date, effect.delta);
      if (after.ok()) person.year_to_date = *after;
    }
    out->push_back({.kind = SampleKind::kReversal,
                    .visit_type = static_cast<VisitType>(settled.response().visit_type()),
                    .lines = settled.request().items_size(),
                    .bytes = reversal.SerializeAsString()});
  }

  Draw DrawVisit(PersonState& person) {
    Draw d;
    const engine::Enrollment& e = person.enrollment;
    const int mix = rng_.Weighted({60, 30, 10});
    int region = person.region;
    const bool adult = e.category == engine::Category::kAdult;
    const bool child = !adult;
    v1::Visit* visit = d.request.mutable_visit();
    // The day the bill settles on.
    const Date first = Date::FromYmd(e.year, 1, 3);
    const Date day = first.AddDays(rng_.Below(Date::FromYmd(e.year, 12, 30).days() - first.days()));
    if (mix == 0) {
      d.kind = SampleKind::kPharmacy;
      d.institution = &registry_.Pick(rng_, region, engine::InstitutionKind::kPharmacy);
      const bool chronic = !e.chronic_conditions.empty() && rng_.Percent(35);
      visit->set_type(chronic ? v1::VISIT_TYPE_CHRONIC_OUTPATIENT
                              : v1::VISIT_TYPE_GENERAL_OUTPATIENT);
      visit->set_service_date(day.ToString());
      d.settled_at_ms = LocalTimeMs(rng_, day, 8 * 60, 22 * 60);
      if (chronic) {
        const std::string& condition = e.chronic_conditions[static_cast<size_t>(
            rng_.Below(static_cast<int>(e.chronic_conditions.size())))];
        visit->set_condition(condition);
        for (std::string_view code : ConditionDrugs(condition)) {
          if (bills_.Has(code) && code[0] != 'F') {
            bills_.Add(&d.request, code, BillMaker::Quantity(rng_, BillMaker::UnitOf(code)),
                       *d.institution);
          }
        }
      }
      const int lines = 1 + rng_.Weighted({25, 25, 20, 15, 8, 5, 2});
      while (d.request.items_size() < lines) {
        if (rng_.Percent(2)) {
          bills_.Add(&d.request, Cat("YP", rng_.Digits(8)), "1", *d.institution);
        } else {
          bills_.AddDrug(&d.request, rng_, bills_.CounterDrug(rng_), *d.institution);
        }
      }
    } else if (mix == 1) {
      d.kind = SampleKind::kOutpatient;
      if (rng_.Percent(2)) region = (region + 1 + rng_.Below(2)) % 3;  // an emergency elsewhere
      const bool community = region == person.region && rng_.Percent(40);
      d.institution = &registry_.Pick(rng_, region, community
                                                        ? engine::InstitutionKind::kCommunity
                                                        : engine::InstitutionKind::kHospital);
      visit->set_emergency(region != person.region || rng_.Percent(3));
      visit->set_service_date(day.ToString());
      d.settled_at_ms = LocalTimeMs(rng_, day, 7 * 60 + 30, 17 * 60 + 30);
      const engine::Institution& at = d.institution->institution;
      const int type = rng_.Weighted({70, 13, 7, 10});
      if (type == 1 && !e.chronic_conditions.empty()) {
        visit->set_type(v1::VISIT_TYPE_CHRONIC_OUTPATIENT);
        visit->set_condition(e.chronic_conditions.front());
      } else if (type == 2 && !e.special_diseases.empty()) {
        visit->set_type(v1::VISIT_TYPE_SPECIAL_OUTPATIENT);
        visit->set_condition(e.special_diseases.front());
      } else if (type == 3 && adult && !at.tcm) {
        visit->set_type(v1::VISIT_TYPE_PRENATAL_CHECK);
      } else {
        visit->set_type(v1::VISIT_TYPE_GENERAL_OUTPATIENT);
        if (at.kind == engine::InstitutionKind::kHospital) {
          if (at.tcm && rng_.Percent(60)) {
            visit->set_specialty(v1::SPECIALTY_TCM);
          } else if (child && rng_.Percent(40)) {
            visit->set_specialty(v1::SPECIALTY_PEDIATRICS);
          } else if (rng_.Percent(2)) {
            visit->set_specialty(v1::SPECIALTY_PSYCHIATRY);
          }
        }
      }
      bills_.Add(&d.request, "FA0001", "1", *d.institution);
      if (visit->type() == v1::VISIT_TYPE_PRENATAL_CHECK) {
        bills_.Add(&d.request, "FA0005", "1", *d.institution);
        if (rng_.Percent(50)) bills_.Add(&d.request, "FA0004", "1", *d.institution);
      } else {
        for (std::string_view code : ConditionDrugs(visit->condition())) {
          if (bills_.Has(code)) {
            bills_.Add(&d.request, code, BillMaker::Quantity(rng_, BillMaker::UnitOf(code)),
                       *d.institution);
          }
        }
        if (rng_.Percent(30)) bills_.Add(&d.request, "FA0004", "1", *d.institution);
        if (rng_.Percent(10)) bills_.Add(&d.request, "FB0001", "1", *d.institution);
        if (rng_.Percent(4)) bills_.Add(&d.request, "FB0002", "1", *d.institution);
        if (visit->specialty() == v1::SPECIALTY_TCM || (at.tcm && rng_.Percent(50))) {
          bills_.Add(&d.request, "ZA0001", BillMaker::Quantity(rng_, Unit::kDose),
                     *d.institution);
          if (rng_.Percent(40)) bills_.Add(&d.request, "ZB0002", "2", *d.institution);
        }
        const int drugs = rng_.Weighted({10, 30, 30, 15, 8, 4, 3});
        for (int k = 0; k < drugs; ++k) {
          bills_.AddDrug(&d.request, rng_, bills_.AnyDrug(rng_), *d.institution);
        }
      }
    } else {
      d.kind = SampleKind::kInpatient;
      if (rng_.Percent(2)) region = (region + 1 + rng_.Below(2)) % 3;
      const bool community = region == person.region && rng_.Percent(5);
      d.institution = &registry_.Pick(rng_, region, community
                                                        ? engine::InstitutionKind::kCommunity
                                                        : engine::InstitutionKind::kHospital);
      visit->set_emergency(region != person.region || rng_.Percent(8));
      const int type = adult ? rng_.Weighted({82, 10, 8}) : 0;
      visit->set_type(type == 0   ? v1::VISIT_TYPE_INPATIENT
                      : type == 1 ? v1::VISIT_TYPE_DELIVERY_NATURAL
                                  : v1::VISIT_TYPE_DELIVERY_CAESAREAN);
      int days = type == 0 ? 2 + rng_.Below(7) + (rng_.Percent(35) ? rng_.Below(14) : 0) +
                                 (rng_.Percent(5) ? 15 + rng_.Below(20) : 0)
                           : 2 + rng_.Below(5);
      Date discharge = day;
      Date admission = discharge.AddDays(-days);
      if (admission < Date::FromYmd(e.year, 1, 1)) {
        admission = Date::FromYmd(e.year, 1, 1);
        discharge = admission.AddDays(days);
      }
      visit->set_admission_date(admission.ToString());
      visit->set_discharge_date(discharge.ToString());
      d.settled_at_ms = LocalTimeMs(rng_, discharge, 8 * 60, 17 * 60);
      StayBill(rng_, visit->type(), days, *d.institution, &d.request);
    }
    const int credential = rng_.Weighted({55, 25, 20});
    v1::Credential* c = d.request.mutable_credential();
    if (credential == 0) {
      c->set_ec_token(Cat("ec1.", rng_.Hex(96)));  // cleared from the record
    } else if (credential == 1) {
      c->set_id_card_no(person.id_number);
    } else {
      c->set_insurance_card_no(person.id_number);
    }
    d.request.set_request_id(Registry::RequestId(*d.institution, rng_, d.settled_at_ms / 1000,
                                                 d.kind == SampleKind::kInpatient));
    return d;
  }

  // An itemised stay: per day the bed and the ward round, the regimen's
  // drugs, tests every few days; imaging, a procedure or a delivery once.
  void StayBill(Rng& rng, v1::VisitType type, int days, const Registered& at,
                v1::SettleRequest* r) {
    std::vector<const engine::CatalogItem*> regimen;
    const int drugs = 2 + rng.Below(5);
    for (int k = 0; k < drugs; ++k) regimen.push_back(bills_.CoveredDrug(rng));
    const bool vip = rng.Percent(5);
    const bool surgery = type == v1::VISIT_TYPE_INPATIENT && rng.Percent(20);
    const bool severe = rng.Percent(10);
    for (int day = 0; day < days && r->items_size() < 300; ++day) {
      bills_.Add(r, vip ? "FC0001" : "FA0003", "1", at);
      bills_.Add(r, "FA0002", "1", at);
      if (day == 0 || rng.Percent(30)) bills_.Add(r, "FA0004", "1", at);
      if (day == 0 && rng.Percent(50)) bills_.Add(r, "FB0001", "1", at);
      if (day == 1 && rng.Percent(20)) bills_.Add(r, "FB0002", "1", at);
      if (day == 1 && surgery) bills_.Add(r, rng.Percent(50) ? "FB0003" : "FB0004", "1", at);
      if (day == 0 && type == v1::VISIT_TYPE_DELIVERY_NATURAL) bills_.Add(r, "FA0006", "1", at);
      if (day == 0 && type == v1::VISIT_TYPE_DELIVERY_CAESAREAN) bills_.Add(r, "FA0007", "1", at);
      if (severe && day % 2 == 1) bills_.Add(r, "XB0004", rng.Percent(50) ? "1" : "2", at);
      for (const engine::CatalogItem* item : regimen) {
        if (rng.Percent(85)) {
          bills_.Add(r, item->code, std::to_string(1 + rng.Weighted({70, 25, 5})), at);
        }
      }
      if (rng.Percent(15)) bills_.AddDrug(r, rng, bills_.AnyDrug(rng), at);
    }
    // Admission work-up and consumables when the stay was short.
    while (r->items_size() < 20) {
      if (rng.Percent(50)) {
        bills_.Add(r, bills_.AnyService(rng)->code, "1", at);
      } else {
        bills_.AddDrug(r, rng, bills_.CoveredDrug(rng), at);
      }
    }
    while (r->items_size() > 300) r->mutable_items()->RemoveLast();
  }

  std::string SettlementId(const std::string& person_key, int64_t now_ms) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string id = Cat(person_key.substr(0, 2), "-");
    for (int shift = 44; shift >= 0; shift -= 4) {
      id.push_back(kHex[(static_cast<uint64_t>(now_ms) >> shift) & 15]);
    }
    return Cat(id, "-", rng_.Hex(16));
  }

  // A snapshot is loaded every night at 02:00; the version names the load.
  static std::string SnapshotVersion(int64_t now_ms) {
    const int64_t local = now_ms / 1000 + kUtcOffsetMinutes * 60;
    const Date day = Date::FromDays(static_cast<int32_t>(local / 86400));
    return Cat(day.year(), Padded(day.month(), 2), Padded(day.day(), 2), "T020000-",
               day.days() - Date::FromYmd(2023, 12, 31).days());
  }

  std::string PolicyDigest(std::string_view policy_id) const {
    return Sha256Hex(Cat("policy ", policy_id, " ", options_.seed));
  }

  // As the gateway's ContentHash: SHA-256 of the deterministic
  // serialization of the request as sent.
  static std::string ContentHash(const v1::SettleRequest& request) {
    std::string bytes;
    {
      google::protobuf::io::StringOutputStream stream(&bytes);
      google::protobuf::io::CodedOutputStream coded(&stream);
      coded.SetSerializationDeterministic(true);
      request.SerializeToCodedStream(&coded);
    }
    return Sha256Hex(bytes);
  }

  static std::string_view CredentialKindName(engine::CredentialKind kind) {
    switch (kind) {
      case engine::CredentialKind::kIdCard: return "ID_CARD";
      case engine::CredentialKind::kInsuranceCard: return "INSURANCE_CARD";
      case engine::CredentialKind::kEcToken: return "EC_TOKEN";
      case engine::CredentialKind::kUnspecified: break;
    }
    return "UNSPECIFIED";
  }

  const RuleSet& rules_;
  const GenerateOptions options_;
  Rng rng_;
  Registry registry_;
  BillMaker bills_;
  std::vector<PersonState> persons_;
};

}  // namespace

std::string_view Name(SampleKind kind) {
  switch (kind) {
    case SampleKind::kPharmacy: return "pharmacy";
    case SampleKind::kOutpatient: return "outpatient";
    case SampleKind::kInpatient: return "inpatient";
    case SampleKind::kReversal: return "reversal";
  }
  return "?";
}

std::vector<std::string> CatalogCodes(std::string_view csv_text) {
  std::vector<std::string> codes;
  std::istringstream in{std::string(csv_text)};
  std::string line;
  bool header = true;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (header) {
      header = false;
      continue;
    }
    codes.push_back(line.substr(0, line.find(',')));
  }
  return codes;
}

absl::StatusOr<RuleSet> LoadRuleSet(const std::filesystem::path& policy_dir,
                                    const std::filesystem::path& catalog_file) {
  absl::StatusOr<engine_files::LoadedEngine> loaded =
      engine_files::LoadEngine(policy_dir, catalog_file);
  if (!loaded.ok()) return loaded.status();
  RuleSet rules;
  rules.catalog_codes = CatalogCodes(loaded->catalog.bytes);
  rules.engine = std::move(loaded->engine);
  return rules;
}

absl::StatusOr<std::vector<Sample>> GenerateSamples(const RuleSet& rules,
                                                    const GenerateOptions& options) {
  std::vector<Sample> samples;
  samples.reserve(static_cast<size_t>(options.settlements) * 104 / 100);
  Generator generator(rules, options);
  if (absl::Status s = generator.Run(&samples); !s.ok()) return s;
  return samples;
}

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  return engine::LowerHex(std::string_view(reinterpret_cast<const char*>(digest), length));
}

std::string SamplesSha256(const std::vector<Sample>& samples) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  for (const Sample& s : samples) {
    const std::string head = Cat(Name(s.kind), " ", static_cast<int>(s.visit_type), " ",
                                 s.bytes.size(), "\n");
    EVP_DigestUpdate(ctx, head.data(), head.size());
    EVP_DigestUpdate(ctx, s.bytes.data(), s.bytes.size());
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx, digest, &length);
  EVP_MD_CTX_free(ctx);
  return engine::LowerHex(std::string_view(reinterpret_cast<const char*>(digest), length));
}

absl::StatusOr<std::string> TrainDictionary(const std::vector<Sample>& samples,
                                            const TrainOptions& options) {
  std::string joined;
  std::vector<size_t> sizes;
  sizes.reserve(samples.size());
  for (const Sample& s : samples) {
    joined += s.bytes;
    sizes.push_back(s.bytes.size());
  }
  auto failed = [](std::string_view step, size_t code) {
    return engine::Refusal(absl::StatusCode::kInternal, "DICTIONARY_TRAINING_FAILED", "",
                           Cat(step, ": ", ZDICT_getErrorName(code)));
  };
  std::string trained(options.dict_bytes, '\0');
  const size_t n = ZDICT_trainFromBuffer(trained.data(), trained.size(), joined.data(),
                                         sizes.data(), static_cast<unsigned>(sizes.size()));
  if (ZDICT_isError(n)) return failed("ZDICT_trainFromBuffer", n);
  trained.resize(n);
  const size_t header = ZDICT_getDictHeaderSize(trained.data(), trained.size());
  if (ZDICT_isError(header)) return failed("ZDICT_getDictHeaderSize", header);
  // The trained content, with our id and tables for our level.
  ZDICT_params_t params{};
  params.compressionLevel = options.compression_level;
  params.notificationLevel = 0;
  params.dictID = options.dict_id;
  std::string dict(options.dict_bytes, '\0');
  const size_t m = ZDICT_finalizeDictionary(dict.data(), dict.size(), trained.data() + header,
                                            trained.size() - header, joined.data(), sizes.data(),
                                            static_cast<unsigned>(sizes.size()), params);
  if (ZDICT_isError(m)) return failed("ZDICT_finalizeDictionary", m);
  dict.resize(m);
  return dict;
}

std::string ZstdVersion() { return ZSTD_versionString(); }

SizeReport MeasureSizes(const std::vector<Sample>& samples, std::string_view dictionary,
                        int level) {
  SizeReport report;
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CDict* cdict = dictionary.empty()
                          ? nullptr
                          : ZSTD_createCDict(dictionary.data(), dictionary.size(), level);
  std::string buffer;
  for (const Sample& s : samples) {
    buffer.resize(ZSTD_compressBound(s.bytes.size()));
    const size_t plain = ZSTD_compressCCtx(cctx, buffer.data(), buffer.size(), s.bytes.data(),
                                           s.bytes.size(), level);
    const size_t with = cdict == nullptr ? 0
                                         : ZSTD_compress_usingCDict(cctx, buffer.data(),
                                                                    buffer.size(), s.bytes.data(),
                                                                    s.bytes.size(), cdict);
    for (KindSizes* k : {&report.kinds[static_cast<int>(s.kind)], &report.all}) {
      ++k->count;
      k->serialized += static_cast<double>(s.bytes.size());
      k->plain += static_cast<double>(ZSTD_isError(plain) ? s.bytes.size() : plain);
      k->with_dictionary += static_cast<double>(ZSTD_isError(with) ? s.bytes.size() : with);
    }
  }
  for (KindSizes* k : {&report.kinds[0], &report.kinds[1], &report.kinds[2], &report.kinds[3],
                       &report.all}) {
    if (k->count == 0) continue;
    k->serialized /= static_cast<double>(k->count);
    k->plain /= static_cast<double>(k->count);
    k->with_dictionary /= static_cast<double>(k->count);
  }
  ZSTD_freeCDict(cdict);
  ZSTD_freeCCtx(cctx);
  return report;
}

std::string FormatSizeReport(const SizeReport& report) {
  std::string out = "kind        records  serialized  zstd      dictionary  dict/zstd\n";
  auto row = [&out](std::string_view name, const KindSizes& k) {
    char line[160];
    std::snprintf(line, sizeof line, "%-10.*s  %7lld  %10.0f  %8.0f  %10.0f  %8.2f\n",
                  static_cast<int>(name.size()), name.data(), static_cast<long long>(k.count),
                  k.serialized, k.plain, k.with_dictionary,
                  k.plain > 0 ? k.with_dictionary / k.plain : 0.0);
    out += line;
  };
  for (int i = 0; i < kSampleKindCount; ++i) {
    row(Name(static_cast<SampleKind>(i)), report.kinds[i]);
  }
  row("all", report.all);
  return out;
}

}  // namespace medsettle::recordgen
