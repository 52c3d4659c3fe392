#include "ledger/ledger_store.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <utility>

#include "engine/status.h"
#include "engine/text.h"
#include "ledger/locks.h"
#include "ledger/migrations.h"
#include "ledger/reasons.h"
#include "ledger/record_json.h"
#include "proto/contract/convert.h"
#include "proto/contract/ledger_record.h"

namespace medsettle::ledger {
namespace {

using engine::Cat;
namespace pt = pgtext;

// COPY data is sent in pieces of about this size (libpq buffers further).
constexpr size_t kCopyChunkBytes = size_t{1} << 20;
// Rows per FETCH of the readers' server-side cursors.
constexpr int kFetchDeltas = 5000;
constexpr int kFetchRecords = 500;

constexpr std::string_view kSettlementColumns =
    "settlement_id, settlement_date, settled_at, year, institution_id, request_id, person_key, "
    "credential_kind, presenter_key, certificate_fingerprint, visit_type, snapshot_version, "
    "policy_id, policy_sha256, catalog_sha256, total_cents, out_of_scope_cents, "
    "over_limit_cents, pre_self_pay_cents, in_scope_cents, deductible_cents, base_fund_cents, "
    "critical_illness_cents, supplementary_cents, patient_cents, delta, record, record_json, "
    "journal_tag, journal_id";
constexpr std::string_view kReversalColumns =
    "settlement_id, settlement_date, reversed_at, institution_id, request_id, "
    "settle_request_id, reversal_id, reason, certificate_fingerprint, person_key, year, "
    "total_cents, out_of_scope_cents, over_limit_cents, pre_self_pay_cents, in_scope_cents, "
    "deductible_cents, base_fund_cents, critical_illness_cents, supplementary_cents, "
    "patient_cents, delta, record, record_json, journal_tag, journal_id";
constexpr std::string_view kAmountColumns =
    "total_cents, out_of_scope_cents, over_limit_cents, pre_self_pay_cents, in_scope_cents, "
    "deductible_cents, base_fund_cents, critical_illness_cents, supplementary_cents, "
    "patient_cents";

// Ship's staging tables for a batch that meets rows already stored: per
// session, emptied at every COMMIT. They carry the targets' CHECK
// constraints, so a bad row fails in COPY, whose error names its row (and
// so the entry).
constexpr std::string_view kCreateStaging = R"sql(
CREATE TEMP TABLE IF NOT EXISTS ship_settlements
  (LIKE ledger.settlements INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMPRESSION)
  ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS ship_reversals
  (LIKE ledger.reversals INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMPRESSION)
  ON COMMIT DELETE ROWS;
)sql";

absl::Status BatchInvalid(std::string message) {
  return engine::Refusal(absl::StatusCode::kInvalidArgument, reason::kLedgerBatchInvalid, "",
                         message);
}

bool IsTag(std::string_view tag) { return tag.size() == 2 && engine::IsLowerHex(tag); }

// "<2 hex>-<12 hex>-<16 hex>", as cache::NewSettlementId makes them.
bool IsSettlementId(std::string_view id) {
  return id.size() == 32 && id[2] == '-' && id[15] == '-' && engine::IsLowerHex(id.substr(0, 2)) &&
         engine::IsLowerHex(id.substr(3, 12)) && engine::IsLowerHex(id.substr(16, 16));
}

bool IsDigest(std::string_view d) { return d.size() == 64 && engine::IsLowerHex(d); }

std::string StreamId(const StreamPosition& p) { return Cat(p.ms, "-", p.seq); }

// "journal:{3f} 1700000000000-0 (settlement 3f-…)": where an entry came from.
std::string Where(const ShipEntry& e) {
  const std::string& id = e.is_reversal ? e.reversal.settlement_id() : e.settlement.settlement_id();
  return Cat("journal:{", e.tag, "} ", StreamId(e.position), " (",
             e.is_reversal ? "reversal of settlement " : "settlement ", id, ")");
}

namespace pc = pgcopy;

constexpr int16_t kSettlementFields = 30;  // kSettlementColumns
constexpr int16_t kReversalFields = 26;    // kReversalColumns

void AppendNullable(std::string& out, const std::string& value) {
  if (value.empty()) {
    pc::AppendNull(out);
  } else {
    pc::AppendBytes(out, value);
  }
}

void AppendDate(std::string& out, const std::string& text) {
  // Ship parsed every date before the first COPY.
  pc::AppendDate(out, engine::Date::Parse(text)->days());
}

void AppendAmounts(std::string& out, const v1::Amounts& a) {
  for (int64_t v : {a.total_cents(), a.out_of_scope_cents(), a.over_limit_cents(),
                    a.pre_self_pay_cents(), a.in_scope_cents(), a.deductible_cents(),
                    a.base_fund_cents(), a.critical_illness_cents(), a.supplementary_cents(),
                    a.patient_cents()}) {
    pc::AppendInt8(out, v);
  }
}

// The message as proto3 JSON with the .proto field names: a json field (its
// binary form is the text). json, not jsonb: the server's jsonb parsing was
// a quarter of Ship's cost (docs/PERFORMANCE.md).
absl::Status AppendJson(std::string& out, const google::protobuf::Message& message,
                        const ShipEntry& e) {
  const size_t field = pc::BeginField(out);
  if (absl::Status s = AppendRecordJson(message, &out); !s.ok()) {
    return engine::Refusal(absl::StatusCode::kInternal, contract::reason::kLedgerRecordInvalid,
                           "", Cat(Where(e), ": not convertible to JSON: ",
                                   std::string(s.message())));
  }
  pc::EndField(out, field);
  return absl::OkStatus();
}

void AppendJournal(std::string& out, const ShipEntry& e) {
  pc::AppendBytes(out, e.tag);
  pc::AppendBytes(out, StreamId(e.position));
}

// One row of kSettlementColumns.
absl::Status AppendSettlementRow(std::string& out, const ShipEntry& e) {
  const v1::LedgerRecord& r = e.settlement;
  pc::BeginRow(out, kSettlementFields);
  pc::AppendBytes(out, r.settlement_id());
  AppendDate(out, r.settlement_date());
  pc::AppendTimestampMs(out, r.settled_at_unix_ms());
  pc::AppendInt4(out, r.year());
  pc::AppendBytes(out, r.institution_id());
  pc::AppendBytes(out, r.request_id());
  pc::AppendBytes(out, r.person_key());
  pc::AppendBytes(out, r.credential_kind());
  AppendNullable(out, r.presenter_key());
  AppendNullable(out, r.certificate_fingerprint());
  const v1::VisitType visit = r.response().visit_type() != v1::VISIT_TYPE_UNSPECIFIED
                                  ? r.response().visit_type()
                                  : r.request().visit().type();
  pc::AppendBytes(out, v1::VisitType_Name(visit));
  pc::AppendBytes(out, r.snapshot_version());
  pc::AppendBytes(out, r.policy_id());
  pc::AppendBytes(out, r.policy_sha256());
  pc::AppendBytes(out, r.catalog_sha256());
  AppendAmounts(out, r.response().amounts());
  pc::AppendBytes(out, r.response().accumulator_delta().SerializeAsString());
  pc::AppendBytes(out, e.bytes);
  if (absl::Status s = AppendJson(out, r, e); !s.ok()) return s;
  AppendJournal(out, e);
  return absl::OkStatus();
}

// One row of kReversalColumns.
absl::Status AppendReversalRow(std::string& out, const ShipEntry& e) {
  const v1::LedgerReversal& r = e.reversal;
  pc::BeginRow(out, kReversalFields);
  pc::AppendBytes(out, r.settlement_id());
  AppendDate(out, r.settlement_date());
  pc::AppendTimestampMs(out, r.reversed_at_unix_ms());
  pc::AppendBytes(out, r.institution_id());
  pc::AppendBytes(out, r.request_id());
  pc::AppendBytes(out, r.settle_request_id());
  AppendNullable(out, r.response().reversal_id());
  pc::AppendBytes(out, r.reason());
  AppendNullable(out, r.certificate_fingerprint());
  pc::AppendBytes(out, r.person_key());
  pc::AppendInt4(out, r.year());
  AppendAmounts(out, r.amounts());
  pc::AppendBytes(out, r.delta().SerializeAsString());
  pc::AppendBytes(out, e.bytes);
  if (absl::Status s = AppendJson(out, r, e); !s.ok()) return s;
  AppendJournal(out, e);
  return absl::OkStatus();
}

// The 1-based line a COPY error's context names ("COPY t, line 17…"); 0
// when it names none.
size_t CopyLine(std::string_view context) {
  const size_t at = context.find(", line ");
  if (at == std::string_view::npos) return 0;
  size_t line = 0;
  const char* begin = context.data() + at + 7;
  std::from_chars(begin, context.data() + context.size(), line);
  return line;
}

// A refusal of Ship for `e` (the COPY failed at its row), keeping `s`'s
// code and reason.
// `table` is the ledger's table whose constraints the staging table copies.
absl::Status AboutEntry(const absl::Status& s, const ShipEntry& e, const PgError& error,
                        std::string_view table) {
  std::string message =
      Cat(Where(e),
          error.constraint.empty() ? Cat(" is refused by ledger.", table)
                                   : Cat(" breaks constraint ", error.constraint, " of ledger.", table),
          " [SQLSTATE ", error.sqlstate, ": ", error.message, "]; nothing of the batch was written");
  return engine::Refusal(s.code(), engine::ReasonOf(s), "", message);
}

int MonthKey(engine::Date d) { return d.year() * 100 + d.month(); }

void AmountsFromRow(const PgResult& r, int row, int first_col, engine::Amounts* a) {
  int64_t* fields[] = {&a->total_cents,        &a->out_of_scope_cents, &a->over_limit_cents,
                       &a->pre_self_pay_cents, &a->in_scope_cents,     &a->deductible_cents,
                       &a->base_fund_cents,    &a->critical_illness_cents,
                       &a->supplementary_cents, &a->patient_cents};
  for (int i = 0; i < 10; ++i) *fields[i] = r.int64(row, first_col + i);
}

engine::Amounts Minus(const engine::Amounts& a, const engine::Amounts& b) {
  return engine::Amounts{
      .total_cents = a.total_cents - b.total_cents,
      .out_of_scope_cents = a.out_of_scope_cents - b.out_of_scope_cents,
      .over_limit_cents = a.over_limit_cents - b.over_limit_cents,
      .pre_self_pay_cents = a.pre_self_pay_cents - b.pre_self_pay_cents,
      .in_scope_cents = a.in_scope_cents - b.in_scope_cents,
      .deductible_cents = a.deductible_cents - b.deductible_cents,
      .base_fund_cents = a.base_fund_cents - b.base_fund_cents,
      .critical_illness_cents = a.critical_illness_cents - b.critical_illness_cents,
      .supplementary_cents = a.supplementary_cents - b.supplementary_cents,
      .patient_cents = a.patient_cents - b.patient_cents};
}

// "sum(x.total_cents), …" over the ten amount columns of alias `x`.
std::string SumAmounts(std::string_view alias) {
  std::string out;
  std::string_view rest = kAmountColumns;
  while (!rest.empty()) {
    const size_t comma = rest.find(", ");
    const std::string_view column = rest.substr(0, comma);
    if (!out.empty()) out += ", ";
    out += Cat("coalesce(sum(", alias, ".", column, "), 0)");
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 2);
  }
  return out;
}

std::string Prefixed(std::string_view alias) {
  std::string out;
  std::string_view rest = kAmountColumns;
  while (!rest.empty()) {
    const size_t comma = rest.find(", ");
    if (!out.empty()) out += ", ";
    out += Cat(alias, ".", rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 2);
  }
  return out;
}

}  // namespace

// ---- opening and the shipper lock ------------------------------------------

LedgerStore::LedgerStore(LedgerOptions options) : options_(std::move(options)) {}
LedgerStore::~LedgerStore() = default;

absl::StatusOr<std::unique_ptr<LedgerStore>> LedgerStore::Open(const LedgerOptions& options) {
  std::unique_ptr<LedgerStore> store(new LedgerStore(options));
  if (absl::Status s = store->EnsureConnected(); !s.ok()) return s;
  return store;
}

absl::Status LedgerStore::EnsureConnected() {
  // A connection the server closed while idle (a restart) is replaced
  // before anything is sent, so the call does not fail for it.
  if (conn_ != nullptr && !conn_->Alive()) conn_.reset();
  if (conn_ == nullptr) {
    staging_ready_ = false;
    partitions_loaded_ = false;
    shipper_lock_held_ = false;
    absl::StatusOr<std::unique_ptr<PgConnection>> c =
        PgConnection::Connect(PgOptions{.conninfo = options_.conninfo,
                                        .connect_timeout_s = options_.connect_timeout_s,
                                        .statement_timeout_ms = options_.statement_timeout_ms,
                                        .application_name = options_.application_name});
    if (!c.ok()) return c.status();
    if (absl::Status s = CheckSchema(**c); !s.ok()) return s;  // dropped: checked again next time
    conn_ = *std::move(c);
  }
  if (shipper_lock_wanted_ && !shipper_lock_held_) return TakeShipperLock();
  return absl::OkStatus();
}

absl::Status LedgerStore::TakeShipperLock() {
  absl::StatusOr<PgResult> r = conn_->Exec(
      Cat("SELECT pg_try_advisory_lock(", locks::kNamespace, ", ", locks::kShipper, ")"));
  if (!r.ok()) return r.status();
  if (r->text(0, 0) == "t") {
    shipper_lock_held_ = true;
    return absl::OkStatus();
  }
  std::string holder = "another session";
  absl::StatusOr<PgResult> who = conn_->Exec(
      Cat("SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.client_addr::text, 'local'), "
          "a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
          "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = ",
          locks::kNamespace, "::oid AND l.objid = ", locks::kShipper, "::oid LIMIT 1"));
  if (who.ok() && who->rows() == 1) {
    holder = Cat("session pid ", who->text(0, 0), " (", who->text(0, 1), ", ", who->text(0, 2),
                 ", connected since ", who->text(0, 3), ")");
  }
  return engine::Refusal(absl::StatusCode::kFailedPrecondition, reason::kLedgerShipperRunning, "",
                         Cat("another shipper is running: ", holder,
                             " holds the ledger's shipper lock"));
}

absl::Status LedgerStore::LockShipper() {
  shipper_lock_wanted_ = true;
  return EnsureConnected();
}

// ---- cursors and rule files ------------------------------------------------

absl::StatusOr<std::map<std::string, ShipCursor>> LedgerStore::CursorDetails() {
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  absl::StatusOr<PgResult> r = conn_->Exec(
      "SELECT tag, last_ms, last_seq, entries_shipped, "
      "(extract(epoch FROM updated_at) * 1000)::bigint FROM ledger.ship_cursors ORDER BY tag");
  if (!r.ok()) return r.status();
  std::map<std::string, ShipCursor> out;
  for (int i = 0; i < r->rows(); ++i) {
    out[std::string(r->text(i, 0))] =
        ShipCursor{.position = {.ms = r->int64(i, 1), .seq = r->int64(i, 2)},
                   .entries_shipped = r->int64(i, 3),
                   .updated_at_unix_ms = r->int64(i, 4)};
  }
  return out;
}

absl::StatusOr<std::map<std::string, StreamPosition>> LedgerStore::Cursors() {
  absl::StatusOr<std::map<std::string, ShipCursor>> details = CursorDetails();
  if (!details.ok()) return details.status();
  std::map<std::string, StreamPosition> out;
  for (const auto& [tag, cursor] : *details) out[tag] = cursor.position;
  return out;
}

absl::StatusOr<std::set<std::string>> LedgerStore::RuleFileDigests() {
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  absl::StatusOr<PgResult> r = conn_->Exec("SELECT sha256 FROM ledger.rule_files");
  if (!r.ok()) return r.status();
  std::set<std::string> out;
  for (int i = 0; i < r->rows(); ++i) out.insert(std::string(r->text(i, 0)));
  return out;
}

absl::Status LedgerStore::PutRuleFiles(const std::vector<RuleFile>& files) {
  for (const RuleFile& f : files) {
    if (!IsDigest(f.sha256) || (f.kind != "policy" && f.kind != "catalog")) {
      return engine::Refusal(absl::StatusCode::kInvalidArgument, reason::kLedgerRuleFileInvalid,
                             "", Cat("rule file '", f.name, "' (", f.kind, ", ", f.sha256,
                                     "): the digest must be 64 lowercase hex and the kind "
                                     "policy or catalog"));
    }
  }
  if (files.empty()) return absl::OkStatus();
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  absl::StatusOr<PgTransaction> tx = PgTransaction::Open(*conn_);
  if (!tx.ok()) return tx.status();
  for (const RuleFile& f : files) {
    // The table's CHECK compares the digest with sha256(content), before
    // ON CONFLICT: a wrong digest is refused even when it is stored already.
    absl::StatusOr<PgResult> r = conn_->Exec(
        "INSERT INTO ledger.rule_files (sha256, kind, name, content) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (sha256) DO NOTHING",
        {f.sha256, f.kind, f.name, PgParam::Bytes(f.content)});
    if (!r.ok()) {
      if (conn_->last_error().constraint == "rule_files_sha256_matches_content") {
        return engine::Refusal(absl::StatusCode::kInvalidArgument,
                               reason::kLedgerRuleFileInvalid, "",
                               Cat("rule file '", f.name, "' (", f.kind, "): ", f.sha256,
                                   " is not the SHA-256 of its ", f.content.size(),
                                   " bytes; nothing stored"));
      }
      return r.status();
    }
  }
  return tx->Commit();
}

absl::StatusOr<RuleFile> LedgerStore::GetRuleFile(std::string_view sha256) {
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  absl::StatusOr<PgResult> r = conn_->Exec(
      "SELECT kind, name, content FROM ledger.rule_files WHERE sha256 = $1", {sha256});
  if (!r.ok()) return r.status();
  if (r->rows() == 0) {
    return engine::Refusal(absl::StatusCode::kNotFound, reason::kLedgerRuleFileNotFound, "",
                           Cat("the ledger holds no rule file with SHA-256 ", sha256));
  }
  return RuleFile{.sha256 = std::string(sha256),
                  .kind = std::string(r->text(0, 0)),
                  .name = std::string(r->text(0, 1)),
                  .content = r->bytea(0, 2)};
}

// ---- Ship -----------------------------------------------------------------

absl::Status LedgerStore::EnsurePartitions(const std::set<int32_t>& month_keys) {
  if (!partitions_loaded_) {
    // Months whose settlements AND reversals partitions are attached.
    absl::StatusOr<PgResult> r = conn_->Exec(
        "SELECT substring(c.relname FROM '_([0-9]{6})$')::integer FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'ledger.settlements'::regclass "
        "INTERSECT "
        "SELECT substring(c.relname FROM '_([0-9]{6})$')::integer FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'ledger.reversals'::regclass");
    if (!r.ok()) return r.status();
    known_partitions_.clear();
    for (int i = 0; i < r->rows(); ++i) {
      known_partitions_.insert(static_cast<int32_t>(r->int64(i, 0)));
    }
    partitions_loaded_ = true;
  }
  std::vector<std::string> parents;
  std::vector<std::string> days;
  for (int32_t key : month_keys) {
    if (known_partitions_.contains(key)) continue;
    const std::string day = engine::Date::FromYmd(key / 100, key % 100, 1).ToString();
    for (const char* parent : {"settlements", "reversals"}) {
      parents.push_back(parent);
      days.push_back(day);
    }
  }
  if (parents.empty()) return absl::OkStatus();
  // A transaction of its own: creating a partition locks its parent
  // exclusively, which readers should not wait out for a whole batch.
  absl::StatusOr<PgTransaction> tx = PgTransaction::Open(*conn_);
  if (!tx.ok()) return tx.status();
  absl::StatusOr<PgResult> r = conn_->Exec(
      "SELECT ledger.ensure_month_partition(p, d) FROM unnest($1::text[], $2::date[]) AS u(p, d)",
      {pt::ArrayLiteral(parents), pt::ArrayLiteral(days)});
  if (!r.ok()) return r.status();
  if (absl::Status s = tx->Commit(); !s.ok()) return s;
  for (int32_t key : month_keys) known_partitions_.insert(key);
  return absl::OkStatus();
}

absl::Status LedgerStore::Ship(const std::vector<ShipEntry>& entries) {
  if (entries.empty()) return absl::OkStatus();
  // Checks that need no round trip.
  std::map<std::string, const ShipEntry*> last_of_tag;
  std::set<int32_t> months;
  for (const ShipEntry& e : entries) {
    if (!IsTag(e.tag)) return BatchInvalid(Cat("tag '", e.tag, "' is not 2 lowercase hex"));
    auto [it, inserted] = last_of_tag.try_emplace(e.tag, &e);
    if (!inserted) {
      if (!(it->second->position < e.position)) {
        return BatchInvalid(Cat(Where(e), " follows ", StreamId(it->second->position),
                                " of the same journal: a tag's entries must be in stream order"));
      }
      it->second = &e;
    }
    const std::string& id = e.is_reversal ? e.reversal.settlement_id() : e.settlement.settlement_id();
    const std::string& date = e.is_reversal ? e.reversal.settlement_date()
                                            : e.settlement.settlement_date();
    std::optional<engine::Date> day = engine::Date::Parse(date);
    if (id.empty() || !day.has_value() || e.bytes.empty()) {
      return BatchInvalid(Cat(Where(e), ": a record needs its settlement id, its settlement date "
                                        "(YYYY-MM-DD, got '", date, "') and its bytes"));
    }
    months.insert(MonthKey(*day));
    if (!e.is_reversal &&
        (e.settlement.policy_sha256().empty() || e.settlement.catalog_sha256().empty())) {
      return engine::Refusal(absl::StatusCode::kFailedPrecondition, reason::kLedgerRulesMissing,
                             "", Cat(Where(e), " names no policy or catalog digest: it could "
                                               "not be recomputed; nothing of the batch was written"));
    }
  }
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  if (absl::Status s = EnsurePartitions(months); !s.ok()) return s;
  // The fast way first: COPY straight into the partitions. A row that is
  // there already (the batch, or part of it, was shipped before and its
  // cursor set back) fails it with a duplicate key; then the batch is done
  // again the careful way, through staging tables and ON CONFLICT DO
  // NOTHING.
  bool duplicate = false;
  absl::Status s = ShipInTransaction(entries, /*merge=*/false, &duplicate);
  if (!s.ok() && duplicate) {
    if (!staging_ready_) {
      if (absl::Status c = conn_->ExecScript(kCreateStaging); !c.ok()) return c;
      staging_ready_ = true;
    }
    s = ShipInTransaction(entries, /*merge=*/true, &duplicate);
  }
  // A partition may have been detached or dropped meanwhile: look again.
  if (!s.ok()) partitions_loaded_ = false;
  return s;
}

absl::Status LedgerStore::ShipInTransaction(const std::vector<ShipEntry>& entries, bool merge,
                                            bool* duplicate) {
  *duplicate = false;
  // Per tag: the first and the last entry, and how many.
  struct TagSpan {
    const ShipEntry* first = nullptr;
    const ShipEntry* last = nullptr;
    int64_t count = 0;
  };
  std::map<std::string, TagSpan> tags;
  std::vector<const ShipEntry*> settlements;
  std::vector<const ShipEntry*> reversals;
  std::map<std::string, const ShipEntry*> digests;  // digest → first settlement naming it
  for (const ShipEntry& e : entries) {
    TagSpan& span = tags[e.tag];
    if (span.first == nullptr) span.first = &e;
    span.last = &e;
    ++span.count;
    if (e.is_reversal) {
      reversals.push_back(&e);
    } else {
      settlements.push_back(&e);
      digests.try_emplace(e.settlement.policy_sha256(), &e);
      digests.try_emplace(e.settlement.catalog_sha256(), &e);
    }
  }
  std::vector<std::string> tag_list;
  for (const auto& [tag, span] : tags) tag_list.push_back(tag);
  const std::string tag_array = pt::ArrayLiteral(tag_list);

  absl::StatusOr<PgTransaction> tx = PgTransaction::Open(*conn_);
  if (!tx.ok()) return tx.status();

  // 1. The cursors, locked: a concurrent Ship of these tags waits here and
  //    then sees where this one moved them.
  if (absl::StatusOr<PgResult> r = conn_->Exec(
          "INSERT INTO ledger.ship_cursors (tag, last_ms, last_seq) "
          "SELECT unnest($1::text[]), 0, 0 ON CONFLICT (tag) DO NOTHING",
          {tag_array});
      !r.ok()) {
    return r.status();
  }
  absl::StatusOr<PgResult> cursors = conn_->Exec(
      "SELECT tag, last_ms, last_seq FROM ledger.ship_cursors WHERE tag = ANY($1::text[]) "
      "ORDER BY tag FOR UPDATE",
      {tag_array});
  if (!cursors.ok()) return cursors.status();
  for (int i = 0; i < cursors->rows(); ++i) {
    const StreamPosition stored{.ms = cursors->int64(i, 1), .seq = cursors->int64(i, 2)};
    const TagSpan& span = tags.at(std::string(cursors->text(i, 0)));
    if (!(stored < span.first->position)) {
      return engine::Refusal(
          absl::StatusCode::kFailedPrecondition, reason::kLedgerCursorMoved, "",
          Cat(Where(*span.first), " is at or before the ledger's cursor ", StreamId(stored),
              " of tag ", span.first->tag,
              ": another shipper shipped it, or the batch is a replay; read the cursors again. "
              "Nothing of the batch was written"));
    }
  }

  // 2. The rules every settlement names.
  if (!digests.empty()) {
    std::vector<std::string> wanted;
    for (const auto& [digest, e] : digests) wanted.push_back(digest);
    absl::StatusOr<PgResult> missing = conn_->Exec(
        "SELECT d FROM unnest($1::text[]) AS d "
        "WHERE NOT EXISTS (SELECT 1 FROM ledger.rule_files r WHERE r.sha256 = d) ORDER BY d",
        {pt::ArrayLiteral(wanted)});
    if (!missing.ok()) return missing.status();
    if (missing->rows() > 0) {
      const std::string digest(missing->text(0, 0));
      const ShipEntry& e = *digests.at(digest);
      const bool policy = e.settlement.policy_sha256() == digest;
      return engine::Refusal(
          absl::StatusCode::kFailedPrecondition, reason::kLedgerRulesMissing, "",
          Cat(Where(e), " names the ", policy ? "policy file" : "catalog", " ", digest,
              policy ? Cat(" (", e.settlement.policy_id(), ")") : std::string(),
              ", which ledger.rule_files does not hold (", missing->rows(),
              " digest(s) missing): store it first (PutRuleFiles, medsettle-ledger put-rules). "
              "Nothing of the batch was written"));
    }
  }

  // 3. COPY the rows: straight into the ledger, or (merge) into the
  //    staging tables. A row that breaks a CHECK fails the COPY, whose
  //    error names its line, and so its entry.
  std::string buffer;
  buffer.reserve(kCopyChunkBytes + 64 * 1024);
  auto copy = [&](std::string_view table, std::string_view columns,
                  const std::vector<const ShipEntry*>& rows, bool reversal) -> absl::Status {
    if (rows.empty()) return absl::OkStatus();
    const std::string target = merge ? Cat("pg_temp.ship_", table) : Cat("ledger.", table);
    if (absl::Status s = conn_->BeginCopy(
            Cat("COPY ", target, " (", columns, ") FROM STDIN (FORMAT binary)"));
        !s.ok()) {
      return s;
    }
    // The server may end the COPY with an error while rows are still being
    // sent (libpq sees it in PutCopyData) or at its end (EndCopy).
    auto failed = [&](const absl::Status& status) -> absl::Status {
      if (conn_->broken()) return status;
      if (conn_->last_error().sqlstate == "23505" && !merge) {
        *duplicate = true;  // in the ledger already: merge instead
        return status;
      }
      const size_t line = CopyLine(conn_->last_error().context);
      if (line >= 1 && line <= rows.size()) {
        return AboutEntry(status, *rows[line - 1], conn_->last_error(), table);
      }
      return status;
    };
    buffer.clear();
    pc::AppendHeader(buffer);
    for (const ShipEntry* e : rows) {
      absl::Status row = reversal ? AppendReversalRow(buffer, *e) : AppendSettlementRow(buffer, *e);
      if (!row.ok()) {
        conn_->AbortCopy(std::string(row.message())).IgnoreError();
        return row;
      }
      if (buffer.size() >= kCopyChunkBytes) {
        if (absl::Status s = conn_->PutCopyData(buffer); !s.ok()) return failed(s);
        buffer.clear();
      }
    }
    pc::AppendTrailer(buffer);
    if (absl::Status s = conn_->PutCopyData(buffer); !s.ok()) return failed(s);
    absl::StatusOr<int64_t> copied = conn_->EndCopy();
    if (!copied.ok()) return failed(copied.status());
    return absl::OkStatus();
  };
  if (absl::Status s = copy("settlements", kSettlementColumns, settlements, false); !s.ok()) {
    return s;
  }
  if (absl::Status s = copy("reversals", kReversalColumns, reversals, true); !s.ok()) {
    return s;
  }

  // 4. (merge) Into the ledger; a row already there is skipped, unless its
  //    bytes differ.
  auto insert = [&](std::string_view table, size_t staged) -> absl::Status {
    if (staged == 0) return absl::OkStatus();
    absl::StatusOr<PgResult> r =
        conn_->Exec(Cat("WITH ins AS (INSERT INTO ledger.", table, " SELECT * FROM pg_temp.ship_",
                        table, " ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM ins"));
    if (!r.ok()) return r.status();
    if (static_cast<size_t>(r->int64(0, 0)) == staged) return absl::OkStatus();
    absl::StatusOr<PgResult> conflict = conn_->Exec(
        Cat("SELECT st.settlement_id, st.journal_tag, st.journal_id, s.journal_tag, s.journal_id "
            "FROM pg_temp.ship_", table, " st JOIN ledger.", table,
            " s USING (settlement_id, settlement_date) WHERE s.record <> st.record LIMIT 1"));
    if (!conflict.ok()) return conflict.status();
    if (conflict->rows() == 0) return absl::OkStatus();
    return engine::Refusal(
        absl::StatusCode::kInternal, reason::kLedgerRecordConflict, "",
        Cat("ledger.", table, " holds ", conflict->text(0, 0), " (journal:{",
            conflict->text(0, 3), "} ", conflict->text(0, 4), ") with other bytes than journal:{",
            conflict->text(0, 1), "} ", conflict->text(0, 2),
            " now ships: two records under one id. Nothing of the batch was written"));
  };
  if (merge) {
    if (absl::Status s = insert("settlements", settlements.size()); !s.ok()) return s;
    if (absl::Status s = insert("reversals", reversals.size()); !s.ok()) return s;
  }

  // 5. Every reversal's settlement is in the ledger (shipped before, or
  //    just now).
  if (!reversals.empty()) {
    std::vector<std::string> ids, days;
    for (const ShipEntry* e : reversals) {
      ids.push_back(e->reversal.settlement_id());
      days.push_back(e->reversal.settlement_date());
    }
    absl::StatusOr<PgResult> orphan = conn_->Exec(
        "SELECT u.i - 1 FROM unnest($1::text[], $2::date[]) WITH ORDINALITY AS u(id, day, i) "
        "WHERE NOT EXISTS (SELECT 1 FROM ledger.settlements s "
        "WHERE s.settlement_id = u.id AND s.settlement_date = u.day) ORDER BY u.i LIMIT 1",
        {pt::ArrayLiteral(ids), pt::ArrayLiteral(days)});
    if (!orphan.ok()) return orphan.status();
    if (orphan->rows() > 0) {
      const ShipEntry& e = *reversals.at(static_cast<size_t>(orphan->int64(0, 0)));
      return engine::Refusal(
          absl::StatusCode::kFailedPrecondition, reason::kLedgerReversalOrphan, "",
          Cat(Where(e), ": its settlement (of ", e.reversal.settlement_date(),
              ") is neither in the ledger nor earlier in the batch. Nothing of the batch was "
              "written"));
    }
  }

  // 6. The cursors, then COMMIT.
  std::vector<std::string> ms, seq, counts;
  for (const auto& [tag, span] : tags) {
    ms.push_back(std::to_string(span.last->position.ms));
    seq.push_back(std::to_string(span.last->position.seq));
    counts.push_back(std::to_string(span.count));
  }
  absl::StatusOr<PgResult> moved = conn_->Exec(
      "UPDATE ledger.ship_cursors c SET last_ms = u.ms, last_seq = u.seq, "
      "entries_shipped = c.entries_shipped + u.n, updated_at = now() "
      "FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) AS u(tag, ms, seq, n) "
      "WHERE c.tag = u.tag",
      {tag_array, pt::ArrayLiteral(ms), pt::ArrayLiteral(seq), pt::ArrayLiteral(counts)});
  if (!moved.ok()) return moved.status();
  assert(moved->affected_rows() == static_cast<int64_t>(tags.size()));
  return tx->Commit();
}

// ---- readers ----------------------------------------------------------------

absl::StatusOr<LedgerSettlement> LedgerStore::GetSettlement(std::string_view settlement_id) {
  if (!IsSettlementId(settlement_id)) {
    return engine::InvalidField(reason::kSettlementIdInvalid, "settlement_id",
                                "a settlement id is <2 hex>-<12 hex>-<16 hex>");
  }
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  absl::StatusOr<PgResult> r = conn_->Exec(
      "SELECT s.record, r.record FROM ledger.settlements s LEFT JOIN ledger.reversals r "
      "ON r.settlement_id = s.settlement_id AND r.settlement_date = s.settlement_date "
      "WHERE s.settlement_id = $1",
      {settlement_id});
  if (!r.ok()) return r.status();
  if (r->rows() == 0) {
    return engine::Refusal(absl::StatusCode::kNotFound, reason::kSettlementNotFound,
                           "settlement_id", "the ledger has no settlement with this id");
  }
  LedgerSettlement out;
  const std::string where = Cat("ledger.settlements ", settlement_id);
  if (absl::Status s = contract::ParseLedgerRecord(r->bytea(0, 0), where, &out.record); !s.ok()) {
    return s;
  }
  if (!r->is_null(0, 1)) {
    v1::LedgerReversal reversal;
    if (absl::Status s = contract::ParseLedgerReversal(
            r->bytea(0, 1), Cat("ledger.reversals ", settlement_id), &reversal);
        !s.ok()) {
      return s;
    }
    out.reversal = std::move(reversal);
  }
  return out;
}

absl::StatusOr<DayReconcile> LedgerStore::ReconcileDay(std::string_view institution_id,
                                                       engine::Date date, bool include_detail,
                                                       int page_size,
                                                       std::string_view page_token) {
  if (institution_id.empty()) {
    return engine::InvalidField(engine::reason::kInstitutionInvalid, "institution_id",
                                "an institution id is needed");
  }
  if (!date.valid()) {
    return engine::InvalidField(engine::reason::kDateMissing, "date", "a date is needed");
  }
  if (include_detail) {
    if (page_size < 1 || page_size > kMaxReconcilePageSize) {
      return engine::InvalidField(reason::kPageSizeInvalid, "page_size",
                                  Cat("page_size must be 1..", kMaxReconcilePageSize));
    }
    if (!page_token.empty() && !IsSettlementId(page_token)) {
      return engine::InvalidField(reason::kPageTokenInvalid, "page_token",
                                  "not a page token of this listing");
    }
  }
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  absl::StatusOr<PgTransaction> tx =
      PgTransaction::Open(*conn_, "ISOLATION LEVEL REPEATABLE READ READ ONLY");
  if (!tx.ok()) return tx.status();
  const std::string day = date.ToString();
  const std::string from =
      "FROM ledger.settlements s LEFT JOIN ledger.reversals r "
      "ON r.settlement_id = s.settlement_id AND r.settlement_date = s.settlement_date "
      "WHERE s.institution_id = $1 AND s.settlement_date = $2::date";
  absl::StatusOr<PgResult> totals =
      conn_->Exec(Cat("SELECT count(*), count(r.settlement_id), ", SumAmounts("s"), ", ",
                      SumAmounts("r"), " ", from),
                  {institution_id, day});
  if (!totals.ok()) return totals.status();
  DayReconcile out;
  out.settled.count = totals->int64(0, 0);
  out.reversed.count = totals->int64(0, 1);
  AmountsFromRow(*totals, 0, 2, &out.settled.amounts);
  AmountsFromRow(*totals, 0, 12, &out.reversed.amounts);
  out.net.count = out.settled.count - out.reversed.count;
  out.net.amounts = Minus(out.settled.amounts, out.reversed.amounts);
  if (include_detail) {
    absl::StatusOr<PgResult> page = conn_->Exec(
        Cat("SELECT s.settlement_id, s.request_id, s.visit_type, ", Prefixed("s"),
            ", (extract(epoch FROM s.settled_at) * 1000)::bigint, "
            "(extract(epoch FROM r.reversed_at) * 1000)::bigint ",
            from, " AND s.settlement_id > $3 ORDER BY s.settlement_id LIMIT $4"),
        {institution_id, day, page_token, page_size + 1});
    if (!page.ok()) return page.status();
    const int rows = std::min(page->rows(), page_size);
    out.detail.reserve(static_cast<size_t>(rows));
    for (int i = 0; i < rows; ++i) {
      DayEntry e;
      e.settlement_id = std::string(page->text(i, 0));
      e.request_id = std::string(page->text(i, 1));
      v1::VisitType visit = v1::VISIT_TYPE_UNSPECIFIED;
      if (v1::VisitType_Parse(std::string(page->text(i, 2)), &visit)) e.visit_type = visit;
      AmountsFromRow(*page, i, 3, &e.amounts);
      e.settled_at_unix_ms = page->int64(i, 13);
      if (!page->is_null(i, 14)) {
        e.status = v1::SETTLEMENT_STATUS_REVERSED;
        e.reversed_at_unix_ms = page->int64(i, 14);
      }
      out.detail.push_back(std::move(e));
    }
    if (page->rows() > page_size) out.next_page_token = out.detail.back().settlement_id;
  }
  if (absl::Status s = tx->Commit(); !s.ok()) return s;
  return out;
}

absl::Status LedgerStore::PersonYearDeltas(
    const PersonYearFilter& filter, const std::function<absl::Status(const PersonYearDelta&)>& visit) {
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  std::string where = "true";
  std::vector<PgParam> params;
  if (!filter.person_key.empty()) {
    params.emplace_back(filter.person_key);
    where += Cat(" AND person_key = $", params.size());
  }
  if (filter.year != 0) {
    params.emplace_back(filter.year);
    where += Cat(" AND year = $", params.size());
  }
  absl::StatusOr<PgTransaction> tx =
      PgTransaction::Open(*conn_, "ISOLATION LEVEL REPEATABLE READ READ ONLY");
  if (!tx.ok()) return tx.status();
  if (absl::StatusOr<PgResult> r = conn_->Exec(
          Cat("DECLARE ledger_person_years NO SCROLL CURSOR FOR "
              "SELECT person_key, year, delta, false FROM ledger.settlements WHERE ", where,
              " UNION ALL "
              "SELECT person_key, year, delta, true FROM ledger.reversals WHERE ", where,
              " ORDER BY 1, 2"),
          params);
      !r.ok()) {
    return r.status();
  }
  PersonYearDelta current;
  bool have = false;
  v1::Accumulators proto;
  engine::Accumulators delta;
  for (;;) {
    absl::StatusOr<PgResult> rows =
        conn_->Exec(Cat("FETCH ", kFetchDeltas, " FROM ledger_person_years"));
    if (!rows.ok()) return rows.status();
    for (int i = 0; i < rows->rows(); ++i) {
      const std::string_view person = rows->text(i, 0);
      const auto year = static_cast<int32_t>(rows->int64(i, 1));
      if (!have || person != current.person_key || year != current.year) {
        if (have) {
          if (absl::Status s = visit(current); !s.ok()) return s;
        }
        current = PersonYearDelta{.person_key = std::string(person), .year = year};
        have = true;
      }
      const bool reversal = rows->text(i, 3) == "t";
      const std::string bytes = rows->bytea(i, 2);
      absl::Status parsed =
          proto.ParseFromString(bytes)
              ? contract::AccumulatorsFromProto(proto, &delta, "delta")
              : absl::InvalidArgumentError("does not parse as medsettle.v1.Accumulators");
      if (!parsed.ok()) {
        return engine::Refusal(absl::StatusCode::kInternal,
                               contract::reason::kLedgerRecordInvalid, "",
                               Cat("a delta of ", reversal ? "ledger.reversals" : "ledger.settlements",
                                   " for person ", person, " year ", year, ": ",
                                   std::string(parsed.message())));
      }
      current.totals.AddTotals(delta, reversal ? -1 : 1);
      ++(reversal ? current.reversals : current.settlements);
    }
    if (rows->rows() < kFetchDeltas) break;
  }
  if (have) {
    if (absl::Status s = visit(current); !s.ok()) return s;
  }
  return tx->Commit();
}

absl::Status LedgerStore::RecordsInRange(
    engine::Date from, engine::Date to,
    const std::function<absl::Status(const v1::LedgerRecord&)>& visit) {
  if (!from.valid() || !to.valid()) {
    return engine::InvalidField(engine::reason::kDateMissing, from.valid() ? "to" : "from",
                                "both ends of the range are needed");
  }
  if (to < from) {
    return engine::InvalidField(engine::reason::kDateOrder, "to", "the range ends before it begins");
  }
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  absl::StatusOr<PgTransaction> tx =
      PgTransaction::Open(*conn_, "ISOLATION LEVEL REPEATABLE READ READ ONLY");
  if (!tx.ok()) return tx.status();
  if (absl::StatusOr<PgResult> r = conn_->Exec(
          "DECLARE ledger_records NO SCROLL CURSOR FOR SELECT settlement_id, record "
          "FROM ledger.settlements WHERE settlement_date BETWEEN $1::date AND $2::date",
          {from.ToString(), to.ToString()});
      !r.ok()) {
    return r.status();
  }
  v1::LedgerRecord record;
  for (;;) {
    absl::StatusOr<PgResult> rows =
        conn_->Exec(Cat("FETCH ", kFetchRecords, " FROM ledger_records"));
    if (!rows.ok()) return rows.status();
    for (int i = 0; i < rows->rows(); ++i) {
      if (absl::Status s = contract::ParseLedgerRecord(
              rows->bytea(i, 1), Cat("ledger.settlements ", rows->text(i, 0)), &record);
          !s.ok()) {
        return s;
      }
      if (absl::Status s = visit(record); !s.ok()) return s;
    }
    if (rows->rows() < kFetchRecords) break;
  }
  return tx->Commit();
}

}  // namespace medsettle::ledger
