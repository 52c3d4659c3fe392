#include "cache/cluster_slots.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::cache {
namespace {

using engine::Cat;

absl::Status Invalid(std::string_view what) {
  return engine::Refusal(absl::StatusCode::kUnavailable, reason::kRedisClusterTopologyInvalid, "",
                         Cat("CLUSTER SLOTS: ", what));
}

bool ParseInt(std::string_view text, int* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

// The table-driven CRC16-CCITT (XMODEM) of Redis's crc16.c, built at
// compile time from the polynomial.
constexpr std::array<uint16_t, 256> MakeCrc16Table() {
  std::array<uint16_t, 256> table{};
  for (int byte = 0; byte < 256; ++byte) {
    uint16_t crc = static_cast<uint16_t>(byte << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = static_cast<uint16_t>((crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    table[static_cast<size_t>(byte)] = crc;
  }
  return table;
}
constexpr std::array<uint16_t, 256> kCrc16Table = MakeCrc16Table();

}  // namespace

uint16_t Crc16(std::string_view bytes) {
  uint16_t crc = 0;
  for (unsigned char c : bytes) {
    crc = static_cast<uint16_t>((crc << 8) ^ kCrc16Table[((crc >> 8) ^ c) & 0xff]);
  }
  return crc;
}

std::string_view HashedPartOf(std::string_view key) {
  const size_t open = key.find('{');
  if (open == std::string_view::npos) return key;
  const size_t close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

int KeySlot(std::string_view key) { return Crc16(HashedPartOf(key)) & (kClusterSlots - 1); }

absl::StatusOr<SlotMap> SlotMap::FromClusterSlots(const RedisReply& reply,
                                                  const NodeAddress& asked) {
  if (reply.type != RedisReply::Type::kArray) {
    return Invalid(reply.is_error() ? reply.str : "the reply is not an array");
  }
  SlotMap map;
  map.slot_to_shard_.fill(kNone);
  for (size_t i = 0; i < reply.elements.size(); ++i) {
    const RedisReply& entry = reply.elements[i];
    // [start, end, primary, replica…], each node [host, port, id?, metadata?].
    if (entry.type != RedisReply::Type::kArray || entry.elements.size() < 3 ||
        entry.elements[0].type != RedisReply::Type::kInteger ||
        entry.elements[1].type != RedisReply::Type::kInteger) {
      return Invalid(Cat("entry ", i, " is not [start, end, primary, …]"));
    }
    const int64_t start = entry.elements[0].integer;
    const int64_t end = entry.elements[1].integer;
    if (start < 0 || end < start || end >= kClusterSlots) {
      return Invalid(Cat("entry ", i, " has the slot range ", start, "-", end));
    }
    std::vector<NodeAddress> nodes;
    std::string primary_id;
    bool primary_unknown = false;
    for (size_t n = 2; n < entry.elements.size(); ++n) {
      const RedisReply& node = entry.elements[n];
      if (node.type != RedisReply::Type::kArray || node.elements.size() < 2 ||
          node.elements[0].type != RedisReply::Type::kString ||
          node.elements[1].type != RedisReply::Type::kInteger) {
        return Invalid(Cat("entry ", i, " node ", n - 2, " is not [host, port, …]"));
      }
      NodeAddress address{.host = node.elements[0].str,
                          .port = static_cast<int>(node.elements[1].integer)};
      if (address.host.empty()) address.host = asked.host;  // "the node you asked"
      const bool unknown = address.host == "?" || address.port <= 0 || address.port > 65535;
      if (n == 2) {
        primary_unknown = unknown;
        if (node.elements.size() >= 3 && node.elements[2].type == RedisReply::Type::kString) {
          primary_id = node.elements[2].str;
        }
      }
      if (!unknown) nodes.push_back(std::move(address));
    }
    if (primary_unknown) continue;  // its slots stay uncovered until it is reachable
    const int shard = map.ShardIndex(nodes[0]);
    ClusterShard& s = map.shards_[static_cast<size_t>(shard)];
    if (s.primary_id.empty()) s.primary_id = primary_id;
    for (size_t r = 1; r < nodes.size(); ++r) {
      if (std::find(s.replicas.begin(), s.replicas.end(), nodes[r]) == s.replicas.end()) {
        s.replicas.push_back(nodes[r]);
      }
    }
    for (int64_t slot = start; slot <= end; ++slot) {
      int16_t& owner = map.slot_to_shard_[static_cast<size_t>(slot)];
      if (owner != kNone) {
        return Invalid(Cat("slot ", slot, " is listed twice (entry ", i, ")"));
      }
      owner = static_cast<int16_t>(shard);
    }
  }
  return map;
}

int SlotMap::ShardIndex(const NodeAddress& primary) {
  for (size_t i = 0; i < shards_.size(); ++i) {
    if (shards_[i].primary == primary) return static_cast<int>(i);
  }
  shards_.push_back(ClusterShard{.primary = primary, .primary_id = "", .replicas = {}});
  return static_cast<int>(shards_.size() - 1);
}

absl::Status SlotMap::CheckCoverage() const {
  for (int slot = 0; slot < kClusterSlots; ++slot) {
    if (slot_to_shard_[static_cast<size_t>(slot)] != kNone) continue;
    int last = slot;
    while (last + 1 < kClusterSlots && slot_to_shard_[static_cast<size_t>(last + 1)] == kNone) {
      ++last;
    }
    return engine::Refusal(absl::StatusCode::kUnavailable, reason::kRedisClusterSlotsUncovered,
                           "",
                           Cat("the cluster serves no slot ", slot, "-", last,
                               " (cluster_state is not ok: a shard without a primary, or "
                               "slots never assigned)"));
  }
  return absl::OkStatus();
}

std::optional<int> SlotMap::ShardOf(int slot) const {
  const int16_t shard = slot_to_shard_[static_cast<size_t>(slot)];
  if (shard == kNone) return std::nullopt;
  return shard;
}

std::optional<NodeAddress> SlotMap::PrimaryOf(int slot) const {
  std::optional<int> shard = ShardOf(slot);
  if (!shard) return std::nullopt;
  return shards_[static_cast<size_t>(*shard)].primary;
}

std::vector<int> SlotMap::SlotCounts() const {
  std::vector<int> counts(shards_.size(), 0);
  for (int16_t shard : slot_to_shard_) {
    if (shard != kNone) ++counts[static_cast<size_t>(shard)];
  }
  return counts;
}

void SlotMap::Move(int slot, const NodeAddress& primary) {
  slot_to_shard_[static_cast<size_t>(slot)] = static_cast<int16_t>(ShardIndex(primary));
}

absl::StatusOr<std::vector<NodeAddress>> ParseNodeList(std::string_view text) {
  std::vector<NodeAddress> nodes;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view entry = text.substr(start, comma - start);
    while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
    while (!entry.empty() && entry.back() == ' ') entry.remove_suffix(1);
    const size_t colon = entry.rfind(':');
    NodeAddress node;
    if (colon == std::string_view::npos || colon == 0 ||
        !ParseInt(entry.substr(colon + 1), &node.port) || node.port <= 0 || node.port > 65535) {
      return engine::InvalidField(reason::kRedisAddressInvalid, "redis.address",
                                  Cat("\"", entry, "\" is not host:port (in \"", text, "\")"));
    }
    std::string_view host = entry.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {  // [::1]:7002
      host = host.substr(1, host.size() - 2);
    }
    node.host = std::string(host);
    nodes.push_back(std::move(node));
    start = comma + 1;
  }
  return nodes;
}

std::optional<Redirection> ParseRedirection(std::string_view text, const NodeAddress& asked) {
  Redirection r;
  if (text.starts_with("MOVED ")) {
    r.kind = Redirection::Kind::kMoved;
    text.remove_prefix(6);
  } else if (text.starts_with("ASK ")) {
    r.kind = Redirection::Kind::kAsk;
    text.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const size_t space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  if (!ParseInt(text.substr(0, space), &r.slot) || r.slot < 0 || r.slot >= kClusterSlots) {
    return std::nullopt;
  }
  std::string_view endpoint = text.substr(space + 1);
  // The port follows the last ':' (an IPv6 host has colons of its own).
  const size_t colon = endpoint.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  if (!ParseInt(endpoint.substr(colon + 1), &r.node.port) || r.node.port <= 0 ||
      r.node.port > 65535) {
    return std::nullopt;
  }
  r.node.host = std::string(endpoint.substr(0, colon));
  if (r.node.host.empty()) r.node.host = asked.host;
  return r;
}

}  // namespace medsettle::cache
