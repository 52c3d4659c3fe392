// The ledger against a real PostgreSQL (label postgres): migrations (twice,
// concurrently, newer, modified, older), Ship (settlements, reversals,
// cursors, replays, a lost COMMIT, partitions across months, missing rule
// files, a constraint violation, conflicts, orphans), the server killed
// with kill -9 and restarted, the shipper lock, and the readers on a small
// hand-built data set with the arithmetic beside each figure.
#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/status.h"
#include "engine/text.h"
#include "ledger/ledger_store.h"
#include "ledger/migrations.h"
#include "ledger/pg_connection.h"
#include "ledger/reasons.h"
#include "ledger/record_json.h"
#include "proto/contract/ledger_record.h"
#include "tests/support/postgres_server.h"

namespace medsettle::ledger {
namespace {

using engine::Cat;
using engine::ReasonOf;
using ::testing::HasSubstr;

constexpr std::string_view kPolicyContent = "policy: quzhou-2025 (ledger_store_test)\n";
constexpr std::string_view kPolicySha =
    "872b96a9564436764da5e434483e409aa0308c1c7347167a974e0f87c1bcb14a";
constexpr std::string_view kCatalogContent = "code,name,class\nX001,test item,A\n";
constexpr std::string_view kCatalogSha =
    "8a62df38f1bd5c00a1fb1d9aabfe3dcf7377b0fbf198b05c6e4c60dc56c43893";

std::string Hex(uint64_t value, int digits) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0 && value != 0; --i, value >>= 4) out[static_cast<size_t>(i)] = kDigits[value & 15];
  return out;
}

std::string PersonKey(std::string_view tag, int person) { return Cat(tag, Hex(static_cast<uint64_t>(person), 62)); }

// What a hand-built settlement is: who, when, where, and the split.
struct Spec {
  std::string tag = "3f";
  int person = 1;
  int n = 1;  // makes the ids and request id unique
  std::string date = "2025-03-04";
  std::string institution = "H001";
  int64_t base_cents = 6000;
  int64_t critical_illness_cents = 0;
  int64_t supplementary_cents = 0;
  int64_t patient_cents = 4000;
  v1::VisitType visit = v1::VISIT_TYPE_GENERAL_OUTPATIENT;
};

int64_t SettledAtMs(const Spec& s) { return 1'741'060'000'000 + int64_t{s.n} * 1000; }

// A LedgerRecord as the gateway would build it, with amounts that add up
// (total = base + critical illness + supplementary + patient, all in
// scope) and the accumulator delta that goes with them.
v1::LedgerRecord MakeSettlement(const Spec& s) {
  const int64_t total = s.base_cents + s.critical_illness_cents + s.supplementary_cents + s.patient_cents;
  const int32_t year = std::stoi(s.date.substr(0, 4));
  const std::string person = PersonKey(s.tag, s.person);
  const std::string id = Cat(s.tag, "-", Hex(static_cast<uint64_t>(SettledAtMs(s)), 12), "-",
                             Hex(static_cast<uint64_t>(s.n), 16));
  v1::LedgerRecord r;
  r.set_format(contract::kLedgerRecordFormat);
  r.set_settlement_id(id);
  r.set_institution_id(s.institution);
  r.set_request_id(Cat("REQ-", s.n));
  r.set_person_key(person);
  r.set_content_hash(std::string(64, 'c'));
  r.set_credential_kind("ID_CARD");
  r.set_settled_at_unix_ms(SettledAtMs(s));
  r.set_settlement_date(s.date);
  r.set_year(year);
  v1::SettleRequest* request = r.mutable_request();
  request->set_request_id(r.request_id());
  request->mutable_visit()->set_type(s.visit);
  request->mutable_visit()->set_service_date(s.date);
  v1::BillItem* item = request->add_items();
  item->set_line_no(1);
  item->set_code("X001");
  item->set_name("测试药品");
  item->set_quantity("1");
  item->set_unit_price_cents(total);
  item->set_amount_cents(total);
  r.mutable_enrollment()->set_person_key(person);
  r.mutable_enrollment()->set_year(year);
  r.mutable_enrollment()->set_region_code("330802");
  r.mutable_institution()->set_institution_id(s.institution);
  r.set_snapshot_version("snap-1");
  r.set_policy_id("quzhou-2025");
  r.set_policy_sha256(std::string(kPolicySha));
  r.set_catalog_sha256(std::string(kCatalogSha));
  v1::SettleResponse* response = r.mutable_response();
  response->set_settlement_id(id);
  response->set_status(v1::SETTLEMENT_STATUS_SETTLED);
  response->set_policy_id("quzhou-2025");
  response->set_request_id(r.request_id());
  response->set_institution_id(s.institution);
  response->set_person_key(person);
  response->set_visit_type(s.visit);
  response->set_settlement_date(s.date);
  v1::Amounts* a = response->mutable_amounts();
  a->set_total_cents(total);
  a->set_in_scope_cents(total);
  a->set_base_fund_cents(s.base_cents);
  a->set_critical_illness_cents(s.critical_illness_cents);
  a->set_supplementary_cents(s.supplementary_cents);
  a->set_patient_cents(s.patient_cents);
  v1::Accumulators* delta = response->mutable_accumulator_delta();
  delta->set_person_key(person);
  delta->set_year(year);
  v1::LedgerTotals* ledger = delta->add_ledgers();
  ledger->set_ledger(s.visit == v1::VISIT_TYPE_INPATIENT ? v1::LEDGER_INPATIENT
                                                         : v1::LEDGER_GENERAL_OUTPATIENT);
  ledger->set_in_scope_cents(total);
  ledger->set_fund_paid_cents(s.base_cents);
  ledger->set_visits(1);
  delta->mutable_critical_illness()->set_burden_cents(s.critical_illness_cents > 0 ? total : 0);
  delta->mutable_critical_illness()->set_paid_cents(s.critical_illness_cents);
  if (s.supplementary_cents > 0) {
    v1::SupplementaryTotals* supp = delta->add_supplementary();
    supp->set_responsibility(1);
    supp->set_base_cents(total);
    supp->set_paid_cents(s.supplementary_cents);
  }
  return r;
}

// Its reversal, as the gateway builds one: the settlement's amounts and
// delta given back.
v1::LedgerReversal MakeReversal(const v1::LedgerRecord& r, int n) {
  v1::LedgerReversal v;
  v.set_format(contract::kLedgerRecordFormat);
  v.set_settlement_id(r.settlement_id());
  v.set_institution_id(r.institution_id());
  v.set_request_id(Cat("REV-", n));
  v.set_reason("patient returned the medicine");
  v.set_reversed_at_unix_ms(r.settled_at_unix_ms() + 3'600'000);
  v.set_person_key(r.person_key());
  v.set_year(r.year());
  v.set_settlement_date(r.settlement_date());
  *v.mutable_amounts() = r.response().amounts();
  *v.mutable_delta() = r.response().accumulator_delta();
  v.set_settle_request_id(r.request_id());
  v.mutable_response()->set_reversal_id(Cat("rv-", r.settlement_id()));
  v.mutable_response()->set_settlement_id(r.settlement_id());
  v.mutable_response()->set_status(v1::SETTLEMENT_STATUS_REVERSED);
  *v.mutable_response()->mutable_amounts() = r.response().amounts();
  return v;
}

ShipEntry Entry(const v1::LedgerRecord& r, int64_t ms, int64_t seq = 0) {
  ShipEntry e;
  e.tag = r.settlement_id().substr(0, 2);
  e.position = {.ms = ms, .seq = seq};
  e.bytes = r.SerializeAsString();
  e.settlement = r;
  return e;
}

ShipEntry Entry(const v1::LedgerReversal& v, int64_t ms, int64_t seq = 0) {
  ShipEntry e;
  e.tag = v.settlement_id().substr(0, 2);
  e.position = {.ms = ms, .seq = seq};
  e.bytes = v.SerializeAsString();
  e.is_reversal = true;
  e.reversal = v;
  return e;
}

std::vector<RuleFile> Rules() {
  return {RuleFile{.sha256 = std::string(kPolicySha), .kind = "policy", .name = "quzhou-2025",
                   .content = std::string(kPolicyContent)},
          RuleFile{.sha256 = std::string(kCatalogSha), .kind = "catalog", .name = "catalog.csv",
                   .content = std::string(kCatalogContent)}};
}

class LedgerTestBase : public testing::PostgresServerTest {
 protected:
  std::unique_ptr<PgConnection> Connect(int statement_timeout_ms = 30000) {
    absl::StatusOr<std::unique_ptr<PgConnection>> c = PgConnection::Connect(
        PgOptions{.conninfo = postgres().conninfo(), .statement_timeout_ms = statement_timeout_ms});
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }
  // The test's own connection for checks, reconnected after a crash.
  PgConnection& Admin() {
    if (admin_ == nullptr || !admin_->Alive()) admin_ = Connect();
    return *admin_;
  }
  int64_t Count(std::string_view sql) {
    absl::StatusOr<PgResult> r = Admin().Exec(sql);
    EXPECT_TRUE(r.ok()) << r.status() << " in " << sql;
    return r.ok() ? r->int64(0, 0) : -1;
  }
  std::string Text(std::string_view sql) {
    absl::StatusOr<PgResult> r = Admin().Exec(sql);
    EXPECT_TRUE(r.ok()) << r.status() << " in " << sql;
    return r.ok() && r->rows() > 0 ? std::string(r->text(0, 0)) : "";
  }
  std::unique_ptr<LedgerStore> Open() {
    absl::StatusOr<std::unique_ptr<LedgerStore>> s =
        LedgerStore::Open(LedgerOptions{.conninfo = postgres().conninfo()});
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }

  std::unique_ptr<PgConnection> admin_;
};

// A migrated ledger with the rule files stored.
class LedgerStoreTest : public LedgerTestBase {
 protected:
  void SetUp() override {
    LedgerTestBase::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    absl::StatusOr<MigrateResult> m = Migrate(Admin());
    ASSERT_TRUE(m.ok()) << m.status();
    store_ = Open();
    ASSERT_NE(store_, nullptr);
    ASSERT_TRUE(store_->PutRuleFiles(Rules()).ok());
  }
  int64_t Settlements() { return Count("SELECT count(*) FROM ledger.settlements"); }
  int64_t Reversals() { return Count("SELECT count(*) FROM ledger.reversals"); }

  std::unique_ptr<LedgerStore> store_;
};

// ---- pure helpers -------------------------------------------------------------

TEST(PgText, ArrayLiterals) {
  EXPECT_EQ(pgtext::ArrayLiteral({"3f", "a0"}), "{3f,a0}");
  EXPECT_EQ(pgtext::ArrayLiteral({}), "{}");
}

TEST(EmbeddedMigrations, NumberedFromOneWithDigests) {
  const std::vector<Migration>& all = EmbeddedMigrations();
  ASSERT_FALSE(all.empty());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].version, static_cast<int>(i + 1));
    EXPECT_EQ(all[i].sha256.size(), 64u);
    EXPECT_FALSE(all[i].sql.empty());
  }
  EXPECT_EQ(all[0].name, "ledger");
  EXPECT_THAT(std::string(all[0].sql), HasSubstr("CREATE TABLE ledger.settlements"));
  EXPECT_EQ(LatestSchemaVersion(), static_cast<int>(all.size()));
}

// ---- the connection -------------------------------------------------------------

using PgConnectionTest = LedgerTestBase;

TEST_F(PgConnectionTest, ParametersResultsAndBytes) {
  std::unique_ptr<PgConnection> c = Connect();
  ASSERT_NE(c, nullptr);
  const std::string bytes("\x00\x01\xfe\xff", 4);
  absl::StatusOr<PgResult> r =
      c->Exec("SELECT $1::bigint + 1 AS n, $2::text AS t, $3::bytea AS b, NULL::text AS z",
              {int64_t{41}, "文本 with\ttab", PgParam::Bytes(bytes)});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rows(), 1);
  EXPECT_EQ(r->column("t"), 1);
  EXPECT_EQ(r->int64(0, r->column("n")), 42);
  EXPECT_EQ(r->text(0, 1), "文本 with\ttab");
  EXPECT_EQ(r->bytea(0, 2), bytes);
  EXPECT_TRUE(r->is_null(0, 3));
}

TEST_F(PgConnectionTest, CopyAndTransactions) {
  std::unique_ptr<PgConnection> c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->ExecScript("CREATE TABLE t (a int CHECK (a > 0), b text)").ok());
  {
    absl::StatusOr<PgTransaction> tx = PgTransaction::Open(*c);
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(c->BeginCopy("COPY t (a, b) FROM STDIN").ok());
    ASSERT_TRUE(c->PutCopyData("1\tone\n2\t").ok());
    ASSERT_TRUE(c->PutCopyData("t\\two\n3\t\\N\n").ok());
    absl::StatusOr<int64_t> rows = c->EndCopy();
    ASSERT_TRUE(rows.ok()) << rows.status();
    EXPECT_EQ(*rows, 3);
    // Not committed: the guard rolls back.
  }
  EXPECT_EQ(c->Exec("SELECT count(*) FROM t")->int64(0, 0), 0);
  // A failing row: the error names the constraint, the table and the line.
  ASSERT_TRUE(c->BeginCopy("COPY t (a, b) FROM STDIN").ok());
  ASSERT_TRUE(c->PutCopyData("1\tx\n-5\ty\n").ok());
  absl::StatusOr<int64_t> bad = c->EndCopy();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(bad.status()), reason::kLedgerConstraintViolated);
  EXPECT_EQ(c->last_error().sqlstate, "23514");
  EXPECT_EQ(c->last_error().constraint, "t_a_check");
  EXPECT_EQ(c->last_error().table, "t");
  EXPECT_THAT(c->last_error().context, HasSubstr("line 2"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("SQLSTATE 23514"));
  EXPECT_FALSE(c->broken());
  // A syntax error is LEDGER_ERROR (INTERNAL) with the server's text.
  absl::Status syntax = c->Exec("SELEC 1").status();
  EXPECT_EQ(syntax.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ReasonOf(syntax), reason::kLedgerError);
  EXPECT_THAT(std::string(syntax.message()), HasSubstr("42601"));
  EXPECT_TRUE(c->Exec("SELECT 1").ok());
}

// Binary COPY: every kind of field Ship sends, read back as text.
TEST_F(PgConnectionTest, BinaryCopyRoundTrips) {
  std::unique_ptr<PgConnection> c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->ExecScript("CREATE TABLE b (t text, y bytea, i integer, n bigint, d date, "
                            "ts timestamptz, j jsonb, z text)")
                  .ok());
  std::string data;
  pgcopy::AppendHeader(data);
  for (int row = 0; row < 2; ++row) {
    pgcopy::BeginRow(data, 8);
    pgcopy::AppendBytes(data, "文本\ttab\\");
    pgcopy::AppendBytes(data, std::string("\x00\xff\x10", 3));
    pgcopy::AppendInt4(data, -2025);
    pgcopy::AppendInt8(data, int64_t{1} << 60);
    pgcopy::AppendDate(data, engine::Date::Parse(row == 0 ? "2024-02-29" : "1999-12-31")->days());
    pgcopy::AppendTimestampMs(data, row == 0 ? 1'741'060'000'123 : -1);  // 2025-03-04T03:46:40.123Z
    const size_t field = pgcopy::BeginField(data);
    data.push_back('\x01');  // jsonb version
    data += R"({"b": "x\\y", "a": 1})";
    pgcopy::EndField(data, field);
    pgcopy::AppendNull(data);
  }
  pgcopy::AppendTrailer(data);
  ASSERT_TRUE(c->BeginCopy("COPY b FROM STDIN (FORMAT binary)").ok());
  ASSERT_TRUE(c->PutCopyData(data).ok());
  absl::StatusOr<int64_t> rows = c->EndCopy();
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, 2);
  absl::StatusOr<PgResult> r = c->Exec("SELECT t, y, i, n, d, ts, j, z IS NULL FROM b");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->text(0, 0), "文本\ttab\\");
  EXPECT_EQ(r->bytea(0, 1), std::string("\x00\xff\x10", 3));
  EXPECT_EQ(r->int64(0, 2), -2025);
  EXPECT_EQ(r->int64(0, 3), int64_t{1} << 60);
  EXPECT_EQ(r->text(0, 4), "2024-02-29");
  EXPECT_EQ(r->text(0, 5), "2025-03-04 03:46:40.123+00");  // date -u -d @1741060000
  EXPECT_EQ(r->text(0, 6), R"({"a": 1, "b": "x\\y"})");
  EXPECT_EQ(r->text(0, 7), "t");
  EXPECT_EQ(r->text(1, 4), "1999-12-31");
  EXPECT_EQ(r->text(1, 5), "1969-12-31 23:59:59.999+00");  // one millisecond before the epoch
}

TEST_F(PgConnectionTest, StatementTimeoutIsDeadlineExceeded) {
  std::unique_ptr<PgConnection> c = Connect(/*statement_timeout_ms=*/200);
  ASSERT_NE(c, nullptr);
  absl::Status s = c->Exec("SELECT pg_sleep(5)").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_EQ(ReasonOf(s), reason::kLedgerTimeout);
  EXPECT_FALSE(c->broken());
  EXPECT_TRUE(c->Exec("SELECT 1").ok());
}

TEST_F(PgConnectionTest, ConnectionLossMarksBrokenAndUnreachableIsUnavailable) {
  std::unique_ptr<PgConnection> c = Connect();
  ASSERT_NE(c, nullptr);
  // Another session ends ours, as an administrator or a restart would.
  std::unique_ptr<PgConnection> other = Connect();
  ASSERT_TRUE(other->Exec("SELECT pg_terminate_backend($1)", {c->backend_pid()}).ok());
  absl::Status s = c->Exec("SELECT 1").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(ReasonOf(s), reason::kLedgerUnavailable);
  EXPECT_TRUE(c->broken());
  EXPECT_EQ(ReasonOf(c->Exec("SELECT 1").status()), reason::kLedgerUnavailable);

  postgres().Stop();
  absl::StatusOr<std::unique_ptr<PgConnection>> down = PgConnection::Connect(
      PgOptions{.conninfo = postgres().conninfo(), .connect_timeout_s = 2});
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(down.status()), reason::kLedgerUnavailable);
}

// record_json: the reflection writer gives the same JSON value as
// MessageToJsonString (compared as jsonb by the server), also for strings
// that need escaping, proto3 optional fields set to zero, oneofs, and
// enum values the descriptor does not know.
TEST_F(PgConnectionTest, RecordJsonIsTheSameJsonbAsProtobufs) {
  std::unique_ptr<PgConnection> c = Connect();
  ASSERT_NE(c, nullptr);
  v1::LedgerRecord odd = MakeSettlement({.n = 9, .critical_illness_cents = 1, .supplementary_cents = 2, .patient_cents = 3997});
  odd.mutable_request()->mutable_items(0)->set_name(
      std::string("quote\" back\\slash <tag> & tab\t nl\n cr\r bell\x07 del\x7f ") +
      "中文 emoji \xF0\x9F\x98\x80 \xE2\x80\xA8 end");
  odd.mutable_request()->mutable_visit()->set_specialty(v1::SPECIALTY_UNSPECIFIED);  // optional, set to 0
  v1::ClaimLater* later = odd.mutable_response()->add_claim_later();
  later->set_base_cents(0);  // optional int64 set to 0: printed
  later->set_responsibility(2);
  odd.mutable_request()->mutable_credential()->set_id_card_no("");  // oneof set to "": printed
  odd.mutable_response()->set_visit_type(static_cast<v1::VisitType>(42));  // unknown enum value
  odd.mutable_response()->set_replayed(true);
  odd.mutable_response()->mutable_year_to_date()->set_version(int64_t{1} << 60);
  const v1::LedgerReversal reversal = MakeReversal(MakeSettlement({.n = 10}), 11);
  const std::vector<const google::protobuf::Message*> messages = {
      &odd, &reversal, &odd.response().accumulator_delta(), &odd.request()};
  for (const google::protobuf::Message* m : messages) {
    std::string fast, reference;
    ASSERT_TRUE(AppendRecordJson(*m, &fast).ok());
    ASSERT_TRUE(ReferenceRecordJson(*m, &reference).ok());
    absl::StatusOr<PgResult> same = c->Exec("SELECT $1::jsonb = $2::jsonb", {fast, reference});
    ASSERT_TRUE(same.ok()) << same.status();
    EXPECT_EQ(same->text(0, 0), "t") << "fast:      " << fast << "\nreference: " << reference;
  }
}

// ---- migrations ---------------------------------------------------------------

using MigrationTest = LedgerTestBase;

TEST_F(MigrationTest, OpenBeforeMigrateSaysRunMigrate) {
  absl::StatusOr<std::unique_ptr<LedgerStore>> s =
      LedgerStore::Open(LedgerOptions{.conninfo = postgres().conninfo()});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(s.status()), reason::kLedgerSchemaOld);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("run medsettle-ledger migrate"));
}

TEST_F(MigrationTest, MigrateTwiceIsANoOp) {
  absl::StatusOr<MigrateResult> first = Migrate(Admin());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->version_before, 0);
  EXPECT_EQ(first->version_after, LatestSchemaVersion());
  EXPECT_EQ(first->applied.size(), EmbeddedMigrations().size());
  const std::string applied_at = Text("SELECT applied_at FROM ledger.schema_migrations WHERE version = 1");

  absl::StatusOr<MigrateResult> second = Migrate(Admin());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->applied.empty());
  EXPECT_EQ(second->version_before, LatestSchemaVersion());
  EXPECT_EQ(Text("SELECT applied_at FROM ledger.schema_migrations WHERE version = 1"), applied_at);
  EXPECT_EQ(Count("SELECT count(*) FROM ledger.schema_migrations"),
            static_cast<int64_t>(EmbeddedMigrations().size()));
  EXPECT_EQ(Text("SELECT sha256 FROM ledger.schema_migrations WHERE version = 1"),
            EmbeddedMigrations()[0].sha256);
  EXPECT_TRUE(CheckSchema(Admin()).ok());
  EXPECT_NE(Open(), nullptr);
}

TEST_F(MigrationTest, ConcurrentMigratorsApplyEachMigrationOnce) {
  std::vector<std::unique_ptr<PgConnection>> conns;
  for (int i = 0; i < 4; ++i) conns.push_back(Connect());
  std::vector<absl::StatusOr<MigrateResult>> results(conns.size(), absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < conns.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = Migrate(*conns[i]); });
  }
  for (std::thread& t : threads) t.join();
  size_t applied = 0;
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    applied += r->applied.size();
  }
  EXPECT_EQ(applied, EmbeddedMigrations().size());
  EXPECT_EQ(Count("SELECT count(*) FROM ledger.schema_migrations"),
            static_cast<int64_t>(EmbeddedMigrations().size()));
}

TEST_F(MigrationTest, NewerSchemaVersionRefuses) {
  ASSERT_TRUE(Migrate(Admin()).ok());
  ASSERT_TRUE(Admin()
                  .Exec("INSERT INTO ledger.schema_migrations (version, name, sha256) "
                        "VALUES (999, 'from_the_future', repeat('a', 64))")
                  .ok());
  for (const absl::Status& s : {CheckSchema(Admin()), Migrate(Admin()).status()}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_EQ(ReasonOf(s), reason::kLedgerSchemaNew);
    EXPECT_THAT(std::string(s.message()), HasSubstr("999"));
  }
  absl::StatusOr<std::unique_ptr<LedgerStore>> store =
      LedgerStore::Open(LedgerOptions{.conninfo = postgres().conninfo()});
  EXPECT_EQ(ReasonOf(store.status()), reason::kLedgerSchemaNew);
}

TEST_F(MigrationTest, AlteredAppliedMigrationRefuses) {
  ASSERT_TRUE(Migrate(Admin()).ok());
  ASSERT_TRUE(Admin()
                  .Exec("UPDATE ledger.schema_migrations SET sha256 = repeat('0', 64) "
                        "WHERE version = 1")
                  .ok());
  for (const absl::Status& s : {CheckSchema(Admin()), Migrate(Admin()).status()}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_EQ(ReasonOf(s), reason::kLedgerSchemaModified);
    EXPECT_THAT(std::string(s.message()), HasSubstr("migration 1 (ledger)"));
  }
  absl::StatusOr<std::unique_ptr<LedgerStore>> store =
      LedgerStore::Open(LedgerOptions{.conninfo = postgres().conninfo()});
  EXPECT_EQ(ReasonOf(store.status()), reason::kLedgerSchemaModified);
}

TEST_F(MigrationTest, ANewMigrationMakesTheSchemaOldUntilApplied) {
  ASSERT_TRUE(Migrate(Admin()).ok());
  // Code with one more migration than the database has.
  const std::string sql = "CREATE TABLE ledger.extra (x integer);\n";
  const std::string digest = Text(Cat("SELECT encode(sha256(convert_to('", sql, "', 'UTF8')), 'hex')"));
  std::vector<Migration> newer = EmbeddedMigrations();
  newer.push_back(Migration{.version = LatestSchemaVersion() + 1, .name = "extra", .sql = sql,
                            .sha256 = digest});
  absl::Status old = CheckSchema(Admin(), newer);
  EXPECT_EQ(ReasonOf(old), reason::kLedgerSchemaOld);
  EXPECT_THAT(std::string(old.message()), HasSubstr("run medsettle-ledger migrate"));

  absl::StatusOr<MigrateResult> m = Migrate(Admin(), newer);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->applied, std::vector<int>{LatestSchemaVersion() + 1});
  EXPECT_TRUE(CheckSchema(Admin(), newer).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM ledger.extra"), 0);
  // And the code without it now finds the database newer.
  EXPECT_EQ(ReasonOf(CheckSchema(Admin())), reason::kLedgerSchemaNew);

  // A migration that fails rolls back alone and is named.
  newer.push_back(Migration{.version = LatestSchemaVersion() + 2, .name = "broken",
                            .sql = "CREATE TABLE ledger.half (x int); SELECT * FROM nowhere;",
                            .sha256 = std::string(64, 'b')});
  absl::Status broken = Migrate(Admin(), newer).status();
  EXPECT_EQ(ReasonOf(broken), reason::kLedgerError);
  EXPECT_THAT(std::string(broken.message()), HasSubstr("broken"));
  EXPECT_EQ(Text("SELECT to_regclass('ledger.half') IS NULL"), "t");
  EXPECT_EQ(Count("SELECT max(version) FROM ledger.schema_migrations"), LatestSchemaVersion() + 1);
}

// ---- Ship -----------------------------------------------------------------------

TEST_F(LedgerStoreTest, ShipInsertsSettlementsAndReversalsAndMovesCursors) {
  const v1::LedgerRecord a = MakeSettlement({.tag = "3f", .person = 1, .n = 1});
  const v1::LedgerRecord b = MakeSettlement({.tag = "3f", .person = 2, .n = 2, .critical_illness_cents = 500, .patient_cents = 3500});
  const v1::LedgerRecord c = MakeSettlement({.tag = "a0", .person = 3, .n = 3, .supplementary_cents = 700, .patient_cents = 3300});
  const v1::LedgerReversal rb = MakeReversal(b, 4);
  // Tags interleave; each tag's entries are in stream order.
  std::vector<ShipEntry> batch = {Entry(a, 1000, 0), Entry(c, 1000, 5), Entry(b, 1000, 1),
                                  Entry(rb, 2000, 0)};
  ASSERT_TRUE(store_->Ship(batch).ok());

  EXPECT_EQ(Settlements(), 3);
  EXPECT_EQ(Reversals(), 1);
  absl::StatusOr<std::map<std::string, StreamPosition>> cursors = store_->Cursors();
  ASSERT_TRUE(cursors.ok());
  ASSERT_EQ(cursors->size(), 2u);
  EXPECT_EQ(cursors->at("3f"), (StreamPosition{.ms = 2000, .seq = 0}));
  EXPECT_EQ(cursors->at("a0"), (StreamPosition{.ms = 1000, .seq = 5}));
  absl::StatusOr<std::map<std::string, ShipCursor>> details = store_->CursorDetails();
  ASSERT_TRUE(details.ok());
  EXPECT_EQ(details->at("3f").entries_shipped, 3);  // a, b and b's reversal
  EXPECT_EQ(details->at("a0").entries_shipped, 1);
  EXPECT_GT(details->at("3f").updated_at_unix_ms, 0);

  // The row: columns copied from the record, the record's bytes exact, the
  // JSON queryable.
  const std::string where = Cat(" FROM ledger.settlements WHERE settlement_id = '", b.settlement_id(), "'");
  EXPECT_EQ(Count(Cat("SELECT total_cents", where)), 10000);  // 6000 + 500 + 3500
  EXPECT_EQ(Count(Cat("SELECT critical_illness_cents", where)), 500);
  EXPECT_EQ(Text(Cat("SELECT settled_at", where)), "2025-03-04 03:46:42+00");  // n = 2
  EXPECT_EQ(Text(Cat("SELECT visit_type", where)), "VISIT_TYPE_GENERAL_OUTPATIENT");
  EXPECT_EQ(Text(Cat("SELECT journal_tag || ' ' || journal_id", where)), "3f 1000-1");
  EXPECT_EQ(Text(Cat("SELECT presenter_key IS NULL AND certificate_fingerprint IS NULL", where)), "t");
  EXPECT_EQ(Text(Cat("SELECT record = '\\x", engine::LowerHex(batch[2].bytes), "'::bytea", where)), "t");
  EXPECT_EQ(Text(Cat("SELECT record_json->'response'->'amounts'->>'critical_illness_cents'", where)), "500");
  EXPECT_EQ(Text(Cat("SELECT record_json->'request'->'items'->0->>'name'", where)), "测试药品");
  EXPECT_EQ(Text(Cat("SELECT tableoid::regclass::text", where)), "ledger.settlements_202503");
  EXPECT_EQ(Text(Cat("SELECT reason || '|' || settle_request_id || '|' || reversal_id FROM ledger.reversals")),
            Cat("patient returned the medicine|REQ-2|rv-", b.settlement_id()));
}

TEST_F(LedgerStoreTest, ReplayedBatchIsRefusedCursorMovedAndWritesNothing) {
  const v1::LedgerRecord a = MakeSettlement({.n = 1});
  const v1::LedgerRecord b = MakeSettlement({.person = 2, .n = 2});
  const std::vector<ShipEntry> batch = {Entry(a, 1000), Entry(b, 1001)};
  ASSERT_TRUE(store_->Ship(batch).ok());
  absl::Status again = store_->Ship(batch);
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition) << again;
  EXPECT_EQ(ReasonOf(again), reason::kLedgerCursorMoved);
  EXPECT_THAT(std::string(again.message()), HasSubstr("journal:{3f} 1000-0"));
  EXPECT_EQ(Settlements(), 2);
  EXPECT_EQ(Count("SELECT entries_shipped FROM ledger.ship_cursors WHERE tag = '3f'"), 2);

  // A batch that starts before the cursor but goes beyond it is refused
  // whole: nothing of its new entry is written either.
  const v1::LedgerRecord c = MakeSettlement({.person = 3, .n = 3});
  absl::Status overlap = store_->Ship({Entry(b, 1001), Entry(c, 1002)});
  EXPECT_EQ(ReasonOf(overlap), reason::kLedgerCursorMoved);
  EXPECT_EQ(Settlements(), 2);
  ASSERT_TRUE(store_->Ship({Entry(c, 1002)}).ok());
  EXPECT_EQ(Settlements(), 3);
}

TEST_F(LedgerStoreTest, RetryAfterALostCommitIsHarmless) {
  const v1::LedgerRecord a = MakeSettlement({.n = 1});
  const v1::LedgerRecord b = MakeSettlement({.person = 2, .n = 2});
  const v1::LedgerReversal ra = MakeReversal(a, 3);
  const std::vector<ShipEntry> batch = {Entry(a, 1000), Entry(b, 1001), Entry(ra, 1002)};
  ASSERT_TRUE(store_->Ship(batch).ok());
  // As if the COMMIT's reply was lost and the cursor never seen moved: the
  // shipper sends the same entries again.
  ASSERT_TRUE(Admin().Exec("UPDATE ledger.ship_cursors SET last_ms = 999, last_seq = 0").ok());
  absl::Status retry = store_->Ship(batch);
  ASSERT_TRUE(retry.ok()) << retry;
  EXPECT_EQ(Settlements(), 2);
  EXPECT_EQ(Reversals(), 1);
  EXPECT_EQ(Text("SELECT last_ms || '-' || last_seq FROM ledger.ship_cursors"), "1002-0");
  // And with no cursor row at all.
  ASSERT_TRUE(Admin().Exec("DELETE FROM ledger.ship_cursors").ok());
  ASSERT_TRUE(store_->Ship(batch).ok());
  EXPECT_EQ(Settlements(), 2);
  EXPECT_EQ(Reversals(), 1);
}

// Batches of many megabytes: the server may fail the COPY while rows are
// still being sent; the refusal still names the entry, and a retry of
// stored rows still merges.
TEST_F(LedgerStoreTest, LargeBatchesNameTheEntryAndMergeRetries) {
  std::vector<ShipEntry> batch;
  for (int n = 0; n < 3000; ++n) batch.push_back(Entry(MakeSettlement({.person = n, .n = n}), 1000 + n));
  ASSERT_TRUE(store_->Ship(batch).ok());
  ASSERT_TRUE(Admin().Exec("UPDATE ledger.ship_cursors SET last_ms = 999").ok());
  absl::Status retry = store_->Ship(batch);
  ASSERT_TRUE(retry.ok()) << retry;
  EXPECT_EQ(Settlements(), 3000);

  std::vector<ShipEntry> next;
  for (int n = 3000; n < 6000; ++n) next.push_back(Entry(MakeSettlement({.person = n, .n = n}), 1000 + n));
  v1::LedgerRecord bad = MakeSettlement({.person = 5000, .n = 5000});
  bad.mutable_response()->mutable_amounts()->set_base_fund_cents(-1);
  next[2000] = Entry(bad, 1000 + 5000);
  absl::Status s = store_->Ship(next);
  EXPECT_EQ(ReasonOf(s), reason::kLedgerConstraintViolated) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(bad.settlement_id()));
  EXPECT_THAT(std::string(s.message()), HasSubstr("journal:{3f} 6000-0"));
  EXPECT_EQ(Settlements(), 3000);
}

TEST_F(LedgerStoreTest, SameIdWithOtherBytesIsAConflict) {
  v1::LedgerRecord a = MakeSettlement({.n = 1});
  ASSERT_TRUE(store_->Ship({Entry(a, 1000)}).ok());
  a.set_snapshot_version("snap-2");  // same id, another record
  absl::Status s = store_->Ship({Entry(a, 1001)});
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_EQ(ReasonOf(s), reason::kLedgerRecordConflict);
  EXPECT_THAT(std::string(s.message()), HasSubstr(a.settlement_id()));
  EXPECT_EQ(Text("SELECT snapshot_version FROM ledger.settlements"), "snap-1");
  EXPECT_EQ(Text("SELECT last_ms FROM ledger.ship_cursors"), "1000");
}

TEST_F(LedgerStoreTest, PartitionsAreMadePerMonthOnDemand) {
  const v1::LedgerRecord dec = MakeSettlement({.n = 1, .date = "2024-12-31"});
  const v1::LedgerRecord jan = MakeSettlement({.person = 2, .n = 2, .date = "2025-01-01"});
  const v1::LedgerRecord feb = MakeSettlement({.person = 3, .n = 3, .date = "2025-02-28"});
  // The reversal of December's settlement goes with December.
  const v1::LedgerReversal rdec = MakeReversal(dec, 4);
  ASSERT_TRUE(store_->Ship({Entry(dec, 1000), Entry(jan, 1001), Entry(feb, 1002), Entry(rdec, 1003)}).ok());
  EXPECT_EQ(Text("SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i "
                 "JOIN pg_class c ON c.oid = i.inhrelid "
                 "WHERE i.inhparent IN ('ledger.settlements'::regclass, 'ledger.reversals'::regclass)"),
            "reversals_202412,reversals_202501,reversals_202502,"
            "settlements_202412,settlements_202501,settlements_202502");
  EXPECT_EQ(Count("SELECT count(*) FROM ledger.settlements_202412"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM ledger.settlements_202501"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM ledger.reversals_202412"), 1);
  EXPECT_EQ(Text("SELECT obj_description('ledger.settlements_202502'::regclass)"),
            "ledger.settlements of 2025-02 (settlement_date in [2025-02-01, 2025-03-01))");
  // Operators may make months ahead; a month made elsewhere is found.
  EXPECT_EQ(Text("SELECT ledger.ensure_month_partition('settlements', '2025-04-15')"), "settlements_202504");
  EXPECT_EQ(Text("SELECT ledger.ensure_month_partition('reversals', '2025-04-01')"), "reversals_202504");
  ASSERT_TRUE(store_->Ship({Entry(MakeSettlement({.person = 4, .n = 5, .date = "2025-04-02"}), 1004)}).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM ledger.settlements_202504"), 1);
  // A month detached for archiving is not silently re-made.
  ASSERT_TRUE(Admin().ExecScript("ALTER TABLE ledger.settlements DETACH PARTITION ledger.settlements_202501").ok());
  absl::Status s = store_->Ship({Entry(MakeSettlement({.person = 5, .n = 6, .date = "2025-01-20"}), 1005)});
  EXPECT_EQ(ReasonOf(s), reason::kLedgerConstraintViolated) << s;  // no partition for the row
  EXPECT_THAT(std::string(s.message()), HasSubstr("settlements"));
  // Looking again finds the detached table and refuses to make a second one.
  absl::Status again = store_->Ship({Entry(MakeSettlement({.person = 5, .n = 6, .date = "2025-01-20"}), 1005)});
  EXPECT_EQ(ReasonOf(again), reason::kLedgerError) << again;
  EXPECT_THAT(std::string(again.message()), HasSubstr("not a partition"));
}

TEST_F(LedgerStoreTest, MissingRuleFileIsRefusedNamingDigestAndSettlement) {
  v1::LedgerRecord a = MakeSettlement({.n = 1});
  v1::LedgerRecord b = MakeSettlement({.person = 2, .n = 2});
  const std::string unknown(64, 'e');
  b.set_catalog_sha256(unknown);
  absl::Status s = store_->Ship({Entry(a, 1000), Entry(b, 1001)});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(ReasonOf(s), reason::kLedgerRulesMissing);
  EXPECT_THAT(std::string(s.message()), HasSubstr(unknown));
  EXPECT_THAT(std::string(s.message()), HasSubstr(b.settlement_id()));
  EXPECT_THAT(std::string(s.message()), HasSubstr("catalog"));
  EXPECT_EQ(Settlements(), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM ledger.ship_cursors"), 0);
  // A settlement that names no digest at all cannot be recomputed either.
  b.set_catalog_sha256("");
  EXPECT_EQ(ReasonOf(store_->Ship({Entry(b, 1001)})), reason::kLedgerRulesMissing);
}

TEST_F(LedgerStoreTest, ConstraintViolationNamesTheSettlementAndWritesNothing) {
  const v1::LedgerRecord a = MakeSettlement({.n = 1});
  v1::LedgerRecord b = MakeSettlement({.person = 2, .n = 2});
  b.mutable_response()->mutable_amounts()->set_patient_cents(3999);  // 6000 + 3999 ≠ 10000
  const v1::LedgerRecord c = MakeSettlement({.tag = "a0", .person = 3, .n = 3});
  absl::Status s = store_->Ship({Entry(a, 1000), Entry(b, 1001, 7), Entry(c, 1000)});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(ReasonOf(s), reason::kLedgerConstraintViolated);
  const std::string message(s.message());
  EXPECT_THAT(message, HasSubstr(b.settlement_id()));
  EXPECT_THAT(message, HasSubstr("settlements_payers_add_up"));
  EXPECT_THAT(message, HasSubstr("journal:{3f} 1001-7"));
  EXPECT_THAT(message, HasSubstr("23514"));
  EXPECT_EQ(Settlements(), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM ledger.ship_cursors"), 0);
  // The store goes on: the good entries ship.
  ASSERT_TRUE(store_->Ship({Entry(a, 1000), Entry(c, 1000)}).ok());
  EXPECT_EQ(Settlements(), 2);

  // A person key that is not 64 lowercase hex, in a reversal.
  v1::LedgerReversal r = MakeReversal(a, 4);
  r.set_person_key(Cat("3f", std::string(62, 'Z')));
  absl::Status bad_key = store_->Ship({Entry(r, 1002)});
  EXPECT_EQ(ReasonOf(bad_key), reason::kLedgerConstraintViolated);
  EXPECT_THAT(std::string(bad_key.message()), HasSubstr("reversals_person_key_format"));
  EXPECT_THAT(std::string(bad_key.message()), HasSubstr(a.settlement_id()));
}

TEST_F(LedgerStoreTest, OrphanReversalAndBadBatchesAreRefused) {
  const v1::LedgerRecord a = MakeSettlement({.n = 1});
  absl::Status orphan = store_->Ship({Entry(MakeReversal(a, 2), 1000)});
  EXPECT_EQ(ReasonOf(orphan), reason::kLedgerReversalOrphan) << orphan;
  EXPECT_THAT(std::string(orphan.message()), HasSubstr(a.settlement_id()));
  EXPECT_EQ(Reversals(), 0);

  const v1::LedgerRecord b = MakeSettlement({.person = 2, .n = 2});
  absl::Status order = store_->Ship({Entry(a, 1001), Entry(b, 1000)});
  EXPECT_EQ(order.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(order), reason::kLedgerBatchInvalid);
  ShipEntry no_date = Entry(a, 1000);
  no_date.settlement.set_settlement_date("");
  EXPECT_EQ(ReasonOf(store_->Ship({no_date})), reason::kLedgerBatchInvalid);
  ShipEntry bad_tag = Entry(a, 1000);
  bad_tag.tag = "3F";
  EXPECT_EQ(ReasonOf(store_->Ship({bad_tag})), reason::kLedgerBatchInvalid);
  EXPECT_TRUE(store_->Ship({}).ok());
  EXPECT_EQ(Settlements(), 0);
}

TEST_F(LedgerStoreTest, RuleFilesAreStoredOncePerVerifiedDigest) {
  // SetUp stored two; storing them again changes nothing.
  ASSERT_TRUE(store_->PutRuleFiles(Rules()).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM ledger.rule_files"), 2);
  absl::StatusOr<std::set<std::string>> digests = store_->RuleFileDigests();
  ASSERT_TRUE(digests.ok());
  EXPECT_EQ(*digests, (std::set<std::string>{std::string(kPolicySha), std::string(kCatalogSha)}));
  absl::StatusOr<RuleFile> policy = store_->GetRuleFile(kPolicySha);
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->content, kPolicyContent);
  EXPECT_EQ(policy->kind, "policy");
  EXPECT_EQ(policy->name, "quzhou-2025");
  EXPECT_EQ(ReasonOf(store_->GetRuleFile(std::string(64, 'f')).status()),
            reason::kLedgerRuleFileNotFound);

  // A digest that is not the content's is refused, even for a stored one.
  RuleFile forged{.sha256 = std::string(kPolicySha), .kind = "policy", .name = "forged",
                  .content = "policy: something else\n"};
  absl::Status s = store_->PutRuleFiles({forged});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(ReasonOf(s), reason::kLedgerRuleFileInvalid);
  forged.sha256 = std::string(64, '1');
  EXPECT_EQ(ReasonOf(store_->PutRuleFiles({forged})), reason::kLedgerRuleFileInvalid);
  forged.sha256 = "ABC";
  EXPECT_EQ(ReasonOf(store_->PutRuleFiles({forged})), reason::kLedgerRuleFileInvalid);
  EXPECT_EQ(Count("SELECT count(*) FROM ledger.rule_files"), 2);
}

TEST_F(LedgerStoreTest, OneShipperAtATime) {
  ASSERT_TRUE(store_->LockShipper().ok());
  ASSERT_TRUE(store_->LockShipper().ok());  // held already
  std::unique_ptr<LedgerStore> second = Open();
  absl::Status s = second->LockShipper();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(ReasonOf(s), reason::kLedgerShipperRunning);
  EXPECT_THAT(std::string(s.message()), HasSubstr("medsettle-ledger"));  // its application name
  store_.reset();  // the first shipper ends: its session's lock goes with it
  // The server releases it when its backend notices the closed connection:
  // soon, not at once.
  absl::Status taken = second->LockShipper();
  for (int i = 0; i < 100 && !taken.ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    taken = second->LockShipper();
  }
  EXPECT_TRUE(taken.ok()) << taken;
}

TEST_F(LedgerStoreTest, ServerKilledThenRestartedLosesNothingAcknowledged) {
  ASSERT_TRUE(store_->LockShipper().ok());
  std::vector<v1::LedgerRecord> records;
  for (int n = 1; n <= 6; ++n) records.push_back(MakeSettlement({.person = n, .n = n}));
  ASSERT_TRUE(store_->Ship({Entry(records[0], 1000), Entry(records[1], 1001)}).ok());
  ASSERT_TRUE(store_->Ship({Entry(records[2], 1002)}).ok());  // acknowledged: 3 settlements

  postgres().Kill9();
  absl::Status down = store_->Ship({Entry(records[3], 1003)});
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << down;
  EXPECT_EQ(ReasonOf(down), reason::kLedgerUnavailable);
  EXPECT_EQ(ReasonOf(store_->Cursors().status()), reason::kLedgerUnavailable);  // still down

  ASSERT_TRUE(postgres().Restart().ok());
  // The store reconnects (and takes the shipper lock again) on its own.
  absl::StatusOr<std::map<std::string, StreamPosition>> cursors = store_->Cursors();
  ASSERT_TRUE(cursors.ok()) << cursors.status();
  EXPECT_EQ(cursors->at("3f"), (StreamPosition{.ms = 1002, .seq = 0}));
  EXPECT_EQ(Settlements(), 3);
  ASSERT_TRUE(store_->Ship({Entry(records[3], 1003)}).ok());
  EXPECT_EQ(Settlements(), 4);
  std::unique_ptr<LedgerStore> other = Open();  // a new Open works too
  EXPECT_EQ(ReasonOf(other->LockShipper()), reason::kLedgerShipperRunning);
}

TEST_F(LedgerStoreTest, KillDuringShipLeavesAllOrNothing) {
  // Big enough batches that the kill lands inside one.
  constexpr int kBatches = 12;
  constexpr int kPerBatch = 400;
  std::atomic<int> acknowledged{0};
  std::atomic<bool> done{false};
  absl::Status failure = absl::OkStatus();
  std::thread shipper([&] {
    int n = 0;
    for (int batch = 0; batch < kBatches; ++batch) {
      std::vector<ShipEntry> entries;
      for (int i = 0; i < kPerBatch; ++i, ++n) {
        entries.push_back(Entry(MakeSettlement({.person = n, .n = n}), 10'000 + n));
      }
      absl::Status s = store_->Ship(entries);
      if (!s.ok()) {
        failure = s;
        break;
      }
      acknowledged.fetch_add(kPerBatch);
    }
    done = true;
  });
  while (acknowledged.load() < 2 * kPerBatch && !done.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(15));
  postgres().Kill9();
  shipper.join();
  ASSERT_FALSE(failure.ok()) << "the batches all shipped before the kill; make them bigger";
  EXPECT_EQ(failure.code(), absl::StatusCode::kUnavailable) << failure;
  EXPECT_EQ(ReasonOf(failure), reason::kLedgerUnavailable);

  ASSERT_TRUE(postgres().Restart().ok());
  // Every acknowledged batch is there; the one in flight is all there (its
  // COMMIT made it) or not at all — and the cursor says which.
  const int64_t stored = Settlements();
  EXPECT_GE(stored, acknowledged.load());
  EXPECT_LE(stored, acknowledged.load() + kPerBatch);
  EXPECT_EQ(stored % kPerBatch, 0);
  EXPECT_EQ(Count("SELECT coalesce(sum(entries_shipped), 0) FROM ledger.ship_cursors"), stored);
  if (stored > 0) {
    EXPECT_EQ(Count("SELECT last_ms FROM ledger.ship_cursors WHERE tag = '3f'"), 10'000 + stored - 1);
  }
}

// ---- readers ----------------------------------------------------------------------

// The data set of the reader tests: institution H001 on 2025-03-04 settles
// s1 (person 1), s2 (person 1, with critical illness), s3 (person 2, with
// supplementary); s2 is reversed. H001 on 2025-03-05: s4 (person 1). H002
// on 2025-03-04: s5 (person 2). Person 1 in 2024: s6 (H001, 2024-12-30).
class LedgerReaderTest : public LedgerStoreTest {
 protected:
  void SetUp() override {
    LedgerStoreTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    s1 = MakeSettlement({.person = 1, .n = 1, .base_cents = 6000, .patient_cents = 4000});
    s2 = MakeSettlement({.person = 1, .n = 2, .base_cents = 50000, .critical_illness_cents = 20000, .patient_cents = 30000, .visit = v1::VISIT_TYPE_INPATIENT});
    s3 = MakeSettlement({.person = 2, .n = 3, .base_cents = 1000, .supplementary_cents = 700, .patient_cents = 300});
    s4 = MakeSettlement({.person = 1, .n = 4, .date = "2025-03-05", .base_cents = 2500, .patient_cents = 2500});
    s5 = MakeSettlement({.person = 2, .n = 5, .institution = "H002", .base_cents = 800, .patient_cents = 200});
    s6 = MakeSettlement({.person = 1, .n = 6, .date = "2024-12-30", .base_cents = 100, .patient_cents = 900});
    r2 = MakeReversal(s2, 7);
    ASSERT_TRUE(store_->Ship({Entry(s1, 1), Entry(s2, 2), Entry(s3, 3), Entry(s4, 4), Entry(s5, 5),
                              Entry(s6, 6), Entry(r2, 7)})
                    .ok());
  }
  v1::LedgerRecord s1, s2, s3, s4, s5, s6;
  v1::LedgerReversal r2;
};

TEST_F(LedgerReaderTest, GetSettlementWithAndWithoutReversal) {
  absl::StatusOr<LedgerSettlement> one = store_->GetSettlement(s1.settlement_id());
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->record.SerializeAsString(), s1.SerializeAsString());
  EXPECT_FALSE(one->reversal.has_value());
  absl::StatusOr<LedgerSettlement> two = store_->GetSettlement(s2.settlement_id());
  ASSERT_TRUE(two.ok()) << two.status();
  ASSERT_TRUE(two->reversal.has_value());
  EXPECT_EQ(two->reversal->SerializeAsString(), r2.SerializeAsString());
  // December's settlement, in another partition, by id alone.
  EXPECT_TRUE(store_->GetSettlement(s6.settlement_id()).ok());

  std::string unknown = s1.settlement_id();
  unknown.back() = unknown.back() == '0' ? '1' : '0';
  absl::Status missing = store_->GetSettlement(unknown).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReasonOf(missing), reason::kSettlementNotFound);
  absl::Status invalid = store_->GetSettlement("3f-nope").status();
  EXPECT_EQ(invalid.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(invalid), reason::kSettlementIdInvalid);
}

TEST_F(LedgerReaderTest, ReconcileDayTotalsAndPages) {
  absl::StatusOr<DayReconcile> day =
      store_->ReconcileDay("H001", *engine::Date::Parse("2025-03-04"), true, 2, "");
  ASSERT_TRUE(day.ok()) << day.status();
  // Settled: s1 + s2 + s3 = 3 settlements.
  EXPECT_EQ(day->settled.count, 3);
  EXPECT_EQ(day->settled.amounts.total_cents, 10000 + 100000 + 2000);
  EXPECT_EQ(day->settled.amounts.base_fund_cents, 6000 + 50000 + 1000);
  EXPECT_EQ(day->settled.amounts.critical_illness_cents, 20000);
  EXPECT_EQ(day->settled.amounts.supplementary_cents, 700);
  EXPECT_EQ(day->settled.amounts.patient_cents, 4000 + 30000 + 300);
  EXPECT_EQ(day->settled.amounts.in_scope_cents, 112000);
  // Reversed: s2.
  EXPECT_EQ(day->reversed.count, 1);
  EXPECT_EQ(day->reversed.amounts.total_cents, 100000);
  EXPECT_EQ(day->reversed.amounts.critical_illness_cents, 20000);
  // Net: s1 + s3.
  EXPECT_EQ(day->net.count, 2);
  EXPECT_EQ(day->net.amounts.total_cents, 12000);
  EXPECT_EQ(day->net.amounts.base_fund_cents, 7000);
  EXPECT_EQ(day->net.amounts.critical_illness_cents, 0);
  EXPECT_EQ(day->net.amounts.patient_cents, 4300);

  // Pages of 2, by settlement id (s1 < s2 < s3: same tag, later commit).
  ASSERT_EQ(day->detail.size(), 2u);
  EXPECT_EQ(day->detail[0].settlement_id, s1.settlement_id());
  EXPECT_EQ(day->detail[0].request_id, "REQ-1");
  EXPECT_EQ(day->detail[0].status, v1::SETTLEMENT_STATUS_SETTLED);
  EXPECT_EQ(day->detail[0].settled_at_unix_ms, s1.settled_at_unix_ms());
  EXPECT_EQ(day->detail[0].reversed_at_unix_ms, 0);
  EXPECT_EQ(day->detail[1].settlement_id, s2.settlement_id());
  EXPECT_EQ(day->detail[1].status, v1::SETTLEMENT_STATUS_REVERSED);
  EXPECT_EQ(day->detail[1].visit_type, v1::VISIT_TYPE_INPATIENT);
  EXPECT_EQ(day->detail[1].amounts.critical_illness_cents, 20000);
  EXPECT_EQ(day->detail[1].reversed_at_unix_ms, r2.reversed_at_unix_ms());
  ASSERT_EQ(day->next_page_token, s2.settlement_id());
  absl::StatusOr<DayReconcile> next =
      store_->ReconcileDay("H001", *engine::Date::Parse("2025-03-04"), true, 2, day->next_page_token);
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->detail.size(), 1u);
  EXPECT_EQ(next->detail[0].settlement_id, s3.settlement_id());
  EXPECT_EQ(next->next_page_token, "");
  EXPECT_EQ(next->settled.count, 3);  // totals on every page

  // Another day, another institution, an empty day.
  EXPECT_EQ(store_->ReconcileDay("H001", *engine::Date::Parse("2025-03-05"), false, 0, "")->settled.amounts.total_cents, 5000);
  EXPECT_EQ(store_->ReconcileDay("H002", *engine::Date::Parse("2025-03-04"), false, 0, "")->net.count, 1);
  absl::StatusOr<DayReconcile> empty = store_->ReconcileDay("H001", *engine::Date::Parse("2025-03-06"), true, 10, "");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->settled.count, 0);
  EXPECT_EQ(empty->settled.amounts.total_cents, 0);
  EXPECT_TRUE(empty->detail.empty());
  // Refusals.
  const engine::Date d = *engine::Date::Parse("2025-03-04");
  EXPECT_EQ(ReasonOf(store_->ReconcileDay("H001", d, true, 0, "").status()), reason::kPageSizeInvalid);
  EXPECT_EQ(ReasonOf(store_->ReconcileDay("H001", d, true, 1001, "").status()), reason::kPageSizeInvalid);
  EXPECT_EQ(ReasonOf(store_->ReconcileDay("H001", d, true, 10, "x'; DROP").status()), reason::kPageTokenInvalid);
  EXPECT_EQ(ReasonOf(store_->ReconcileDay("", d, false, 0, "").status()), "INSTITUTION_INVALID");
  EXPECT_EQ(ReasonOf(store_->ReconcileDay("H001", engine::Date(), false, 0, "").status()), "DATE_MISSING");
}

TEST_F(LedgerReaderTest, PersonYearDeltasSubtractReversals) {
  std::vector<PersonYearDelta> all;
  ASSERT_TRUE(store_->PersonYearDeltas({}, [&](const PersonYearDelta& d) {
                     all.push_back(d);
                     return absl::OkStatus();
                   }).ok());
  // (person 1, 2024), (person 1, 2025), (person 2, 2025), in key order.
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].person_key, PersonKey("3f", 1));
  EXPECT_EQ(all[0].year, 2024);
  EXPECT_EQ(all[1].year, 2025);
  EXPECT_EQ(all[2].person_key, PersonKey("3f", 2));

  // Person 1, 2024: s6 alone (bill 1000, fund 100).
  const engine::LedgerTotals& p1_2024 = all[0].totals.ledger(engine::Ledger::kGeneralOutpatient);
  EXPECT_EQ(p1_2024.in_scope_cents, 1000);
  EXPECT_EQ(p1_2024.fund_paid_cents, 100);
  EXPECT_EQ(p1_2024.visits, 1);
  // Person 1, 2025: s1 + s2 + s4 − s2 = s1 + s4.
  const PersonYearDelta& p1 = all[1];
  EXPECT_EQ(p1.settlements, 3);
  EXPECT_EQ(p1.reversals, 1);
  EXPECT_EQ(p1.totals.ledger(engine::Ledger::kGeneralOutpatient).in_scope_cents, 10000 + 5000);
  EXPECT_EQ(p1.totals.ledger(engine::Ledger::kGeneralOutpatient).fund_paid_cents, 6000 + 2500);
  EXPECT_EQ(p1.totals.ledger(engine::Ledger::kGeneralOutpatient).visits, 2);
  EXPECT_EQ(p1.totals.ledger(engine::Ledger::kInpatient).in_scope_cents, 100000 - 100000);
  EXPECT_EQ(p1.totals.ledger(engine::Ledger::kInpatient).visits, 0);
  EXPECT_EQ(p1.totals.critical_illness_paid_cents, 20000 - 20000);
  EXPECT_EQ(p1.totals.critical_illness_burden_cents, 0);
  // Person 2, 2025: s3 + s5 (the supplementary responsibility 1 of s3).
  const PersonYearDelta& p2 = all[2];
  EXPECT_EQ(p2.settlements, 2);
  EXPECT_EQ(p2.totals.ledger(engine::Ledger::kGeneralOutpatient).in_scope_cents, 2000 + 1000);
  EXPECT_EQ(p2.totals.ledger(engine::Ledger::kGeneralOutpatient).fund_paid_cents, 1000 + 800);
  EXPECT_EQ(p2.totals.supplementary[0].base_cents, 2000);
  EXPECT_EQ(p2.totals.supplementary[0].paid_cents, 700);

  // Filters, and a visitor that stops the walk.
  std::vector<PersonYearDelta> one;
  ASSERT_TRUE(store_->PersonYearDeltas({.person_key = PersonKey("3f", 1), .year = 2025},
                                       [&](const PersonYearDelta& d) {
                                         one.push_back(d);
                                         return absl::OkStatus();
                                       }).ok());
  ASSERT_EQ(one.size(), 1u);
  EXPECT_TRUE(one[0].totals.SameTotals(p1.totals));
  absl::Status stopped = store_->PersonYearDeltas({}, [](const PersonYearDelta&) {
    return absl::CancelledError("enough");
  });
  EXPECT_EQ(stopped.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(store_->Cursors().ok());  // the store is usable after a stopped walk
}

TEST_F(LedgerReaderTest, RecordsInRangeStreamsEveryRecordOfTheDates) {
  std::set<std::string> ids;
  int64_t total = 0;
  ASSERT_TRUE(store_->RecordsInRange(*engine::Date::Parse("2025-03-04"), *engine::Date::Parse("2025-03-05"),
                                     [&](const v1::LedgerRecord& r) {
                                       ids.insert(r.settlement_id());
                                       total += r.response().amounts().total_cents();
                                       return absl::OkStatus();
                                     }).ok());
  // s1..s5 (the reversed s2 included: it was settled), not December's s6.
  EXPECT_EQ(ids, (std::set<std::string>{s1.settlement_id(), s2.settlement_id(), s3.settlement_id(),
                                        s4.settlement_id(), s5.settlement_id()}));
  EXPECT_EQ(total, 10000 + 100000 + 2000 + 5000 + 1000);
  int year_end = 0;
  ASSERT_TRUE(store_->RecordsInRange(*engine::Date::Parse("2024-01-01"), *engine::Date::Parse("2024-12-31"),
                                     [&](const v1::LedgerRecord&) {
                                       ++year_end;
                                       return absl::OkStatus();
                                     }).ok());
  EXPECT_EQ(year_end, 1);
  EXPECT_EQ(ReasonOf(store_->RecordsInRange(*engine::Date::Parse("2025-03-05"),
                                            *engine::Date::Parse("2025-03-04"),
                                            [](const v1::LedgerRecord&) { return absl::OkStatus(); })),
            "DATE_ORDER");
}

}  // namespace
}  // namespace medsettle::ledger
