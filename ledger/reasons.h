// Stable reason strings of the ledger (PostgreSQL, the system of record).
// Every refusal of ledger/ is an absl::Status made by engine::Refusal with
// one of these as its reason (engine::ReasonOf reads it back). Never rename
// one: tools, the shipper and tests branch on them.
#ifndef MEDSETTLE_LEDGER_REASONS_H_
#define MEDSETTLE_LEDGER_REASONS_H_

#include <string_view>

namespace medsettle::ledger::reason {

// UNAVAILABLE: PostgreSQL cannot be reached, refused the connection, is
// starting or shutting down, or the connection was lost. After a loss in a
// COMMIT its outcome is unknown (the message says so): read the state again
// before deciding. The connection is then broken; LedgerStore reconnects on
// its next call.
inline constexpr std::string_view kLedgerUnavailable = "LEDGER_UNAVAILABLE";
// DEADLINE_EXCEEDED: statement_timeout cancelled a statement (SQLSTATE
// 57014); the transaction was rolled back.
inline constexpr std::string_view kLedgerTimeout = "LEDGER_TIMEOUT";
// FAILED_PRECONDITION: a row broke a constraint of the schema (SQLSTATE
// class 23: a CHECK such as settlements_payers_add_up, NOT NULL, a missing
// partition). The message names the SQLSTATE, the constraint, the table and,
// from Ship, the settlement and its journal entry. Nothing of the
// statement's transaction was written.
inline constexpr std::string_view kLedgerConstraintViolated = "LEDGER_CONSTRAINT_VIOLATED";
// Any other error the server reported (INTERNAL; ABORTED for a
// serialization failure or deadlock, SQLSTATE class 40: retry). The message
// holds the SQLSTATE and the server's message.
inline constexpr std::string_view kLedgerError = "LEDGER_ERROR";

// FAILED_PRECONDITION: the database's schema is older than this code knows
// ("run medsettle-ledger migrate"), newer (this binary is older than the
// schema: upgrade it), or an applied migration's SHA-256 is not the one
// this code embeds (someone edited a migration after it was applied).
inline constexpr std::string_view kLedgerSchemaOld = "LEDGER_SCHEMA_OLD";
inline constexpr std::string_view kLedgerSchemaNew = "LEDGER_SCHEMA_NEW";
inline constexpr std::string_view kLedgerSchemaModified = "LEDGER_SCHEMA_MODIFIED";

// FAILED_PRECONDITION: another session holds the shipper lock (the message
// names its pid, application and client address when visible).
inline constexpr std::string_view kLedgerShipperRunning = "LEDGER_SHIPPER_RUNNING";
// FAILED_PRECONDITION: an entry of a Ship batch is at or before its tag's
// stored cursor (another shipper shipped it, or the batch is a replay).
// Nothing was written.
inline constexpr std::string_view kLedgerCursorMoved = "LEDGER_CURSOR_MOVED";
// FAILED_PRECONDITION: a settlement names a policy or catalog digest that
// rule_files does not hold (or names none). Nothing was written.
inline constexpr std::string_view kLedgerRulesMissing = "LEDGER_RULES_MISSING";
// FAILED_PRECONDITION: a reversal whose settlement is neither in the ledger
// nor in the same batch. Nothing was written.
inline constexpr std::string_view kLedgerReversalOrphan = "LEDGER_REVERSAL_ORPHAN";
// INTERNAL: a settlement or reversal id already in the ledger arrived again
// with different bytes (not a retry: a second record under one id).
// Nothing was written.
inline constexpr std::string_view kLedgerRecordConflict = "LEDGER_RECORD_CONFLICT";
// INVALID_ARGUMENT: a Ship batch breaks its contract (a tag that is not 2
// lowercase hex, a tag's entries out of stream order, a record without its
// settlement id or date).
inline constexpr std::string_view kLedgerBatchInvalid = "LEDGER_BATCH_INVALID";

// INVALID_ARGUMENT: a rule file whose digest is not 64 lowercase hex or not
// the SHA-256 of its content, or whose kind is neither policy nor catalog.
inline constexpr std::string_view kLedgerRuleFileInvalid = "LEDGER_RULE_FILE_INVALID";
// NOT_FOUND: no rule file has this digest.
inline constexpr std::string_view kLedgerRuleFileNotFound = "LEDGER_RULE_FILE_NOT_FOUND";

// The same strings as cache::reason's, so a reader of the ledger and of
// Redis refuse alike (ledger/ does not depend on cache/).
// NOT_FOUND: the ledger has no settlement with this id.
inline constexpr std::string_view kSettlementNotFound = "SETTLEMENT_NOT_FOUND";
// INVALID_ARGUMENT ("settlement_id"): not "<2 hex>-<12 hex>-<16 hex>".
inline constexpr std::string_view kSettlementIdInvalid = "SETTLEMENT_ID_INVALID";
// INVALID_ARGUMENT ("page_size", "page_token").
inline constexpr std::string_view kPageSizeInvalid = "PAGE_SIZE_INVALID";
inline constexpr std::string_view kPageTokenInvalid = "PAGE_TOKEN_INVALID";

}  // namespace medsettle::ledger::reason

#endif  // MEDSETTLE_LEDGER_REASONS_H_
