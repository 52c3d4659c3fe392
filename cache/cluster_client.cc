#include "cache/cluster_client.h"

#include <algorithm>
#include <functional>
#include <optional>
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

// Whether a reply must be sent again elsewhere or later.
bool NeedsAnotherTry(const RedisResult& reply) {
  if (reply.ok()) return false;
  const std::string_view text = MessageOf(reply.status());
  return text.starts_with("MOVED ") || text.starts_with("ASK ") || RetryableClusterError(text);
}

// A pipeline's commands, owned: AsyncRedis copies them when it sends, but a
// redirection sends them again after the caller's views are gone.
struct OwnedCommands {
  explicit OwnedCommands(const std::vector<RedisArgv>& commands) {
    args.reserve(commands.size());
    for (const RedisArgv& argv : commands) args.emplace_back(argv.begin(), argv.end());
    views.reserve(args.size());
    for (const std::vector<std::string>& argv : args) {
      views.emplace_back(argv.begin(), argv.end());
    }
  }
  std::vector<std::vector<std::string>> args;
  std::vector<RedisArgv> views;
};

}  // namespace

ClusterClient::ClusterClient(ClusterOptions options) : options_(std::move(options)) {
  for (int i = 0; i < std::max(1, options_.background_threads); ++i) {
    background_.emplace_back([this] { BackgroundLoop(); });
  }
}

ClusterClient::~ClusterClient() { Stop(); }

void ClusterClient::Stop() {
  if (stopped_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(background_mutex_);
    stopping_ = true;
  }
  background_wakeup_.notify_all();
  for (std::thread& t : background_) t.join();  // they run what was queued: every done is called
  // Stopped outside mutex_: a done finishing on an I/O thread may call back
  // into this client (it is refused at once, without mutex_), and Stop joins
  // those threads.
  std::vector<AsyncRedis*> async;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [name, redis] : async_) async.push_back(redis.get());
  }
  for (AsyncRedis* redis : async) redis->Stop();
}

absl::StatusOr<std::unique_ptr<ClusterClient>> ClusterClient::Connect(ClusterOptions options) {
  std::unique_ptr<ClusterClient> client(new ClusterClient(std::move(options)));
  if (absl::Status s = client->Refresh(); !s.ok()) {
    const bool unreachable = engine::ReasonOf(s) == reason::kRedisClusterUnreachable;
    if (!unreachable || client->options_.require_reachable) return s;
  }
  return client;
}

ClusterClientStats ClusterClient::Stats() const {
  return ClusterClientStats{.moved = moved_.load(std::memory_order_relaxed),
                            .ask = ask_.load(std::memory_order_relaxed),
                            .retries = retries_.load(std::memory_order_relaxed),
                            .refreshes = refreshes_.load(std::memory_order_relaxed)};
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

AsyncRedis& ClusterClient::AsyncFor(const NodeAddress& node) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::unique_ptr<AsyncRedis>& redis = async_[node.ToString()];
  if (redis == nullptr) {
    redis = std::make_unique<AsyncRedis>(AsyncRedisOptions{
        .redis = RedisOptions{.host = node.host,
                              .port = node.port,
                              .connect_timeout_ms = options_.connect_timeout_ms,
                              .command_timeout_ms = options_.command_timeout_ms,
                              .on_round_trip = options_.on_round_trip},
        .loops = options_.async_loops_per_node,
        .reconnect_backoff_ms = 20,
        .max_pending_per_loop = options_.max_pending_per_loop});
  }
  return *redis;
}

bool ClusterClient::AsyncConnected(const NodeAddress& node) {
  if (options_.async_loops_per_node <= 0 || stopped_.load(std::memory_order_acquire)) {
    return false;
  }
  AsyncRedis& redis = AsyncFor(node);
  for (int i = 0; i < redis.loops(); ++i) {
    if (!redis.connected(static_cast<uint32_t>(i))) return false;
  }
  return true;
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
  {
    std::lock_guard<std::mutex> lock(mutex_);
    last_refresh_ = Clock::now();
    if (partial == nullptr) return last;
    slots_ = partial;
  }
  refreshes_.fetch_add(1, std::memory_order_relaxed);
  // Every primary's pipelined connections start connecting now, before the
  // first call needs them (a new primary after a failover, a new shard).
  if (options_.async_loops_per_node > 0 && !stopped_.load(std::memory_order_acquire)) {
    for (const ClusterShard& shard : partial->shards()) (void)AsyncFor(shard.primary);
  }
  return absl::OkStatus();
}

void ClusterClient::RefreshSoon() {
  auto recent = [this] {
    std::lock_guard<std::mutex> lock(mutex_);
    return Clock::now() - last_refresh_ <
           std::chrono::milliseconds(options_.min_refresh_interval_ms);
  };
  if (recent()) return;
  // Callers that failed together wait for one refresh, not one each.
  std::unique_lock<std::mutex> one_at_a_time(refresh_mutex_);
  if (recent()) return;
  one_at_a_time.unlock();
  (void)Refresh();  // on failure the old table stays; the next call tries again
}

void ClusterClient::CountHopAndBackOff(int& redirects) {
  ++redirects;
  // Not after the last hop allowed: that call fails at once.
  if (redirects > 2 && redirects <= options_.max_redirects) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(options_.retry_backoff_ms << std::min(redirects - 3, 8)));
  }
}

absl::StatusOr<NodeAddress> ClusterClient::PrimaryFor(int slot) {
  std::shared_ptr<const SlotMap> map = slots();
  std::optional<NodeAddress> node = map != nullptr ? map->PrimaryOf(slot) : std::nullopt;
  if (!node) {
    RefreshSoon();
    map = slots();
    node = map != nullptr ? map->PrimaryOf(slot) : std::nullopt;
  }
  if (!node) {
    return engine::Refusal(absl::StatusCode::kUnavailable, reason::kRedisClusterSlotsUncovered, "",
                           Cat("no node of the cluster serves slot ", slot));
  }
  return *node;
}

bool ClusterClient::Background(std::function<void()> work) {
  {
    std::lock_guard<std::mutex> lock(background_mutex_);
    if (stopping_) return false;  // the caller refuses: nothing will run it
    if (background_queue_.size() >= options_.max_background_calls) return false;
    background_queue_.push_back(std::move(work));
  }
  background_wakeup_.notify_one();
  return true;
}

void ClusterClient::BackgroundLoop() {
  while (true) {
    std::function<void()> work;
    {
      std::unique_lock<std::mutex> lock(background_mutex_);
      background_wakeup_.wait(lock, [this] { return stopping_ || !background_queue_.empty(); });
      if (background_queue_.empty()) return;  // stopping, and nothing left
      work = std::move(background_queue_.front());
      background_queue_.pop_front();
    }
    work();
  }
}

RedisResult ClusterClient::Command(std::string_view routing_key, const RedisArgv& argv) {
  absl::StatusOr<std::vector<RedisResult>> results = Pipeline(routing_key, {argv});
  if (!results.ok()) return results.status();
  return std::move((*results)[0]);
}

absl::StatusOr<std::vector<RedisResult>> ClusterClient::Pipeline(
    std::string_view routing_key, const std::vector<RedisArgv>& commands) {
  if (commands.empty()) return std::vector<RedisResult>();
  const int slot = KeySlot(routing_key);
  absl::StatusOr<NodeAddress> owner = PrimaryFor(slot);
  if (!owner.ok()) return owner.status();
  std::vector<size_t> all(commands.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  std::vector<Batch> todo = {Batch{.destination = {.node = *owner, .asking = false},
                                   .indices = std::move(all)}};
  return Resolve(std::vector<int>(commands.size(), slot), commands,
                 std::vector<RedisResult>(commands.size(), absl::UnknownError("not sent")),
                 std::move(todo), 0, 0, /*whole=*/true);
}

absl::StatusOr<std::vector<RedisResult>> ClusterClient::PipelineAcrossSlots(
    const std::vector<std::string_view>& routing_keys, const std::vector<RedisArgv>& commands) {
  if (commands.empty()) return std::vector<RedisResult>();
  std::vector<int> slots(commands.size());
  std::vector<Batch> todo;  // one per primary
  for (size_t i = 0; i < commands.size(); ++i) {
    slots[i] = KeySlot(routing_keys[i]);
    absl::StatusOr<NodeAddress> owner = PrimaryFor(slots[i]);
    if (!owner.ok()) return owner.status();
    auto batch = std::find_if(todo.begin(), todo.end(),
                              [&](const Batch& b) { return b.destination.node == *owner; });
    if (batch == todo.end()) {
      Batch fresh;  // (not a designated initializer: GCC 12 warns it uninitialized)
      fresh.destination.node = *owner;
      fresh.indices.push_back(i);
      todo.push_back(std::move(fresh));
    } else {
      batch->indices.push_back(i);
    }
  }
  return Resolve(slots, commands,
                 std::vector<RedisResult>(commands.size(), absl::UnknownError("not sent")),
                 std::move(todo), 0, 0, /*whole=*/false);
}

int ClusterClient::NodeCount() {
  std::shared_ptr<const SlotMap> map = slots();
  return map == nullptr ? 0 : static_cast<int>(map->shards().size());
}

RedisResult ClusterClient::NodeCommand(int node, const RedisArgv& argv) {
  std::shared_ptr<const SlotMap> map = slots();
  if (map == nullptr || node < 0 || node >= static_cast<int>(map->shards().size())) {
    return engine::Refusal(absl::StatusCode::kFailedPrecondition, reason::kRedisClusterNodeGone,
                           "", Cat("the cluster has no primary number ", node,
                                   " (the topology changed)"));
  }
  RedisResult reply = PoolFor(map->shards()[static_cast<size_t>(node)].primary).Command(argv);
  // A primary that stopped answering may have been replaced (a failover):
  // read the table again, off the caller's thread, so that a health probe
  // or a tool's next round sees its successor.
  if (!reply.ok() && engine::ReasonOf(reply.status()) == reason::kRedisUnavailable) {
    (void)Background([this] { RefreshSoon(); });
  }
  return reply;
}

std::string ClusterClient::NodeName(int node) {
  std::shared_ptr<const SlotMap> map = slots();
  if (map == nullptr || node < 0 || node >= static_cast<int>(map->shards().size())) return "";
  return map->shards()[static_cast<size_t>(node)].primary.ToString();
}

void ClusterClient::SendPipeline(std::string_view routing_key,
                                 const std::vector<RedisArgv>& commands, PipelineDone done) {
  if (options_.async_loops_per_node > 0 && stopped_.load(std::memory_order_acquire)) {
    // Possibly on an I/O thread being joined: nothing that blocks.
    std::move(done)(engine::Refusal(absl::StatusCode::kUnavailable, reason::kRedisUnavailable, "",
                                    "the Redis Cluster client is stopping"));
    return;
  }
  if (options_.async_loops_per_node <= 0 || commands.empty()) {
    std::move(done)(Pipeline(routing_key, commands));
    return;
  }
  const int slot = KeySlot(routing_key);
  std::optional<NodeAddress> owner;
  if (std::shared_ptr<const SlotMap> map = slots(); map != nullptr) owner = map->PrimaryOf(slot);
  auto owned = std::make_shared<OwnedCommands>(commands);
  const uint32_t shard = static_cast<uint32_t>(std::hash<std::string_view>{}(routing_key));
  AsyncRedis* redis = owner ? &AsyncFor(*owner) : nullptr;
  if (redis == nullptr || !redis->connected(shard)) {
    // No owner known (reading the table blocks), or its pipelined
    // connection is not up yet (a new primary): the blocking path, off
    // this thread.
    auto shared_done = std::make_shared<PipelineDone>(std::move(done));
    if (!Background([this, key = std::string(routing_key), owned, shared_done] {
          std::move (*shared_done)(Pipeline(key, owned->views));
        })) {
      std::move(*shared_done)(engine::Refusal(absl::StatusCode::kResourceExhausted,
                                              reason::kRedisPoolExhausted, "",
                                              "the cluster client's background queue is full (or it is stopping)"));
    }
    return;
  }
  const Destination sent_to{.node = *owner, .asking = false};
  redis->Send(
      shard, commands,
      [this, slot, owned, sent_to,
       done = std::move(done)](absl::StatusOr<std::vector<RedisResult>> replies) mutable {
        if (!replies.ok()) {
          // Outcome unknown: not resent. Who serves now is read off this
          // thread, for the calls that follow.
          if (engine::ReasonOf(replies.status()) == reason::kRedisUnavailable) {
            (void)Background([this] { RefreshSoon(); });
          }
          std::move(done)(std::move(replies));
          return;
        }
        if (std::none_of(replies->begin(), replies->end(), NeedsAnotherTry)) {
          std::move(done)(std::move(replies));  // the fast path
          return;
        }
        // Redirected or to be retried: blocking work, on the background
        // thread.
        auto shared_done = std::make_shared<PipelineDone>(std::move(done));
        auto shared_replies = std::make_shared<std::vector<RedisResult>>(std::move(*replies));
        if (!Background([this, slot, owned, sent_to, shared_done, shared_replies] {
              std::vector<size_t> all(owned->views.size());
              for (size_t i = 0; i < all.size(); ++i) all[i] = i;
              const Batch sent{.destination = sent_to, .indices = std::move(all)};
              std::vector<RedisResult> results(owned->views.size(),
                                                absl::UnknownError("not sent"));
              std::vector<Batch> next;
              std::vector<size_t> retry_later;
              Triage(sent, *shared_replies, results, next, retry_later);
              // The whole pipeline again (a script and the WAIT after it
              // belong together), where the redirection points or, after
              // a pause, to the slot's owner.
              int redirects = 0;
              int retries = 0;
              absl::StatusOr<bool> again =
                  AgainWhole(slot, owned->views, next, retry_later, redirects, retries);
              if (!again.ok()) {
                std::move(*shared_done)(again.status());
                return;
              }
              if (!*again) {  // retries exhausted: Redis's own statuses stand
                std::move(*shared_done)(std::move(results));
                return;
              }
              std::move(*shared_done)(Resolve(std::vector<int>(owned->views.size(), slot),
                                              owned->views, std::move(results), std::move(next),
                                              redirects, retries, /*whole=*/true));
            })) {
          std::move(*shared_done)(engine::Refusal(
              absl::StatusCode::kResourceExhausted, reason::kRedisPoolExhausted, "",
              "the cluster client's background queue is full (or it is stopping)"));
        }
      });
}

void ClusterClient::Triage(const Batch& sent, std::vector<RedisResult>& replies,
                           std::vector<RedisResult>& results, std::vector<Batch>& next,
                           std::vector<size_t>& retry_later) {
  auto send_later = [&next](const Destination& d, size_t index) {
    for (Batch& batch : next) {
      if (batch.destination == d) {
        batch.indices.push_back(index);
        return;
      }
    }
    next.push_back(Batch{.destination = d, .indices = {index}});
  };
  const size_t stride = sent.destination.asking ? 2 : 1;
  for (size_t k = 0; k < sent.indices.size(); ++k) {
    RedisResult& reply = replies[k * stride + stride - 1];
    const size_t index = sent.indices[k];
    if (reply.ok()) {
      results[index] = std::move(reply);
      continue;
    }
    const std::string_view text = MessageOf(reply.status());
    if (std::optional<Redirection> r = ParseRedirection(text, sent.destination.node);
        r.has_value()) {
      (r->kind == Redirection::Kind::kMoved ? moved_ : ask_)
          .fetch_add(1, std::memory_order_relaxed);
      if (r->kind == Redirection::Kind::kMoved) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (slots_ != nullptr) {
          auto moved = std::make_shared<SlotMap>(*slots_);
          moved->Move(r->slot, r->node);
          slots_ = std::move(moved);
        }
      }
      send_later(Destination{.node = r->node, .asking = r->kind == Redirection::Kind::kAsk},
                 index);
      continue;
    }
    if (RetryableClusterError(text)) retry_later.push_back(index);
    // Final unless retried: what the caller gets if retries run out.
    results[index] = std::move(reply);
  }
}

absl::StatusOr<bool> ClusterClient::AgainWhole(int slot, const std::vector<RedisArgv>& commands,
                                                std::vector<Batch>& next,
                                                std::vector<size_t>& retry_later, int& redirects,
                                                int& retries) {
  const size_t count = commands.size();
  std::vector<size_t> all(count);
  for (size_t i = 0; i < count; ++i) all[i] = i;
  auto moved = std::find_if(next.begin(), next.end(),
                            [](const Batch& b) { return !b.destination.asking; });
  if (moved != next.end()) {
    // MOVED: the node does not serve the slot, so it ran nothing keyed:
    // everything goes to the new owner. The table was updated for this
    // slot; read all of it too, since a reshard or a failover rarely moves
    // one slot alone.
    const Destination to = moved->destination;
    CountHopAndBackOff(redirects);
    RefreshSoon();
    next = {Batch{.destination = to, .indices = std::move(all)}};
    retry_later.clear();
    return true;
  }
  if (!next.empty()) {
    // ASK: the keys already migrated go to the target; the others were
    // served here and stay served. A WAIT after them must count the
    // target's replicas, so it goes along.
    Batch& ask = next[0];
    const size_t first = *std::min_element(ask.indices.begin(), ask.indices.end());
    for (size_t i = first + 1; i < count; ++i) {
      if (!commands[i].empty() && (commands[i][0] == "WAIT" || commands[i][0] == "wait") &&
          std::find(ask.indices.begin(), ask.indices.end(), i) == ask.indices.end()) {
        ask.indices.push_back(i);
      }
    }
    std::sort(ask.indices.begin(), ask.indices.end());
    CountHopAndBackOff(redirects);
    next.resize(1);
    retry_later.clear();
    return true;
  }
  if (retry_later.empty()) return false;
  retry_later.clear();
  if (retries >= options_.max_retries) return false;  // their statuses stand
  retries_.fetch_add(1, std::memory_order_relaxed);
  std::this_thread::sleep_for(std::chrono::milliseconds(options_.retry_backoff_ms << retries));
  ++retries;
  RefreshSoon();
  absl::StatusOr<NodeAddress> owner = PrimaryFor(slot);
  if (!owner.ok()) return owner.status();
  Batch again;  // (not a designated initializer: GCC 12 warns it uninitialized)
  again.destination.node = *owner;
  again.indices = std::move(all);
  next = {std::move(again)};
  return true;
}

absl::StatusOr<std::vector<RedisResult>> ClusterClient::Resolve(
    const std::vector<int>& slots, const std::vector<RedisArgv>& commands,
    std::vector<RedisResult> results, std::vector<Batch> todo, int redirects, int retries,
    bool whole) {
  while (!todo.empty()) {
    if (redirects > options_.max_redirects) {
      return engine::Refusal(
          absl::StatusCode::kUnavailable, reason::kRedisClusterRedirectLoop, "",
          Cat("slot ", slots[todo[0].indices[0]], " was redirected more than ",
              options_.max_redirects,
              " times in one call (the cluster is being resharded or its nodes disagree)"));
    }
    std::vector<Batch> next;
    std::vector<size_t> retry_later;
    for (const Batch& batch : todo) {
      std::vector<RedisArgv> sent;
      sent.reserve(batch.indices.size() * (batch.destination.asking ? 2 : 1));
      for (size_t index : batch.indices) {
        if (batch.destination.asking) sent.push_back({"ASKING"});
        sent.push_back(commands[index]);
      }
      absl::StatusOr<std::vector<RedisResult>> replies =
          PoolFor(batch.destination.node).Pipeline(sent);
      if (!replies.ok()) {
        // The outcome is unknown: nothing is sent again. A failed primary
        // is replaced by its replica; the next call reads who serves now.
        if (engine::ReasonOf(replies.status()) == reason::kRedisUnavailable) RefreshSoon();
        return replies.status();
      }
      Triage(batch, *replies, results, next, retry_later);
    }
    if (whole) {
      absl::StatusOr<bool> again =
          AgainWhole(slots[0], commands, next, retry_later, redirects, retries);
      if (!again.ok()) return again.status();
      todo = std::move(next);  // empty when nothing is sent again
      continue;
    }
    if (!next.empty()) {
      CountHopAndBackOff(redirects);
      // MOVED updated the table for this slot; read all of it too, since a
      // reshard or a failover rarely moves one slot alone.
      RefreshSoon();
    }
    if (!retry_later.empty() && retries < options_.max_retries) {
      retries_.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::sleep_for(std::chrono::milliseconds(options_.retry_backoff_ms << retries));
      ++retries;
      RefreshSoon();
      for (size_t index : retry_later) {
        absl::StatusOr<NodeAddress> node = PrimaryFor(slots[index]);
        if (!node.ok()) return node.status();
        const Destination d{.node = *node, .asking = false};
        auto batch = std::find_if(next.begin(), next.end(),
                                  [&](const Batch& b) { return b.destination == d; });
        if (batch == next.end()) {
          next.push_back(Batch{.destination = d, .indices = {index}});
        } else {
          batch->indices.push_back(index);
        }
      }
    }
    // Otherwise the commands in retry_later keep Redis's own status
    // (UNAVAILABLE for TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN;
    // REDIS_ERROR for READONLY).
    todo = std::move(next);
  }
  return results;
}

}  // namespace medsettle::cache
