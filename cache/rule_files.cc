#include "cache/rule_files.h"

#include "engine/files/loaded_engine.h"
#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::cache {

using engine::Cat;
using engine_files::Sha256Hex;

std::string RuleFileKey(std::string_view sha256) { return Cat("rules:{rules}:", sha256); }

absl::Status PublishRuleFiles(RedisClient& redis, const std::vector<RuleFile>& files) {
  std::vector<std::string> keys;
  keys.reserve(files.size());
  std::vector<RedisArgv> commands;
  for (const RuleFile& f : files) {
    if (f.sha256.size() != 64 || !engine::IsLowerHex(f.sha256) || Sha256Hex(f.content) != f.sha256) {
      return engine::InvalidField("RULE_FILE_DIGEST_MISMATCH", "sha256",
                                  Cat("rule file ", f.name, ": ", f.sha256,
                                      " is not the SHA-256 of its content"));
    }
    keys.push_back(RuleFileKey(f.sha256));
  }
  for (size_t i = 0; i < files.size(); ++i) {
    commands.push_back({"HSET", keys[i], "kind", files[i].kind, "name", files[i].name, "content",
                        files[i].content});
  }
  if (commands.empty()) return absl::OkStatus();
  // Every rule file's key has the tag {rules}: one slot, one pipeline.
  absl::StatusOr<std::vector<RedisResult>> replies = redis.Pipeline("rules", commands);
  if (!replies.ok()) return replies.status();
  for (const RedisResult& r : *replies) {
    if (!r.ok()) return r.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<RuleFile>> ReadRuleFile(RedisClient& redis,
                                                     std::string_view sha256) {
  const std::string key = RuleFileKey(sha256);
  RedisResult r = redis.Command(key, {"HMGET", key, "kind", "name", "content"});
  if (!r.ok()) return r.status();
  if (r->elements.size() != 3 || r->elements[2].is_nil()) return std::optional<RuleFile>();
  RuleFile f{.sha256 = std::string(sha256),
             .kind = r->elements[0].str,
             .name = r->elements[1].str,
             .content = r->elements[2].str};
  if (Sha256Hex(f.content) != f.sha256) {
    return engine::Refusal(absl::StatusCode::kInternal, "RULE_FILE_DIGEST_MISMATCH", "",
                           Cat(key, " holds content of another digest"));
  }
  return std::optional<RuleFile>(std::move(f));
}

}  // namespace medsettle::cache
