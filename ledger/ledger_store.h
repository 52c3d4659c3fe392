// The ledger in PostgreSQL, the system of record of settlements: what the
// shipper writes (Ship, the cursors, the rule files) and what the tools and
// the gateway's archive read (a settlement by id, a day's reconciliation,
// the person-years' accumulator sums, the records of a date range, a rule
// file). Schema: ledger/migrations/*.sql, described in ledger/README.md.
//
// Ownership and recovery: one LedgerStore owns one PgConnection. After a
// connection-level error (UNAVAILABLE kLedgerUnavailable) the next call
// connects again, checks the schema and, if this store held the shipper
// lock, takes it again (kLedgerShipperRunning if another session took it
// meanwhile). A call that failed is never repeated by the store.
//
// Thread safety: NOT thread-safe; one thread at a time (a gateway shares
// one behind a mutex, or opens one per thread).
#ifndef MEDSETTLE_LEDGER_LEDGER_STORE_H_
#define MEDSETTLE_LEDGER_LEDGER_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/date.h"
#include "engine/types.h"
#include "ledger/pg_connection.h"
#include "medsettle/v1/ledger.pb.h"

namespace medsettle::ledger {

// A Redis stream id "<ms>-<seq>".
struct StreamPosition {
  int64_t ms = 0;
  int64_t seq = 0;
  friend auto operator<=>(const StreamPosition&, const StreamPosition&) = default;
};

// One journal entry to ship.
struct ShipEntry {
  std::string tag;          // "3f": the journal's hash tag
  StreamPosition position;  // the journal entry's stream id
  // The serialized LedgerRecord or LedgerReversal exactly as the journal
  // held it once unpacked (cache::JournalEntry::bytes): stored as `record`.
  std::string bytes;
  bool is_reversal = false;
  v1::LedgerRecord settlement;  // parsed `bytes`, when !is_reversal
  v1::LedgerReversal reversal;  // parsed `bytes`, when is_reversal
};

// A policy file or catalog, stored once per digest.
struct RuleFile {
  std::string sha256;  // lowercase hex SHA-256 of content
  std::string kind;    // "policy" or "catalog"
  std::string name;    // policy id, or the catalog's file name
  std::string content;
};

struct LedgerOptions {
  std::string conninfo;  // libpq connection string or URI
  int connect_timeout_s = 5;
  int statement_timeout_ms = 30000;
  std::string application_name = "medsettle-ledger";
};

// A tag's cursor with its bookkeeping (for `medsettle-ledger status`).
struct ShipCursor {
  StreamPosition position;      // shipped up to, inclusive
  int64_t entries_shipped = 0;  // ever, through this tag
  int64_t updated_at_unix_ms = 0;
};

// A settlement as the ledger holds it.
struct LedgerSettlement {
  v1::LedgerRecord record;
  std::optional<v1::LedgerReversal> reversal;  // set when reversed
};

// A day's reconciliation, the ledger's counterpart of
// cache::SettlementStore::Reconcile (same meaning, same paging limits).
struct DayTotals {
  int64_t count = 0;
  engine::Amounts amounts;
};
struct DayEntry {
  std::string settlement_id;
  std::string request_id;  // the settle request's
  v1::SettlementStatus status = v1::SETTLEMENT_STATUS_SETTLED;  // or _REVERSED
  v1::VisitType visit_type = v1::VISIT_TYPE_UNSPECIFIED;
  engine::Amounts amounts;  // the settlement's
  int64_t settled_at_unix_ms = 0;
  int64_t reversed_at_unix_ms = 0;  // 0 unless reversed
};
struct DayReconcile {
  DayTotals settled;   // every settlement of the day, reversed or not
  DayTotals reversed;  // those of them reversed (the amounts given back)
  DayTotals net;       // settled − reversed
  std::vector<DayEntry> detail;  // ordered by settlement id; empty unless asked
  std::string next_page_token;   // "" after the last page
};
inline constexpr int kMaxReconcilePageSize = 1000;

// The sum, for one person and year, of the ledger's settlements' accumulator
// deltas minus its reversals' deltas: what Redis's accumulators must equal.
struct PersonYearDelta {
  std::string person_key;
  int32_t year = 0;
  engine::Accumulators totals;  // version 0
  int64_t settlements = 0;      // rows summed
  int64_t reversals = 0;
};
struct PersonYearFilter {
  std::string person_key;  // "" = every person
  int32_t year = 0;        // 0 = every year
};

class LedgerStore {
 public:
  // Connects and checks the schema (CheckSchema: FAILED_PRECONDITION
  // kLedgerSchemaOld — "run medsettle-ledger migrate" —, kLedgerSchemaNew,
  // kLedgerSchemaModified); UNAVAILABLE kLedgerUnavailable when PostgreSQL
  // cannot be reached.
  static absl::StatusOr<std::unique_ptr<LedgerStore>> Open(const LedgerOptions& options);
  ~LedgerStore();

  LedgerStore(const LedgerStore&) = delete;
  LedgerStore& operator=(const LedgerStore&) = delete;

  // Only one shipper at a time: takes a session advisory lock, held until
  // this store is destroyed (and taken again on reconnect). OK if this
  // store holds it already. FAILED_PRECONDITION kLedgerShipperRunning when
  // another session holds it (the message names that session).
  absl::Status LockShipper();

  // Tag → the last journal position shipped (absent: none yet).
  absl::StatusOr<std::map<std::string, StreamPosition>> Cursors();
  // Tag → cursor with its counters.
  absl::StatusOr<std::map<std::string, ShipCursor>> CursorDetails();

  // The digests rule_files holds.
  absl::StatusOr<std::set<std::string>> RuleFileDigests();
  // Stores each file unless its digest is there already (ON CONFLICT DO
  // NOTHING), in one transaction. INVALID_ARGUMENT kLedgerRuleFileInvalid,
  // nothing stored, when a digest is not 64 lowercase hex or not the
  // SHA-256 of its content, or a kind is neither "policy" nor "catalog".
  absl::Status PutRuleFiles(const std::vector<RuleFile>& files);
  // The file of `sha256`. NOT_FOUND kLedgerRuleFileNotFound.
  absl::StatusOr<RuleFile> GetRuleFile(std::string_view sha256);

  // ONE transaction: every settlement and reversal of `entries` inserted,
  // each tag's cursor set to its last entry here, then COMMIT. Rows already
  // stored are skipped (ON CONFLICT DO NOTHING: a retry after an unknown
  // COMMIT outcome is harmless); an id stored with OTHER bytes refuses,
  // INTERNAL kLedgerRecordConflict. Fast path: COPY straight into the
  // partitions; only when that meets a stored row is the batch done again
  // through per-session staging tables (COPY, then INSERT … SELECT … ON
  // CONFLICT DO NOTHING). The month partitions the batch needs are made
  // first, in a short transaction of their own (an empty partition is
  // harmless; making one locks its parent, which readers should not wait
  // out). Takes the cursor rows FOR UPDATE: a concurrent Ship of the same
  // tags waits, then refuses. Refuses, writing nothing:
  //   - FAILED_PRECONDITION kLedgerCursorMoved: an entry at or before its
  //     tag's stored cursor (another shipper, or a replay);
  //   - FAILED_PRECONDITION kLedgerRulesMissing: a settlement names a policy
  //     or catalog digest absent from rule_files (or none), naming both;
  //   - FAILED_PRECONDITION kLedgerReversalOrphan: a reversal of a
  //     settlement neither stored nor in the batch;
  //   - FAILED_PRECONDITION kLedgerConstraintViolated: a row breaks the
  //     schema (payers do not add up, a malformed person key, …), naming
  //     the settlement id, the constraint and the journal tag and id;
  //   - INVALID_ARGUMENT kLedgerBatchInvalid: a tag's entries out of
  //     stream order, a malformed tag, a record without id or date.
  // UNAVAILABLE kLedgerUnavailable when the connection is lost (in COMMIT:
  // the outcome is unknown; read Cursors() again). REQUIRES: the entries
  // of one tag in stream order (tags may interleave). An empty batch is OK.
  absl::Status Ship(const std::vector<ShipEntry>& entries);

  // ---- readers (tools; the gateway's archive) ----

  // The settlement and its reversal, if any. INVALID_ARGUMENT
  // kSettlementIdInvalid; NOT_FOUND kSettlementNotFound; INTERNAL
  // LEDGER_RECORD_INVALID when a stored record does not parse.
  absl::StatusOr<LedgerSettlement> GetSettlement(std::string_view settlement_id);

  // The settlements of `institution_id` whose settlement date is `date`:
  // totals (settled, reversed, net) and, with `include_detail`, up to
  // `page_size` (1..1000) entries by settlement id after `page_token` (""
  // = from the start; the token is the last id of the page before).
  // INVALID_ARGUMENT kPageSizeInvalid ("page_size"), kPageTokenInvalid
  // ("page_token"), DATE_MISSING ("date"), INSTITUTION_INVALID
  // ("institution_id"). Totals and page come from one snapshot.
  absl::StatusOr<DayReconcile> ReconcileDay(std::string_view institution_id, engine::Date date,
                                            bool include_detail, int page_size,
                                            std::string_view page_token);

  // Calls `visit` once per (person_key, year) that has settlements or
  // reversals matching `filter`, in (person_key, year) order, with the sum
  // of the settlements' deltas minus the reversals'. Streams from a
  // server-side cursor in one read-only snapshot (memory stays bounded). A
  // non-OK status from `visit` stops the walk and is returned. INTERNAL
  // LEDGER_RECORD_INVALID for a delta that does not parse. `visit` must not
  // call this store.
  absl::Status PersonYearDeltas(const PersonYearFilter& filter,
                                const std::function<absl::Status(const PersonYearDelta&)>& visit);

  // Calls `visit` with every settlement (LedgerRecord) whose settlement
  // date is in [from, to], month partition by month partition (within one,
  // in no particular order), from a server-side cursor in one read-only
  // snapshot. `visit`'s non-OK status stops the walk and is returned; it
  // must not call this store. INVALID_ARGUMENT DATE_MISSING / DATE_ORDER.
  absl::Status RecordsInRange(engine::Date from, engine::Date to,
                              const std::function<absl::Status(const v1::LedgerRecord&)>& visit);

 private:
  explicit LedgerStore(LedgerOptions options);
  // Connects (again) when there is no usable connection: schema check and,
  // if held before, the shipper lock.
  absl::Status EnsureConnected();
  absl::Status TakeShipperLock();
  // Makes both tables' partitions of the months `month_keys` (year * 100 +
  // month) unless this session knows them made.
  absl::Status EnsurePartitions(const std::set<int32_t>& month_keys);
  // One attempt of Ship: COPY straight into the ledger, or (merge) through
  // the staging tables with ON CONFLICT DO NOTHING. `duplicate` is set when
  // the straight COPY met a row already stored.
  absl::Status ShipInTransaction(const std::vector<ShipEntry>& entries, bool merge,
                                 bool* duplicate);

  const LedgerOptions options_;
  std::unique_ptr<PgConnection> conn_;
  bool shipper_lock_wanted_ = false;   // LockShipper was called
  bool shipper_lock_held_ = false;     // by this session (conn_)
  bool staging_ready_ = false;         // this session's temp tables exist
  std::set<int32_t> known_partitions_; // year * 100 + month, both tables made
  bool partitions_loaded_ = false;
};

}  // namespace medsettle::ledger

#endif  // MEDSETTLE_LEDGER_LEDGER_STORE_H_
