// Redis Cluster's key space, as a client must see it: which of the 16,384
// hash slots a key or a hash tag falls in, which node serves each slot
// (read from CLUSTER SLOTS), and what a MOVED or ASK redirection says.
// Pure functions and values, no I/O: the cluster client (issue 11) builds
// on them, and tests check them against a real cluster.
//
// The routing follows the Redis Cluster specification ("Keys distribution
// model", "Hash tags", "Redirection and resharding") and the way
// hiredis-cluster and redis-plus-plus read CLUSTER SLOTS: a node's address
// is the first two fields of its entry; an empty host means "the node you
// asked"; "?" means the node has no known endpoint yet; the rest (node id,
// Redis 7's hostname metadata) is kept only as the node id.
//
// medsettle puts every key of one person under the hash tag of the person
// key's first two hex characters ("acc:{3f}:…"), so a settlement's keys and
// its pipeline stay in one slot (cache/redis_client.h).
//
// Thread safety: the functions are pure; a SlotMap is an immutable value
// once built (share it behind a shared_ptr<const SlotMap>).
#ifndef MEDSETTLE_CACHE_CLUSTER_SLOTS_H_
#define MEDSETTLE_CACHE_CLUSTER_SLOTS_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cache/redis_client.h"

namespace medsettle::cache {

namespace reason {
// UNAVAILABLE: the cluster's slot table leaves slots without a node (a
// cluster being created, or one that lost a shard with no replica), so
// some persons cannot be served; the message names the first gap.
inline constexpr std::string_view kRedisClusterSlotsUncovered = "REDIS_CLUSTER_SLOTS_UNCOVERED";
// UNAVAILABLE: a CLUSTER SLOTS answer that is not a slot table (the node
// is not in cluster mode: "ERR This instance has cluster support
// disabled"), or an entry of it that cannot be read.
inline constexpr std::string_view kRedisClusterTopologyInvalid = "REDIS_CLUSTER_TOPOLOGY_INVALID";
// INVALID_ARGUMENT: a node list entry that is not host:port.
inline constexpr std::string_view kRedisAddressInvalid = "REDIS_ADDRESS_INVALID";
}  // namespace reason

inline constexpr int kClusterSlots = 16384;

// CRC16 as Redis Cluster uses it (CCITT/XMODEM: polynomial 0x1021, initial
// value 0, no reflection): "123456789" → 0x31C3.
uint16_t Crc16(std::string_view bytes);

// The part of `key` that is hashed: the bytes between the first '{' and
// the first '}' after it when there are any, else the whole key
// ("acc:{3f}:…" → "3f"; "{}x" and "a{b" → the whole key).
std::string_view HashedPartOf(std::string_view key);

// The slot of `key`: Crc16(HashedPartOf(key)) mod 16384, the answer of
// CLUSTER KEYSLOT.
int KeySlot(std::string_view key);

// The slot of every key with the hash tag `tag` ("3f" for "{3f}").
inline int TagSlot(std::string_view tag) { return Crc16(tag) & (kClusterSlots - 1); }

// A node's address as clients reach it.
struct NodeAddress {
  std::string host;
  int port = 0;
  bool operator==(const NodeAddress&) const = default;
  std::string ToString() const { return host + ":" + std::to_string(port); }  // "10.0.0.5:6379"
};

// "host:port,host:port,…" (seeds in configuration) → addresses; the port
// follows the last ':'. INVALID_ARGUMENT naming the bad entry otherwise.
absl::StatusOr<std::vector<NodeAddress>> ParseNodeList(std::string_view text);

// One shard as CLUSTER SLOTS lists it: its primary and replicas.
struct ClusterShard {
  NodeAddress primary;
  std::string primary_id;  // the node id ("" when the node did not send it)
  std::vector<NodeAddress> replicas;
};

// Which shard serves each slot.
class SlotMap {
 public:
  // Reads a CLUSTER SLOTS reply. `asked` is the node that answered: an
  // entry with an empty host means that node. Ranges of one primary
  // (several entries, after a reshard) become one shard. Entries whose
  // primary has no endpoint yet ("?") leave their slots uncovered.
  // UNAVAILABLE kRedisClusterTopologyInvalid when the reply is not a slot
  // table; overlapping ranges are invalid too.
  static absl::StatusOr<SlotMap> FromClusterSlots(const RedisReply& reply,
                                                  const NodeAddress& asked);

  // OK when every slot has a node; else UNAVAILABLE
  // kRedisClusterSlotsUncovered naming the first uncovered range.
  absl::Status CheckCoverage() const;

  // The shard index serving `slot`, nullopt when uncovered.
  // REQUIRES: 0 <= slot < kClusterSlots.
  std::optional<int> ShardOf(int slot) const;
  // The primary serving `slot`, nullopt when uncovered.
  std::optional<NodeAddress> PrimaryOf(int slot) const;

  const std::vector<ClusterShard>& shards() const { return shards_; }
  // How many slots each shard serves (same order as shards()).
  std::vector<int> SlotCounts() const;

  // Points `slot` at `primary` (a MOVED redirection), adding a shard when
  // that primary is not known yet. Clients also refresh the whole map.
  void Move(int slot, const NodeAddress& primary);

 private:
  static constexpr int16_t kNone = -1;
  int ShardIndex(const NodeAddress& primary);
  std::vector<ClusterShard> shards_;
  std::array<int16_t, kClusterSlots> slot_to_shard_{};  // filled with kNone
};

// A redirection in an error reply: "MOVED 3999 127.0.0.1:6381" (the slot
// now lives there: update the map) or "ASK 3999 127.0.0.1:6381" (this one
// command, during a migration: send ASKING then the command to that node,
// and do not update the map).
struct Redirection {
  enum class Kind { kMoved, kAsk };
  Kind kind = Kind::kMoved;
  int slot = 0;
  NodeAddress node;
};

// The redirection an error reply's text carries, nullopt when it is not
// one (or is malformed). An empty host ("MOVED 3999 :6381", a node that
// does not know its own address) means the host of `asked`.
std::optional<Redirection> ParseRedirection(std::string_view error_text,
                                            const NodeAddress& asked);

}  // namespace medsettle::cache

#endif  // MEDSETTLE_CACHE_CLUSTER_SLOTS_H_
