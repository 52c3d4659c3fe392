// medsettle-snapshot end to end, in-process (tools/snapshot/snapshot_tool.h)
// against a real redis-server: synth writes a deterministic population with
// every value (family presenters included), load keys and loads it and
// makes it current, the records read back equal the CSV rows, deltas by ID
// number apply (presenters bound and unbound), show prints a record, CSVs
// of the older header still load, status and drop work, and no raw ID
// number reaches Redis.
#include "tools/snapshot/snapshot_tool.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cache/connection_pool.h"
#include "cache/person_key.h"
#include "cache/snapshot_store.h"
#include "engine/status.h"
#include "engine/types.h"
#include "tests/support/redis_server.h"

namespace medsettle::snapshot_tool {
namespace {

using medsettle::testing::RedisServerTest;

std::vector<std::string> DataLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class SnapshotToolTest : public RedisServerTest {
 protected:
  void SetUp() override {
    RedisServerTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    dir_ = redis().dir() + "/tool";
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ + "/key", std::ios::binary) << std::string(32, 'k') << "-test-secret";
    address_ = redis().host() + ":" + std::to_string(redis().port());
  }

  int Run(std::vector<std::string> args) {
    out_.str("");
    err_.str("");
    int code = snapshot_tool::Run(args, out_, err_);
    EXPECT_EQ(code, 0) << err_.str();
    return code;
  }

  // `synth` of `persons` (seed `seed`) into the two CSVs, then `load` of
  // them; out_ and err_ hold what load printed.
  bool SynthAndLoad(int persons, int seed, const std::string& persons_csv,
                    const std::string& institutions_csv) {
    return Run({"synth", "--persons", std::to_string(persons), "--seed", std::to_string(seed),
                "--out", persons_csv, "--institutions-out", institutions_csv}) == 0 &&
           Run({"load", "--persons", persons_csv, "--institutions", institutions_csv,
                "--key-file", dir_ + "/key", "--redis", address_}) == 0;
  }

  // A connection to the test's Redis, to read back what the tool wrote.
  std::unique_ptr<cache::ConnectionPool> Pool() {
    cache::PoolOptions options;
    options.redis = {.host = redis().host(), .port = redis().port(),
                     .connect_timeout_ms = 1000, .command_timeout_ms = 5000};
    options.size = 1;
    return std::make_unique<cache::ConnectionPool>(options);
  }

  std::string dir_;
  std::string address_;
  std::ostringstream out_, err_;
};

TEST_F(SnapshotToolTest, SynthIsDeterministicAndCoversEveryValue) {
  ASSERT_EQ(Run({"synth", "--persons", "400", "--seed", "5", "--out", dir_ + "/a.csv",
                 "--institutions-out", dir_ + "/ai.csv"}), 0);
  ASSERT_EQ(Run({"synth", "--persons", "400", "--seed", "5", "--out", dir_ + "/b.csv",
                 "--institutions-out", dir_ + "/bi.csv"}), 0);
  EXPECT_EQ(ReadAll(dir_ + "/a.csv"), ReadAll(dir_ + "/b.csv"));
  std::set<std::string> seen;
  std::set<std::string> ids;
  std::vector<PersonRow> rows;
  size_t with_presenters = 0;
  for (const std::string& line : DataLines(dir_ + "/a.csv")) {
    absl::StatusOr<PersonRow> row = ParsePersonLine(line);
    ASSERT_TRUE(row.ok()) << row.status() << " in " << line;
    const engine::Enrollment& e = row->enrollment;
    ids.insert(row->id_number);
    seen.insert("region " + std::to_string(e.region_code) + "/" + std::to_string(e.year));
    seen.insert(std::string("category ") + std::string(engine::Name(e.category)));
    seen.insert(std::string("assistance ") + std::string(engine::Name(e.assistance)));
    seen.insert("tier " + std::to_string(e.region_code) + ":" + std::to_string(e.tier));
    if (e.status == engine::EnrollmentStatus::kSuspended) seen.insert("suspended");
    if (e.newborn) seen.insert("newborn");
    if (e.reenrolled_after_gap) seen.insert("reenrolled");
    if (!e.paid_date.valid()) seen.insert("no paid date");
    if (!e.concentrated) seen.insert("paid mid-year");
    for (const std::string& c : e.chronic_conditions) seen.insert("chronic " + c);
    for (const std::string& c : e.special_diseases) seen.insert("special " + c);
    if (!e.out_of_area_filings.empty()) seen.insert("filing");
    if (!e.supplementary.product.empty()) seen.insert("supplementary");
    if (e.supplementary.pre_existing) seen.insert("pre-existing");
    if (e.supplementary.continuous) seen.insert("continuous");
    if (e.voucher_revoked_at_unix.has_value()) seen.insert("voucher revoked");
    seen.insert("presenters " + std::to_string(row->family_presenter_ids.size()));
    if (!row->family_presenter_ids.empty()) ++with_presenters;
    EXPECT_EQ(PersonLine(row->id_number, e, row->family_presenter_ids), line);  // round-trips
    rows.push_back(*std::move(row));
  }
  EXPECT_EQ(ids.size(), 400u);
  // About 5% have one or two family presenters: other persons of the file,
  // of the same region and year.
  EXPECT_GE(with_presenters, 10u);
  EXPECT_LE(with_presenters, 40u);
  for (const PersonRow& row : rows) {
    for (const std::string& id : row.family_presenter_ids) {
      EXPECT_TRUE(ids.count(id)) << "presenter not in the file";
      EXPECT_NE(id, row.id_number);
      EXPECT_EQ(id.substr(0, 6), row.id_number.substr(0, 6));
    }
  }
  for (const char* want :
       {"region 330800/2024", "region 330800/2025", "region 500231/2024", "region 330213/2025",
        "category ADULT", "category INFANT", "category MINOR", "category STUDENT",
        "assistance NONE", "assistance TEKUN", "assistance DIBAO", "assistance DIBAO_EDGE",
        "assistance POVERTY_RELAPSE", "assistance SEVERE_DISABILITY", "assistance KEY_ENTITLED",
        "tier 500231:1", "tier 500231:2", "tier 330800:0", "suspended", "newborn", "reenrolled",
        "no paid date", "paid mid-year", "chronic HYPERTENSION", "chronic DIABETES", "chronic TB",
        "chronic COPD", "special UREMIA", "special CANCER", "special HEMOPHILIA", "filing",
        "supplementary", "pre-existing", "continuous", "voucher revoked", "presenters 0",
        "presenters 1", "presenters 2"}) {
    EXPECT_TRUE(seen.count(want)) << "synth never produced: " << want;
  }
  std::set<std::string> institution_kinds;
  for (const std::string& line : DataLines(dir_ + "/ai.csv")) {
    absl::StatusOr<engine::Institution> i = ParseInstitutionLine(line);
    ASSERT_TRUE(i.ok()) << i.status();
    EXPECT_EQ(InstitutionLine(*i), line);
    institution_kinds.insert(std::to_string(i->region_code) + std::string(engine::Name(i->kind)) +
                             std::to_string(i->level));
    if (i->tcm) institution_kinds.insert("tcm");
    if (i->children_or_maternal) institution_kinds.insert("maternal");
    if (i->suspended) institution_kinds.insert("suspended");
    if (i->base_level) institution_kinds.insert("base");
    if (i->zero_markup) institution_kinds.insert("zero markup");
  }
  EXPECT_EQ(institution_kinds.size(), 3u * 3u * 3u + 5u);
}

TEST_F(SnapshotToolTest, LoadReadsBackDeltasStatusAndDrop) {
  const std::string persons = dir_ + "/persons.csv", institutions = dir_ + "/inst.csv";
  ASSERT_TRUE(SynthAndLoad(2000, 11, persons, institutions));
  EXPECT_NE(out_.str().find("loaded 2000 persons and 36 institutions"), std::string::npos)
      << out_.str();
  EXPECT_NE(err_.str().find("100% 2000/2000"), std::string::npos) << err_.str();

  std::unique_ptr<cache::ConnectionPool> pool_owner = Pool();
  cache::ConnectionPool& pool = *pool_owner;
  cache::SnapshotStore store(pool);
  absl::StatusOr<std::optional<std::string>> current = store.CurrentVersion();
  ASSERT_TRUE(current.ok() && current->has_value());
  const std::string first = **current;
  absl::StatusOr<cache::PersonKeyer> keyer =
      cache::PersonKeyer::Create(std::string(32, 'k') + "-test-secret");
  ASSERT_TRUE(keyer.ok());

  std::vector<std::string> lines = DataLines(persons);
  std::vector<std::string> sample_ids;
  // Rows 11 and 31 have one and two family presenters (synth's first rows).
  for (size_t k : {size_t{0}, size_t{1}, size_t{17}, size_t{999}, size_t{1999}, size_t{11},
                   size_t{31}}) {
    absl::StatusOr<PersonRow> row = ParsePersonLine(lines[k]);
    ASSERT_TRUE(row.ok());
    std::string key = *keyer->KeyOfIdNumber(row->id_number);
    absl::StatusOr<std::optional<engine::Enrollment>> e = store.GetEnrollment(first, key);
    ASSERT_TRUE(e.ok() && e->has_value()) << "row " << k;
    // Every field as in the CSV; the presenters as their keys, sorted.
    EXPECT_EQ(PersonLine(row->id_number, **e, row->family_presenter_ids), lines[k]);
    std::vector<std::string> presenter_keys;
    for (const std::string& id : row->family_presenter_ids) {
      presenter_keys.push_back(*keyer->KeyOfIdNumber(id));
    }
    std::sort(presenter_keys.begin(), presenter_keys.end());
    EXPECT_EQ((*e)->family_presenter_keys, presenter_keys) << "row " << k;
    if (k == 11 || k == 31) {
      EXPECT_EQ(presenter_keys.size(), k == 11 ? 1u : 2u);
    }
    sample_ids.push_back(row->id_number);
  }
  absl::StatusOr<std::optional<engine::Institution>> inst =
      store.GetInstitution(first, "P3302130006");
  ASSERT_TRUE(inst.ok() && inst->has_value());
  EXPECT_EQ((*inst)->kind, engine::InstitutionKind::kPharmacy);

  // Deltas by raw ID number (keyed in the tool).
  ASSERT_EQ(Run({"delta", "suspend", "--id-number", sample_ids[2], "--key-file", dir_ + "/key",
                 "--redis", address_}), 0);
  ASSERT_EQ(Run({"delta", "revoke-voucher", "--id-number", sample_ids[3], "--key-file",
                 dir_ + "/key", "--at", "1750000000", "--redis", address_}), 0);
  auto read = [&](const std::string& id) {
    absl::StatusOr<std::optional<engine::Enrollment>> e =
        store.GetEnrollment(first, *keyer->KeyOfIdNumber(id));
    EXPECT_TRUE(e.ok() && e->has_value());
    return e.ok() && e->has_value() ? **e : engine::Enrollment{};
  };
  EXPECT_EQ(read(sample_ids[2]).status, engine::EnrollmentStatus::kSuspended);
  EXPECT_EQ(read(sample_ids[3]).voucher_revoked_at_unix, 1750000000);
  std::ofstream(dir_ + "/new.csv") << kPersonsHeader << "\n"
                                   << "33080019900101123X,2025,330800,1990-01-01,ADULT,0,NONE,"
                                      "2025-07-01,0,0,0,ACTIVE,,,,,0,0,,"
                                   << sample_ids[0] << "\n";
  ASSERT_EQ(Run({"delta", "upsert", "--persons", dir_ + "/new.csv", "--key-file", dir_ + "/key",
                 "--redis", address_}), 0);
  EXPECT_EQ(read("33080019900101123X").paid_date, engine::Date::FromYmd(2025, 7, 1));
  const std::string presenter0 = *keyer->KeyOfIdNumber(sample_ids[0]);
  EXPECT_EQ(read("33080019900101123X").family_presenter_keys,
            std::vector<std::string>{presenter0});

  // Family presenters bound and unbound by ID number, or by key (row 17 has none).
  ASSERT_TRUE(read(sample_ids[2]).family_presenter_keys.empty());
  const std::string presenter1 = *keyer->KeyOfIdNumber(sample_ids[1]);
  ASSERT_EQ(Run({"delta", "bind-presenter", "--id-number", sample_ids[2], "--presenter-id-number",
                 sample_ids[1], "--key-file", dir_ + "/key", "--redis", address_}), 0);
  EXPECT_NE(out_.str().find("BIND_PRESENTER"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find(" presenter " + presenter1), std::string::npos) << out_.str();
  ASSERT_EQ(Run({"delta", "bind-presenter", "--id-number", sample_ids[2], "--presenter-key",
                 presenter0, "--key-file", dir_ + "/key", "--redis", address_}), 0);
  EXPECT_EQ(read(sample_ids[2]).family_presenter_keys,
            (std::vector<std::string>{std::min(presenter0, presenter1),
                                      std::max(presenter0, presenter1)}));
  ASSERT_EQ(Run({"show", "--id-number", sample_ids[2], "--key-file", dir_ + "/key", "--redis",
                 address_}), 0);
  EXPECT_NE(out_.str().find("family_presenter_keys: " + std::min(presenter0, presenter1) + " " +
                            std::max(presenter0, presenter1)),
            std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find("person_key: " + *keyer->KeyOfIdNumber(sample_ids[2])),
            std::string::npos)
      << out_.str();
  EXPECT_EQ(out_.str().find(sample_ids[2].substr(0, 17)), std::string::npos);  // no ID number
  ASSERT_EQ(Run({"delta", "unbind-presenter", "--id-number", sample_ids[2],
                 "--presenter-id-number", sample_ids[1], "--key-file", dir_ + "/key", "--redis",
                 address_}), 0);
  EXPECT_EQ(read(sample_ids[2]).family_presenter_keys, std::vector<std::string>{presenter0});
  {
    std::ostringstream out, err;
    // Oneself, a wrong check character, no presenter flag.
    EXPECT_EQ(snapshot_tool::Run({"delta", "bind-presenter", "--id-number", sample_ids[2],
                                  "--presenter-id-number", sample_ids[2], "--key-file",
                                  dir_ + "/key", "--redis", address_},
                                 out, err),
              1);
    EXPECT_NE(err.str().find("FAMILY_PRESENTERS_INVALID"), std::string::npos) << err.str();
    std::string wrong = sample_ids[1];
    wrong[17] = wrong[17] == '0' ? '1' : '0';
    EXPECT_EQ(snapshot_tool::Run({"delta", "bind-presenter", "--id-number", sample_ids[2],
                                  "--presenter-id-number", wrong, "--key-file", dir_ + "/key",
                                  "--redis", address_},
                                 out, err),
              1);
    EXPECT_NE(err.str().find("ID_NUMBER_CHECK_DIGIT_MISMATCH"), std::string::npos) << err.str();
    EXPECT_EQ(err.str().find(wrong.substr(0, 17)), std::string::npos);  // never echoed
    EXPECT_EQ(snapshot_tool::Run({"delta", "unbind-presenter", "--id-number", sample_ids[2],
                                  "--key-file", dir_ + "/key", "--redis", address_},
                                 out, err),
              1);
    EXPECT_NE(err.str().find("--presenter-key"), std::string::npos) << err.str();
  }
  EXPECT_EQ(read(sample_ids[2]).family_presenter_keys, std::vector<std::string>{presenter0});

  // No raw ID number anywhere in a key, the meta or the delta stream.
  cache::RedisResult keys = pool.Command({"KEYS", "*"});
  ASSERT_TRUE(keys.ok());
  cache::RedisResult stream = pool.Command({"XRANGE", cache::kSnapDeltasKey, "-", "+"});
  ASSERT_TRUE(stream.ok());
  std::string everything;
  for (const cache::RedisReply& k : keys->elements) everything += k.str + "\n";
  for (const cache::RedisReply& entry : stream->elements) {
    for (const cache::RedisReply& f : entry.elements[1].elements) everything += f.str + "\n";
  }
  for (const std::string& id : sample_ids) {
    EXPECT_EQ(everything.find(id.substr(0, 17)), std::string::npos);
  }

  // A second load, status, then the first is dropped.
  ASSERT_EQ(Run({"load", "--persons", persons, "--institutions", institutions, "--key-file",
                 dir_ + "/key", "--redis", address_}), 0);
  ASSERT_EQ(Run({"status", "--redis", address_}), 0);
  EXPECT_NE(out_.str().find(first + "  committed  persons=2000"), std::string::npos)
      << out_.str();
  out_.str("");
  err_.str("");
  EXPECT_EQ(snapshot_tool::Run({"drop", "--redis", address_, "nope"}, out_, err_), 1);
  EXPECT_NE(err_.str().find("SNAPSHOT_NOT_FOUND"), std::string::npos) << err_.str();
  ASSERT_EQ(Run({"drop", first, "--redis", address_}), 0);
  absl::StatusOr<cache::SnapshotStatus> status = store.Status();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->versions.size(), 1u);
}

TEST_F(SnapshotToolTest, InstitutionDeltasSuspendReinstateAndAdd) {
  const std::string persons = dir_ + "/persons.csv", institutions = dir_ + "/inst.csv";
  ASSERT_TRUE(SynthAndLoad(10, 3, persons, institutions));
  std::vector<std::string> rows = DataLines(institutions);
  ASSERT_FALSE(rows.empty());
  absl::StatusOr<engine::Institution> first = ParseInstitutionLine(rows[0]);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string id = first->institution_id;
  ASSERT_FALSE(first->suspended) << "the test needs an unsuspended first row";

  std::unique_ptr<cache::ConnectionPool> pool_owner = Pool();
  cache::ConnectionPool& pool = *pool_owner;
  cache::SnapshotStore store(pool);
  absl::StatusOr<std::optional<std::string>> current = store.CurrentVersion();
  ASSERT_TRUE(current.ok() && current->has_value());
  const std::string version = **current;
  auto registry = [&](const std::string& which) {
    absl::StatusOr<std::optional<engine::Institution>> i = store.GetInstitution(version, which);
    EXPECT_TRUE(i.ok()) << i.status();
    return i.ok() ? *i : std::nullopt;
  };

  ASSERT_EQ(Run({"delta", "suspend-institution", "--institution", id, "--redis", address_}), 0);
  EXPECT_NE(out_.str().find("SUSPEND_INSTITUTION " + id + " in " + version), std::string::npos)
      << out_.str();
  ASSERT_TRUE(registry(id).has_value());
  EXPECT_TRUE(registry(id)->suspended);
  ASSERT_EQ(Run({"delta", "reinstate-institution", "--institution", id, "--redis", address_}), 0);
  EXPECT_FALSE(registry(id)->suspended);

  // Two new rows; the file is parsed whole before anything is written.
  engine::Institution added = *first;
  added.institution_id = "NEW0000001";
  added.name = "newly contracted";
  engine::Institution second = added;
  second.institution_id = "NEW0000002";
  std::ofstream(dir_ + "/new.csv") << kInstitutionsHeader << "\n"
                                   << InstitutionLine(added) << "\n"
                                   << InstitutionLine(second) << "\n";
  ASSERT_EQ(Run({"delta", "upsert-institutions", "--institutions", dir_ + "/new.csv", "--redis",
                 address_}), 0);
  ASSERT_TRUE(registry("NEW0000002").has_value());
  EXPECT_EQ(registry("NEW0000001")->name, "newly contracted");
  absl::StatusOr<int64_t> revision = store.RegistryRevision(version);
  ASSERT_TRUE(revision.ok());
  EXPECT_EQ(*revision, 4);

  std::ofstream(dir_ + "/bad.csv") << kInstitutionsHeader << "\n"
                                   << InstitutionLine(added) << "\n"
                                   << "NEW0000003,broken\n";
  std::ostringstream out, err;
  EXPECT_EQ(snapshot_tool::Run({"delta", "upsert-institutions", "--institutions",
                                dir_ + "/bad.csv", "--redis", address_},
                               out, err),
            1);
  EXPECT_NE(err.str().find("bad.csv:3"), std::string::npos) << err.str();
  EXPECT_EQ(*store.RegistryRevision(version), 4) << "a bad file wrote something";
  EXPECT_EQ(snapshot_tool::Run({"delta", "suspend-institution", "--institution", "NOPE",
                                "--redis", address_},
                               out, err),
            1);
  EXPECT_NE(err.str().find("SNAPSHOT_INSTITUTION_NOT_FOUND"), std::string::npos) << err.str();
  EXPECT_EQ(snapshot_tool::Run({"delta", "suspend-institution", "--redis", address_}, out, err),
            2);
  EXPECT_NE(err.str().find("--institution ID is required"), std::string::npos) << err.str();

  // Re-sending the original CSV row of a suspended institution does not
  // lift the suspension, and says so.
  ASSERT_EQ(Run({"delta", "suspend-institution", "--institution", id, "--redis", address_}), 0);
  std::ofstream(dir_ + "/again.csv") << kInstitutionsHeader << "\n" << rows[0] << "\n";
  ASSERT_EQ(Run({"delta", "upsert-institutions", "--institutions", dir_ + "/again.csv", "--redis",
                 address_}), 0);
  EXPECT_NE(out_.str().find("still suspended"), std::string::npos) << out_.str();
  ASSERT_TRUE(registry(id).has_value());
  EXPECT_TRUE(registry(id)->suspended);
}

TEST_F(SnapshotToolTest, MalformedInputIsRefusedWithFileAndLine) {
  std::ofstream(dir_ + "/bad.csv") << kPersonsHeader << "\n"
                                   << "33080019900101123X,2025,330800,1990-13-01,ADULT,0,NONE,"
                                      ",1,0,0,ACTIVE,,,,,0,0,,\n";
  std::ofstream(dir_ + "/i.csv") << kInstitutionsHeader << "\n";
  std::ostringstream out, err;
  EXPECT_EQ(snapshot_tool::Run({"load", "--persons", dir_ + "/bad.csv", "--institutions",
                                dir_ + "/i.csv", "--key-file", dir_ + "/key", "--redis", address_},
                               out, err),
            1);
  EXPECT_NE(err.str().find("SNAPSHOT_INPUT_INVALID"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("bad.csv:2: column birth_date"), std::string::npos) << err.str();
  EXPECT_EQ(err.str().find("33080019900101123"), std::string::npos);  // never echoed
  EXPECT_EQ(snapshot_tool::Run({"frobnicate"}, out, err), 2);
}

// A persons line of 33080019900101123X with `presenters` in the last column.
std::string LineWithPresenters(const std::string& presenters) {
  return "33080019900101123X,2025,330800,1990-01-01,ADULT,0,NONE,2025-07-01,0,0,0,ACTIVE,,,,,0,"
         "0,," +
         presenters;
}

// Valid ID numbers (GB 11643 check character) distinct from the person's.
std::string ValidId(int n) {
  std::string first17 = "3308002000010" + std::to_string(1000 + n);  // 13 + 4 digits
  return first17 + cache::IdNumberCheckCharacter(first17);
}

TEST(PersonLine, FamilyPresenterIdsAreValidatedAndNamed) {
  absl::StatusOr<PersonRow> none = ParsePersonLine(LineWithPresenters(""));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->family_presenter_ids.empty());
  absl::StatusOr<PersonRow> two =
      ParsePersonLine(LineWithPresenters(ValidId(2) + ";" + ValidId(1)));
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->family_presenter_ids, (std::vector<std::string>{ValidId(2), ValidId(1)}));
  EXPECT_TRUE(two->enrollment.family_presenter_keys.empty());  // keyed by the loader

  std::string wrong_check = ValidId(3);
  wrong_check[17] = wrong_check[17] == '0' ? '1' : '0';
  std::string seventeen;
  for (int n = 0; n < 17; ++n) seventeen += (n ? ";" : "") + ValidId(n);
  struct Case {
    std::string name, column, want;
  };
  std::vector<Case> cases = {
      {"wrong check character", ValidId(1) + ";" + wrong_check,
       "ID number 2 is not valid (ID_NUMBER_CHECK_DIGIT_MISMATCH)"},
      {"not an ID number", "12345", "ID number 1 is not valid (ID_NUMBER_INVALID)"},
      {"empty entry", ValidId(1) + ";", "ID number 2 is not valid"},
      {"the person's own", ValidId(1) + ";33080019900101123X", "ID number 2 is the person's own"},
      {"the person's own, lowercase x", "33080019900101123x", "ID number 1 is the person's own"},
      {"repeated", ValidId(1) + ";" + ValidId(2) + ";" + ValidId(1),
       "ID number 3 repeats ID number 1"},
      {"17 presenters", seventeen, "17 ID numbers, at most 16"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<PersonRow> row = ParsePersonLine(LineWithPresenters(c.column));
    if (row.ok()) {
      ADD_FAILURE() << c.name << ": accepted";
      continue;
    }
    EXPECT_EQ(engine::ReasonOf(row.status()), reason::kSnapshotInputInvalid) << c.name;
    EXPECT_EQ(engine::FieldOf(row.status()), "family_presenter_ids") << c.name;
    std::string message(row.status().message());
    EXPECT_NE(message.find("column family_presenter_ids: " + c.want), std::string::npos)
        << c.name << ": " << message;
    EXPECT_EQ(message.find("3308002000"), std::string::npos) << c.name << ": echoes an ID number";
  }
  // 19 columns are the older form, read only when asked for.
  std::string old_line = LineWithPresenters("");
  old_line.pop_back();
  EXPECT_FALSE(ParsePersonLine(old_line).ok());
  EXPECT_TRUE(ParsePersonLine(old_line, /*with_presenter_ids=*/false).ok());
  EXPECT_FALSE(ParsePersonLine(LineWithPresenters(""), /*with_presenter_ids=*/false).ok());
}

TEST_F(SnapshotToolTest, PresenterRefusalsNameFileLineAndColumn) {
  std::string wrong_check = ValidId(3);
  wrong_check[17] = wrong_check[17] == '0' ? '1' : '0';
  std::ofstream(dir_ + "/p.csv") << kPersonsHeader << "\n"
                                 << LineWithPresenters(ValidId(1)) << "\n"
                                 << LineWithPresenters(wrong_check) << "\n";
  std::ofstream(dir_ + "/i.csv") << kInstitutionsHeader << "\n";
  std::ostringstream out, err;
  EXPECT_EQ(snapshot_tool::Run({"load", "--persons", dir_ + "/p.csv", "--institutions",
                                dir_ + "/i.csv", "--key-file", dir_ + "/key", "--redis", address_},
                               out, err),
            1);
  EXPECT_NE(err.str().find("p.csv:3: column family_presenter_ids: ID number 1 is not valid "
                           "(ID_NUMBER_CHECK_DIGIT_MISMATCH)"),
            std::string::npos)
      << err.str();
  EXPECT_EQ(err.str().find(wrong_check.substr(0, 17)), std::string::npos);
}

TEST_F(SnapshotToolTest, CsvsWithTheOlderHeaderStillLoad) {
  std::string old_header(kPersonsHeaderWithoutPresenters);
  EXPECT_EQ(old_header.substr(old_header.rfind(',') + 1), "voucher_revoked_at_unix");
  std::string old_line = LineWithPresenters("");
  old_line.pop_back();  // 19 columns
  std::ofstream(dir_ + "/old.csv") << old_header << "\n" << old_line << "\n";
  std::ofstream(dir_ + "/i.csv") << kInstitutionsHeader << "\n";
  ASSERT_EQ(Run({"load", "--persons", dir_ + "/old.csv", "--institutions", dir_ + "/i.csv",
                 "--key-file", dir_ + "/key", "--redis", address_}), 0);
  EXPECT_NE(out_.str().find("loaded 1 persons"), std::string::npos) << out_.str();
  ASSERT_EQ(Run({"show", "--id-number", "33080019900101123X", "--key-file", dir_ + "/key",
                 "--redis", address_}), 0);
  EXPECT_NE(out_.str().find("family_presenter_keys: (none)"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("paid_date: 2025-07-01"), std::string::npos) << out_.str();
  // A line of the other form is refused with its line.
  std::ofstream(dir_ + "/mixed.csv") << old_header << "\n" << LineWithPresenters("") << "\n";
  std::ostringstream out, err;
  EXPECT_EQ(snapshot_tool::Run({"delta", "upsert", "--persons", dir_ + "/mixed.csv", "--key-file",
                                dir_ + "/key", "--redis", address_},
                               out, err),
            1);
  EXPECT_NE(err.str().find("mixed.csv:2: column (row): expected 19 columns, found 20"),
            std::string::npos)
      << err.str();
}

}  // namespace
}  // namespace medsettle::snapshot_tool
