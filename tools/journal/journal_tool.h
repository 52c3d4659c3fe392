// medsettle-journal: export the settlement journal (the 256 streams
// journal:{00}..journal:{ff}) as NDJSON, trim what was exported, and count
// it (tools/journal/README.md). The logic lives here so tests can run every
// command in-process; main.cc only forwards argv.
//
// A journal entry is one record (cache/settlement_store.h): a SETTLE
// entry's medsettle.v1.LedgerRecord or a REVERSE entry's LedgerReversal
// (proto/medsettle/v1/ledger.proto); an export line carries it whole as
// protobuf JSON. The journal holds person keys, never ID numbers; an
// export holds what the records hold (person keys, certificate
// fingerprints, the bills, the enrollments as used), so --out creates its
// file with mode 0600. With a ledger, its shipper removes shipped entries
// from the journal itself; `trim` is for deployments without one.
#ifndef MEDSETTLE_TOOLS_JOURNAL_JOURNAL_TOOL_H_
#define MEDSETTLE_TOOLS_JOURNAL_JOURNAL_TOOL_H_

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/redis_client.h"
#include "cache/redis_settlement_store.h"
#include "google/protobuf/message.h"

namespace medsettle::journal_tool {

namespace reason {
// INVALID_ARGUMENT: a flag's value is malformed (a TIME that is neither
// RFC 3339 nor Unix milliseconds, --from not before --to, a bad --page);
// the message names the flag. Exit code 2.
inline constexpr std::string_view kJournalInputInvalid = "JOURNAL_INPUT_INVALID";
// FAILED_PRECONDITION: trim --before names a time less than
// kTrimMinAgeMs before now (Redis's clock). Exit code 1.
inline constexpr std::string_view kTrimTooRecent = "TRIM_TOO_RECENT";
// FAILED_PRECONDITION: an entry holds a value that is not UTF-8, so it
// cannot be written as JSON without changing it, or its record cannot be
// printed as JSON; the message names the entry and the field. Nothing is
// renamed into place. Exit code 1. (A record read from the journal never
// holds such strings: decoding a proto3 record refuses them, and the
// entry is then kJournalEntryInvalid.)
inline constexpr std::string_view kJournalNotExportable = "JOURNAL_NOT_EXPORTABLE";
// INTERNAL: a journal entry in the window does not decode (its status in
// cache::JournalEntry is not ok: an unknown kind, a record that does not
// decompress or parse, a record format this build does not know). The
// export stops there, naming the tag and the stream id and the store's
// reason (LEDGER_RECORD_INVALID, SETTLEMENT_RECORD_CORRUPT); an entry is
// never skipped silently, also not under --institution (whose entry it is
// cannot be read). Nothing is renamed into place. Exit code 1.
inline constexpr std::string_view kJournalEntryInvalid = "JOURNAL_ENTRY_INVALID";
// FAILED_PRECONDITION: export --out FILE finds FILE.tmp already there
// (left by an export that was killed, or one still running); it is
// neither reused nor removed, and FILE is not touched. Exit code 1.
inline constexpr std::string_view kJournalExportTmpExists = "JOURNAL_EXPORT_TMP_EXISTS";
}  // namespace reason

// How far before now a trim may reach at the latest: an hour. The journal
// of the last hour is still being written (a cut there would fall between
// entries still arriving), and nobody has exported it yet; a mistyped
// --before (a wrong day, a time without its offset) is then refused
// instead of wiping today's journal.
inline constexpr int64_t kTrimMinAgeMs = 3'600'000;

// Entries read per tag and Redis call during an export (XRANGE … COUNT).
// The merge holds at most one page per tag: 256 × 100 entries.
inline constexpr int kDefaultPageSize = 100;
inline constexpr int kMaxPageSize = 10'000;

// A TIME flag's value as Unix milliseconds: RFC 3339 with an offset
// ("2025-01-01T00:00:00+08:00", "…Z", fractional seconds truncated to the
// millisecond) or a non-negative decimal number of milliseconds.
// INVALID_ARGUMENT kJournalInputInvalid with `flag` as the field otherwise.
absl::StatusOr<int64_t> ParseTime(std::string_view text, std::string_view flag);

// Unix milliseconds as RFC 3339 in China Standard Time, to the millisecond
// ("2025-01-01T00:00:00.000+08:00"): how the tool shows times.
std::string FormatTime(int64_t unix_ms);

// `s` as a JSON string, quotes included: '"' and '\' escaped, control
// characters (and DEL) as \n, \t, … or \u00XX, UTF-8 passed through.
// FAILED_PRECONDITION kJournalNotExportable when `s` is not UTF-8.
absl::StatusOr<std::string> JsonString(std::string_view s);

// One decoded journal entry of `tag` as one line of JSON (no newline).
// Keys, in this order, on every line:
//   id, tag         the stream id and the hash tag
//   kind            "SETTLE" or "REVERSE"
//   settlement_id   the record's (for REVERSE: the settlement reversed)
//   institution     the record's institution_id
//   date            the record's settlement_date (YYYY-MM-DD, the accounting day)
//   at_ms           settled_at_unix_ms / reversed_at_unix_ms, a JSON integer
//   record          the whole LedgerRecord (SETTLE) or LedgerReversal
//                   (REVERSE) as protobuf JSON (RecordJson)
// kJournalEntryInvalid when entry.status is not ok; kJournalNotExportable
// as JsonString (or a record protobuf cannot print), naming the entry and
// the field.
absl::StatusOr<std::string> EntryJson(std::string_view tag, const cache::JournalEntry& entry);

// A record as protobuf's JSON mapping (google::protobuf::util::
// MessageToJsonString), compact on one line: the proto field names
// (preserve_proto_field_names), enums by name, int64/uint64 as JSON strings
// ("settled_at_unix_ms":"1718000000000"), fields at their default value (0,
// "", false, empty) omitted. JsonStringToMessage parses it back to an
// equal message. FAILED_PRECONDITION kJournalNotExportable (field
// "record") when protobuf refuses it.
absl::StatusOr<std::string> RecordJson(const google::protobuf::Message& record);

struct ExportOptions {
  int64_t from_ms = 0;  // inclusive
  int64_t to_ms = 0;    // exclusive
  std::string institution;  // "" = every institution
  int page_size = kDefaultPageSize;  // entries per tag and read, 1..kMaxPageSize
};

struct ExportSummary {
  int64_t entries = 0;
  std::string first_id, first_tag;  // "" when no entry
  std::string last_id, last_tag;
  int64_t settle_entries = 0;
  int64_t reverse_entries = 0;
  // Sum of the records' total: LedgerRecord response.amounts.total_cents
  // over SETTLE entries, LedgerReversal amounts.total_cents over REVERSE
  // entries (positive: what was given back).
  int64_t settled_total_cents = 0;
  int64_t reversed_total_cents = 0;
  int64_t reads = 0;  // XRANGE calls made
};

// Writes every journal entry of the 256 tags with a stream id in
// [from_ms, to_ms) (whose record's institution_id is `institution` when
// set) to `out`, one EntryJson line each, merged in stream-id order (ms,
// then sequence; equal ids by tag).
// Each tag is read in pages of page_size entries, a page continuing after
// the previous page's last id, so no tag is ever loaded whole and no entry
// is lost or repeated at a page boundary. Not a snapshot: choose to_ms in
// the past (entries appended now have ids of now). INVALID_ARGUMENT
// kJournalInputInvalid for from_ms >= to_ms, a negative from_ms or a bad
// page size; Redis errors as such; INTERNAL kJournalEntryInvalid at the
// first entry that does not decode (whatever its institution);
// kJournalNotExportable. On an error the lines written so far are
// incomplete.
absl::StatusOr<ExportSummary> Export(cache::RedisSettlementStore& store,
                                     const ExportOptions& options, std::ostream& out);

struct JournalStats {
  int64_t entries = 0;        // XLEN summed over the tags
  int64_t tags_with_entries = 0;
  std::string oldest_id, oldest_tag;  // "" when the journal is empty
  std::string newest_id, newest_tag;
};
// XLEN, the first and the last entry's id of every tag (one pipeline per
// tag). Redis errors as such.
absl::StatusOr<JournalStats> Stats(cache::RedisClient& redis);

// For tests: what the command line cannot set.
struct RunOptions {
  // > 0: "now" in Unix ms for trim's check; 0: Redis's clock (TIME), the
  // clock the stream ids come from.
  int64_t now_ms = 0;
};

// The whole command line (args without the program name): "export",
// "trim", "stats". Writes results to `out`, errors and the export summary
// without --out to `err`; returns the process exit code (0 ok, 1 refused or
// failed, 2 usage).
int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const RunOptions& options = {});

}  // namespace medsettle::journal_tool

#endif  // MEDSETTLE_TOOLS_JOURNAL_JOURNAL_TOOL_H_
