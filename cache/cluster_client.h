// A Redis Cluster client on hiredis, behind RedisClient: per primary, a
// blocking connection pool (cache/connection_pool.h) and, when asked for,
// a pipelining AsyncRedis (cache/async_redis.h); calls routed by the slot
// of their routing key, the slot table read with CLUSTER SLOTS
// (cache/cluster_slots.h). Written here because Debian packages no cluster
// client for its hiredis 0.14; it follows what hiredis-cluster and
// redis-plus-plus do:
//
//   - a call names its routing key: any key of its commands, or a hash tag
//     ("3f" routes like "{3f}"); every key of one call must share its slot
//     (redis-plus-plus pins a pipeline to one tag the same way);
//   - MOVED: the slot has a new owner. The table is updated for that slot
//     at once, a full refresh follows, and the redirected commands are sent
//     to the new owner (Redis did not run them);
//   - ASK: the slot is being migrated and that key is already at the target:
//     the redirected commands are sent there, each after ASKING, and the
//     table is left as it is;
//   - TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN, READONLY (a primary
//     demoted to a replica by a failover): Redis did not run the command;
//     refresh, wait (backoff), send those commands again, a bounded number
//     of times, then return Redis's own status;
//   - a broken connection or a timeout: the outcome is unknown, so nothing is
//     sent again. UNAVAILABLE kRedisUnavailable goes to the caller (which
//     re-sends only what is idempotent by design, as the settlement commit
//     is), and the table is refreshed for the next call.
//
// SendPipeline takes the fast path when nothing is redirected: one Send on
// the owner's AsyncRedis, `done` on its I/O thread. Redirections, retries
// and refreshes are blocking work, done on the client's own background
// thread ("redis-cluster"), never on an I/O thread; `done` then runs there.
//
// A one-slot pipeline (Command, Pipeline, SendPipeline) keeps together
// what belongs together: after a MOVED all its commands go to the new
// owner, after an ASK the commands answered ASK and any WAIT after them go
// to the target, after TRYAGAIN and the like all go again — so a script
// and the WAIT that confirms it run on one node. Every pipeline medsettle
// sends is safe to repeat (reads, scripts idempotent by request id, writes
// of the same values). A MULTI … EXEC whose slot is being migrated fails
// (EXECABORT) rather than running in parts. PipelineAcrossSlots re-sends
// only the redirected commands.
//
// Thread safety: every method may be called from any number of threads;
// the destructor must not run on an I/O thread or a background thread.
#ifndef MEDSETTLE_CACHE_CLUSTER_CLIENT_H_
#define MEDSETTLE_CACHE_CLUSTER_CLIENT_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/async_redis.h"
#include "cache/cluster_slots.h"
#include "cache/connection_pool.h"
#include "cache/redis_client.h"

namespace medsettle::cache {

// What a ClusterClient has met since it was created: monotonic counts, read
// without a lock (each is exact; two read together may be a call apart).
// For metrics (as counters: medsettle_redis_cluster_<name>_total) and tests.
struct ClusterClientStats {
  uint64_t moved = 0;      // MOVED replies followed: a slot had a new owner
  uint64_t ask = 0;        // ASK replies followed: a key of a migrating slot was at the target
  uint64_t retries = 0;    // pauses before sending again after TRYAGAIN, CLUSTERDOWN, LOADING,
                           // MASTERDOWN or READONLY (one per round, however many commands)
  uint64_t refreshes = 0;  // slot tables read successfully (CLUSTER SLOTS), the first included
};

namespace reason {
// UNAVAILABLE: one call met more MOVED/ASK redirections than
// ClusterOptions::max_redirects (a topology changing faster than it can
// be read, or nodes that disagree about who owns a slot). Redis ran none of
// the commands still redirected.
inline constexpr std::string_view kRedisClusterRedirectLoop = "REDIS_CLUSTER_REDIRECT_LOOP";
// FAILED_PRECONDITION: NodeCommand of a primary number the slot table no
// longer has (a shard removed since NodeCount); start over from NodeCount.
inline constexpr std::string_view kRedisClusterNodeGone = "REDIS_CLUSTER_NODE_GONE";
// UNAVAILABLE: none of the seed or known nodes answered CLUSTER SLOTS.
inline constexpr std::string_view kRedisClusterUnreachable = "REDIS_CLUSTER_UNREACHABLE";
}  // namespace reason

struct ClusterOptions {
  // Where to read the topology first: any nodes of the cluster.
  std::vector<NodeAddress> seeds;
  int connect_timeout_ms = 200;
  int command_timeout_ms = 500;
  int pool_size_per_node = 4;
  int acquire_timeout_ms = 100;
  // I/O threads (one connection each) of every primary's AsyncRedis; 0: no
  // AsyncRedis, SendPipeline blocks (tools).
  int async_loops_per_node = 0;
  size_t max_pending_per_loop = 10000;
  // MOVED/ASK hops per call. The hops after the second wait
  // retry_backoff_ms, doubled each time, first: just after a reshard the
  // nodes may disagree for a moment about who owns a slot (the new owner
  // is known to some before gossip reaches the others), and a call that
  // bounces between them must outlive that moment (350 ms at the
  // defaults) rather than spend its hops in a millisecond.
  int max_redirects = 5;
  int max_retries = 4;          // TRYAGAIN, CLUSTERDOWN, LOADING, READONLY… per call
  int retry_backoff_ms = 50;    // doubled after each retry
  // A refresh asked for within this long of the last one reuses it (a
  // burst of MOVED replies makes one CLUSTER SLOTS, not one per call).
  int min_refresh_interval_ms = 50;
  // Calls waiting for the background threads; beyond it RESOURCE_EXHAUSTED
  // kRedisPoolExhausted at once.
  size_t max_background_calls = 10000;
  // Threads that run redirected and retried calls of the pipelined path,
  // and table refreshes: several, so that one call pausing between hops
  // or retries does not hold up the others.
  int background_threads = 4;
  // As RedisOptions::on_round_trip, for every node's connections.
  std::function<void(int64_t round_trip_us)> on_round_trip;
  // false: Connect succeeds while no node answers yet (a gateway started
  // before its cluster); calls fail kRedisClusterUnreachable until one does.
  // Seeds that answer but are not a cluster fail Connect either way.
  bool require_reachable = true;
};

class ClusterClient final : public RedisClient {
 public:
  // Reads the topology from the seeds (the first that answers). Errors:
  // kRedisClusterUnreachable when none answers, kRedisClusterTopologyInvalid
  // when the seeds are not in cluster mode. A table with uncovered slots is
  // accepted (calls to those slots fail kRedisClusterSlotsUncovered until a
  // refresh finds them served). REQUIRES: !options.seeds.empty().
  static absl::StatusOr<std::unique_ptr<ClusterClient>> Connect(ClusterOptions options);
  ~ClusterClient() override;  // Stop()

  // Finishes what waits for the background threads (every done is called),
  // then stops every node's AsyncRedis (in-flight pipelines fail
  // UNAVAILABLE). Afterwards SendPipeline takes the blocking path.
  // Idempotent. REQUIRES: not on an I/O thread or a background thread.
  void Stop();

  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  // As RedisClient::Command and Pipeline, sent to the primary of
  // KeySlot(routing_key), following redirections as described above.
  // Besides RedisClient's errors: UNAVAILABLE kRedisClusterSlotsUncovered,
  // kRedisClusterRedirectLoop, kRedisClusterUnreachable.
  RedisResult Command(std::string_view routing_key, const RedisArgv& argv) override;
  absl::StatusOr<std::vector<RedisResult>> Pipeline(
      std::string_view routing_key, const std::vector<RedisArgv>& commands) override;
  // One pipeline per primary, sent one after another.
  absl::StatusOr<std::vector<RedisResult>> PipelineAcrossSlots(
      const std::vector<std::string_view>& routing_keys,
      const std::vector<RedisArgv>& commands) override;
  // As RedisClient::SendPipeline (see above for the threads `done` runs on).
  void SendPipeline(std::string_view routing_key, const std::vector<RedisArgv>& commands,
                    PipelineDone done) override;
  // The primaries of the table in use (in its order).
  int NodeCount() override;
  RedisResult NodeCommand(int node, const RedisArgv& argv) override;
  std::string NodeName(int node) override;

  // Re-reads CLUSTER SLOTS from the known primaries, then the seeds; keeps
  // the old table when none answers (and returns why).
  absl::Status Refresh();

  // The table in use now.
  std::shared_ptr<const SlotMap> slots() const;
  // Whether node's AsyncRedis is connected on every loop (false without
  // one); for waiting at start and health.
  bool AsyncConnected(const NodeAddress& node);
  // The redirections, retries and refreshes so far (ClusterClientStats).
  ClusterClientStats Stats() const;

  // Where a batch of commands goes: a node, with ASKING before each command
  // when it is the target of an ASK.
  struct Destination {
    NodeAddress node;
    bool asking = false;
    bool operator==(const Destination&) const = default;
  };
  struct Batch {
    Destination destination;
    std::vector<size_t> indices;  // into the call's commands
  };

 private:
  explicit ClusterClient(ClusterOptions options);
  // Until every command has a final result: send `todo`, read the replies,
  // redirect and retry (blocking). `slots[i]` is command i's slot;
  // `results` holds what is final already. `whole`: a one-slot pipeline,
  // sent again as AgainWhole says.
  absl::StatusOr<std::vector<RedisResult>> Resolve(const std::vector<int>& slots,
                                                   const std::vector<RedisArgv>& commands,
                                                   std::vector<RedisResult> results,
                                                   std::vector<Batch> todo, int redirects,
                                                   int retries, bool whole);
  // For a one-slot pipeline after Triage, what to send again: after a
  // MOVED, every command, to the new owner (nothing keyed ran on a node
  // that does not serve the slot); after an ASK, the commands answered ASK
  // and any WAIT after them, to the target (the others were served);
  // after TRYAGAIN and the like, every command after a pause, to the
  // slot's owner. True when there is something to send (in `next`); false
  // when not, or when the retries are spent (Redis's statuses stand).
  absl::StatusOr<bool> AgainWhole(int slot, const std::vector<RedisArgv>& commands,
                                  std::vector<Batch>& next, std::vector<size_t>& retry_later,
                                  int& redirects, int& retries);
  // Sorts the replies of `sent` into `results` (final) and `next` (to send
  // again): MOVED and ASK go to their node, retryable errors to
  // `retry_later`. Updates the table for MOVED.
  void Triage(const Batch& sent, std::vector<RedisResult>& replies,
              std::vector<RedisResult>& results, std::vector<Batch>& next,
              std::vector<size_t>& retry_later);
  absl::StatusOr<NodeAddress> PrimaryFor(int slot);
  ConnectionPool& PoolFor(const NodeAddress& node);
  AsyncRedis& AsyncFor(const NodeAddress& node);
  // Refresh unless one finished within min_refresh_interval_ms.
  void RefreshSoon();
  // Counts one more hop of a call; waits first when it is past the second
  // (ClusterOptions::max_redirects).
  void CountHopAndBackOff(int& redirects);
  absl::StatusOr<std::shared_ptr<const SlotMap>> ReadSlots(const NodeAddress& node);
  // Runs `work` on a background thread; false when too many wait.
  bool Background(std::function<void()> work);
  void BackgroundLoop();

  const ClusterOptions options_;
  mutable std::mutex mutex_;
  std::shared_ptr<const SlotMap> slots_;                                   // guarded by mutex_
  std::map<std::string, std::unique_ptr<ConnectionPool>> pools_;           // guarded by mutex_
  std::map<std::string, std::unique_ptr<AsyncRedis>> async_;               // guarded by mutex_
  std::chrono::steady_clock::time_point last_refresh_{};                   // guarded by mutex_
  std::mutex refresh_mutex_;  // one refresh at a time
  std::atomic<uint64_t> refreshes_{0};
  std::atomic<uint64_t> moved_{0};
  std::atomic<uint64_t> ask_{0};
  std::atomic<uint64_t> retries_{0};

  std::mutex background_mutex_;
  std::condition_variable background_wakeup_;
  std::deque<std::function<void()>> background_queue_;  // guarded by background_mutex_
  bool stopping_ = false;                               // guarded by background_mutex_
  std::atomic<bool> stopped_{false};
  std::vector<std::thread> background_;
};

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_CLUSTER_CLIENT_H_
