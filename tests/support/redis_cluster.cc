#include "tests/support/redis_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/string_view.h"
#include "cache/redis_connection.h"

namespace medsettle::testing {
namespace {

using Clock = std::chrono::steady_clock;

absl::Status Error(absl::StatusCode code, const std::string& message) {
  return absl::Status(code, absl::string_view(message.data(), message.size()));
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs `args` with stdout and stderr into `log`, waits ≤ timeout_ms
// (then SIGKILL). OK when it exited 0.
absl::Status Run(const std::vector<std::string>& args, const std::string& log, int timeout_ms) {
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (std::string& arg : copy) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return Error(absl::StatusCode::kInternal, std::string("fork: ") + strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
    }
    if (close_range(3, ~0U, 0) != 0) {
      for (int fd = 3; fd < 1024; ++fd) close(fd);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  while (true) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (Clock::now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return Error(absl::StatusCode::kDeadlineExceeded,
                   args[0] + " did not finish within " + std::to_string(timeout_ms) +
                       " ms; output:\n" + ReadFile(log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Error(absl::StatusCode::kInternal, args[0] + " failed; output:\n" + ReadFile(log));
  }
  return absl::OkStatus();
}

// The value of `field` in an INFO-style text ("cluster_state:ok\r\n…").
std::string InfoField(const std::string& text, const std::string& field) {
  const std::string prefix = field + ":";
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
  }
  return "";
}

}  // namespace

std::string FindRedisCli() {
  const std::string server = FindRedisServer();
  if (!server.empty()) {
    const std::string beside = std::filesystem::path(server).parent_path() / "redis-cli";
    if (access(beside.c_str(), X_OK) == 0) return beside;
  }
  return access("/usr/bin/redis-cli", X_OK) == 0 ? "/usr/bin/redis-cli" : "";
}

absl::StatusOr<std::unique_ptr<RedisCluster>> RedisCluster::Start(Options options) {
  const std::string cli = FindRedisCli();
  if (FindRedisServer().empty() || cli.empty()) {
    return Error(absl::StatusCode::kNotFound,
                 "redis-server or redis-cli not found (install the Debian package "
                 "redis-server: bash deploy/install-deps.sh)");
  }
  std::unique_ptr<RedisCluster> cluster(new RedisCluster(options));
  const int count = options.primaries * (1 + options.replicas_per_primary);
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<std::unique_ptr<RedisServer>> node = RedisServer::Start(
        {"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
         "--cluster-node-timeout", std::to_string(options.node_timeout_ms),
         // A replica may be promoted however long it was cut off: the
         // tests kill primaries right after writing.
         "--cluster-replica-validity-factor", "0",
         // Replicas sync at once (Redis waits 5 s by default for more
         // replicas to share one diskless transfer).
         "--repl-diskless-sync-delay", "0",
         // CLUSTER SLOTS lists a replica once its replication offset moved;
         // on an idle primary only its pings to replicas move it (10 s
         // apart by default).
         "--repl-ping-replica-period", "1",
         // As docs/OPERATIONS.md and deploy/kubernetes configure it: a
         // shard without a primary stops its own slots, not every node's.
         "--cluster-require-full-coverage", "no",
         // DEBUG SLEEP, from loopback only: fault tests stall a node with it.
         "--enable-debug-command", "local"});
    if (!node.ok()) return node.status();
    cluster->nodes_.push_back(std::move(*node));
  }
  std::vector<std::string> create = {cli, "--cluster", "create"};
  for (int i = 0; i < count; ++i) create.push_back(cluster->address(i).ToString());
  create.insert(create.end(), {"--cluster-replicas", std::to_string(options.replicas_per_primary),
                               "--cluster-yes"});
  if (absl::Status s = Run(create, cluster->node(0).dir() + "/cluster-create.log", 60000);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = cluster->WaitHealthy(options.ready_timeout_ms,
                                            options.replicas_per_primary);
      !s.ok()) {
    return s;
  }
  return cluster;
}

int RedisCluster::IndexOf(const cache::NodeAddress& address) const {
  for (int i = 0; i < size(); ++i) {
    if (this->address(i) == address) return i;
  }
  return -1;
}

std::string RedisCluster::Seeds() const {
  std::string seeds;
  for (int i = 0; i < size(); ++i) {
    if (i > 0) seeds += ",";
    seeds += address(i).ToString();
  }
  return seeds;
}

cache::RedisResult RedisCluster::Command(int i, const cache::RedisArgv& argv) {
  cache::RedisConnection connection(cache::RedisOptions{
      .host = address(i).host, .port = address(i).port, .connect_timeout_ms = 1000,
      .command_timeout_ms = 5000, .on_round_trip = nullptr});
  return connection.Command(argv);
}

absl::StatusOr<std::vector<cache::RedisResult>> RedisCluster::Pipeline(
    int i, const std::vector<cache::RedisArgv>& commands) {
  cache::RedisConnection connection(cache::RedisOptions{
      .host = address(i).host, .port = address(i).port, .connect_timeout_ms = 1000,
      .command_timeout_ms = 5000, .on_round_trip = nullptr});
  return connection.Pipeline(commands);
}

absl::Status RedisCluster::WaitHealthy(int timeout_ms, int replicas) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string last = "no node asked yet";
  int running = 0;
  for (int i = 0; i < size(); ++i) running += node(i).running() ? 1 : 0;
  while (Clock::now() < deadline) {
    bool healthy = true;
    for (int i = 0; i < size() && healthy; ++i) {
      if (!node(i).running()) continue;
      cache::RedisResult info = Command(i, {"CLUSTER", "INFO"});
      if (!info.ok()) {
        healthy = false;
        last = address(i).ToString() + ": " + std::string(info.status().message());
        break;
      }
      const std::string state = InfoField(info->str, "cluster_state");
      if (state != "ok") {
        healthy = false;
        last = address(i).ToString() + " says cluster_state:" + state;
        break;
      }
      cache::RedisResult slots = Command(i, {"CLUSTER", "SLOTS"});
      if (!slots.ok()) {
        healthy = false;
        last = address(i).ToString() + " CLUSTER SLOTS: " + std::string(slots.status().message());
        break;
      }
      absl::StatusOr<cache::SlotMap> map = cache::SlotMap::FromClusterSlots(*slots, address(i));
      if (!map.ok() || !map->CheckCoverage().ok()) {
        healthy = false;
        last = address(i).ToString() + " does not cover every slot yet";
        break;
      }
      for (const cache::ClusterShard& shard : map->shards()) {
        if (static_cast<int>(shard.replicas.size()) < replicas) {
          healthy = false;
          last = address(i).ToString() + " lists " + std::to_string(shard.replicas.size()) +
                 " replicas of " + shard.primary.ToString();
          break;
        }
      }
    }
    if (healthy) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Error(absl::StatusCode::kDeadlineExceeded,
               "the cluster of " + std::to_string(running) + " running nodes is not healthy after " +
                   std::to_string(timeout_ms) + " ms: " + last);
}

absl::StatusOr<cache::SlotMap> RedisCluster::Slots() {
  absl::Status last = Error(absl::StatusCode::kUnavailable, "no node is running");
  for (int i = 0; i < size(); ++i) {
    if (!node(i).running()) continue;
    cache::RedisResult slots = Command(i, {"CLUSTER", "SLOTS"});
    if (!slots.ok()) {
      last = slots.status();
      continue;
    }
    return cache::SlotMap::FromClusterSlots(*slots, address(i));
  }
  return last;
}

namespace {
absl::StatusOr<std::string> NodeId(RedisCluster& cluster, int i) {
  cache::RedisResult id = cluster.Command(i, {"CLUSTER", "MYID"});
  if (!id.ok()) return id.status();
  return id->str;
}
}  // namespace

absl::Status RedisCluster::BeginSlotMove(int slot, int to) {
  absl::StatusOr<cache::SlotMap> map = Slots();
  if (!map.ok()) return map.status();
  std::optional<cache::NodeAddress> owner = map->PrimaryOf(slot);
  if (!owner) return Error(absl::StatusCode::kFailedPrecondition, "the slot has no owner");
  const int from = IndexOf(*owner);
  if (from < 0 || from == to) {
    return Error(absl::StatusCode::kFailedPrecondition, "the slot's owner is not another node");
  }
  absl::StatusOr<std::string> from_id = NodeId(*this, from);
  absl::StatusOr<std::string> to_id = NodeId(*this, to);
  if (!from_id.ok()) return from_id.status();
  if (!to_id.ok()) return to_id.status();
  const std::string s = std::to_string(slot);
  cache::RedisResult importing = Command(to, {"CLUSTER", "SETSLOT", s, "IMPORTING", *from_id});
  if (!importing.ok()) return importing.status();
  cache::RedisResult migrating = Command(from, {"CLUSTER", "SETSLOT", s, "MIGRATING", *to_id});
  if (!migrating.ok()) return migrating.status();
  return absl::OkStatus();
}

absl::StatusOr<int> RedisCluster::MigrateSlotKeys(int slot, int to, int max_keys) {
  absl::StatusOr<cache::SlotMap> map = Slots();
  if (!map.ok()) return map.status();
  std::optional<cache::NodeAddress> owner = map->PrimaryOf(slot);
  if (!owner) return Error(absl::StatusCode::kFailedPrecondition, "the slot has no owner");
  const int from = IndexOf(*owner);
  if (from < 0) return Error(absl::StatusCode::kFailedPrecondition, "unknown owner");
  cache::RedisResult keys = Command(
      from, {"CLUSTER", "GETKEYSINSLOT", std::to_string(slot), std::to_string(max_keys)});
  if (!keys.ok()) return keys.status();
  if (keys->elements.empty()) return 0;
  const cache::NodeAddress target = address(to);  // the argv views point into it
  const std::string port = std::to_string(target.port);
  cache::RedisArgv migrate = {"MIGRATE", target.host, port, "", "0", "5000", "KEYS"};
  for (const cache::RedisReply& key : keys->elements) migrate.push_back(key.str);
  cache::RedisResult moved = Command(from, migrate);
  if (!moved.ok()) return moved.status();
  return static_cast<int>(keys->elements.size());
}

absl::Status RedisCluster::FinishSlotMove(int slot, int to) {
  while (true) {
    absl::StatusOr<int> moved = MigrateSlotKeys(slot, to, 100);
    if (!moved.ok()) return moved.status();
    if (*moved == 0) break;
  }
  absl::StatusOr<std::string> to_id = NodeId(*this, to);
  if (!to_id.ok()) return to_id.status();
  // The new owner first (it stops answering ASK-only), then every other
  // primary, so that none of them redirects to the old owner.
  cache::RedisResult own =
      Command(to, {"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", *to_id});
  if (!own.ok()) return own.status();
  for (int i = 0; i < size(); ++i) {
    if (i == to || !node(i).running()) continue;
    cache::RedisResult role = Command(i, {"ROLE"});
    if (!role.ok() || role->elements.empty() || role->elements[0].str != "master") continue;
    cache::RedisResult told =
        Command(i, {"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", *to_id});
    if (!told.ok()) return told.status();
  }
  // Replicas learn it from their primaries' gossip: wait (≤ 5 s) until
  // every running node names the new owner, so that a test's next step
  // does not meet a moment of disagreement it did not ask for.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (int i = 0; i < size(); ++i) {
    while (node(i).running()) {
      cache::RedisResult slots = Command(i, {"CLUSTER", "SLOTS"});
      absl::StatusOr<cache::SlotMap> map =
          slots.ok() ? cache::SlotMap::FromClusterSlots(*slots, address(i))
                     : absl::StatusOr<cache::SlotMap>(slots.status());
      if (map.ok() && map->PrimaryOf(slot) == address(to)) break;
      if (std::chrono::steady_clock::now() > until) {
        return Error(absl::StatusCode::kDeadlineExceeded,
                     "node " + address(i).ToString() + " still does not name " +
                         address(to).ToString() + " as the owner of slot " +
                         std::to_string(slot));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  return absl::OkStatus();
}

absl::Status RedisCluster::MoveSlot(int slot, int to) {
  if (absl::Status s = BeginSlotMove(slot, to); !s.ok()) return s;
  return FinishSlotMove(slot, to);
}

void RedisClusterTest::SetUp() {
  if (FindRedisServer().empty() || FindRedisCli().empty()) {
    GTEST_SKIP() << "redis-server or redis-cli is not installed; this test needs a real "
                    "Redis Cluster. Install the Debian package redis-server (bash "
                    "deploy/install-deps.sh).";
  }
}

}  // namespace medsettle::testing
