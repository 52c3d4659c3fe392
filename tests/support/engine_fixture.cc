#include "tests/support/engine_fixture.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::testing {

using namespace medsettle::engine;

std::string ReadSourceFile(std::string_view relative_path) {
  std::string path = std::string(MEDSETTLE_SOURCE_DIR) + "/" + std::string(relative_path);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::abort();
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

namespace {
template <typename T>
T OrDie(absl::StatusOr<T> value) {
  if (!value.ok()) {
    std::fprintf(stderr, "test fixture: %s\n", std::string(value.status().message()).c_str());
    std::abort();
  }
  return *std::move(value);
}
}  // namespace

const Engine& ShippedEngine() {
  static const Engine* engine = [] {
    PolicySet policies;
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(
             std::string(MEDSETTLE_SOURCE_DIR) + "/engine/policies")) {
      if (entry.path().extension() == ".yaml") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      std::string rel = "engine/policies/" + file.filename().string();
      absl::Status added = policies.Add(OrDie(ParsePolicy(file.filename().string(), ReadSourceFile(rel))));
      if (!added.ok()) {
        std::fprintf(stderr, "test fixture: %s\n", std::string(added.message()).c_str());
        std::abort();
      }
    }
    Catalog catalog = OrDie(Catalog::Parse("demo-catalog.csv",
                                           ReadSourceFile("engine/catalog/demo-catalog.csv")));
    return new Engine(std::move(policies), std::move(catalog));
  }();
  return *engine;
}

Date D(std::string_view ymd) {
  std::optional<Date> d = Date::Parse(ymd);
  if (!d) {
    std::fprintf(stderr, "bad date literal %.*s\n", static_cast<int>(ymd.size()), ymd.data());
    std::abort();
  }
  return *d;
}

Enrollment Person(RegionCode region, int year, int tier) {
  Enrollment e;
  e.person_key = "pk-test";
  e.year = year;
  e.region_code = region;
  e.birth_date = D("1980-06-15");
  e.category = Category::kAdult;
  e.tier = tier;
  e.assistance = Assistance::kNone;
  e.paid_date = Date::FromYmd(year - 1, 12, 1);
  e.concentrated = true;
  e.status = EnrollmentStatus::kActive;
  return e;
}

Institution Hospital(RegionCode region, int level) {
  Institution i;
  i.institution_id = Cat("H", region, "-", level);
  i.name = "test hospital";
  i.region_code = region;
  i.kind = InstitutionKind::kHospital;
  i.level = level;
  return i;
}

Institution Community(RegionCode region) {
  Institution i = Hospital(region, 1);
  i.institution_id = Cat("C", region);
  i.kind = InstitutionKind::kCommunity;
  return i;
}

Institution Pharmacy(RegionCode region) {
  Institution i = Hospital(region, 1);
  i.institution_id = Cat("P", region);
  i.kind = InstitutionKind::kPharmacy;
  return i;
}

BillLine Line(int line_no, std::string code, std::string_view quantity, Cents unit_price_cents) {
  BillLine line;
  line.line_no = line_no;
  line.code = std::move(code);
  line.name = line.code;
  std::optional<Quantity> q = ParseQuantity(quantity);
  if (!q) std::abort();
  line.quantity = *q;
  line.unit_price_cents = unit_price_cents;
  line.amount_cents = *MultiplyQuantity(*q, unit_price_cents);
  return line;
}

Claim Outpatient(VisitType type, std::string_view date, std::vector<BillLine> lines) {
  Claim c;
  c.request_id = "req-test";
  c.credential = CredentialKind::kIdCard;
  c.visit.type = type;
  c.visit.service_date = D(date);
  c.lines = std::move(lines);
  return c;
}

Claim Stay(VisitType type, std::string_view admission, std::string_view discharge,
           std::vector<BillLine> lines) {
  Claim c;
  c.request_id = "req-test";
  c.credential = CredentialKind::kIdCard;
  c.visit.type = type;
  c.visit.admission_date = D(admission);
  c.visit.discharge_date = D(discharge);
  c.lines = std::move(lines);
  return c;
}

absl::Status SettleWith(const Enrollment& e, const Institution& i, const Accumulators& ytd,
                        const Claim& c, Settlement* out) {
  SettleInput input{.enrollment = &e, .institution = &i, .year_to_date = &ytd, .claim = &c};
  return ShippedEngine().Settle(input, out);
}

}  // namespace medsettle::testing
