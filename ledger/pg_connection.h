// One synchronous connection to PostgreSQL (libpq), owned RAII: the PGconn
// and every PGresult live in unique_ptrs with custom deleters, as
// cache/redis_connection.h holds hiredis's context and replies.
//
// Queries are sent with PQexecParams (extended protocol, parameters in text
// form, bytea parameters as raw bytes) and results come back in text form.
// COPY … FROM STDIN streams bulk data (BeginCopy / PutCopyData / EndCopy).
// Errors are absl::Status values with a stable reason (ledger/reasons.h)
// and a message holding the SQLSTATE and the server's text; the fields of
// the last error (SQLSTATE, constraint, table, context) stay readable in
// last_error() for callers that name what failed.
//
// Recovery: a connection that saw a connection-level error (the socket
// closed or reset, the server shutting down or crashed: SQLSTATE class 08,
// 57P01–57P03, or no result at all) is marked broken() and refuses every
// later call with UNAVAILABLE; the caller makes a new one. Nothing is ever
// resent: whether a statement in flight was applied is unknown.
//
// Thread safety: not thread-safe; one thread at a time. libpq writes with
// send(MSG_NOSIGNAL), so a closed socket raises no SIGPIPE.
#ifndef MEDSETTLE_LEDGER_PG_CONNECTION_H_
#define MEDSETTLE_LEDGER_PG_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// libpq, kept out of this header.
struct pg_conn;
struct pg_result;

namespace medsettle::ledger {

// Where and how patiently to talk to PostgreSQL.
struct PgOptions {
  // A libpq connection string ("host=127.0.0.1 port=5432 dbname=medsettle
  // user=medsettle") or URI ("postgresql://…").
  std::string conninfo;
  // Bounds the connect (libpq connect_timeout; overrides the conninfo's).
  int connect_timeout_s = 5;
  // Set for the session (SET statement_timeout); 0 = none.
  int statement_timeout_ms = 30000;
  // Shown in pg_stat_activity (and in LEDGER_SHIPPER_RUNNING messages).
  std::string application_name = "medsettle-ledger";
};

// One query parameter: text (PostgreSQL parses it as the parameter's type),
// raw bytes for a bytea parameter (sent in binary form, no escaping), or
// NULL. Integers are sent as their decimal text.
class PgParam {
 public:
  PgParam(std::string_view text) : value_(text) {}  // NOLINT: implicit on purpose
  PgParam(const std::string& text) : value_(text) {}  // NOLINT
  PgParam(const char* text) : value_(text) {}         // NOLINT
  template <typename T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char>)
  PgParam(T number) : value_(std::to_string(number)) {}  // NOLINT
  static PgParam Bytes(std::string_view bytes) {
    PgParam p(bytes);
    p.binary_ = true;
    return p;
  }
  static PgParam Null() {
    PgParam p("");
    p.null_ = true;
    return p;
  }

  const std::string& value() const { return value_; }
  bool binary() const { return binary_; }
  bool null() const { return null_; }

 private:
  std::string value_;
  bool binary_ = false;
  bool null_ = false;
};

// The fields of a server error (PQresultErrorField), empty when absent.
struct PgError {
  std::string sqlstate;    // e.g. "23514"
  std::string message;     // the primary message
  std::string detail;
  std::string constraint;  // e.g. "settlements_payers_add_up"
  std::string table;       // e.g. "settlements_202503"
  std::string context;     // e.g. "COPY ship_settlements, line 17: …"
};

// A query's result: rows × columns of text (the server's text output;
// NULL reads as ""). Move-only; owns its PGresult.
class PgResult {
 public:
  PgResult() = default;
  PgResult(PgResult&&) noexcept = default;
  PgResult& operator=(PgResult&&) noexcept = default;

  int rows() const;
  int columns() const;
  // The column named `name`; -1 when there is none.
  int column(std::string_view name) const;
  bool is_null(int row, int col) const;
  // The value as text; "" for NULL. Valid while the result lives.
  std::string_view text(int row, int col) const;
  // An integer column's value (0 for NULL). REQUIRES: the column is of an
  // integer type (the server formats it; it always parses).
  int64_t int64(int row, int col) const;
  // A bytea column's value, decoded from the hex output format ("\x…").
  std::string bytea(int row, int col) const;
  // Rows an INSERT / UPDATE / DELETE / COPY affected (PQcmdTuples).
  int64_t affected_rows() const;

 private:
  friend class PgConnection;
  struct Deleter {
    void operator()(pg_result* result) const;
  };
  explicit PgResult(pg_result* result) : result_(result) {}
  std::unique_ptr<pg_result, Deleter> result_;
};

class PgConnection {
 public:
  // Connects (PQconnectdbParams: the conninfo, then connect_timeout,
  // application_name, client_encoding UTF8, TimeZone UTC, bytea_output hex
  // and TCP keepalives) and sets statement_timeout. UNAVAILABLE
  // kLedgerUnavailable when the server cannot be reached, refuses the
  // login or does not answer within connect_timeout_s.
  static absl::StatusOr<std::unique_ptr<PgConnection>> Connect(const PgOptions& options);
  ~PgConnection();

  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // One statement with parameters ($1, $2, …), extended protocol. The
  // result of a query or command; an error as described in the file
  // comment. REQUIRES: no COPY in progress.
  absl::StatusOr<PgResult> Exec(std::string_view sql, const std::vector<PgParam>& params = {});

  // Several statements separated by ';' without parameters (simple query
  // protocol; a migration file). They run in the caller's transaction if
  // one is open, else in one implicit transaction.
  absl::Status ExecScript(std::string_view sql);

  // COPY … FROM STDIN in text format: BeginCopy sends the COPY statement,
  // PutCopyData sends bytes of rows (any split; libpq buffers), EndCopy
  // finishes and returns the rows the server stored — or the server's
  // error, whose context names the line ("COPY t, line 17"). AbortCopy
  // makes the server fail the COPY (the transaction is then aborted).
  absl::Status BeginCopy(std::string_view copy_sql);
  absl::Status PutCopyData(std::string_view data);
  absl::StatusOr<int64_t> EndCopy();
  absl::Status AbortCopy(std::string_view why);

  // BEGIN / COMMIT / ROLLBACK. Commit's UNAVAILABLE says the outcome is
  // unknown. Rollback of a broken connection is OK (the server rolls back).
  absl::Status Begin(std::string_view mode = "");  // e.g. "ISOLATION LEVEL REPEATABLE READ"
  absl::Status Commit();
  absl::Status Rollback();
  // A transaction is open (possibly failed, waiting for ROLLBACK).
  bool in_transaction() const;

  // True after a connection-level error: every call refuses UNAVAILABLE.
  bool broken() const { return broken_; }
  // False when broken, or when the server has closed this idle connection
  // (restarted, crashed, terminated the session): checked without a round
  // trip (a non-blocking peek at the socket), and then marked broken. Lets
  // a caller reconnect before sending anything rather than fail a call.
  // REQUIRES: no statement or COPY in progress.
  bool Alive();
  // The server's process id for this session (pg_backend_pid), 0 if broken.
  int backend_pid() const;
  // The fields of the last server error; cleared by each call.
  const PgError& last_error() const { return last_error_; }
  const PgOptions& options() const { return options_; }

 private:
  struct ConnDeleter {
    void operator()(pg_conn* conn) const;
  };

  explicit PgConnection(PgOptions options);
  // The status for `result` (OK for command/tuples/copy-in results) of
  // `what`; marks the connection broken on a connection-level error.
  absl::Status Check(pg_result* result, std::string_view what, int expected_status);
  absl::Status Broken(std::string_view what);

  PgOptions options_;
  std::unique_ptr<pg_conn, ConnDeleter> conn_;
  bool broken_ = false;
  bool in_copy_ = false;
  PgError last_error_;
};

// RAII transaction: BEGIN at Open, ROLLBACK in the destructor unless
// Commit succeeded (or was attempted: a COMMIT that failed leaves nothing
// to roll back). Not copyable; the connection must outlive it.
class PgTransaction {
 public:
  static absl::StatusOr<PgTransaction> Open(PgConnection& conn, std::string_view mode = "");
  PgTransaction(PgTransaction&& other) noexcept;
  PgTransaction& operator=(PgTransaction&&) = delete;
  ~PgTransaction();

  absl::Status Commit();

 private:
  explicit PgTransaction(PgConnection& conn) : conn_(&conn) {}
  PgConnection* conn_;  // null once committed or moved from
};

// COPY … FROM STDIN (FORMAT binary) data: a header, rows of length-prefixed
// fields in PostgreSQL's binary send format, a trailer. Cheaper for both
// ends than text COPY: no escaping, bytea as it is, no parsing of numbers.
namespace pgcopy {
void AppendHeader(std::string& out);   // "PGCOPY\n\377\r\n\0", flags, extension
void AppendTrailer(std::string& out);  // the field count -1
void BeginRow(std::string& out, int16_t fields);
void AppendNull(std::string& out);
void AppendBytes(std::string& out, std::string_view bytes);  // text (UTF-8) or bytea
void AppendInt4(std::string& out, int32_t value);
void AppendInt8(std::string& out, int64_t value);
void AppendDate(std::string& out, int32_t days_since_1970);  // date
void AppendTimestampMs(std::string& out, int64_t unix_ms);   // timestamptz
// A field of unknown length: Begin reserves its length, End fills it in
// with what was appended since (e.g. a jsonb: the version byte 1, then the
// JSON text).
size_t BeginField(std::string& out);
void EndField(std::string& out, size_t begun);
}  // namespace pgcopy

// Text helpers for statements.
namespace pgtext {
// A text[] literal of simple tokens ("{3f,a0}"). REQUIRES: the items hold
// no '"', '\\', ',', '{', '}' or whitespace (digests, tags, ids, dates).
std::string ArrayLiteral(const std::vector<std::string>& items);
}  // namespace pgtext

}  // namespace medsettle::ledger

#endif  // MEDSETTLE_LEDGER_PG_CONNECTION_H_
