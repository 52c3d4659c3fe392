#include "ledger/pg_connection.h"

#include <errno.h>
#include <libpq-fe.h>
#include <sys/socket.h>

#include <cassert>
#include <charconv>
#include <type_traits>
#include <utility>

#include "engine/status.h"
#include "engine/text.h"
#include "ledger/reasons.h"

namespace medsettle::ledger {
namespace {

using engine::Cat;

// libpq's messages end in a newline; statuses should not.
std::string Trimmed(const char* text) {
  std::string out = text != nullptr ? text : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

// Long server texts (a failing row's DETAIL holds the whole row, record and
// JSON included) are cut so a status stays readable.
std::string Shortened(std::string text, size_t max_chars = 240) {
  if (text.size() <= max_chars) return text;
  size_t cut = max_chars;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // UTF-8
  text.resize(cut);
  text += "…";
  return text;
}

std::string Field(const PGresult* result, int code) {
  const char* value = PQresultErrorField(result, code);
  return value != nullptr ? value : "";
}

// SQLSTATEs after which the session is gone: class 08 (connection
// exception), 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03
// cannot_connect_now.
bool ConnectionLevel(std::string_view sqlstate) {
  return sqlstate.substr(0, 2) == "08" || sqlstate == "57P01" || sqlstate == "57P02" ||
         sqlstate == "57P03";
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

// ---- PgResult -------------------------------------------------------------

void PgResult::Deleter::operator()(pg_result* result) const { PQclear(result); }

int PgResult::rows() const { return result_ != nullptr ? PQntuples(result_.get()) : 0; }
int PgResult::columns() const { return result_ != nullptr ? PQnfields(result_.get()) : 0; }

int PgResult::column(std::string_view name) const {
  for (int c = 0; c < columns(); ++c) {
    if (name == PQfname(result_.get(), c)) return c;
  }
  return -1;
}

bool PgResult::is_null(int row, int col) const {
  return PQgetisnull(result_.get(), row, col) == 1;
}

std::string_view PgResult::text(int row, int col) const {
  assert(row >= 0 && row < rows() && col >= 0 && col < columns());
  return std::string_view(PQgetvalue(result_.get(), row, col),
                          static_cast<size_t>(PQgetlength(result_.get(), row, col)));
}

int64_t PgResult::int64(int row, int col) const {
  std::string_view digits = text(row, col);
  int64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  assert(digits.empty() || (ec == std::errc() && end == digits.data() + digits.size()));
  (void)end;
  (void)ec;
  return value;
}

std::string PgResult::bytea(int row, int col) const {
  std::string_view hex = text(row, col);
  std::string out;
  if (hex.size() < 2 || hex[0] != '\\' || hex[1] != 'x') return out;  // NULL or not hex output
  hex.remove_prefix(2);
  out.resize(hex.size() / 2);
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    const int hi = HexValue(hex[i]);
    const int lo = HexValue(hex[i + 1]);
    assert(hi >= 0 && lo >= 0);
    out[i / 2] = static_cast<char>((hi << 4) | lo);
  }
  return out;
}

int64_t PgResult::affected_rows() const {
  if (result_ == nullptr) return 0;
  const char* text = PQcmdTuples(result_.get());
  int64_t value = 0;
  if (text != nullptr) std::from_chars(text, text + std::char_traits<char>::length(text), value);
  return value;
}

// ---- PgConnection ---------------------------------------------------------

void PgConnection::ConnDeleter::operator()(pg_conn* conn) const { PQfinish(conn); }

PgConnection::PgConnection(PgOptions options) : options_(std::move(options)) {}
PgConnection::~PgConnection() = default;

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Connect(const PgOptions& options) {
  assert(options.connect_timeout_s > 0 && options.statement_timeout_ms >= 0);
  std::unique_ptr<PgConnection> c(new PgConnection(options));
  const std::string timeout = std::to_string(options.connect_timeout_s);
  // dbname first: the conninfo it expands to may be overridden by the
  // keywords after it (libpq processes them in order, the last one wins).
  const char* keywords[] = {"dbname",           "connect_timeout",     "application_name",
                            "client_encoding",  "keepalives",          "keepalives_idle",
                            "keepalives_interval", "keepalives_count", nullptr};
  const char* values[] = {options.conninfo.c_str(),
                          timeout.c_str(),
                          options.application_name.c_str(),
                          "UTF8",
                          "1",
                          "10",
                          "5",
                          "3",
                          nullptr};
  c->conn_.reset(PQconnectdbParams(keywords, values, /*expand_dbname=*/1));
  if (c->conn_ == nullptr) {
    return engine::Refusal(absl::StatusCode::kUnavailable, reason::kLedgerUnavailable, "",
                           "postgres: cannot allocate a connection");
  }
  if (PQstatus(c->conn_.get()) != CONNECTION_OK) {
    return engine::Refusal(absl::StatusCode::kUnavailable, reason::kLedgerUnavailable, "",
                           Cat("postgres: connect: ", Trimmed(PQerrorMessage(c->conn_.get()))));
  }
  // One round trip: the session settings every reader relies on (UTC
  // timestamps, hex bytea output), the statement timeout, room for Ship's
  // staging tables before a temporary table is first used, and no NOTICEs
  // ("… already exists, skipping"), which libpq would print on stderr.
  if (absl::Status s = c->ExecScript(
          Cat("SET TIME ZONE 'UTC'; SET bytea_output = 'hex'; SET temp_buffers = '64MB'; "
              "SET client_min_messages = 'warning'; SET statement_timeout = ",
              options.statement_timeout_ms));
      !s.ok()) {
    return engine::Refusal(absl::StatusCode::kUnavailable, reason::kLedgerUnavailable, "",
                           Cat("postgres: session settings: ", std::string(s.message())));
  }
  return c;
}

absl::Status PgConnection::Broken(std::string_view what) {
  std::string detail = conn_ != nullptr ? Trimmed(PQerrorMessage(conn_.get())) : "";
  if (detail.empty()) detail = "connection lost";
  broken_ = true;
  in_copy_ = false;
  return engine::Refusal(absl::StatusCode::kUnavailable, reason::kLedgerUnavailable, "",
                         Cat("postgres: ", what, ": ", detail));
}

absl::Status PgConnection::Check(pg_result* raw, std::string_view what, int expected_status) {
  PgResult owner(raw);
  if (raw == nullptr) return Broken(what);
  const ExecStatusType status = PQresultStatus(raw);
  if (status == expected_status || status == PGRES_EMPTY_QUERY ||
      (expected_status == PGRES_TUPLES_OK && status == PGRES_COMMAND_OK) ||
      (expected_status == PGRES_COMMAND_OK && status == PGRES_TUPLES_OK)) {
    return absl::OkStatus();
  }
  last_error_ = PgError{.sqlstate = Field(raw, PG_DIAG_SQLSTATE),
                        .message = Field(raw, PG_DIAG_MESSAGE_PRIMARY),
                        .detail = Field(raw, PG_DIAG_MESSAGE_DETAIL),
                        .constraint = Field(raw, PG_DIAG_CONSTRAINT_NAME),
                        .table = Field(raw, PG_DIAG_TABLE_NAME),
                        .context = Field(raw, PG_DIAG_CONTEXT)};
  const PgError& e = last_error_;
  if (PQstatus(conn_.get()) == CONNECTION_BAD || ConnectionLevel(e.sqlstate) ||
      (e.sqlstate.empty() && status != PGRES_FATAL_ERROR)) {
    return Broken(what);
  }
  if (e.message.empty()) {
    // A client-side failure (libpq's own text in the connection).
    last_error_.message = Trimmed(PQresultErrorMessage(raw));
  }
  std::string message = Cat("postgres: ", what, ": SQLSTATE ", e.sqlstate, ": ", e.message);
  if (!e.constraint.empty()) message += Cat(" (constraint ", e.constraint, ")");
  if (!e.table.empty()) message += Cat(" (table ", e.table, ")");
  if (!e.detail.empty()) message += Cat("; ", Shortened(e.detail));
  if (!e.context.empty()) message += Cat("; ", Shortened(e.context));
  const std::string_view state = e.sqlstate;
  if (state == "57014") {
    return engine::Refusal(absl::StatusCode::kDeadlineExceeded, reason::kLedgerTimeout, "",
                           Cat(message, " (statement_timeout ", options_.statement_timeout_ms,
                               " ms)"));
  }
  if (state.substr(0, 2) == "23") {
    return engine::Refusal(absl::StatusCode::kFailedPrecondition,
                           reason::kLedgerConstraintViolated, "", message);
  }
  if (state.substr(0, 2) == "53") {  // disk full, out of memory, too many connections
    return engine::Refusal(absl::StatusCode::kUnavailable, reason::kLedgerUnavailable, "",
                           message);
  }
  if (state.substr(0, 2) == "40") {  // serialization failure, deadlock: retry
    return engine::Refusal(absl::StatusCode::kAborted, reason::kLedgerError, "", message);
  }
  return engine::Refusal(absl::StatusCode::kInternal, reason::kLedgerError, "", message);
}

absl::StatusOr<PgResult> PgConnection::Exec(std::string_view sql,
                                            const std::vector<PgParam>& params) {
  last_error_ = {};
  if (broken_) return Broken("the connection is broken (reconnect)");
  assert(!in_copy_);
  const std::string statement(sql);
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  values.reserve(params.size());
  lengths.reserve(params.size());
  formats.reserve(params.size());
  for (const PgParam& p : params) {
    values.push_back(p.null() ? nullptr : p.value().c_str());
    lengths.push_back(static_cast<int>(p.value().size()));
    formats.push_back(p.binary() ? 1 : 0);
  }
  PGresult* raw = PQexecParams(conn_.get(), statement.c_str(), static_cast<int>(params.size()),
                               nullptr, values.data(), lengths.data(), formats.data(),
                               /*resultFormat=*/0);
  if (raw != nullptr && (PQresultStatus(raw) == PGRES_TUPLES_OK ||
                         PQresultStatus(raw) == PGRES_COMMAND_OK ||
                         PQresultStatus(raw) == PGRES_EMPTY_QUERY)) {
    return PgResult(raw);
  }
  // Name the statement by its first words (enough to find it in the code).
  std::string head(sql.substr(0, std::min<size_t>(sql.find('\n'), 60)));
  if (head.size() < sql.size()) head += "…";
  return Check(raw, head, PGRES_TUPLES_OK);
}

absl::Status PgConnection::ExecScript(std::string_view sql) {
  last_error_ = {};
  if (broken_) return Broken("the connection is broken (reconnect)");
  assert(!in_copy_);
  const std::string script(sql);
  // PQexec returns the last statement's result; an error stops the script.
  return Check(PQexec(conn_.get(), script.c_str()), "script", PGRES_COMMAND_OK);
}

absl::Status PgConnection::BeginCopy(std::string_view copy_sql) {
  last_error_ = {};
  if (broken_) return Broken("the connection is broken (reconnect)");
  assert(!in_copy_);
  const std::string statement(copy_sql);
  if (absl::Status s = Check(PQexec(conn_.get(), statement.c_str()), "COPY", PGRES_COPY_IN);
      !s.ok()) {
    return s;
  }
  in_copy_ = true;
  return absl::OkStatus();
}

absl::Status PgConnection::PutCopyData(std::string_view data) {
  if (broken_) return Broken("the connection is broken (reconnect)");
  assert(in_copy_);
  if (data.empty()) return absl::OkStatus();
  if (PQputCopyData(conn_.get(), data.data(), static_cast<int>(data.size())) == 1) {
    return absl::OkStatus();
  }
  if (PQstatus(conn_.get()) == CONNECTION_BAD) return Broken("COPY data");
  // The server ended the COPY with an error (libpq saw it while sending):
  // collect it.
  return EndCopy().status();
}

absl::StatusOr<int64_t> PgConnection::EndCopy() {
  if (broken_) return Broken("the connection is broken (reconnect)");
  assert(in_copy_);
  if (PQputCopyEnd(conn_.get(), nullptr) != 1 && PQstatus(conn_.get()) == CONNECTION_BAD) {
    return Broken("COPY end");
  }
  in_copy_ = false;
  absl::Status status = absl::OkStatus();
  int64_t rows = 0;
  bool first = true;
  while (PGresult* raw = PQgetResult(conn_.get())) {
    if (first) {
      first = false;
      if (PQresultStatus(raw) == PGRES_COMMAND_OK) {
        PgResult result(raw);
        rows = result.affected_rows();
        continue;
      }
      status = Check(raw, "COPY", PGRES_COMMAND_OK);
      continue;
    }
    PQclear(raw);
  }
  if (first && status.ok()) return Broken("COPY result");
  if (!status.ok()) return status;
  return rows;
}

absl::Status PgConnection::AbortCopy(std::string_view why) {
  if (broken_) return absl::OkStatus();
  assert(in_copy_);
  const std::string message(why);
  if (PQputCopyEnd(conn_.get(), message.c_str()) != 1 &&
      PQstatus(conn_.get()) == CONNECTION_BAD) {
    return Broken("COPY abort");
  }
  in_copy_ = false;
  while (PGresult* raw = PQgetResult(conn_.get())) PQclear(raw);
  if (PQstatus(conn_.get()) == CONNECTION_BAD) return Broken("COPY abort");
  return absl::OkStatus();
}

absl::Status PgConnection::Begin(std::string_view mode) {
  return Exec(mode.empty() ? std::string("BEGIN") : Cat("BEGIN ", mode)).status();
}

absl::Status PgConnection::Commit() {
  absl::StatusOr<PgResult> r = Exec("COMMIT");
  if (!r.ok() && broken_) {
    return engine::Refusal(absl::StatusCode::kUnavailable, reason::kLedgerUnavailable, "",
                           Cat(std::string(r.status().message()), " (the outcome of COMMIT is unknown)"));
  }
  return r.status();
}

absl::Status PgConnection::Rollback() {
  if (broken_) return absl::OkStatus();  // the server rolls back a lost session
  if (in_copy_) {
    if (absl::Status s = AbortCopy("rolled back"); !s.ok()) return absl::OkStatus();
  }
  absl::StatusOr<PgResult> r = Exec("ROLLBACK");
  if (!r.ok() && broken_) return absl::OkStatus();
  return r.status();
}

bool PgConnection::in_transaction() const {
  if (conn_ == nullptr || broken_) return false;
  const PGTransactionStatusType t = PQtransactionStatus(conn_.get());
  return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

bool PgConnection::Alive() {
  if (broken_ || conn_ == nullptr) return false;
  const int fd = PQsocket(conn_.get());
  if (fd < 0) {
    broken_ = true;
    return false;
  }
  char byte = 0;
  const ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
  // EOF, a socket error, or bytes nobody asked for on an idle session
  // (medsettle never LISTENs: it is the FATAL of a terminated session,
  // EOF to follow). A false alarm costs one reconnect.
  broken_ = true;
  return false;
}

int PgConnection::backend_pid() const {
  return conn_ != nullptr && !broken_ ? PQbackendPID(conn_.get()) : 0;
}

// ---- PgTransaction --------------------------------------------------------

absl::StatusOr<PgTransaction> PgTransaction::Open(PgConnection& conn, std::string_view mode) {
  if (absl::Status s = conn.Begin(mode); !s.ok()) return s;
  return PgTransaction(conn);
}

PgTransaction::PgTransaction(PgTransaction&& other) noexcept : conn_(other.conn_) {
  other.conn_ = nullptr;
}

PgTransaction::~PgTransaction() {
  if (conn_ != nullptr) conn_->Rollback().IgnoreError();
}

absl::Status PgTransaction::Commit() {
  assert(conn_ != nullptr);
  PgConnection* conn = std::exchange(conn_, nullptr);
  return conn->Commit();
}

// ---- pgcopy ---------------------------------------------------------------

namespace pgcopy {
namespace {

template <typename T>
void AppendBigEndian(std::string& out, T value) {
  auto bits = static_cast<std::make_unsigned_t<T>>(value);
  char bytes[sizeof(T)];
  for (int i = static_cast<int>(sizeof(T)) - 1; i >= 0; --i) {
    bytes[i] = static_cast<char>(bits & 0xff);
    bits = static_cast<std::make_unsigned_t<T>>(bits >> 8);
  }
  out.append(bytes, sizeof(T));
}

// PostgreSQL counts dates and timestamps from 2000-01-01.
constexpr int32_t kPgEpochDays = 10957;                 // 1970-01-01 → 2000-01-01
constexpr int64_t kPgEpochMs = int64_t{kPgEpochDays} * 86'400'000;

}  // namespace

void AppendHeader(std::string& out) {
  out.append("PGCOPY\n\377\r\n\0", 11);
  AppendBigEndian<int32_t>(out, 0);  // flags: no OIDs
  AppendBigEndian<int32_t>(out, 0);  // header extension: none
}
void AppendTrailer(std::string& out) { AppendBigEndian<int16_t>(out, -1); }
void BeginRow(std::string& out, int16_t fields) { AppendBigEndian<int16_t>(out, fields); }
void AppendNull(std::string& out) { AppendBigEndian<int32_t>(out, -1); }
void AppendBytes(std::string& out, std::string_view bytes) {
  AppendBigEndian<int32_t>(out, static_cast<int32_t>(bytes.size()));
  out.append(bytes);
}
void AppendInt4(std::string& out, int32_t value) {
  AppendBigEndian<int32_t>(out, 4);
  AppendBigEndian<int32_t>(out, value);
}
void AppendInt8(std::string& out, int64_t value) {
  AppendBigEndian<int32_t>(out, 8);
  AppendBigEndian<int64_t>(out, value);
}
void AppendDate(std::string& out, int32_t days_since_1970) {
  AppendBigEndian<int32_t>(out, 4);
  AppendBigEndian<int32_t>(out, days_since_1970 - kPgEpochDays);
}
void AppendTimestampMs(std::string& out, int64_t unix_ms) {
  AppendBigEndian<int32_t>(out, 8);
  AppendBigEndian<int64_t>(out, (unix_ms - kPgEpochMs) * 1000);  // microseconds
}
size_t BeginField(std::string& out) {
  const size_t at = out.size();
  out.append(4, '\0');
  return at;
}
void EndField(std::string& out, size_t begun) {
  const auto length = static_cast<uint32_t>(out.size() - begun - 4);
  for (int i = 0; i < 4; ++i) {
    out[begun + static_cast<size_t>(i)] = static_cast<char>((length >> (24 - 8 * i)) & 0xff);
  }
}

}  // namespace pgcopy

// ---- pgtext ---------------------------------------------------------------

namespace pgtext {

std::string ArrayLiteral(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out.push_back(',');
    out += items[i];
  }
  out.push_back('}');
  return out;
}

}  // namespace pgtext

}  // namespace medsettle::ledger
