// The enrollment snapshot store (cache/snapshot_store.h) against a real
// redis-server of the test's own: load and flip, reads pinned to a version
// while another loads, the count check that refuses a flip, drop, and
// deltas visible to the next read and announced on snap:deltas.
#include "cache/snapshot_store.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cache/connection_pool.h"
#include "cache/enrollment_codec.h"
#include "cache/redis_client.h"
#include "engine/status.h"
#include "engine/text.h"
#include "engine/types.h"
#include "tests/support/redis_server.h"

namespace medsettle::cache {
namespace {

using engine::Date;
using engine::ReasonOf;
using medsettle::testing::RedisServerTest;

// A valid, distinct person key per n (64 lowercase hex).
std::string KeyOf(int n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string key(64, '0');
  uint64_t x = static_cast<uint64_t>(n) * 0x9e3779b97f4a7c15ull + 1;
  for (int k = 0; k < 64; ++k) {
    key[static_cast<size_t>(k)] = kHex[(x >> ((k % 16) * 4)) & 15];
    if (k % 16 == 15) x = x * 6364136223846793005ull + 1442695040888963407ull;
  }
  return key;
}

engine::Enrollment Person(int n, int32_t year = 2025) {
  engine::Enrollment e;
  e.person_key = KeyOf(n);
  e.year = year;
  e.region_code = n % 2 ? 330800 : 500231;
  e.tier = n % 2 ? 0 : 1;
  e.birth_date = Date::FromYmd(1950 + n % 50, 1 + n % 12, 1 + n % 28);
  e.category = engine::Category::kAdult;
  e.assistance = engine::Assistance::kNone;
  e.status = engine::EnrollmentStatus::kActive;
  e.paid_date = Date::FromYmd(year - 1, 10, 1);
  e.concentrated = true;
  if (n % 7 == 0) e.chronic_conditions = {"HYPERTENSION"};
  if (n % 3 == 1) {  // two family members may present for every third person
    e.family_presenter_keys = {KeyOf(n + 1), KeyOf(n + 2)};
    std::sort(e.family_presenter_keys.begin(), e.family_presenter_keys.end());
  }
  return e;
}

std::vector<engine::Enrollment> Population(int count, int32_t year) {
  std::vector<engine::Enrollment> all;
  for (int n = 0; n < count; ++n) all.push_back(Person(n, year));
  return all;
}

std::vector<engine::Institution> Institutions() {
  engine::Institution h;
  h.institution_id = "H3308000001";
  h.name = "Quzhou hospital";
  h.region_code = 330800;
  h.kind = engine::InstitutionKind::kHospital;
  h.level = 3;
  engine::Institution p = h;
  p.institution_id = "P3308000002";
  p.kind = engine::InstitutionKind::kPharmacy;
  p.level = 1;
  return {h, p};
}

class SnapshotStoreTest : public RedisServerTest {
 protected:
  void SetUp() override {
    RedisServerTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    PoolOptions options;
    options.redis = {.host = redis().host(), .port = redis().port(),
                     .connect_timeout_ms = 1000, .command_timeout_ms = 5000};
    options.size = 2;
    options.acquire_timeout_ms = 1000;
    pool_ = std::make_unique<ConnectionPool>(options);
    store_ = std::make_unique<SnapshotStore>(
        *pool_, SnapshotStoreOptions{.now_unix = [this] { return now_unix_; }});
  }

  // Begins, writes `persons` of `year` and the institutions, commits.
  std::string Load(int persons, int32_t year) {
    absl::StatusOr<std::string> v = store_->BeginLoad();
    EXPECT_TRUE(v.ok()) << v.status();
    if (!v.ok()) return "";
    std::vector<engine::Enrollment> all = Population(persons, year);
    absl::StatusOr<int64_t> added = store_->PutPersons(*v, all);
    EXPECT_TRUE(added.ok()) << added.status();
    if (added.ok()) {
      EXPECT_EQ(*added, persons);
    }
    absl::StatusOr<int64_t> inst = store_->PutInstitutions(*v, Institutions());
    EXPECT_TRUE(inst.ok()) << inst.status();
    absl::Status committed = store_->Commit(*v, {.persons = persons, .institutions = 2}, "test");
    EXPECT_TRUE(committed.ok()) << committed;
    return *v;
  }

  std::optional<engine::Enrollment> Get(const std::string& version, int n) {
    absl::StatusOr<std::optional<engine::Enrollment>> e = store_->GetEnrollment(version, KeyOf(n));
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *e : std::nullopt;
  }

  std::string Current() {
    absl::StatusOr<std::optional<std::string>> c = store_->CurrentVersion();
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? c->value_or("") : "";
  }

  int64_t DbSize() {
    RedisResult r = pool_->Command({"DBSIZE"});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->integer : -1;
  }

  int64_t now_unix_ = 1'763'929'800;  // 2025-11-23T20:30:00Z
  std::unique_ptr<ConnectionPool> pool_;
  std::unique_ptr<SnapshotStore> store_;
};

TEST_F(SnapshotStoreTest, LoadFlipsAndReadsBackEveryRecordWithItsKey) {
  EXPECT_EQ(Current(), "");
  std::string v = Load(3000, 2025);
  EXPECT_EQ(v, "20251123T203000-1");
  EXPECT_EQ(Current(), v);
  for (int n : {0, 1, 7, 1234, 2999}) {
    std::optional<engine::Enrollment> e = Get(v, n);
    if (!e.has_value()) {
      ADD_FAILURE() << "person " << n << " missing";
      continue;
    }
    EXPECT_EQ(e->person_key, KeyOf(n));
    EXPECT_EQ(e->birth_date, Person(n).birth_date);
    EXPECT_EQ(e->chronic_conditions, Person(n).chronic_conditions);
    EXPECT_EQ(e->region_code, Person(n).region_code);
    EXPECT_EQ(e->family_presenter_keys, Person(n).family_presenter_keys) << "person " << n;
  }
  EXPECT_EQ(Person(1234).family_presenter_keys.size(), 2u);
  EXPECT_FALSE(Get(v, 3000).has_value());  // never loaded
  absl::StatusOr<std::optional<engine::Institution>> h =
      store_->GetInstitution(v, "H3308000001");
  if (!h.ok() || !h->has_value()) {
    ADD_FAILURE() << "institution missing";
  } else {
    EXPECT_EQ((*h)->institution_id, "H3308000001");
    EXPECT_EQ((*h)->level, 3);
  }
  absl::StatusOr<std::optional<engine::Institution>> none = store_->GetInstitution(v, "X1");
  if (none.ok()) {
    EXPECT_FALSE(none->has_value());
  }
  // The raw bytes of a stored field are the key's hex characters 4..31.
  RedisResult raw = pool_->Command({"HLEN", SnapshotBucketKey(v, KeyOf(0).substr(0, 2),
                                                              KeyOf(0).substr(2, 2))});
  if (raw.ok()) {
    EXPECT_GE(raw->integer, 1);
  }
  absl::StatusOr<SnapshotStatus> status = store_->Status();
  if (!status.ok()) {
    ADD_FAILURE() << status.status();
  } else {
    EXPECT_EQ(status->current, v);
    if (status->versions.size() == 1) {
      EXPECT_EQ(status->versions[0].state, "committed");
      EXPECT_EQ(status->versions[0].counts.persons, 3000);
      EXPECT_EQ(status->versions[0].counts.institutions, 2);
      EXPECT_EQ(status->versions[0].source, "test");
    } else {
      ADD_FAILURE() << status->versions.size() << " versions";
    }
  }
}

TEST_F(SnapshotStoreTest, ASecondLoadIsInvisibleUntilItsFlip) {
  std::string first = Load(500, 2024);
  absl::StatusOr<std::string> second = store_->BeginLoad();
  if (!second.ok()) {
    ADD_FAILURE() << second.status();
    return;
  }
  EXPECT_NE(*second, first);
  std::vector<engine::Enrollment> next = Population(600, 2025);
  EXPECT_TRUE(store_->PutPersons(*second, next).ok());
  EXPECT_TRUE(store_->PutInstitutions(*second, Institutions()).ok());
  // Mid-load: current and its records are still the first version's.
  EXPECT_EQ(Current(), first);
  std::optional<engine::Enrollment> e = Get(Current(), 10);
  if (e.has_value()) {
    EXPECT_EQ(e->year, 2024);
  }
  EXPECT_FALSE(Get(Current(), 550).has_value());
  absl::Status committed = store_->Commit(*second, {.persons = 600, .institutions = 2}, "test");
  EXPECT_TRUE(committed.ok()) << committed;
  EXPECT_EQ(Current(), *second);
  e = Get(Current(), 10);
  if (e.has_value()) {
    EXPECT_EQ(e->year, 2025);
  }
  EXPECT_TRUE(Get(Current(), 550).has_value());
  // A request still pinned to the first version reads it unchanged.
  e = Get(first, 10);
  if (e.has_value()) {
    EXPECT_EQ(e->year, 2024);
  }
}

TEST_F(SnapshotStoreTest, CountMismatchRefusesTheFlip) {
  std::string first = Load(100, 2024);
  absl::StatusOr<std::string> v = store_->BeginLoad();
  if (!v.ok()) return;
  std::vector<engine::Enrollment> persons = Population(200, 2025);
  persons.push_back(persons[5]);  // a duplicate ID: 201 rows, 200 records
  EXPECT_TRUE(store_->PutPersons(*v, persons).ok());
  absl::Status s = store_->Commit(*v, {.persons = 201, .institutions = 0}, "test");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(s), reason::kSnapshotCountMismatch) << s;
  EXPECT_EQ(Current(), first);
  absl::StatusOr<SnapshotStatus> status = store_->Status();
  if (status.ok() && status->versions.size() == 2) {
    EXPECT_EQ(status->versions[1].state, "loading");
  }
  s = store_->Commit("20990101T000000-99", {}, "test");
  EXPECT_EQ(ReasonOf(s), reason::kSnapshotNotFound) << s;
}

TEST_F(SnapshotStoreTest, DropRefusesTheCurrentAndDeletesEveryKeyOfAnOld) {
  const int64_t empty = DbSize();
  std::string first = Load(1000, 2024);
  const int64_t with_one = DbSize();
  std::string second = Load(1000, 2025);
  absl::Status s = store_->Drop(second);
  EXPECT_EQ(ReasonOf(s), reason::kSnapshotIsCurrent) << s;
  EXPECT_EQ(store_->Drop("nope").code(), absl::StatusCode::kNotFound);
  s = store_->Drop(first);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(DbSize(), with_one);  // exactly the second version's keys remain
  EXPECT_FALSE(Get(first, 1).has_value());
  EXPECT_TRUE(Get(second, 1).has_value());
  absl::StatusOr<SnapshotStatus> status = store_->Status();
  if (status.ok()) {
    EXPECT_EQ(status->versions.size(), 1u);
  }
  EXPECT_LT(empty, with_one);
}

TEST_F(SnapshotStoreTest, DeltasChangeTheCurrentVersionAndAreStreamed) {
  std::string v = Load(50, 2025);
  // Suspension.
  Delta suspend{.kind = DeltaKind::kSuspend};
  suspend.enrollment.person_key = KeyOf(3);
  absl::StatusOr<DeltaApplied> applied = store_->ApplyDelta(suspend);
  if (!applied.ok()) {
    ADD_FAILURE() << applied.status();
    return;
  }
  EXPECT_EQ(applied->version, v);
  std::optional<engine::Enrollment> e = Get(v, 3);
  if (e.has_value()) {
    EXPECT_EQ(e->status, engine::EnrollmentStatus::kSuspended);
    EXPECT_EQ(e->birth_date, Person(3).birth_date);  // the rest unchanged
  }
  // Lost e-voucher.
  Delta revoke{.kind = DeltaKind::kRevokeVoucher, .revoked_at_unix = 1'760'000'000};
  revoke.enrollment.person_key = KeyOf(4);
  EXPECT_TRUE(store_->ApplyDelta(revoke).ok());
  e = Get(v, 4);
  if (e.has_value()) {
    EXPECT_EQ(e->voucher_revoked_at_unix, 1'760'000'000);
    EXPECT_EQ(e->status, engine::EnrollmentStatus::kActive);
  }
  // A new mid-year enrollee.
  Delta upsert{.kind = DeltaKind::kUpsertPerson, .enrollment = Person(777)};
  upsert.enrollment.paid_date = Date::FromYmd(2025, 6, 1);
  EXPECT_FALSE(Get(v, 777).has_value());
  EXPECT_TRUE(store_->ApplyDelta(upsert).ok());
  e = Get(v, 777);
  if (e.has_value()) {
    EXPECT_EQ(e->paid_date, Date::FromYmd(2025, 6, 1));
  } else {
    ADD_FAILURE() << "upserted person missing";
  }
  // Unknown person, bad key.
  Delta unknown{.kind = DeltaKind::kSuspend};
  unknown.enrollment.person_key = KeyOf(9999);
  EXPECT_EQ(ReasonOf(store_->ApplyDelta(unknown).status()), reason::kSnapshotPersonNotFound);
  unknown.enrollment.person_key = "ABC";
  EXPECT_EQ(ReasonOf(store_->ApplyDelta(unknown).status()), reason::kPersonKeyInvalid);
  // The stream names each applied delta in order.
  RedisResult stream = pool_->Command({"XRANGE", kSnapDeltasKey, "-", "+"});
  if (!stream.ok()) {
    ADD_FAILURE() << stream.status();
    return;
  }
  ASSERT_EQ(stream->elements.size(), 3u);
  std::vector<std::string> kinds;
  for (const RedisReply& entry : stream->elements) {
    const std::vector<RedisReply>& fields = entry.elements[1].elements;
    kinds.push_back(fields[1].str);
    EXPECT_EQ(fields[3].str, v);
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"SUSPEND", "REVOKE_VOUCHER", "UPSERT_PERSON"}));
  // Repeating a suspension is harmless.
  EXPECT_TRUE(store_->ApplyDelta(suspend).ok());
}

TEST_F(SnapshotStoreTest, InstitutionDeltasChangeTheRegistryRaiseItsRevisionAndAreStreamed) {
  std::string v = Load(5, 2025);
  auto registry = [&](const std::string& id) -> std::optional<engine::Institution> {
    absl::StatusOr<std::optional<engine::Institution>> i = store_->GetInstitution(v, id);
    EXPECT_TRUE(i.ok()) << i.status();
    return i.ok() ? *i : std::nullopt;
  };
  auto revision = [&] {
    absl::StatusOr<int64_t> r = store_->RegistryRevision(v);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : -1;
  };
  EXPECT_EQ(revision(), 0);

  // Suspension, then reinstatement: the flag only, the rest unchanged.
  InstitutionDelta suspend{.kind = InstitutionDeltaKind::kSuspendInstitution};
  suspend.institution.institution_id = "H3308000001";
  absl::StatusOr<DeltaApplied> applied = store_->ApplyInstitutionDelta(suspend);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->version, v);
  std::optional<engine::Institution> h = registry("H3308000001");
  ASSERT_TRUE(h.has_value());
  EXPECT_TRUE(h->suspended);
  EXPECT_EQ(h->level, 3);
  EXPECT_EQ(h->name, "Quzhou hospital");
  std::optional<engine::Institution> untouched = registry("P3308000002");
  ASSERT_TRUE(untouched.has_value());
  EXPECT_FALSE(untouched->suspended);
  EXPECT_EQ(revision(), 1);

  // An upsert of the suspended institution (a correction made from a CSV
  // row written before the suspension) changes the record but keeps the
  // suspension: only a reinstatement lifts it.
  engine::Institution corrected = Institutions()[0];
  corrected.name = "Quzhou hospital (renamed)";
  ASSERT_FALSE(corrected.suspended);
  absl::StatusOr<DeltaApplied> kept = store_->ApplyInstitutionDelta(
      {.kind = InstitutionDeltaKind::kUpsertInstitution, .institution = corrected});
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_TRUE(kept->suspension_kept);
  h = registry("H3308000001");
  ASSERT_TRUE(h.has_value());
  EXPECT_TRUE(h->suspended);
  EXPECT_EQ(h->name, "Quzhou hospital (renamed)");
  EXPECT_EQ(revision(), 2);
  // Repeated: harmless, still raises the revision (a re-run reaches gateways).
  ASSERT_TRUE(store_->ApplyInstitutionDelta(suspend).ok());
  EXPECT_EQ(revision(), 3);
  InstitutionDelta reinstate{.kind = InstitutionDeltaKind::kReinstateInstitution};
  reinstate.institution.institution_id = "H3308000001";
  ASSERT_TRUE(store_->ApplyInstitutionDelta(reinstate).ok());
  h = registry("H3308000001");
  ASSERT_TRUE(h.has_value());
  EXPECT_FALSE(h->suspended);
  EXPECT_EQ(h->name, "Quzhou hospital (renamed)");
  EXPECT_EQ(revision(), 4);

  // A newly contracted pharmacy: the whole record.
  engine::Institution added = Institutions()[1];
  added.institution_id = "P3308000099";
  added.name = "New pharmacy";
  EXPECT_FALSE(registry("P3308000099").has_value());
  ASSERT_TRUE(store_->ApplyInstitutionDelta(
                        {.kind = InstitutionDeltaKind::kUpsertInstitution, .institution = added})
                  .ok());
  std::optional<engine::Institution> p = registry("P3308000099");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->name, "New pharmacy");
  EXPECT_EQ(p->kind, engine::InstitutionKind::kPharmacy);
  EXPECT_EQ(revision(), 5);

  // Refusals change nothing.
  const int64_t keys = DbSize();
  InstitutionDelta unknown{.kind = InstitutionDeltaKind::kSuspendInstitution};
  unknown.institution.institution_id = "H9999999999";
  absl::Status s = store_->ApplyInstitutionDelta(unknown).status();
  EXPECT_EQ(ReasonOf(s), reason::kSnapshotInstitutionNotFound);
  EXPECT_EQ(engine::FieldOf(s), "institution_id");
  unknown.institution.institution_id = "";
  EXPECT_EQ(ReasonOf(store_->ApplyInstitutionDelta(unknown).status()),
            engine::reason::kInstitutionInvalid);
  EXPECT_EQ(revision(), 5);
  EXPECT_EQ(DbSize(), keys);

  // The stream names each applied delta in order, with the institution.
  RedisResult stream = pool_->Command({"XRANGE", kSnapDeltasKey, "-", "+"});
  ASSERT_TRUE(stream.ok()) << stream.status();
  std::vector<std::string> kinds;
  for (const RedisReply& entry : stream->elements) {
    const std::vector<RedisReply>& fields = entry.elements[1].elements;
    ASSERT_GE(fields.size(), 6u);
    kinds.push_back(fields[1].str);
    EXPECT_EQ(fields[3].str, v);
    EXPECT_EQ(fields[4].str, "institution_id");
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"SUSPEND_INSTITUTION", "UPSERT_INSTITUTION",
                                             "SUSPEND_INSTITUTION", "REINSTATE_INSTITUTION",
                                             "UPSERT_INSTITUTION"}));
  // A version without institution deltas is at revision 0.
  absl::StatusOr<int64_t> other = store_->RegistryRevision("no-such-version");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(*other, 0);
}

TEST_F(SnapshotStoreTest, PresenterDeltasBindAndUnbindAndAreStreamed) {
  std::string v = Load(20, 2025);
  const std::string person = KeyOf(2);  // no presenters yet (Person(2))
  auto presenters = [&] {
    std::optional<engine::Enrollment> e = Get(v, 2);
    EXPECT_TRUE(e.has_value());
    return e.has_value() ? e->family_presenter_keys : std::vector<std::string>{"(missing)"};
  };
  auto apply = [&](DeltaKind kind, const std::string& presenter) {
    Delta d{.kind = kind, .presenter_key = presenter};
    d.enrollment.person_key = person;
    return store_->ApplyDelta(d).status();
  };
  const std::string a = std::min(KeyOf(100), KeyOf(101)), b = std::max(KeyOf(100), KeyOf(101));
  ASSERT_TRUE(presenters().empty());
  EXPECT_TRUE(apply(DeltaKind::kBindPresenter, b).ok());
  EXPECT_EQ(presenters(), (std::vector<std::string>{b}));
  EXPECT_TRUE(apply(DeltaKind::kBindPresenter, a).ok());
  EXPECT_EQ(presenters(), (std::vector<std::string>{a, b}));  // kept sorted
  EXPECT_TRUE(apply(DeltaKind::kBindPresenter, b).ok());      // repeated: harmless
  EXPECT_EQ(presenters(), (std::vector<std::string>{a, b}));
  EXPECT_TRUE(apply(DeltaKind::kUnbindPresenter, b).ok());
  EXPECT_EQ(presenters(), (std::vector<std::string>{a}));
  EXPECT_TRUE(apply(DeltaKind::kUnbindPresenter, b).ok());  // not bound: harmless
  EXPECT_EQ(presenters(), (std::vector<std::string>{a}));
  std::optional<engine::Enrollment> e = Get(v, 2);
  if (e.has_value()) {
    EXPECT_EQ(e->birth_date, Person(2).birth_date);  // the rest unchanged
    EXPECT_EQ(e->status, engine::EnrollmentStatus::kActive);
  }

  // Refusals: oneself, a malformed presenter key, an unknown person.
  absl::Status self = apply(DeltaKind::kBindPresenter, person);
  EXPECT_EQ(self.code(), absl::StatusCode::kInvalidArgument) << self;
  EXPECT_EQ(ReasonOf(self), reason::kFamilyPresentersInvalid) << self;
  EXPECT_EQ(engine::FieldOf(self), "presenter_key");
  for (DeltaKind kind : {DeltaKind::kBindPresenter, DeltaKind::kUnbindPresenter}) {
    for (const std::string& bad : {std::string(), std::string(64, 'A'), KeyOf(1).substr(1)}) {
      absl::Status s = apply(kind, bad);
      EXPECT_EQ(ReasonOf(s), reason::kPersonKeyInvalid) << s;
      EXPECT_EQ(engine::FieldOf(s), "presenter_key") << s;
    }
  }
  Delta stranger{.kind = DeltaKind::kBindPresenter, .presenter_key = a};
  stranger.enrollment.person_key = KeyOf(9999);
  EXPECT_EQ(ReasonOf(store_->ApplyDelta(stranger).status()), reason::kSnapshotPersonNotFound);
  EXPECT_EQ(presenters(), (std::vector<std::string>{a}));

  // At most kMaxFamilyPresenters; a bound one may still be bound again.
  for (int n = 200; presenters().size() < kMaxFamilyPresenters; ++n) {
    ASSERT_TRUE(apply(DeltaKind::kBindPresenter, KeyOf(n)).ok());
  }
  absl::Status full = apply(DeltaKind::kBindPresenter, KeyOf(999));
  EXPECT_EQ(full.code(), absl::StatusCode::kFailedPrecondition) << full;
  EXPECT_EQ(ReasonOf(full), reason::kFamilyPresentersFull) << full;
  EXPECT_TRUE(apply(DeltaKind::kBindPresenter, a).ok());
  EXPECT_TRUE(apply(DeltaKind::kUnbindPresenter, a).ok());
  EXPECT_TRUE(apply(DeltaKind::kBindPresenter, KeyOf(999)).ok());
  EXPECT_EQ(presenters().size(), kMaxFamilyPresenters);

  // The stream carries the presenter of each presenter delta.
  RedisResult stream = pool_->Command({"XRANGE", kSnapDeltasKey, "-", "+"});
  ASSERT_TRUE(stream.ok()) << stream.status();
  ASSERT_GE(stream->elements.size(), 5u);
  std::vector<std::string> first;
  for (size_t k = 0; k < 5; ++k) {
    const std::vector<RedisReply>& fields = stream->elements[k].elements[1].elements;
    ASSERT_EQ(fields.size(), 10u);
    EXPECT_EQ(fields[4].str, "person_key");
    EXPECT_EQ(fields[5].str, person);
    EXPECT_EQ(fields[8].str, "presenter_key");
    const std::string& presenter = fields[9].str;
    first.push_back(fields[1].str + " " + (presenter == a ? "a" : presenter == b ? "b" : "?"));
  }
  EXPECT_EQ(first, (std::vector<std::string>{"BIND_PRESENTER b", "BIND_PRESENTER a",
                                             "BIND_PRESENTER b", "UNBIND_PRESENTER b",
                                             "UNBIND_PRESENTER b"}));
}

TEST_F(SnapshotStoreTest, PresenterListsThatCannotBeStoredAreRefusedBeforeWriting) {
  std::string v = Load(5, 2025);
  engine::Enrollment unsorted = Person(700);
  unsorted.family_presenter_keys = {KeyOf(1), KeyOf(2)};
  std::sort(unsorted.family_presenter_keys.rbegin(), unsorted.family_presenter_keys.rend());
  engine::Enrollment self = Person(701);
  self.family_presenter_keys = {KeyOf(701)};
  for (const engine::Enrollment& bad : {unsorted, self}) {
    Delta upsert{.kind = DeltaKind::kUpsertPerson, .enrollment = bad};
    absl::Status s = store_->ApplyDelta(upsert).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_EQ(ReasonOf(s), reason::kFamilyPresentersInvalid) << s;
  }
  EXPECT_FALSE(Get(v, 700).has_value());
  EXPECT_FALSE(Get(v, 701).has_value());
  absl::StatusOr<std::string> next = store_->BeginLoad();
  ASSERT_TRUE(next.ok()) << next.status();
  std::vector<engine::Enrollment> persons = {Person(0), Person(1), unsorted};
  absl::StatusOr<int64_t> put = store_->PutPersons(*next, persons);
  EXPECT_EQ(ReasonOf(put.status()), reason::kFamilyPresentersInvalid) << put.status();
  EXPECT_FALSE(Get(*next, 0).has_value());  // nothing written
}

TEST_F(SnapshotStoreTest, NoCurrentVersionAndCorruptRecordsAreStatuses) {
  Delta suspend{.kind = DeltaKind::kSuspend};
  suspend.enrollment.person_key = KeyOf(1);
  absl::Status s = store_->ApplyDelta(suspend).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReasonOf(s), reason::kSnapshotNotFound);
  std::string v = Load(10, 2025);
  std::string key = KeyOf(1);
  // A damaged record beside person 1's, in the same bucket: reading it is
  // INTERNAL, never a wrong person; person 1 still reads.
  RedisResult overwrite = pool_->Command({"HSET", SnapshotBucketKey(v, key.substr(0, 2),
                                                                    key.substr(2, 2)),
                                          std::string(14, '\0'), "x"});
  EXPECT_TRUE(overwrite.ok());
  std::string damaged_key = key.substr(0, 4) + std::string(60, '0');
  absl::StatusOr<std::optional<engine::Enrollment>> e = store_->GetEnrollment(v, damaged_key);
  EXPECT_EQ(ReasonOf(e.status()), reason::kSnapshotRecordCorrupt) << e.status();
  EXPECT_TRUE(Get(v, 1).has_value());
  EXPECT_EQ(ReasonOf(store_->GetEnrollment(v, "short").status()), reason::kPersonKeyInvalid);
}

}  // namespace
}  // namespace medsettle::cache
