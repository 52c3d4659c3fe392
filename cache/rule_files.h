// The policy files and catalogs the gateways settle with, published in
// Redis by every gateway when it loads them (at start and on SIGHUP), so
// the ledger's shipper can store each once per digest in PostgreSQL before
// the first settlement that names it (ledger.rule_files): a settlement of
// years ago is recomputed with the exact rules it was settled under.
// Key: rules:{rules}:<sha256> (one hash tag: a handful of keys, never
// expiring — a new key only when a file changes), fields kind ("policy" |
// "catalog"), name (the file's name), content.
#ifndef MEDSETTLE_CACHE_RULE_FILES_H_
#define MEDSETTLE_CACHE_RULE_FILES_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/redis_client.h"

namespace medsettle::cache {

struct RuleFile {
  std::string sha256;  // lowercase hex SHA-256 of `content`
  std::string kind;    // "policy" or "catalog"
  std::string name;    // the file's name ("quzhou-2025.yaml", "demo-catalog.csv")
  std::string content;
};

std::string RuleFileKey(std::string_view sha256);  // rules:{rules}:<sha256>

// HSET of each file (idempotent: the key is the content's digest). One
// pipeline. INVALID_ARGUMENT when a digest is not 64 lowercase hex or does
// not match its content.
absl::Status PublishRuleFiles(RedisClient& redis, const std::vector<RuleFile>& files);

// The published file of `sha256`; nullopt when no gateway published it.
// INTERNAL when the stored content does not match its digest.
absl::StatusOr<std::optional<RuleFile>> ReadRuleFile(RedisClient& redis, std::string_view sha256);

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_RULE_FILES_H_
