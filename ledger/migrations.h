// The ledger's schema as versioned migrations: ledger/migrations/NNNN_<name>.sql,
// embedded into the library at build time (ledger/embed_migrations.cmake
// writes them into a generated .cc with their SHA-256), so a binary needs
// no files to migrate or to check a database.
//
// Migrate applies the missing ones in version order, each in its own
// transaction together with its row in ledger.schema_migrations(version,
// name, sha256, applied_at), under a session advisory lock: running it
// twice, or from two processes at once, applies each migration once.
// CheckSchema is what every opener calls: the database must have exactly
// the migrations this code embeds, unmodified.
#ifndef MEDSETTLE_LEDGER_MIGRATIONS_H_
#define MEDSETTLE_LEDGER_MIGRATIONS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ledger/pg_connection.h"

namespace medsettle::ledger {

struct Migration {
  int version = 0;         // 1, 2, … (the file's NNNN)
  std::string_view name;   // the file's <name>
  std::string_view sql;    // the file's bytes
  std::string_view sha256; // lowercase hex SHA-256 of `sql`
};

// The migrations built into this binary, versions 1..N in order.
const std::vector<Migration>& EmbeddedMigrations();
// N: the schema version this code reads and writes.
int LatestSchemaVersion();

struct AppliedMigration {
  int version = 0;
  std::string name;
  std::string sha256;
  std::string applied_at;  // as PostgreSQL prints a timestamptz (UTC)
};

struct MigrateResult {
  int version_before = 0;  // 0: a database without the ledger
  int version_after = 0;
  std::vector<int> applied;  // the versions this call applied
};

// Brings the database to the newest of `migrations` (default: the embedded
// ones). FAILED_PRECONDITION kLedgerSchemaNew when the database has a
// version `migrations` lacks (it was migrated by newer code), and
// kLedgerSchemaModified when an applied migration's SHA-256 differs from
// the one here; nothing is applied then. A migration that fails rolls
// back alone (those before it stay applied) and its error is returned
// naming it. REQUIRES: no transaction open on `conn`.
absl::StatusOr<MigrateResult> Migrate(PgConnection& conn);
absl::StatusOr<MigrateResult> Migrate(PgConnection& conn, const std::vector<Migration>& migrations);

// OK when the database has exactly `migrations` applied (versions and
// digests). FAILED_PRECONDITION kLedgerSchemaOld when some are missing (or
// there is no ledger schema at all: "run medsettle-ledger migrate"),
// kLedgerSchemaNew when it has a version this code does not know,
// kLedgerSchemaModified when a digest differs.
absl::Status CheckSchema(PgConnection& conn);
absl::Status CheckSchema(PgConnection& conn, const std::vector<Migration>& migrations);

// The rows of ledger.schema_migrations, by version; empty when the table
// does not exist yet.
absl::StatusOr<std::vector<AppliedMigration>> AppliedMigrations(PgConnection& conn);

}  // namespace medsettle::ledger

#endif  // MEDSETTLE_LEDGER_MIGRATIONS_H_
