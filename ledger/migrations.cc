#include "ledger/migrations.h"

#include <map>

#include "engine/status.h"
#include "engine/text.h"
#include "ledger/locks.h"
#include "ledger/reasons.h"

namespace medsettle::ledger {
namespace {

using engine::Cat;

constexpr std::string_view kCreateBookkeeping = R"sql(
CREATE SCHEMA IF NOT EXISTS ledger;
COMMENT ON SCHEMA ledger IS 'medsettle: the system of record of settlements (ledger/README.md)';
CREATE TABLE IF NOT EXISTS ledger.schema_migrations (
  version integer PRIMARY KEY CHECK (version > 0),
  name text NOT NULL,
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ledger.schema_migrations IS
  'One row per applied migration (ledger/migrations/NNNN_name.sql); written by medsettle-ledger migrate';
)sql";

absl::Status Schema(std::string_view reason, std::string message) {
  return engine::Refusal(absl::StatusCode::kFailedPrecondition, reason, "", message);
}

// Compares what the database has with `migrations`: OK, or the refusal of
// CheckSchema. `allow_missing`: missing versions are fine (Migrate adds them).
absl::Status Compare(const std::vector<AppliedMigration>& applied,
                     const std::vector<Migration>& migrations, bool allow_missing) {
  std::map<int, const Migration*> known;
  for (const Migration& m : migrations) known[m.version] = &m;
  const int latest = migrations.empty() ? 0 : migrations.back().version;
  for (const AppliedMigration& a : applied) {
    auto it = known.find(a.version);
    if (it == known.end()) {
      return Schema(reason::kLedgerSchemaNew,
                    Cat("the ledger database has schema version ", a.version, " (", a.name,
                        ") but this binary knows versions up to ", latest,
                        ": use a medsettle build at least as new as the one that migrated it"));
    }
    if (a.sha256 != it->second->sha256) {
      return Schema(reason::kLedgerSchemaModified,
                    Cat("migration ", a.version, " (", a.name, ") was applied with SHA-256 ",
                        a.sha256, " but this binary's is ", it->second->sha256,
                        ": a migration file was edited after it was applied; restore it and "
                        "put the change in a new migration"));
    }
  }
  if (!allow_missing && applied.size() < migrations.size()) {
    const int have = applied.empty() ? 0 : applied.back().version;
    return Schema(reason::kLedgerSchemaOld,
                  Cat("the ledger database has schema version ", have, ", this binary needs ",
                      latest, ": run medsettle-ledger migrate"));
  }
  return absl::OkStatus();
}

// Releases the session advisory lock on every path out of Migrate.
class SessionLock {
 public:
  explicit SessionLock(PgConnection& conn) : conn_(conn) {}
  ~SessionLock() {
    if (held_ && !conn_.broken()) {
      conn_.Exec(Cat("SELECT pg_advisory_unlock(", locks::kNamespace, ", ", locks::kMigrate, ")"))
          .status()
          .IgnoreError();
    }
  }
  absl::Status Acquire() {
    // Waits for another migrator; statement_timeout bounds the wait.
    absl::StatusOr<PgResult> r = conn_.Exec(
        Cat("SELECT pg_advisory_lock(", locks::kNamespace, ", ", locks::kMigrate, ")"));
    if (!r.ok()) return r.status();
    held_ = true;
    return absl::OkStatus();
  }

 private:
  PgConnection& conn_;
  bool held_ = false;
};

}  // namespace

int LatestSchemaVersion() {
  const std::vector<Migration>& all = EmbeddedMigrations();
  return all.empty() ? 0 : all.back().version;
}

absl::StatusOr<std::vector<AppliedMigration>> AppliedMigrations(PgConnection& conn) {
  absl::StatusOr<PgResult> exists =
      conn.Exec("SELECT to_regclass('ledger.schema_migrations') IS NOT NULL");
  if (!exists.ok()) return exists.status();
  std::vector<AppliedMigration> out;
  if (exists->text(0, 0) != "t") return out;
  absl::StatusOr<PgResult> r = conn.Exec(
      "SELECT version, name, sha256, applied_at FROM ledger.schema_migrations ORDER BY version");
  if (!r.ok()) return r.status();
  for (int i = 0; i < r->rows(); ++i) {
    out.push_back(AppliedMigration{.version = static_cast<int>(r->int64(i, 0)),
                                   .name = std::string(r->text(i, 1)),
                                   .sha256 = std::string(r->text(i, 2)),
                                   .applied_at = std::string(r->text(i, 3))});
  }
  return out;
}

absl::Status CheckSchema(PgConnection& conn) { return CheckSchema(conn, EmbeddedMigrations()); }

absl::Status CheckSchema(PgConnection& conn, const std::vector<Migration>& migrations) {
  absl::StatusOr<std::vector<AppliedMigration>> applied = AppliedMigrations(conn);
  if (!applied.ok()) return applied.status();
  return Compare(*applied, migrations, /*allow_missing=*/false);
}

absl::StatusOr<MigrateResult> Migrate(PgConnection& conn) {
  return Migrate(conn, EmbeddedMigrations());
}

absl::StatusOr<MigrateResult> Migrate(PgConnection& conn,
                                      const std::vector<Migration>& migrations) {
  SessionLock lock(conn);
  if (absl::Status s = lock.Acquire(); !s.ok()) return s;
  // Under the lock: two migrators never race on CREATE … IF NOT EXISTS.
  if (absl::Status s = conn.ExecScript(kCreateBookkeeping); !s.ok()) return s;
  absl::StatusOr<std::vector<AppliedMigration>> applied = AppliedMigrations(conn);
  if (!applied.ok()) return applied.status();
  if (absl::Status s = Compare(*applied, migrations, /*allow_missing=*/true); !s.ok()) return s;

  MigrateResult result;
  result.version_before = applied->empty() ? 0 : applied->back().version;
  result.version_after = result.version_before;
  std::map<int, bool> have;
  for (const AppliedMigration& a : *applied) have[a.version] = true;
  for (const Migration& m : migrations) {
    if (have.contains(m.version)) continue;
    absl::StatusOr<PgTransaction> tx = PgTransaction::Open(conn);
    if (!tx.ok()) return tx.status();
    if (absl::Status s = conn.ExecScript(m.sql); !s.ok()) {
      return engine::Refusal(s.code(), engine::ReasonOf(s), "",
                             Cat("migration ", m.version, " (", m.name, "): ",
                                 std::string(s.message())));
    }
    absl::StatusOr<PgResult> row = conn.Exec(
        "INSERT INTO ledger.schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
        {m.version, m.name, m.sha256});
    if (!row.ok()) return row.status();
    if (absl::Status s = tx->Commit(); !s.ok()) return s;
    result.applied.push_back(m.version);
    result.version_after = m.version;
  }
  return result;
}

}  // namespace medsettle::ledger
