#include "cache/cluster_client.h"

#include <algorithm>
#include <optional>
#include <thread>
#include <utility>

#include "cache/redis_connection.h"
#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::cache {
namespace {

using engine::Cat;
using Clock = std::chrono::steady_clock;

std::string_view MessageOf(const absl::Status& status) {
  return std::string_view(status.message().data(), status.message().size());
}

// Error replies after which Redis did not run the command and a later
// attempt may succeed: the cluster is mid-change.
bool RetryableClusterError(std::string_view text) {
  for (std::string_view word : {"TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN", "READONLY"}) {
    if (text.starts_with(word) && (text.size() == word.size() || text[word.size()] == ' ')) {
      return true;
    }
  }
  return false;
}

// Where a group of commands goes: a node, with ASKING before each command
// when it is the target of an ASK.
struct Destination {
  NodeAddress node;
  bool asking = false;
  bool operator==(const Destination&) const = default;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ClusterClient>> ClusterClient::Connect(ClusterOptions options) {
  std::unique_ptr<ClusterClient> client(new ClusterClient(std::move(options)));
  if (absl::Status s = client->Refresh(); !s.ok()) return s;
  return client;
}

std::shared_ptr<const SlotMap> ClusterClient::slots() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return slots_;
}

ConnectionPool& ClusterClient::PoolFor(const NodeAddress& node) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::unique_ptr<ConnectionPool>& pool = pools_[node.ToString()];
  if (pool == nullptr) {
    pool = std::make_unique<ConnectionPool>(PoolOptions{
        .redis = RedisOptions{.host = node.host,
                              .port = node.port,
                              .connect_timeout_ms = options_.connect_timeout_ms,
                              .command_timeout_ms = options_.command_timeout_ms,
                              .on_round_trip = options_.on_round_trip},
        .size = options_.pool_size_per_node,
        .acquire_timeout_ms = options_.acquire_timeout_ms,
        .on_acquire = nullptr});
  }
  return *pool;
}

absl::StatusOr<std::shared_ptr<const SlotMap>> ClusterClient::ReadSlots(const NodeAddress& node) {
  // A connection of its own: a refresh must not wait for a busy pool.
  RedisConnection connection(RedisOptions{.host = node.host,
                                          .port = node.port,
                                          .connect_timeout_ms = options_.connect_timeout_ms,
                                          .command_timeout_ms = options_.command_timeout_ms,
                                          .on_round_trip = nullptr});
  RedisResult reply = connection.Command({"CLUSTER", "SLOTS"});
  if (!reply.ok()) {
    if (engine::ReasonOf(reply.status()) == reason::kRedisUnavailable) return reply.status();
    // An error reply ("ERR This instance has cluster support disabled").
    RedisReply error;
    error.type = RedisReply::Type::kError;
    error.str = std::string(MessageOf(reply.status()));
    return SlotMap::FromClusterSlots(error, node).status();
  }
  absl::StatusOr<SlotMap> map = SlotMap::FromClusterSlots(*reply, node);
  if (!map.ok()) return map.status();
  return std::make_shared<const SlotMap>(std::move(*map));
}

absl::Status ClusterClient::Refresh() {
  std::lock_guard<std::mutex> one_at_a_time(refresh_mutex_);
  // Ask the primaries we know first (they are the cluster now), then the
  // replicas, then the seeds (a fresh start, or every known node gone).
  std::vector<NodeAddress> candidates;
  if (std::shared_ptr<const SlotMap> current = slots(); current != nullptr) {
    for (const ClusterShard& shard : current->shards()) candidates.push_back(shard.primary);
    for (const ClusterShard& shard : current->shards()) {
      candidates.insert(candidates.end(), shard.replicas.begin(), shard.replicas.end());
    }
  }
  candidates.insert(candidates.end(), options_.seeds.begin(), options_.seeds.end());
  std::shared_ptr<const SlotMap> partial;
  absl::Status last = engine::Refusal(absl::StatusCode::kUnavailable,
                                      reason::kRedisClusterUnreachable, "", "no node to ask");
  std::vector<std::string> asked;
  for (const NodeAddress& node : candidates) {
    const std::string name = node.ToString();
    if (std::find(asked.begin(), asked.end(), name) != asked.end()) continue;
    asked.push_back(name);
    absl::StatusOr<std::shared_ptr<const SlotMap>> map = ReadSlots(node);
    if (!map.ok()) {
      if (engine::ReasonOf(map.status()) == reason::kRedisClusterTopologyInvalid) {
        last = map.status();
      } else {
        last = engine::Refusal(absl::StatusCode::kUnavailable, reason::kRedisClusterUnreachable,
                               "", Cat("no cluster node answered CLUSTER SLOTS; last, ", name,
                                       ": ", MessageOf(map.status())));
      }
      continue;
    }
    if ((*map)->CheckCoverage().ok()) {
      partial = *map;
      break;
    }
    // A node mid-failover may not see every slot served yet; another may.
    if (partial == nullptr) partial = *map;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  last_refresh_ = Clock::now();
  if (partial == nullptr) return last;
  slots_ = std::move(partial);
  refreshes_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

void ClusterClient::RefreshSoon() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (Clock::now() - last_refresh_ < std::chrono::milliseconds(options_.min_refresh_interval_ms)) {
      return;
    }
  }
  (void)Refresh();  // on failure the old table stays; the next call tries again
}

RedisResult ClusterClient::Command(std::string_view routing_key, const RedisArgv& argv) {
  absl::StatusOr<std::vector<RedisResult>> results = Pipeline(routing_key, {argv});
  if (!results.ok()) return results.status();
  return std::move((*results)[0]);
}

absl::StatusOr<std::vector<RedisResult>> ClusterClient::Pipeline(
    std::string_view routing_key, const std::vector<RedisArgv>& commands) {
  const int slot = KeySlot(routing_key);
  std::vector<RedisResult> results(commands.size(), absl::UnknownError("not sent"));
  // The commands still to send, by destination.
  std::vector<std::pair<Destination, std::vector<size_t>>> todo;
  auto primary = [&]() -> absl::StatusOr<NodeAddress> {
    std::shared_ptr<const SlotMap> map = slots();
    std::optional<NodeAddress> node = map != nullptr ? map->PrimaryOf(slot) : std::nullopt;
    if (!node) {
      RefreshSoon();
      map = slots();
      node = map != nullptr ? map->PrimaryOf(slot) : std::nullopt;
    }
    if (!node) {
      return engine::Refusal(absl::StatusCode::kUnavailable, reason::kRedisClusterSlotsUncovered,
                             "", Cat("no node of the cluster serves slot ", slot));
    }
    return *node;
  };
  absl::StatusOr<NodeAddress> first = primary();
  if (!first.ok()) return first.status();
  std::vector<size_t> all(commands.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  todo.push_back({Destination{.node = *first, .asking = false}, std::move(all)});

  int redirects = 0;
  int retries = 0;
  while (!todo.empty()) {
    std::vector<std::pair<Destination, std::vector<size_t>>> next;
    auto send_later = [&next](const Destination& d, size_t index) {
      for (auto& [dest, indices] : next) {
        if (dest == d) {
          indices.push_back(index);
          return;
        }
      }
      next.push_back({d, {index}});
    };
    std::vector<size_t> retry_later;
    for (const auto& [dest, indices] : todo) {
      std::vector<RedisArgv> batch;
      batch.reserve(indices.size() * (dest.asking ? 2 : 1));
      for (size_t index : indices) {
        if (dest.asking) batch.push_back({"ASKING"});
        batch.push_back(commands[index]);
      }
      absl::StatusOr<std::vector<RedisResult>> replies = PoolFor(dest.node).Pipeline(batch);
      if (!replies.ok()) {
        // The outcome is unknown: nothing is sent again. A failed primary
        // is replaced by its replica; the next call reads who serves now.
        if (engine::ReasonOf(replies.status()) == reason::kRedisUnavailable) RefreshSoon();
        return replies.status();
      }
      const size_t stride = dest.asking ? 2 : 1;
      for (size_t k = 0; k < indices.size(); ++k) {
        RedisResult& reply = (*replies)[k * stride + stride - 1];
        const size_t index = indices[k];
        if (reply.ok()) {
          results[index] = std::move(reply);
          continue;
        }
        const std::string_view text = MessageOf(reply.status());
        if (std::optional<Redirection> r = ParseRedirection(text, dest.node); r.has_value()) {
          redirects_.fetch_add(1, std::memory_order_relaxed);
          if (r->kind == Redirection::Kind::kMoved) {
            {
              std::lock_guard<std::mutex> lock(mutex_);
              if (slots_ != nullptr) {
                auto moved = std::make_shared<SlotMap>(*slots_);
                moved->Move(r->slot, r->node);
                slots_ = std::move(moved);
              }
            }
            send_later(Destination{.node = r->node, .asking = false}, index);
          } else {
            send_later(Destination{.node = r->node, .asking = true}, index);
          }
          continue;
        }
        if (RetryableClusterError(text)) {
          retry_later.push_back(index);
          results[index] = std::move(reply);  // what the caller gets if retries run out
          continue;
        }
        results[index] = std::move(reply);
      }
    }
    if (!next.empty()) {
      if (++redirects > options_.max_redirects) {
        return engine::Refusal(
            absl::StatusCode::kUnavailable, reason::kRedisClusterRedirectLoop, "",
            Cat("slot ", slot, " was redirected more than ", options_.max_redirects,
                " times in one call (the cluster is being resharded or its nodes disagree)"));
      }
      // MOVED: the table was updated for this slot; read the whole table
      // too, since a reshard or failover rarely moves one slot alone.
      RefreshSoon();
    }
    if (!retry_later.empty()) {
      if (retries < options_.max_retries) {
        retries_.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::sleep_for(std::chrono::milliseconds(options_.retry_backoff_ms << retries));
        ++retries;
        RefreshSoon();
        absl::StatusOr<NodeAddress> node = primary();
        if (!node.ok()) return node.status();
        for (size_t index : retry_later) {
          send_later(Destination{.node = *node, .asking = false}, index);
        }
      }
      // else: those commands keep Redis's own status (UNAVAILABLE for
      // TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN; REDIS_ERROR for READONLY).
    }
    todo = std::move(next);
  }
  return results;
}

}  // namespace medsettle::cache
