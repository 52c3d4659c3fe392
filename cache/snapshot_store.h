// The enrollment snapshot and the institution registry in Redis, under
// versioned keys made current by one atomic flip (docs/REDIS-KEYS.md):
//
//   BeginLoad → PutPersons / PutInstitutions (pipelined) → Commit (count
//   check, meta, SET snap:current) … later Drop of an old version.
//
// Readers name the version in every read (GetEnrollment, GetInstitution),
// so a request reads one version only. Deltas (ApplyDelta) change the
// current version in place and are announced on the snap:deltas stream.
//
// Every Command or Pipeline sent addresses one cluster slot: person
// buckets are written and counted one hash tag at a time.
//
// Thread safety: the store holds no mutable state; it is as thread-safe as
// its RedisClient, which must outlive it. Loads, drops and deltas are
// operator actions and are not serialised against each other (run one at a
// time; a delta racing a flip may land in the version just replaced).
#ifndef MEDSETTLE_CACHE_SNAPSHOT_STORE_H_
#define MEDSETTLE_CACHE_SNAPSHOT_STORE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/redis_client.h"
#include "engine/types.h"

namespace medsettle::cache {

namespace reason {
// NOT_FOUND: the named snapshot version does not exist (or there is no
// current version).
inline constexpr std::string_view kSnapshotNotFound = "SNAPSHOT_NOT_FOUND";
// FAILED_PRECONDITION: the records found in Redis for a version do not
// match the counts the loader expected; the version was not made current.
inline constexpr std::string_view kSnapshotCountMismatch = "SNAPSHOT_COUNT_MISMATCH";
// FAILED_PRECONDITION: the current version may not be dropped.
inline constexpr std::string_view kSnapshotIsCurrent = "SNAPSHOT_IS_CURRENT";
// INVALID_ARGUMENT: a person key is not 64 lowercase hex characters.
inline constexpr std::string_view kPersonKeyInvalid = "PERSON_KEY_INVALID";
// NOT_FOUND: a delta names a person the current version does not hold.
inline constexpr std::string_view kSnapshotPersonNotFound = "SNAPSHOT_PERSON_NOT_FOUND";
// ABORTED: a delta lost the race against another change of the same
// record several times in a row; retry.
inline constexpr std::string_view kSnapshotDeltaContended = "SNAPSHOT_DELTA_CONTENDED";
// NOT_FOUND: an institution delta names an institution the current
// version's registry does not hold.
inline constexpr std::string_view kSnapshotInstitutionNotFound = "SNAPSHOT_INSTITUTION_NOT_FOUND";
// FAILED_PRECONDITION: a bind-presenter delta for a person who already has
// kMaxFamilyPresenters (cache/enrollment_codec.h) family presenters.
inline constexpr std::string_view kFamilyPresentersFull = "FAMILY_PRESENTERS_FULL";
}  // namespace reason

// Key names (docs/REDIS-KEYS.md). `person_key` must be valid (64 lowercase hex).
inline constexpr std::string_view kSnapCurrentKey = "snap:current";
inline constexpr std::string_view kSnapVersionsKey = "snap:versions";
inline constexpr std::string_view kSnapDeltasKey = "snap:deltas";
inline constexpr std::string_view kSnapSequenceKey = "snap:seq";
std::string SnapshotBucketKey(std::string_view version, std::string_view tag,
                              std::string_view bucket);  // snap:{ab}:<v>:e:<cd>
std::string SnapshotMetaKey(std::string_view version);         // snap:<v>:meta
std::string SnapshotInstitutionsKey(std::string_view version);  // snap:<v>:inst
// Where one person's record lives in `version`: the bucket key
// (snap:{ab}:<v>:e:<cd>) and the field (14 raw bytes of the key), for
// callers that read the record inside their own pipeline (the settlement
// store). REQUIRES: CheckPersonKey(person_key) ok.
std::string SnapshotPersonBucketKey(std::string_view version, std::string_view person_key);
std::string SnapshotPersonField(std::string_view person_key);
// OK when `person_key` is 64 lowercase hex characters, else INVALID_ARGUMENT
// kPersonKeyInvalid (the message does not repeat the key).
absl::Status CheckPersonKey(std::string_view person_key);

struct SnapshotCounts {
  int64_t persons = 0;
  int64_t institutions = 0;
};

// One version as `Status` reports it, from snap:versions and its meta.
struct SnapshotVersionInfo {
  std::string version;
  std::string state;  // "loading" (BeginLoad done, not committed) or "committed"
  int64_t started_at_unix = 0;
  int64_t committed_at_unix = 0;  // 0 while loading
  SnapshotCounts counts;          // as committed; 0 while loading
  std::string source;             // what the loader named (file names)
};

struct SnapshotStatus {
  std::optional<std::string> current;
  std::vector<SnapshotVersionInfo> versions;  // oldest first
};

enum class DeltaKind : uint8_t {
  kUpsertPerson,     // a new mid-year enrollee, or a corrected record
  kSuspend,          // status := SUSPENDED
  kRevokeVoucher,    // voucher_revoked_at_unix := revoked_at_unix
  kBindPresenter,    // presenter_key joins family_presenter_keys (亲情账户)
  kUnbindPresenter,  // presenter_key leaves family_presenter_keys
};
// "UPSERT_PERSON", "SUSPEND", "REVOKE_VOUCHER", "BIND_PRESENTER",
// "UNBIND_PRESENTER".
std::string_view Name(DeltaKind kind);

struct Delta {
  DeltaKind kind = DeltaKind::kUpsertPerson;
  // kUpsertPerson: the whole record (person_key set). Others: person_key only.
  engine::Enrollment enrollment;
  int64_t revoked_at_unix = 0;  // kRevokeVoucher
  std::string presenter_key;    // kBindPresenter, kUnbindPresenter: the family member
};

// A change of the current version's institution registry: a sanctioned or
// compromised institution stops at its next call on every gateway, without
// loading a snapshot. Gateways cache registry records per version and
// registry revision (RegistryRevision), which every institution delta
// raises.
enum class InstitutionDeltaKind : uint8_t {
  kUpsertInstitution,     // a new institution (a newly contracted pharmacy), or a corrected record
                          // (keeps a suspension: only kReinstateInstitution lifts it)
  kSuspendInstitution,    // suspended := true (暂停医保服务): refused INSTITUTION_SUSPENDED
  kReinstateInstitution,  // suspended := false
};
// "UPSERT_INSTITUTION", "SUSPEND_INSTITUTION", "REINSTATE_INSTITUTION".
std::string_view Name(InstitutionDeltaKind kind);

struct InstitutionDelta {
  InstitutionDeltaKind kind = InstitutionDeltaKind::kSuspendInstitution;
  // kUpsertInstitution: the whole record. Others: institution_id only.
  engine::Institution institution;
};

struct DeltaApplied {
  std::string version;    // the version changed (the current one)
  std::string stream_id;  // the snap:deltas entry
  // An institution upsert whose record was suspended and said not
  // suspended: it stayed suspended (reinstate-institution lifts it).
  bool suspension_kept = false;
};

struct SnapshotStoreOptions {
  // Seconds since the Unix epoch; injected by tests.
  std::function<int64_t()> now_unix;
  // Bucket keys per Pipeline when counting or dropping (≤ 256: one tag).
  int pipeline_commands = 256;
};

class SnapshotStore {
 public:
  // `redis` must outlive the store.
  explicit SnapshotStore(RedisClient& redis, SnapshotStoreOptions options = {});

  // A new, unique version id ("20261123T203000-7": UTC start time and a
  // Redis counter), registered in snap:versions with meta state "loading"
  // so that an abandoned load shows in Status and can be dropped.
  absl::StatusOr<std::string> BeginLoad();

  // Writes `persons` (each with a valid person_key) into `version`: one
  // Pipeline per hash tag present, one HSET per bucket. Returns how many
  // fields were new (a key already written in this version counts 0).
  // INVALID_ARGUMENT kPersonKeyInvalid before anything is written when a
  // key is malformed, kFamilyPresentersInvalid when a record's
  // family_presenter_keys cannot be encoded (EncodeEnrollment). Callers
  // get far fewer round trips by passing persons sorted by key in large
  // batches.
  absl::StatusOr<int64_t> PutPersons(std::string_view version,
                                     std::span<const engine::Enrollment> persons);
  // Writes institutions (non-empty ids) into snap:<v>:inst; returns the new
  // fields. INVALID_ARGUMENT kInstitutionInvalid for an empty id.
  absl::StatusOr<int64_t> PutInstitutions(std::string_view version,
                                          std::span<const engine::Institution> institutions);

  // Counts what `version` holds in Redis (HLEN of all 65,536 buckets,
  // pipelined a tag at a time, and of the institutions), and when it equals
  // `expected` writes the meta (counts, `source`, committed-at) and makes
  // the version current with one SET. FAILED_PRECONDITION
  // kSnapshotCountMismatch (nothing flipped, message with both counts)
  // otherwise; NOT_FOUND kSnapshotNotFound for a version never begun.
  absl::Status Commit(std::string_view version, const SnapshotCounts& expected,
                      std::string_view source);

  // The current version; nullopt before the first Commit.
  absl::StatusOr<std::optional<std::string>> CurrentVersion();

  // One HGET. nullopt when `version` has no such person; the record has
  // person_key set. INVALID_ARGUMENT kPersonKeyInvalid; INTERNAL
  // kSnapshotRecordCorrupt for an undecodable record.
  absl::StatusOr<std::optional<engine::Enrollment>> GetEnrollment(std::string_view version,
                                                                  std::string_view person_key);
  // One HGET; institution_id set. nullopt when absent.
  absl::StatusOr<std::optional<engine::Institution>> GetInstitution(
      std::string_view version, std::string_view institution_id);

  // The current version and every registered version with its meta.
  absl::StatusOr<SnapshotStatus> Status();

  // Deletes every key of `version` (UNLINK of its 65,536 bucket names,
  // pipelined a tag at a time, then institutions and meta) and unregisters
  // it. FAILED_PRECONDITION kSnapshotIsCurrent for the current version;
  // NOT_FOUND kSnapshotNotFound for an unknown one.
  absl::Status Drop(std::string_view version);

  // Applies `delta` to the current version (compare-and-set on the record,
  // retried a few times) and appends it to snap:deltas (fields kind,
  // version, person_key, at_unix; presenter_key for the presenter kinds).
  // NOT_FOUND kSnapshotNotFound when no version is current;
  // kSnapshotPersonNotFound when a delta other than an upsert names an
  // unknown person; INVALID_ARGUMENT kPersonKeyInvalid (field person_key or
  // presenter_key), kFamilyPresentersInvalid for an upsert whose presenter
  // list cannot be encoded or a bind of the person to themself;
  // FAILED_PRECONDITION kFamilyPresentersFull for a bind beyond
  // kMaxFamilyPresenters; ABORTED kSnapshotDeltaContended. The presenter
  // need not be in the snapshot (a family member may be insured
  // elsewhere). Repeating a delta is harmless: binding a bound presenter or
  // unbinding one not bound changes nothing and is still streamed.
  absl::StatusOr<DeltaApplied> ApplyDelta(const Delta& delta);

  // Applies `delta` to the current version's registry (compare-and-set on
  // the record, retried a few times; an upsert never lifts a suspension,
  // DeltaApplied::suspension_kept), raises the version's registry
  // revision (also when the record already said so: a repeated delta is
  // harmless and still announced) and appends it to snap:deltas (fields
  // kind, version, institution_id, at_unix). NOT_FOUND kSnapshotNotFound
  // when no version is current, kSnapshotInstitutionNotFound (field
  // institution_id) when a suspension or reinstatement names an unknown
  // institution; INVALID_ARGUMENT kInstitutionInvalid for an empty id;
  // ABORTED kSnapshotDeltaContended.
  absl::StatusOr<DeltaApplied> ApplyInstitutionDelta(const InstitutionDelta& delta);

  // How many institution deltas `version` has had (meta field
  // registry_rev; 0 when none). One HGET: gateways poll it with the
  // current version and reload their registry cache when it moves.
  absl::StatusOr<int64_t> RegistryRevision(std::string_view version);

 private:
  absl::StatusOr<bool> IsRegistered(std::string_view version);
  // The current version, which deltas change; NOT_FOUND kSnapshotNotFound
  // when none is current.
  absl::StatusOr<std::string> VersionForDelta();
  absl::StatusOr<int64_t> CountPersons(std::string_view version);

  RedisClient& redis_;
  SnapshotStoreOptions options_;
};

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_SNAPSHOT_STORE_H_
