#include "cache/snapshot_store.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cache/enrollment_codec.h"
#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::cache {
namespace {

using engine::Cat;

constexpr char kHex[] = "0123456789abcdef";
constexpr int kTags = 256;
constexpr int kBuckets = 256;
constexpr size_t kFieldBytes = 14;  // hex characters 4..31 of the person key
constexpr int kDeltaAttempts = 5;
constexpr std::string_view kStreamMaxLen = "1000000";

// Sets field ARGV[1] of KEYS[1] to ARGV[3] only if it still holds ARGV[2].
constexpr std::string_view kCompareAndSetScript =
    "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then "
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) return 1 else return 0 end";

std::string HexByte(int b) { return {kHex[(b >> 4) & 15], kHex[b & 15]}; }

int HexDigit(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

// 14 raw bytes from hex characters 4..31. REQUIRES: CheckPersonKey ok.
std::string FieldOf(std::string_view person_key) {
  std::string field(kFieldBytes, '\0');
  for (size_t k = 0; k < kFieldBytes; ++k) {
    field[k] = static_cast<char>(HexDigit(person_key[4 + 2 * k]) * 16 +
                                 HexDigit(person_key[5 + 2 * k]));
  }
  return field;
}

std::string BucketKeyOf(std::string_view version, std::string_view person_key) {
  return SnapshotBucketKey(version, person_key.substr(0, 2), person_key.substr(2, 2));
}

absl::Status NotFound(std::string_view version) {
  return engine::Refusal(absl::StatusCode::kNotFound, reason::kSnapshotNotFound, "",
                         Cat("snapshot version '", version, "' does not exist"));
}

absl::Status Unexpected(std::string_view what) {
  return engine::Refusal(absl::StatusCode::kInternal, reason::kRedisError, "",
                         Cat("unexpected Redis reply to ", what));
}

int64_t ParseInt(std::string_view s) {
  int64_t v = 0;
  bool negative = !s.empty() && s.front() == '-';
  if (negative) s.remove_prefix(1);
  for (char c : s) {
    if (c < '0' || c > '9') break;
    v = v * 10 + (c - '0');
  }
  return negative ? -v : v;
}

// Runs `commands` (every key in the slot of `routing_key`) as pipelines of
// at most `chunk` and returns the replies; the first failing command fails
// the whole call.
absl::StatusOr<std::vector<RedisReply>> RunAll(RedisClient& redis, std::string_view routing_key,
                                               const std::vector<RedisArgv>& commands,
                                               size_t chunk) {
  std::vector<RedisReply> replies;
  replies.reserve(commands.size());
  for (size_t at = 0; at < commands.size(); at += chunk) {
    std::vector<RedisArgv> part(commands.begin() + static_cast<std::ptrdiff_t>(at),
                                commands.begin() + static_cast<std::ptrdiff_t>(
                                                       std::min(commands.size(), at + chunk)));
    absl::StatusOr<std::vector<RedisResult>> results = redis.Pipeline(routing_key, part);
    if (!results.ok()) return results.status();
    for (RedisResult& r : *results) {
      if (!r.ok()) return r.status();
      replies.push_back(*std::move(r));
    }
  }
  return replies;
}

}  // namespace

std::string SnapshotBucketKey(std::string_view version, std::string_view tag,
                              std::string_view bucket) {
  return Cat("snap:{", tag, "}:", version, ":e:", bucket);
}
std::string SnapshotMetaKey(std::string_view version) { return Cat("snap:", version, ":meta"); }
std::string SnapshotInstitutionsKey(std::string_view version) {
  return Cat("snap:", version, ":inst");
}

std::string SnapshotPersonBucketKey(std::string_view version, std::string_view person_key) {
  return BucketKeyOf(version, person_key);
}
std::string SnapshotPersonField(std::string_view person_key) { return FieldOf(person_key); }

absl::Status CheckPersonKey(std::string_view person_key) {
  if (person_key.size() == 64 && engine::IsLowerHex(person_key)) return absl::OkStatus();
  return engine::Refusal(absl::StatusCode::kInvalidArgument, reason::kPersonKeyInvalid,
                         "person_key", "person key is not 64 lowercase hex characters");
}

std::string_view Name(DeltaKind kind) {
  switch (kind) {
    case DeltaKind::kUpsertPerson: return "UPSERT_PERSON";
    case DeltaKind::kSuspend: return "SUSPEND";
    case DeltaKind::kRevokeVoucher: return "REVOKE_VOUCHER";
    case DeltaKind::kBindPresenter: return "BIND_PRESENTER";
    case DeltaKind::kUnbindPresenter: return "UNBIND_PRESENTER";
  }
  return "UNKNOWN";
}

std::string_view Name(InstitutionDeltaKind kind) {
  switch (kind) {
    case InstitutionDeltaKind::kUpsertInstitution: return "UPSERT_INSTITUTION";
    case InstitutionDeltaKind::kSuspendInstitution: return "SUSPEND_INSTITUTION";
    case InstitutionDeltaKind::kReinstateInstitution: return "REINSTATE_INSTITUTION";
  }
  return "UNKNOWN";
}

SnapshotStore::SnapshotStore(RedisClient& redis, SnapshotStoreOptions options)
    : redis_(redis), options_(std::move(options)) {
  if (!options_.now_unix) {
    options_.now_unix = [] {
      return static_cast<int64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count());
    };
  }
  options_.pipeline_commands = std::clamp(options_.pipeline_commands, 1, kBuckets);
}

absl::StatusOr<std::string> SnapshotStore::BeginLoad() {
  RedisResult seq = redis_.Command(kSnapSequenceKey, {"INCR", kSnapSequenceKey});
  if (!seq.ok()) return seq.status();
  const int64_t now = options_.now_unix();
  time_t t = static_cast<time_t>(now);
  struct tm utc {};
  gmtime_r(&t, &utc);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &utc);
  std::string version = Cat(std::string_view(stamp), "-", seq->integer);
  std::string now_text = std::to_string(now);
  std::string meta = SnapshotMetaKey(version);
  RedisResult hset = redis_.Command(meta, {"HSET", meta, "state", "loading", "started_at", now_text});
  if (!hset.ok()) return hset.status();
  RedisResult zadd = redis_.Command(kSnapVersionsKey, {"ZADD", kSnapVersionsKey, now_text, version});
  if (!zadd.ok()) return zadd.status();
  return version;
}

absl::StatusOr<int64_t> SnapshotStore::PutPersons(std::string_view version,
                                                  std::span<const engine::Enrollment> persons) {
  struct Entry {
    std::string_view person_key;
    std::string field;
    std::string value;
  };
  std::vector<Entry> entries;
  entries.reserve(persons.size());
  for (const engine::Enrollment& e : persons) {
    if (absl::Status s = CheckPersonKey(e.person_key); !s.ok()) return s;
    absl::StatusOr<std::string> value = EncodeEnrollment(e);
    if (!value.ok()) return value.status();
    entries.push_back({e.person_key, FieldOf(e.person_key), *std::move(value)});
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.person_key < b.person_key; });
  int64_t added = 0;
  for (size_t i = 0; i < entries.size();) {
    // One tag: one pipeline, one HSET per bucket.
    std::string_view tag = entries[i].person_key.substr(0, 2);
    std::deque<std::string> keys;
    std::vector<RedisArgv> commands;
    while (i < entries.size() && entries[i].person_key.substr(0, 2) == tag) {
      std::string_view bucket = entries[i].person_key.substr(0, 4);
      keys.push_back(BucketKeyOf(version, entries[i].person_key));
      RedisArgv argv = {"HSET", keys.back()};
      for (; i < entries.size() && entries[i].person_key.substr(0, 4) == bucket; ++i) {
        argv.push_back(entries[i].field);
        argv.push_back(entries[i].value);
      }
      commands.push_back(std::move(argv));
    }
    absl::StatusOr<std::vector<RedisReply>> replies =
        RunAll(redis_, tag, commands, commands.size());
    if (!replies.ok()) return replies.status();
    for (const RedisReply& r : *replies) added += r.integer;
  }
  return added;
}

absl::StatusOr<int64_t> SnapshotStore::PutInstitutions(
    std::string_view version, std::span<const engine::Institution> institutions) {
  if (institutions.empty()) return 0;
  std::vector<std::string> values;
  values.reserve(institutions.size());
  std::string key = SnapshotInstitutionsKey(version);
  RedisArgv argv = {"HSET", key};
  for (const engine::Institution& i : institutions) {
    if (i.institution_id.empty()) {
      return engine::InvalidField(engine::reason::kInstitutionInvalid, "institution_id",
                                  "institution id is empty");
    }
    values.push_back(EncodeInstitution(i));
  }
  for (size_t k = 0; k < institutions.size(); ++k) {
    argv.push_back(institutions[k].institution_id);
    argv.push_back(values[k]);
  }
  RedisResult r = redis_.Command(key, argv);
  if (!r.ok()) return r.status();
  return r->integer;
}

absl::StatusOr<bool> SnapshotStore::IsRegistered(std::string_view version) {
  RedisResult score = redis_.Command(kSnapVersionsKey, {"ZSCORE", kSnapVersionsKey, version});
  if (!score.ok()) return score.status();
  return !score->is_nil();
}

absl::StatusOr<int64_t> SnapshotStore::CountPersons(std::string_view version) {
  int64_t total = 0;
  for (int tag = 0; tag < kTags; ++tag) {
    std::string tag_hex = HexByte(tag);
    std::vector<std::string> keys;
    keys.reserve(kBuckets);
    for (int b = 0; b < kBuckets; ++b) keys.push_back(SnapshotBucketKey(version, tag_hex, HexByte(b)));
    std::vector<RedisArgv> commands;
    commands.reserve(kBuckets);
    for (const std::string& k : keys) commands.push_back({"HLEN", k});
    absl::StatusOr<std::vector<RedisReply>> replies =
        RunAll(redis_, tag_hex, commands, static_cast<size_t>(options_.pipeline_commands));
    if (!replies.ok()) return replies.status();
    for (const RedisReply& r : *replies) total += r.integer;
  }
  return total;
}

absl::Status SnapshotStore::Commit(std::string_view version, const SnapshotCounts& expected,
                                   std::string_view source) {
  absl::StatusOr<bool> registered = IsRegistered(version);
  if (!registered.ok()) return registered.status();
  if (!*registered) return NotFound(version);
  absl::StatusOr<int64_t> persons = CountPersons(version);
  if (!persons.ok()) return persons.status();
  RedisResult institutions = redis_.Command(SnapshotInstitutionsKey(version), {"HLEN", SnapshotInstitutionsKey(version)});
  if (!institutions.ok()) return institutions.status();
  if (*persons != expected.persons || institutions->integer != expected.institutions) {
    return engine::Refused(
        reason::kSnapshotCountMismatch,
        Cat("snapshot ", version, " holds ", *persons, " persons and ", institutions->integer,
            " institutions; the loader expected ", expected.persons, " and ",
            expected.institutions, "; not made current"));
  }
  std::string persons_text = std::to_string(*persons);
  std::string institutions_text = std::to_string(institutions->integer);
  std::string now_text = std::to_string(options_.now_unix());
  RedisResult meta = redis_.Command(SnapshotMetaKey(version), {"HSET", SnapshotMetaKey(version), "state", "committed",
                                     "persons", persons_text, "institutions", institutions_text,
                                     "source", source, "committed_at", now_text});
  if (!meta.ok()) return meta.status();
  RedisResult flip = redis_.Command(kSnapCurrentKey, {"SET", kSnapCurrentKey, version});
  if (!flip.ok()) return flip.status();
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> SnapshotStore::CurrentVersion() {
  RedisResult r = redis_.Command(kSnapCurrentKey, {"GET", kSnapCurrentKey});
  if (!r.ok()) return r.status();
  if (r->is_nil()) return std::optional<std::string>();
  return std::optional<std::string>(r->str);
}

absl::StatusOr<std::optional<engine::Enrollment>> SnapshotStore::GetEnrollment(
    std::string_view version, std::string_view person_key) {
  if (absl::Status s = CheckPersonKey(person_key); !s.ok()) return s;
  const std::string bucket = BucketKeyOf(version, person_key);
  RedisResult r = redis_.Command(bucket, {"HGET", bucket, FieldOf(person_key)});
  if (!r.ok()) return r.status();
  if (r->is_nil()) return std::optional<engine::Enrollment>();
  absl::StatusOr<engine::Enrollment> e = DecodeEnrollment(r->str);
  if (!e.ok()) return e.status();
  e->person_key = std::string(person_key);
  return std::optional<engine::Enrollment>(*std::move(e));
}

absl::StatusOr<std::optional<engine::Institution>> SnapshotStore::GetInstitution(
    std::string_view version, std::string_view institution_id) {
  const std::string key = SnapshotInstitutionsKey(version);
  RedisResult r = redis_.Command(key, {"HGET", key, institution_id});
  if (!r.ok()) return r.status();
  if (r->is_nil()) return std::optional<engine::Institution>();
  absl::StatusOr<engine::Institution> i = DecodeInstitution(r->str);
  if (!i.ok()) return i.status();
  i->institution_id = std::string(institution_id);
  return std::optional<engine::Institution>(*std::move(i));
}

absl::StatusOr<SnapshotStatus> SnapshotStore::Status() {
  SnapshotStatus status;
  absl::StatusOr<std::optional<std::string>> current = CurrentVersion();
  if (!current.ok()) return current.status();
  status.current = *current;
  RedisResult versions = redis_.Command(kSnapVersionsKey, {"ZRANGE", kSnapVersionsKey, "0", "-1", "WITHSCORES"});
  if (!versions.ok()) return versions.status();
  if (versions->elements.size() % 2 != 0) return Unexpected("ZRANGE WITHSCORES");
  for (size_t k = 0; k < versions->elements.size(); k += 2) {
    SnapshotVersionInfo info;
    info.version = versions->elements[k].str;
    info.started_at_unix = ParseInt(versions->elements[k + 1].str);
    // Meta keys of different versions live in different slots: one each.
    RedisResult meta = redis_.Command(SnapshotMetaKey(info.version), {"HGETALL", SnapshotMetaKey(info.version)});
    if (!meta.ok()) return meta.status();
    for (size_t f = 0; f + 1 < meta->elements.size(); f += 2) {
      const std::string& name = meta->elements[f].str;
      const std::string& value = meta->elements[f + 1].str;
      if (name == "state") info.state = value;
      if (name == "persons") info.counts.persons = ParseInt(value);
      if (name == "institutions") info.counts.institutions = ParseInt(value);
      if (name == "source") info.source = value;
      if (name == "committed_at") info.committed_at_unix = ParseInt(value);
    }
    status.versions.push_back(std::move(info));
  }
  return status;
}

absl::Status SnapshotStore::Drop(std::string_view version) {
  absl::StatusOr<std::optional<std::string>> current = CurrentVersion();
  if (!current.ok()) return current.status();
  if (current->has_value() && **current == version) {
    return engine::Refused(reason::kSnapshotIsCurrent,
                           Cat("snapshot ", version, " is current; flip to another first"));
  }
  absl::StatusOr<bool> registered = IsRegistered(version);
  if (!registered.ok()) return registered.status();
  if (!*registered) return NotFound(version);
  // One UNLINK per tag naming its 256 bucket keys: all in one slot.
  for (int tag = 0; tag < kTags; ++tag) {
    std::string tag_hex = HexByte(tag);
    std::vector<std::string> keys;
    keys.reserve(kBuckets);
    for (int b = 0; b < kBuckets; ++b) keys.push_back(SnapshotBucketKey(version, tag_hex, HexByte(b)));
    RedisArgv argv = {"UNLINK"};
    for (const std::string& k : keys) argv.push_back(k);
    RedisResult r = redis_.Command(tag_hex, argv);
    if (!r.ok()) return r.status();
  }
  for (const std::string& key : {SnapshotInstitutionsKey(version), SnapshotMetaKey(version)}) {
    RedisResult r = redis_.Command(key, {"UNLINK", key});
    if (!r.ok()) return r.status();
  }
  RedisResult r = redis_.Command(kSnapVersionsKey, {"ZREM", kSnapVersionsKey, version});
  if (!r.ok()) return r.status();
  return absl::OkStatus();
}

absl::StatusOr<DeltaApplied> SnapshotStore::ApplyDelta(const Delta& delta) {
  const std::string& person_key = delta.enrollment.person_key;
  if (absl::Status s = CheckPersonKey(person_key); !s.ok()) return s;
  const bool presenter_kind =
      delta.kind == DeltaKind::kBindPresenter || delta.kind == DeltaKind::kUnbindPresenter;
  if (presenter_kind) {
    if (!CheckPersonKey(delta.presenter_key).ok()) {
      return engine::InvalidField(reason::kPersonKeyInvalid, "presenter_key",
                                  "presenter key is not 64 lowercase hex characters");
    }
    if (delta.kind == DeltaKind::kBindPresenter && delta.presenter_key == person_key) {
      return engine::InvalidField(reason::kFamilyPresentersInvalid, "presenter_key",
                                  "a person cannot be their own family presenter");
    }
  }
  std::string upsert_value;
  if (delta.kind == DeltaKind::kUpsertPerson) {
    absl::StatusOr<std::string> value = EncodeEnrollment(delta.enrollment);
    if (!value.ok()) return value.status();
    upsert_value = *std::move(value);
  }
  absl::StatusOr<std::string> current = VersionForDelta();
  if (!current.ok()) return current.status();
  DeltaApplied applied;
  applied.version = *std::move(current);
  const std::string key = BucketKeyOf(applied.version, person_key);
  const std::string field = FieldOf(person_key);
  if (delta.kind == DeltaKind::kUpsertPerson) {
    RedisResult r = redis_.Command(key, {"HSET", key, field, upsert_value});
    if (!r.ok()) return r.status();
  } else {
    bool written = false;
    for (int attempt = 0; attempt < kDeltaAttempts && !written; ++attempt) {
      RedisResult old = redis_.Command(key, {"HGET", key, field});
      if (!old.ok()) return old.status();
      if (old->is_nil()) {
        return engine::Refusal(absl::StatusCode::kNotFound, reason::kSnapshotPersonNotFound,
                               "person_key",
                               Cat("snapshot ", applied.version, " holds no such person"));
      }
      absl::StatusOr<engine::Enrollment> e = DecodeEnrollment(old->str);
      if (!e.ok()) return e.status();
      std::vector<std::string>& presenters = e->family_presenter_keys;  // sorted
      auto where = std::lower_bound(presenters.begin(), presenters.end(), delta.presenter_key);
      const bool bound = where != presenters.end() && *where == delta.presenter_key;
      switch (delta.kind) {
        case DeltaKind::kSuspend: e->status = engine::EnrollmentStatus::kSuspended; break;
        case DeltaKind::kRevokeVoucher: e->voucher_revoked_at_unix = delta.revoked_at_unix; break;
        case DeltaKind::kBindPresenter:
          if (bound) break;
          if (presenters.size() >= kMaxFamilyPresenters) {
            return engine::Refused(
                reason::kFamilyPresentersFull,
                Cat("the person already has ", presenters.size(),
                    " family presenters, the most allowed; unbind one first"));
          }
          presenters.insert(where, delta.presenter_key);
          break;
        case DeltaKind::kUnbindPresenter:
          if (bound) presenters.erase(where);
          break;
        case DeltaKind::kUpsertPerson: break;  // handled above
      }
      absl::StatusOr<std::string> value = EncodeEnrollment(*e);
      if (!value.ok()) return value.status();
      if (*value == old->str) {  // nothing to change (a repeated delta)
        written = true;
        break;
      }
      RedisResult cas = redis_.Command(
          key, {"EVAL", kCompareAndSetScript, "1", key, field, old->str, *value});
      if (!cas.ok()) return cas.status();
      written = cas->integer == 1;
    }
    if (!written) {
      return engine::Refusal(absl::StatusCode::kAborted, reason::kSnapshotDeltaContended, "",
                             "the record kept changing; retry the delta");
    }
  }
  std::string at = std::to_string(delta.kind == DeltaKind::kRevokeVoucher
                                      ? delta.revoked_at_unix
                                      : options_.now_unix());
  RedisArgv xadd_argv = {"XADD", kSnapDeltasKey, "MAXLEN", "~", kStreamMaxLen, "*",
                         "kind", Name(delta.kind), "version", applied.version,
                         "person_key", person_key, "at_unix", at};
  if (presenter_kind) {
    xadd_argv.push_back("presenter_key");
    xadd_argv.push_back(delta.presenter_key);
  }
  RedisResult xadd = redis_.Command(kSnapDeltasKey, xadd_argv);
  if (!xadd.ok()) return xadd.status();
  applied.stream_id = xadd->str;
  return applied;
}

absl::StatusOr<std::string> SnapshotStore::VersionForDelta() {
  absl::StatusOr<std::optional<std::string>> current = CurrentVersion();
  if (!current.ok()) return current.status();
  if (!current->has_value()) {
    return engine::Refusal(absl::StatusCode::kNotFound, reason::kSnapshotNotFound, "",
                           "no snapshot version is current");
  }
  return **std::move(current);
}

absl::StatusOr<DeltaApplied> SnapshotStore::ApplyInstitutionDelta(const InstitutionDelta& delta) {
  const std::string& id = delta.institution.institution_id;
  if (id.empty()) {
    return engine::InvalidField(engine::reason::kInstitutionInvalid, "institution_id",
                                "an institution delta needs the institution id");
  }
  absl::StatusOr<std::string> current = VersionForDelta();
  if (!current.ok()) return current.status();
  DeltaApplied applied;
  applied.version = *std::move(current);
  const std::string key = SnapshotInstitutionsKey(applied.version);
  const bool upsert = delta.kind == InstitutionDeltaKind::kUpsertInstitution;
  bool written = false;
  for (int attempt = 0; attempt < kDeltaAttempts && !written; ++attempt) {
    RedisResult old = redis_.Command(key, {"HGET", key, id});
    if (!old.ok()) return old.status();
    std::optional<engine::Institution> before;
    if (!old->is_nil()) {
      absl::StatusOr<engine::Institution> i = DecodeInstitution(old->str);
      if (!i.ok()) return i.status();
      before = *std::move(i);
    } else if (!upsert) {
      return engine::Refusal(absl::StatusCode::kNotFound, reason::kSnapshotInstitutionNotFound,
                             "institution_id",
                             Cat("the registry of snapshot ", applied.version,
                                 " holds no institution ", id));
    }
    engine::Institution after;
    if (upsert) {
      after = delta.institution;
      // Only reinstate-institution lifts a suspension: a correction made
      // from a CSV row written before the suspension must not undo it.
      if (before && before->suspended && !after.suspended) {
        after.suspended = true;
        applied.suspension_kept = true;
      }
    } else {
      after = *before;
      after.suspended = delta.kind == InstitutionDeltaKind::kSuspendInstitution;
    }
    const std::string value = EncodeInstitution(after);
    if (before && value == old->str) {  // already so (a repeated delta)
      written = true;
      break;
    }
    // Compare-and-set against what was read (HSETNX for a new record), so
    // a suspension racing this delta is never overwritten unseen.
    RedisResult set =
        before ? redis_.Command(key, {"EVAL", kCompareAndSetScript, "1", key, id, old->str, value})
               : redis_.Command(key, {"HSETNX", key, id, value});
    if (!set.ok()) return set.status();
    written = set->integer == 1;
  }
  if (!written) {
    return engine::Refusal(absl::StatusCode::kAborted, reason::kSnapshotDeltaContended, "",
                           "the record kept changing; retry the delta");
  }
  // After the record: a gateway that sees the new revision reads the new
  // record. Raised even when nothing changed, so re-running a delta whose
  // revision bump failed still reaches every gateway.
  RedisResult rev =
      redis_.Command(SnapshotMetaKey(applied.version), {"HINCRBY", SnapshotMetaKey(applied.version), "registry_rev", "1"});
  if (!rev.ok()) return rev.status();
  RedisResult xadd = redis_.Command(kSnapDeltasKey, {"XADD", kSnapDeltasKey, "MAXLEN", "~", kStreamMaxLen, "*",
                                     "kind", Name(delta.kind), "version", applied.version,
                                     "institution_id", id, "at_unix",
                                     std::to_string(options_.now_unix())});
  if (!xadd.ok()) return xadd.status();
  applied.stream_id = xadd->str;
  return applied;
}

absl::StatusOr<int64_t> SnapshotStore::RegistryRevision(std::string_view version) {
  RedisResult r = redis_.Command(SnapshotMetaKey(version), {"HGET", SnapshotMetaKey(version), "registry_rev"});
  if (!r.ok()) return r.status();
  if (r->is_nil()) return int64_t{0};
  return ParseInt(r->str);  // written by HINCRBY only
}

}  // namespace medsettle::cache
