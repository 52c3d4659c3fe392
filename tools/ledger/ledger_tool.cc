#include "tools/ledger/ledger_tool.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <deque>
#include <functional>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "cache/connection_pool.h"
#include "cache/redis_factory.h"
#include "cache/redis_settlement_store.h"
#include "engine/date.h"
#include "engine/files/loaded_engine.h"
#include "engine/status.h"
#include "engine/text.h"
#include "ledger/ledger_store.h"
#include "ledger/migrations.h"
#include "ledger/pg_connection.h"
#include "ledger/reasons.h"
#include "ledger/recompute.h"
#include "ledger/shipper.h"
#include "metrics/http_endpoint.h"
#include "metrics/registry.h"
#include "proto/contract/ledger_record.h"
#include "tools/ledger/national_format.h"

namespace medsettle::ledger_tool {
namespace {

using engine::Cat;

// ---- Flags shared by the commands ------------------------------------------

struct Flags {
  std::string ledger;  // libpq conninfo; default $MEDSETTLE_LEDGER
  std::string redis = "127.0.0.1:6379";
  std::string redis_mode = "standalone";  // or "cluster": --redis lists any of its nodes
  // ship
  int hot_window_hours = 168;
  int64_t entries_per_tag = 200;
  bool drain = false;
  int report_seconds = 60;
  std::string metrics_listen;  // host:port of /metrics; "" = none
  // status
  bool json = false;
  int64_t max_lag_seconds = -1;
  // rebuild
  bool yes = false;
  bool overwrite = false;
  int year = 0;
  std::string region;
  int idempotency_days = 35;
  // recompute, reconcile
  std::string from, to, date, institution;
  std::string format = "csv";
  // put-rules
  std::string policy_dir, catalog;
};

std::string StatusText(const absl::Status& s) {
  const std::string reason = engine::ReasonOf(s);
  return Cat(absl::StatusCodeToString(s.code()), reason.empty() ? "" : " ", reason, ": ",
             std::string(s.message()));
}

// "12.3": milliseconds as seconds with one decimal.
std::string Seconds(int64_t ms) { return Cat(ms / 1000, ".", (ms % 1000) / 100); }

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The shipper's Prometheus metrics (`ship --metrics-listen`). Counters are
// bumped from the shipping thread; the backlog is read from Redis at scrape
// time (at most once a second, on its own connection), the same way the
// gateways read it (gateway/shipping_monitor.h).
struct ShipMetrics {
  metrics::Counter* shipped = nullptr;
  metrics::Counter* released = nullptr;
  metrics::Counter* cycles_ok = nullptr;
  metrics::Counter* cycles_failed = nullptr;
  metrics::Gauge* stuck_tags = nullptr;
  metrics::Histogram* batch_seconds = nullptr;

  static absl::StatusOr<ShipMetrics> Register(metrics::Registry& r,
                                              cache::RedisSettlementStore& journal,
                                              const RunOptions& run) {
    ShipMetrics m;
    absl::StatusOr<metrics::CounterFamily*> shipped = r.AddCounter(
        "medsettle_ledger_shipped_total",
        "Journal entries this process committed in the ledger (PostgreSQL); a commit whose "
        "answer was lost is found done by the next cycle and not counted.");
    if (!shipped.ok()) return shipped.status();
    m.shipped = &(*shipped)->WithLabels({});
    absl::StatusOr<metrics::CounterFamily*> released = r.AddCounter(
        "medsettle_ledger_released_total",
        "Shipped journal entries trimmed from Redis (their records expire at the hot window).");
    if (!released.ok()) return released.status();
    m.released = &(*released)->WithLabels({});
    absl::StatusOr<metrics::CounterFamily*> cycles = r.AddCounter(
        "medsettle_ledger_ship_cycles_total", "Shipping cycles by result (ok, error).", {"result"});
    if (!cycles.ok()) return cycles.status();
    m.cycles_ok = &(*cycles)->WithLabels({"ok"});
    m.cycles_failed = &(*cycles)->WithLabels({"error"});
    absl::StatusOr<metrics::GaugeFamily*> stuck = r.AddGauge(
        "medsettle_ledger_stuck_tags",
        "Tags stopped at a journal entry that does not decode (medsettle-ledger status names them).");
    if (!stuck.ok()) return stuck.status();
    m.stuck_tags = &(*stuck)->WithLabels({});
    const std::vector<double> buckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25,  0.5,    1,     2.5,  5,     10,   30};
    absl::StatusOr<metrics::HistogramFamily*> batch = r.AddHistogram(
        "medsettle_ledger_ship_batch_seconds",
        "Wall time of a shipping cycle that moved entries (read, commit, release).", {}, buckets);
    if (!batch.ok()) return batch.status();
    m.batch_seconds = &(*batch)->WithLabels({});
    // Backlog and lag: one journal read serves both gauges and every scrape
    // within a second (two Prometheus servers scraping at once make one
    // read), on a connection of its own so a scrape never takes one the
    // shipper needs.
    struct Backlog {
      std::mutex mutex;
      int64_t read_at_ms = -1'000'000;  // guarded by mutex
      double entries = -1, lag_seconds = -1;  // guarded by mutex; -1: Redis did not answer
    };
    auto backlog = std::make_shared<Backlog>();
    auto read = [&journal, &run, backlog]() -> std::pair<double, double> {
      std::lock_guard<std::mutex> lock(backlog->mutex);
      const int64_t now = run.now_ms ? run.now_ms() : SystemNowMs();
      if (now - backlog->read_at_ms < 1000) return {backlog->entries, backlog->lag_seconds};
      backlog->read_at_ms = now;
      backlog->entries = backlog->lag_seconds = -1;
      absl::StatusOr<std::vector<cache::RedisSettlementStore::JournalLength>> lengths =
          journal.JournalLengths();
      if (!lengths.ok()) return {-1, -1};  // never a false 0
      double entries = 0;
      int64_t lag_ms = 0;
      for (const cache::RedisSettlementStore::JournalLength& l : *lengths) {
        entries += static_cast<double>(l.entries);
        const std::string_view ms = std::string_view(l.oldest_id).substr(0, l.oldest_id.find('-'));
        int64_t at = 0;
        if (!ms.empty() && std::from_chars(ms.data(), ms.data() + ms.size(), at).ec == std::errc()) {
          lag_ms = std::max(lag_ms, now - at);
        }
      }
      backlog->entries = entries;
      backlog->lag_seconds = static_cast<double>(lag_ms) / 1000.0;
      return {backlog->entries, backlog->lag_seconds};
    };
    if (absl::Status st = r.AddCallbackGauge(
            "medsettle_ledger_shipping_backlog_entries",
            "Journal entries in Redis not yet shipped (-1: Redis did not answer).",
            [read] { return read().first; });
        !st.ok()) {
      return st;
    }
    if (absl::Status st = r.AddCallbackGauge(
            "medsettle_ledger_shipping_lag_seconds",
            "Age of the oldest journal entry not yet shipped (-1: Redis did not answer).",
            [read] { return read().second; });
        !st.ok()) {
      return st;
    }
    return m;
  }

  void Observe(const ledger::CycleResult& cycle) const {
    if (shipped == nullptr) return;
    cycles_ok->Inc();
    shipped->Inc(static_cast<uint64_t>(cycle.shipped));
    released->Inc(static_cast<uint64_t>(cycle.released));
    stuck_tags->Set(static_cast<double>(cycle.stuck.size()));
    if (cycle.shipped > 0) batch_seconds->Observe(static_cast<double>(cycle.duration_us) / 1e6);
  }
};

// The context of one command run.
class Command {
 public:
  Command(const Flags& flags, std::ostream& out, std::ostream& err, const RunOptions& run)
      : flags_(flags), out_(out), err_(err), run_(run) {}

  int Migrate();
  int PutRules();
  int Ship();
  int Status();
  int Verify();
  int Rebuild();
  int Recompute();
  int Reconcile();

 private:
  int Fail(std::string_view what, const absl::Status& s) {
    err_ << "medsettle-ledger: " << what << ": " << StatusText(s) << "\n";
    return 1;
  }
  int Usage(std::string_view what) {
    err_ << "medsettle-ledger: " << what << "\n";
    return 2;
  }
  int64_t NowMs() const { return run_.now_ms ? run_.now_ms() : SystemNowMs(); }
  bool Stopped() const { return run_.stop != nullptr && run_.stop->load(); }

  ledger::LedgerOptions LedgerOptionsOf() const {
    return {.conninfo = flags_.ledger, .connect_timeout_s = 5, .statement_timeout_ms = 0,
            .application_name = "medsettle-ledger"};
  }
  absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> OpenLedger() const {
    return ledger::LedgerStore::Open(LedgerOptionsOf());
  }
  absl::StatusOr<std::unique_ptr<cache::RedisClients>> OpenRedis(int size) const;

  // What the journal holds beyond the ledger's cursors (not shipped yet):
  // its effect per person-year and per (institution, day), so that the
  // ledger plus this equals what Redis must hold.
  struct Backlog {
    std::map<std::pair<std::string, int32_t>, engine::Accumulators> years;
    struct Day {
      int64_t settled = 0, reversed = 0;
      engine::Amounts settled_amounts, reversed_amounts;
    };
    std::map<std::pair<std::string, std::string>, Day> days;  // (institution, date)
    int64_t entries = 0;
  };
  absl::StatusOr<Backlog> ReadBacklog(cache::RedisSettlementStore& store,
                                      const std::map<std::string, ledger::StreamPosition>& cursors);

  const Flags& flags_;
  std::ostream& out_;
  std::ostream& err_;
  const RunOptions& run_;
  ShipMetrics ship_metrics_;  // Ship with --metrics-listen; pointers into its registry
  std::atomic<int64_t> last_cycle_ok_ms_{0};  // Ship: when a cycle last succeeded
};

absl::StatusOr<std::unique_ptr<cache::RedisClients>> Command::OpenRedis(int size) const {
  const bool cluster = flags_.redis_mode == "cluster";
  absl::StatusOr<std::vector<cache::NodeAddress>> nodes = cache::ParseNodeList(flags_.redis);
  if (!nodes.ok() || (!cluster && nodes->size() != 1)) {
    return engine::InvalidField("LEDGER_TOOL_FLAG_INVALID", "redis",
                                Cat("--redis must be HOST:PORT", cluster ? "[,HOST:PORT…]" : "",
                                    ", got ", flags_.redis));
  }
  cache::RedisTarget target;
  target.cluster = cluster;
  target.nodes = *std::move(nodes);
  target.connect_timeout_ms = 2000;
  target.command_timeout_ms = 30000;
  target.pool_size = size;
  target.acquire_timeout_ms = 5000;
  target.io_threads = 0;  // blocking calls only
  absl::StatusOr<std::unique_ptr<cache::RedisClients>> redis =
      cache::RedisClients::Open(std::move(target));
  if (!redis.ok()) return redis.status();
  // Fail now, not at the first read, when Redis (every primary) is down.
  cache::RedisClient& client = (*redis)->blocking();
  if (client.NodeCount() == 0) {
    return engine::Refusal(absl::StatusCode::kUnavailable, cache::reason::kRedisClusterUnreachable,
                           "", Cat("no node of the cluster ", flags_.redis, " answers"));
  }
  for (int node = 0; node < client.NodeCount(); ++node) {
    cache::RedisResult ping = client.NodeCommand(node, {"PING"});
    if (!ping.ok()) return ping.status();
  }
  return redis;
}

// Every key matching `pattern` on every server (SCAN, node by node: a
// cursor belongs to its node). Stops at the first error.
absl::Status ScanAll(cache::RedisClient& redis, std::string_view pattern,
                     const std::function<absl::Status(const std::vector<std::string>&)>& batch) {
  for (int node = 0; node < redis.NodeCount(); ++node) {
    std::string cursor = "0";
    do {
      cache::RedisResult scan =
          redis.NodeCommand(node, {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
      if (!scan.ok()) return scan.status();
      if (scan->elements.size() != 2) return absl::InternalError("unexpected reply to SCAN");
      cursor = scan->elements[0].str;
      std::vector<std::string> keys;
      for (const cache::RedisReply& key : scan->elements[1].elements) keys.push_back(key.str);
      if (absl::Status s = batch(keys); !s.ok()) return s;
    } while (cursor != "0");
  }
  return absl::OkStatus();
}

bool AtOrBefore(const ledger::StreamPosition& a, const ledger::StreamPosition& b) {
  return a.ms < b.ms || (a.ms == b.ms && a.seq <= b.seq);
}

std::string TagText(int tag) {
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string{kHex[(tag >> 4) & 15], kHex[tag & 15]};
}

void AddAmounts(const engine::Amounts& a, engine::Amounts* to) {
  to->total_cents += a.total_cents;
  to->out_of_scope_cents += a.out_of_scope_cents;
  to->over_limit_cents += a.over_limit_cents;
  to->pre_self_pay_cents += a.pre_self_pay_cents;
  to->in_scope_cents += a.in_scope_cents;
  to->deductible_cents += a.deductible_cents;
  to->base_fund_cents += a.base_fund_cents;
  to->critical_illness_cents += a.critical_illness_cents;
  to->supplementary_cents += a.supplementary_cents;
  to->patient_cents += a.patient_cents;
}

absl::StatusOr<Command::Backlog> Command::ReadBacklog(
    cache::RedisSettlementStore& store,
    const std::map<std::string, ledger::StreamPosition>& cursors) {
  Backlog backlog;
  constexpr int64_t kPage = 1000;
  for (int t = 0; t < 256; ++t) {
    const std::string tag = TagText(t);
    absl::StatusOr<std::vector<cache::JournalEntry>> page =
        store.ReadJournal(tag, 0, INT64_MAX, kPage);
    while (page.ok() && !page->empty()) {
      for (const cache::JournalEntry& e : *page) {
        ledger::StreamPosition at;
        if (!ledger::ParseStreamId(e.stream_id, &at)) {
          return absl::InternalError(Cat("journal:{", tag, "} id ", e.stream_id));
        }
        const auto cursor = cursors.find(tag);
        if (cursor != cursors.end() && AtOrBefore(at, cursor->second)) continue;
        if (!e.status.ok()) return e.status;
        contract::RecordEffect effect;
        const bool settle = e.kind == cache::JournalKind::kSettle;
        if (absl::Status s = settle ? contract::EffectOf(e.settlement, &effect)
                                    : contract::EffectOf(e.reversal, &effect);
            !s.ok()) {
          return s;
        }
        const std::string& person = settle ? e.settlement.person_key() : e.reversal.person_key();
        const int32_t year = settle ? e.settlement.year() : e.reversal.year();
        backlog.years[{person, year}].AddTotals(effect.delta, settle ? 1 : -1);
        Backlog::Day& day = backlog.days[{
            settle ? e.settlement.institution_id() : e.reversal.institution_id(),
            effect.settlement_date.ToString()}];
        if (settle) {
          ++day.settled;
          AddAmounts(effect.amounts, &day.settled_amounts);
        } else {
          ++day.reversed;
          AddAmounts(effect.amounts, &day.reversed_amounts);
        }
        ++backlog.entries;
      }
      if (page->size() < static_cast<size_t>(kPage)) break;
      page = store.ReadJournalAfter(tag, page->back().stream_id, INT64_MAX, kPage);
    }
    if (!page.ok()) return page.status();
  }
  return backlog;
}

// ---- migrate, put-rules ------------------------------------------------------

int Command::Migrate() {
  absl::StatusOr<std::unique_ptr<ledger::PgConnection>> conn = ledger::PgConnection::Connect(
      {.conninfo = flags_.ledger, .connect_timeout_s = 5, .statement_timeout_ms = 0,
       .application_name = "medsettle-ledger migrate"});
  if (!conn.ok()) return Fail("connecting to the ledger", conn.status());
  absl::StatusOr<ledger::MigrateResult> result = ledger::Migrate(**conn);
  if (!result.ok()) return Fail("migrate", result.status());
  if (result->applied.empty()) {
    out_ << "ledger schema at version " << result->version_after << ": nothing to apply\n";
  } else {
    out_ << "ledger schema: version " << result->version_before << " → "
         << result->version_after << " (applied";
    for (int v : result->applied) out_ << " " << v;
    out_ << ")\n";
  }
  return 0;
}

int Command::PutRules() {
  if (flags_.policy_dir.empty() || flags_.catalog.empty()) {
    return Usage("put-rules needs --policy-dir and --catalog");
  }
  absl::StatusOr<engine_files::LoadedEngine> loaded =
      engine_files::LoadEngine(flags_.policy_dir, flags_.catalog);
  if (!loaded.ok()) return Fail("loading the rules", loaded.status());
  std::vector<ledger::RuleFile> files;
  for (const auto& [id, file] : loaded->policies) {
    files.push_back({.sha256 = file.sha256_hex, .kind = "policy", .name = file.file_name,
                     .content = file.bytes});
  }
  files.push_back({.sha256 = loaded->catalog.sha256_hex, .kind = "catalog",
                   .name = loaded->catalog.file_name, .content = loaded->catalog.bytes});
  absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> store = OpenLedger();
  if (!store.ok()) return Fail("opening the ledger", store.status());
  if (absl::Status s = (*store)->PutRuleFiles(files); !s.ok()) return Fail("put-rules", s);
  for (const ledger::RuleFile& f : files) {
    out_ << f.kind << " " << f.name << " " << f.sha256 << "\n";
  }
  return 0;
}

// ---- ship ------------------------------------------------------------------

int Command::Ship() {
  if (flags_.hot_window_hours < 1) return Usage("--hot-window-hours must be at least 1");
  absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> store = OpenLedger();
  if (!store.ok()) return Fail("opening the ledger", store.status());
  // A shipper killed a moment ago still holds the lock until the server
  // notices its connection is gone: wait for that, a little.
  absl::Status locked = (*store)->LockShipper();
  for (int i = 0; i < 100 && !locked.ok() &&
                  engine::ReasonOf(locked) == ledger::reason::kLedgerShipperRunning && !Stopped();
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    locked = (*store)->LockShipper();
  }
  if (!locked.ok()) return Fail("ship", locked);
  absl::StatusOr<std::unique_ptr<cache::RedisClients>> redis = OpenRedis(2);
  if (!redis.ok()) return Fail("connecting to Redis", redis.status());
  cache::RedisSettlementStore settlements((*redis)->blocking());

  int64_t shipped = 0, released = 0, shipped_since = 0;
  int64_t last_report_ms = NowMs();
  ledger::ShipperOptions options;
  options.hot_window_ms = int64_t{flags_.hot_window_hours} * 3600 * 1000;
  options.entries_per_tag = flags_.entries_per_tag;
  options.now_ms = run_.now_ms;
  options.on_error = [this](const absl::Status& s) {
    err_ << engine::FormatRfc3339(NowMs() / 1000, 480) << " ship: " << StatusText(s) << "\n";
    err_.flush();
  };
  last_cycle_ok_ms_.store(NowMs());
  options.on_cycle = [&](const ledger::CycleResult& cycle) {
    last_cycle_ok_ms_.store(NowMs());
    ship_metrics_.Observe(cycle);
    shipped += cycle.shipped;
    released += cycle.released;
    shipped_since += cycle.shipped;
    const int64_t now = NowMs();
    if (flags_.report_seconds > 0 && now - last_report_ms >= flags_.report_seconds * 1000) {
      out_ << engine::FormatRfc3339(now / 1000, 480) << " shipped " << shipped_since
           << " entries in " << (now - last_report_ms) / 1000 << " s (" << shipped
           << " since start)\n";
      out_.flush();
      shipped_since = 0;
      last_report_ms = now;
    }
  };
  // Metrics (docs/OPERATIONS.md, Metrics): what a scraper needs to alert on
  // a stalled shipper; the backlog is read at scrape time. Declared in the
  // order they must outlive each other (the endpoint last: destroyed first).
  std::unique_ptr<cache::RedisClients> scrape_pool;
  std::unique_ptr<cache::RedisSettlementStore> scrape_journal;
  metrics::Registry registry;
  std::unique_ptr<metrics::MetricsEndpoint> endpoint;
  std::string metrics_host;
  int metrics_port = 0;
  if (!flags_.metrics_listen.empty()) {
    if (!metrics::ParseListenAddress(flags_.metrics_listen, &metrics_host, &metrics_port)) {
      return Usage(Cat("--metrics-listen must be HOST:PORT, got ", flags_.metrics_listen));
    }
    absl::StatusOr<std::unique_ptr<cache::RedisClients>> scrape_redis = OpenRedis(1);
    if (!scrape_redis.ok()) return Fail("connecting to Redis", scrape_redis.status());
    scrape_pool = *std::move(scrape_redis);
    scrape_journal = std::make_unique<cache::RedisSettlementStore>(scrape_pool->blocking());
    absl::StatusOr<ShipMetrics> m = ShipMetrics::Register(registry, *scrape_journal, run_);
    if (!m.ok()) return Fail("registering the metrics", m.status());
    ship_metrics_ = *m;
    endpoint = std::make_unique<metrics::MetricsEndpoint>(
        registry,
        metrics::EndpointOptions{
            .host = metrics_host,
            .port = metrics_port,
            // /healthz: a shipping cycle succeeded in the last 30 s.
            .health = [this]() -> absl::Status {
              const int64_t idle_ms = NowMs() - last_cycle_ok_ms_.load();
              if (idle_ms <= 30'000) return absl::OkStatus();
              return absl::UnavailableError(
                  Cat("no shipping cycle has succeeded for ", idle_ms / 1000, " s"));
            },
            .keep_alive_timeout_s = 2});
    if (absl::Status s = endpoint->Start(); s.ok()) {
      out_ << "medsettle-ledger ship: metrics on " << metrics_host << ":" << endpoint->port()
           << "\n";
    } else {
      // Shipping matters more than its metrics (a crash loop under
      // systemd would stop it): say so, ship on without them.
      Fail("--metrics-listen (shipping on without metrics)", s);
      endpoint.reset();
    }
  }
  options.on_cycle_failed = [this] {
    if (ship_metrics_.cycles_failed != nullptr) ship_metrics_.cycles_failed->Inc();
  };
  ledger::Shipper shipper((*redis)->blocking(), settlements, **store, options);
  out_ << "medsettle-ledger ship: Redis " << flags_.redis << " → the ledger; hot window "
       << flags_.hot_window_hours << " h" << (flags_.drain ? "; until the journal is empty" : "")
       << "\n";
  out_.flush();
  if (flags_.drain) {
    // Until a cycle finds nothing: the journals hold nothing unshipped but
    // what waits behind an entry that does not decode. A stuck tag stops
    // only itself: the other tags are drained first, then it is reported.
    std::map<std::string, absl::Status> stuck;
    for (;;) {
      absl::StatusOr<ledger::CycleResult> cycle = shipper.ShipOnce();
      if (!cycle.ok()) return Fail("ship", cycle.status());
      options.on_cycle(*cycle);
      stuck = cycle->stuck;
      if (cycle->shipped == 0 && cycle->released == 0) break;
    }
    if (!stuck.empty()) {
      out_ << "shipped " << shipped << " journal entries, released " << released
           << " from Redis\n";
      for (const auto& [tag, status] : stuck) Fail(Cat("ship: tag ", tag, " is stuck"), status);
      return 1;
    }
  } else {
    std::atomic<bool> never{false};
    shipper.Run(run_.stop != nullptr ? *run_.stop : never);
  }
  out_ << "shipped " << shipped << " journal entries, released " << released << " from Redis\n";
  return 0;
}

// ---- status ------------------------------------------------------------------

int Command::Status() {
  absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> store = OpenLedger();
  if (!store.ok()) return Fail("opening the ledger", store.status());
  absl::StatusOr<std::map<std::string, ledger::ShipCursor>> cursors = (*store)->CursorDetails();
  if (!cursors.ok()) return Fail("reading the cursors", cursors.status());
  absl::StatusOr<std::unique_ptr<cache::RedisClients>> redis = OpenRedis(1);
  if (!redis.ok()) return Fail("connecting to Redis", redis.status());
  cache::RedisSettlementStore settlements((*redis)->blocking());
  absl::StatusOr<std::vector<cache::RedisSettlementStore::JournalLength>> lengths =
      settlements.JournalLengths();
  if (!lengths.ok()) return Fail("reading the journals", lengths.status());
  const int64_t now = NowMs();

  struct Row {
    std::string tag;
    std::string shipped_through;
    int64_t shipped_total = 0;
    int64_t waiting = 0;
    int64_t oldest_waiting_ms = 0;  // 0: none waiting
    std::string stuck;              // the first waiting entry does not decode
  };
  std::vector<Row> rows;
  int64_t waiting_total = 0, shipped_total = 0, lag_ms_max = 0;
  for (int t = 0; t < 256; ++t) {
    const std::string tag = TagText(t);
    const auto cursor = cursors->find(tag);
    Row row{.tag = tag};
    std::string after = "0-0";
    if (cursor != cursors->end()) {
      after = Cat(cursor->second.position.ms, "-", cursor->second.position.seq);
      row.shipped_through = after;
      row.shipped_total = cursor->second.entries_shipped;
    }
    const int64_t entries = (*lengths)[static_cast<size_t>(t)].entries;
    if (entries > 0) {
      // Entries at or below the cursor are shipped, waiting only to be
      // trimmed (a shipper stopped between its commit and the trim).
      absl::StatusOr<std::vector<cache::JournalEntry>> first =
          settlements.ReadJournalAfter(tag, after, INT64_MAX, 1);
      if (!first.ok()) return Fail(Cat("reading journal:{", tag, "}"), first.status());
      if (!first->empty()) {
        const std::string journal = cache::JournalKey(tag);
        cache::RedisResult released =
            (*redis)->blocking().Command(journal, {"XRANGE", journal, "-", after});
        const int64_t done = released.ok() ? static_cast<int64_t>(released->elements.size()) : 0;
        row.waiting = entries - done;
        ledger::StreamPosition at;
        if (ledger::ParseStreamId(first->front().stream_id, &at)) row.oldest_waiting_ms = at.ms;
        if (!first->front().status.ok()) row.stuck = StatusText(first->front().status);
      }
    }
    waiting_total += row.waiting;
    shipped_total += row.shipped_total;
    if (row.oldest_waiting_ms > 0) lag_ms_max = std::max(lag_ms_max, now - row.oldest_waiting_ms);
    if (row.waiting > 0 || row.shipped_total > 0) rows.push_back(row);
  }
  // Summed over the servers (the primaries of a cluster).
  std::string used_memory;
  int64_t used_memory_sum = 0;
  bool memory_known = true;
  for (int node = 0; node < (*redis)->blocking().NodeCount(); ++node) {
    cache::RedisResult memory = (*redis)->blocking().NodeCommand(node, {"INFO", "memory"});
    const size_t at = memory.ok() ? memory->str.find("used_memory:") : std::string::npos;
    if (at == std::string::npos) {
      memory_known = false;
      break;
    }
    used_memory_sum += std::atoll(memory->str.c_str() + at + 12);
  }
  if (memory_known) used_memory = std::to_string(used_memory_sum);
  if (flags_.json) {
    out_ << "{\"shipped\":" << shipped_total << ",\"waiting\":" << waiting_total
         << ",\"lag_seconds\":" << Seconds(lag_ms_max) << ",\"redis_used_memory\":"
         << (used_memory.empty() ? "null" : used_memory) << ",\"tags\":[";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      out_ << (i ? "," : "") << "{\"tag\":\"" << r.tag << "\",\"shipped_through\":\""
           << r.shipped_through << "\",\"shipped\":" << r.shipped_total
           << ",\"waiting\":" << r.waiting << ",\"lag_seconds\":"
           << (r.oldest_waiting_ms > 0 ? Seconds(now - r.oldest_waiting_ms) : "0")
           << ",\"stuck\":" << (r.stuck.empty() ? "false" : "true") << "}";
    }
    out_ << "]}\n";
  } else {
    out_ << "shipped " << shipped_total << " journal entries; waiting " << waiting_total
         << " in " << std::count_if(rows.begin(), rows.end(), [](const Row& r) {
              return r.waiting > 0;
            })
         << " tags; oldest waiting " << Seconds(lag_ms_max) << " s; Redis used_memory "
         << used_memory << " bytes\n";
    for (const Row& r : rows) {
      if (r.waiting == 0 && r.stuck.empty()) continue;
      out_ << "  tag " << r.tag << ": shipped through "
           << (r.shipped_through.empty() ? "(none)" : r.shipped_through) << ", waiting "
           << r.waiting << ", oldest " << Seconds(now - r.oldest_waiting_ms) << " s"
           << (r.stuck.empty() ? "" : Cat("; STUCK at an entry that does not decode: ", r.stuck))
           << "\n";
    }
  }
  if (flags_.max_lag_seconds >= 0 && lag_ms_max > flags_.max_lag_seconds * 1000) return 3;
  return 0;
}

// ---- verify ------------------------------------------------------------------

// "go.ded 100 ≠ 120, ci.burden …": the totals where a and b differ.
std::string TotalsDifference(const engine::Accumulators& redis, const engine::Accumulators& ledger) {
  std::string out;
  const std::vector<std::string>& names = cache::AccumulatorFieldNames();
  for (size_t i = 0; i < names.size(); ++i) {
    const int64_t a = cache::AccumulatorTotal(redis, i);
    const int64_t b = cache::AccumulatorTotal(ledger, i);
    if (a != b) out += Cat(out.empty() ? "" : ", ", names[i], " Redis ", a, " ledger ", b);
  }
  return out;
}

int Command::Verify() {
  absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> store = OpenLedger();
  if (!store.ok()) return Fail("opening the ledger", store.status());
  absl::StatusOr<std::unique_ptr<cache::RedisClients>> redis = OpenRedis(1);
  if (!redis.ok()) return Fail("connecting to Redis", redis.status());
  cache::RedisSettlementStore settlements((*redis)->blocking());
  absl::StatusOr<std::map<std::string, ledger::StreamPosition>> cursors = (*store)->Cursors();
  if (!cursors.ok()) return Fail("reading the cursors", cursors.status());
  absl::StatusOr<Backlog> backlog = ReadBacklog(settlements, *cursors);
  if (!backlog.ok()) return Fail("reading the unshipped journal", backlog.status());

  // Expected = the ledger's sums + the unshipped journal.
  std::map<std::pair<std::string, int32_t>, engine::Accumulators> expected = backlog->years;
  absl::Status walked = (*store)->PersonYearDeltas({}, [&](const ledger::PersonYearDelta& d) {
    expected[{d.person_key, d.year}].AddTotals(d.totals, 1);
    return absl::OkStatus();
  });
  if (!walked.ok()) return Fail("summing the ledger", walked);

  int64_t differences = 0, checked = 0;
  auto report = [&](const std::string& line) {
    if (++differences <= 100) out_ << "DIFFERENT " << line << "\n";
  };
  // Every person-year Redis holds (SCAN acc:*), against the expected sums.
  std::set<std::pair<std::string, int32_t>> seen;
  absl::Status scanned = ScanAll(
      (*redis)->blocking(), "acc:*", [&](const std::vector<std::string>& keys) -> absl::Status {
        std::vector<std::pair<std::string, int32_t>> batch;
        for (const std::string& k : keys) {
          // acc:{ab}:<person_key>:<year>
          const size_t last = k.rfind(':');
          const size_t first = k.find("}:");
          if (last == std::string::npos || first == std::string::npos || last <= first + 2) {
            continue;
          }
          batch.emplace_back(k.substr(first + 2, last - first - 2),
                             std::atoi(k.c_str() + last + 1));
        }
        absl::StatusOr<std::vector<cache::RedisSettlementStore::StoredYear>> years =
            settlements.ReadYears(batch);
        if (!years.ok()) return years.status();
        for (size_t i = 0; i < batch.size(); ++i) {
          ++checked;
          seen.insert(batch[i]);
          const auto want = expected.find(batch[i]);
          const engine::Accumulators zero;
          const engine::Accumulators& ledger_sum = want == expected.end() ? zero : want->second;
          if (!(*years)[i].accumulators.SameTotals(ledger_sum)) {
            report(Cat("person ", batch[i].first, " year ", batch[i].second, ": ",
                       TotalsDifference((*years)[i].accumulators, ledger_sum)));
          }
        }
        return absl::OkStatus();
      });
  if (!scanned.ok()) return Fail("reading Redis's accumulators", scanned);
  for (const auto& [key, totals] : expected) {
    if (seen.contains(key) || totals.SameTotals(engine::Accumulators())) continue;
    ++checked;
    report(Cat("person ", key.first, " year ", key.second,
               ": missing in Redis (the ledger has settlements; medsettle-ledger rebuild)"));
  }

  // Every day Redis still indexes (recon:{ab}:<inst>:<date>), summed over
  // its tags, against the ledger's day plus the unshipped journal.
  std::map<std::pair<std::string, std::string>, cache::ReconcileResult> days;
  scanned = ScanAll((*redis)->blocking(), "recon:*",
                    [&](const std::vector<std::string>& keys) -> absl::Status {
                      for (const std::string& k : keys) {
                        if (k.size() < 11 || k.ends_with(":ids")) continue;
                        const size_t first = k.find("}:");
                        const size_t last = k.rfind(':');
                        if (first == std::string::npos || last <= first + 2) continue;
                        days[{k.substr(first + 2, last - first - 2), k.substr(last + 1)}];
                      }
                      return absl::OkStatus();
                    });
  if (!scanned.ok()) return Fail("scanning Redis", scanned);
  int64_t days_checked = 0;
  for (auto& [key, unused] : days) {
    std::optional<engine::Date> date = engine::Date::Parse(key.second);
    if (!date.has_value()) continue;
    absl::StatusOr<cache::ReconcileResult> in_redis =
        settlements.Reconcile(key.first, *date, false, 0, "");
    if (!in_redis.ok()) return Fail("reading the reconcile index", in_redis.status());
    absl::StatusOr<ledger::DayReconcile> in_ledger =
        (*store)->ReconcileDay(key.first, *date, false, 1, "");
    if (!in_ledger.ok()) return Fail("reading the ledger's day", in_ledger.status());
    int64_t settled = in_ledger->settled.count, reversed = in_ledger->reversed.count;
    engine::Amounts settled_amounts = in_ledger->settled.amounts;
    engine::Amounts reversed_amounts = in_ledger->reversed.amounts;
    if (const auto b = backlog->days.find(key); b != backlog->days.end()) {
      settled += b->second.settled;
      reversed += b->second.reversed;
      AddAmounts(b->second.settled_amounts, &settled_amounts);
      AddAmounts(b->second.reversed_amounts, &reversed_amounts);
    }
    ++days_checked;
    if (in_redis->settled.count != settled || in_redis->reversed.count != reversed ||
        !(in_redis->settled.amounts == settled_amounts) ||
        !(in_redis->reversed.amounts == reversed_amounts)) {
      report(Cat("institution ", key.first, " day ", key.second, ": Redis settled ",
                 in_redis->settled.count, " (", Yuan(in_redis->settled.amounts.total_cents),
                 ") reversed ", in_redis->reversed.count, ", ledger settled ", settled, " (",
                 Yuan(settled_amounts.total_cents), ") reversed ", reversed));
    }
  }
  out_ << "verified " << checked << " person-years and " << days_checked
       << " days against the ledger (" << backlog->entries
       << " journal entries not shipped yet counted): " << differences << " differences\n";
  return differences == 0 ? 0 : 1;
}

// ---- rebuild -----------------------------------------------------------------

int Command::Rebuild() {
  if (!flags_.yes) {
    return Usage(
        "rebuild writes Redis accumulators; stop the gateways (or suspend settlement) first and "
        "confirm with --yes");
  }
  absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> store = OpenLedger();
  if (!store.ok()) return Fail("opening the ledger", store.status());
  absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> records_store = OpenLedger();
  if (!records_store.ok()) return Fail("opening the ledger", records_store.status());
  absl::StatusOr<std::unique_ptr<cache::RedisClients>> redis = OpenRedis(1);
  if (!redis.ok()) return Fail("connecting to Redis", redis.status());
  cache::RedisSettlementStore settlements((*redis)->blocking());
  absl::StatusOr<std::map<std::string, ledger::StreamPosition>> cursors = (*store)->Cursors();
  if (!cursors.ok()) return Fail("reading the cursors", cursors.status());
  absl::StatusOr<Backlog> backlog = ReadBacklog(settlements, *cursors);
  if (!backlog.ok()) return Fail("reading the unshipped journal", backlog.status());

  struct Want {
    engine::Accumulators totals;
    int64_t entries = 0;
  };
  std::map<std::pair<std::string, int32_t>, Want> wanted;
  for (const auto& [key, totals] : backlog->years) {
    if (flags_.year != 0 && key.second != flags_.year) continue;
    wanted[key].totals.AddTotals(totals, 1);
  }
  // --region: the person-years whose records were insured in the region.
  std::set<std::pair<std::string, int32_t>> in_region;
  if (!flags_.region.empty()) {
    absl::Status listed = (*records_store)->RecordsInRange(
        engine::Date::FromDays(-25567), engine::Date::FromDays(84000),
        [&](const v1::LedgerRecord& r) {
          if (r.enrollment().region_code() == flags_.region) {
            in_region.insert({r.person_key(), r.year()});
          }
          return absl::OkStatus();
        });
    if (!listed.ok()) return Fail("listing the region's persons", listed);
    for (auto it = wanted.begin(); it != wanted.end();) {
      it = in_region.contains(it->first) ? std::next(it) : wanted.erase(it);
    }
  }
  absl::Status walked = (*store)->PersonYearDeltas(
      {.person_key = "", .year = flags_.year}, [&](const ledger::PersonYearDelta& d) {
        if (!flags_.region.empty() && !in_region.contains({d.person_key, d.year})) {
          return absl::OkStatus();
        }
        Want& w = wanted[{d.person_key, d.year}];
        w.totals.AddTotals(d.totals, 1);
        w.entries += d.settlements + d.reversals;
        return absl::OkStatus();
      });
  if (!walked.ok()) return Fail("summing the ledger", walked);

  int64_t written = 0, same = 0, conflicting = 0;
  std::vector<std::pair<std::string, int32_t>> batch;
  auto flush = [&]() -> absl::Status {
    absl::StatusOr<std::vector<cache::RedisSettlementStore::StoredYear>> now =
        settlements.ReadYears(batch);
    if (!now.ok()) return now.status();
    for (size_t i = 0; i < batch.size(); ++i) {
      const Want& w = wanted[batch[i]];
      const cache::RedisSettlementStore::StoredYear& have = (*now)[i];
      if (have.exists && have.accumulators.SameTotals(w.totals)) {
        ++same;
        continue;
      }
      if (have.exists && !flags_.overwrite) {
        ++conflicting;
        out_ << "KEPT person " << batch[i].first << " year " << batch[i].second
             << " (Redis differs: " << TotalsDifference(have.accumulators, w.totals)
             << "; --overwrite replaces it)\n";
        continue;
      }
      // A version above any a reader could hold: the next commit of a
      // stale read is refused VERSION_MOVED and recomputed.
      const int64_t version = std::max<int64_t>(have.accumulators.version + 1, w.entries + 1);
      if (absl::Status s = settlements.WriteYear(batch[i].first, batch[i].second, w.totals, version);
          !s.ok()) {
        return s;
      }
      ++written;
    }
    batch.clear();
    return absl::OkStatus();
  };
  for (const auto& [key, want] : wanted) {
    batch.push_back(key);
    if (batch.size() == 500) {
      if (absl::Status s = flush(); !s.ok()) return Fail("writing accumulators", s);
    }
  }
  if (absl::Status s = flush(); !s.ok()) return Fail("writing accumulators", s);

  // Idempotency records of the recent settlements: a request re-sent after
  // Redis was lost replays instead of paying twice.
  int64_t idempotency = 0;
  if (flags_.idempotency_days > 0) {
    const int64_t now = NowMs();
    const int64_t since_ms = now - int64_t{flags_.idempotency_days} * 86'400'000;
    const engine::Date from = engine::Date::FromDays(
        static_cast<int32_t>((since_ms / 1000 + 8 * 3600) / 86400) - 31);
    const engine::Date to =
        engine::Date::FromDays(static_cast<int32_t>((now / 1000 + 8 * 3600) / 86400) + 1);
    std::deque<std::string> texts;  // stable addresses: the argv views point into it
    std::vector<cache::RedisArgv> commands;
    std::vector<std::string_view> routing;  // each command's key (persons of many tags)
    auto send = [&]() -> absl::Status {
      if (commands.empty()) return absl::OkStatus();
      absl::StatusOr<std::vector<cache::RedisResult>> r =
          (*redis)->blocking().PipelineAcrossSlots(routing, commands);
      commands.clear();
      routing.clear();
      texts.clear();
      if (!r.ok()) return r.status();
      for (const cache::RedisResult& x : *r) {
        if (!x.ok()) return x.status();
      }
      return absl::OkStatus();
    };

    absl::Status walked_records = (*records_store)->RecordsInRange(
        from, to, [&](const v1::LedgerRecord& r) -> absl::Status {
          if (r.settled_at_unix_ms() < since_ms) return absl::OkStatus();
          if (flags_.region.empty() == false && r.enrollment().region_code() != flags_.region) {
            return absl::OkStatus();
          }
          texts.push_back(cache::IdempotencyKey(r.person_key().substr(0, 2), r.institution_id(),
                                                r.request_id()));
          const std::string& key = texts.back();
          texts.push_back(r.content_hash());
          const std::string& hash = texts.back();
          texts.push_back(r.settlement_id());
          const std::string& id = texts.back();
          texts.push_back(std::to_string(r.settled_at_unix_ms() +
                                         int64_t{flags_.idempotency_days} * 86'400'000));
          commands.push_back({"HSETNX", key, "hash", hash});
          commands.push_back({"HSETNX", key, "settlement_id", id});
          commands.push_back({"PEXPIREAT", key, texts.back()});
          routing.insert(routing.end(), 3, key);
          ++idempotency;
          if (commands.size() >= 3 * 500) return send();
          return absl::OkStatus();
        });
    if (!walked_records.ok()) return Fail("reading recent settlements", walked_records);
    if (absl::Status s = send(); !s.ok()) return Fail("writing idempotency records", s);
  }
  out_ << "rebuilt " << written << " person-years from the ledger (" << same
       << " already equal, " << conflicting << " kept as they differ); " << idempotency
       << " idempotency records of the last " << flags_.idempotency_days << " days restored\n";
  return conflicting == 0 ? 0 : 1;
}

// ---- recompute -----------------------------------------------------------------

int Command::Recompute() {
  std::optional<engine::Date> from = engine::Date::Parse(flags_.from);
  std::optional<engine::Date> to = engine::Date::Parse(flags_.to);
  if (!from || !to) return Usage("recompute needs --from and --to as YYYY-MM-DD");
  if (*to < *from) return Usage("--to is before --from");
  absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> records = OpenLedger();
  if (!records.ok()) return Fail("opening the ledger", records.status());
  // The rule files are read on a second connection: the records stream
  // from a server-side cursor on the first.
  absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> rules = OpenLedger();
  if (!rules.ok()) return Fail("opening the ledger", rules.status());

  std::map<std::pair<std::string, std::string>,
           std::shared_ptr<const engine_files::LoadedEngine>> engines;
  int64_t total = 0, differing = 0;
  absl::Status walked = (*records)->RecordsInRange(
      *from, *to, [&](const v1::LedgerRecord& record) -> absl::Status {
        ++total;
        const std::pair<std::string, std::string> key{record.policy_sha256(),
                                                      record.catalog_sha256()};
        auto it = engines.find(key);
        if (it == engines.end()) {
          absl::StatusOr<ledger::RuleFile> policy = (*rules)->GetRuleFile(key.first);
          if (!policy.ok()) return policy.status();
          absl::StatusOr<ledger::RuleFile> catalog = (*rules)->GetRuleFile(key.second);
          if (!catalog.ok()) return catalog.status();
          absl::StatusOr<engine_files::LoadedEngine> built = engine_files::BuildEngine(
              {{.file_name = policy->name, .path = "", .sha256_hex = policy->sha256,
                .bytes = policy->content}},
              {.file_name = catalog->name, .path = "", .sha256_hex = catalog->sha256,
               .bytes = catalog->content});
          if (!built.ok()) return built.status();
          it = engines
                   .emplace(key, std::make_shared<const engine_files::LoadedEngine>(
                                     *std::move(built)))
                   .first;
        }
        absl::StatusOr<ledger::Recomputed> again = ledger::Recompute(*it->second->engine, record);
        if (!again.ok()) {
          ++differing;
          out_ << "DIFFERENT " << record.settlement_id() << " (" << record.settlement_date()
               << "): the rules now refuse it: " << StatusText(again.status()) << "\n";
          return absl::OkStatus();
        }
        if (!again->differences.empty()) {
          ++differing;
          out_ << "DIFFERENT " << record.settlement_id() << " (" << record.settlement_date()
               << ", " << record.policy_id() << "):\n";
          for (const std::string& d : again->differences) out_ << "  " << d << "\n";
        }
        return absl::OkStatus();
      });
  if (!walked.ok()) return Fail("recompute", walked);
  out_ << "recomputed " << total << " settlements of " << flags_.from << ".." << flags_.to
       << " with the rules each was settled under: " << differing << " differ\n";
  return differing == 0 ? 0 : 1;
}

// ---- reconcile -----------------------------------------------------------------

int Command::Reconcile() {
  std::optional<engine::Date> date = engine::Date::Parse(flags_.date);
  if (!date) return Usage("reconcile needs --date YYYY-MM-DD");
  if (flags_.institution.empty()) return Usage("reconcile needs --institution");
  if (flags_.format != "csv" && flags_.format != "json") return Usage("--format is csv or json");
  absl::StatusOr<std::unique_ptr<ledger::LedgerStore>> store = OpenLedger();
  if (!store.ok()) return Fail("opening the ledger", store.status());
  DayStatement statement;
  statement.institution_id = flags_.institution;
  statement.date = flags_.date;
  std::string token;
  do {
    absl::StatusOr<ledger::DayReconcile> page = (*store)->ReconcileDay(
        flags_.institution, *date, true, ledger::kMaxReconcilePageSize, token);
    if (!page.ok()) return Fail("reconcile", page.status());
    for (const ledger::DayEntry& e : page->detail) {
      absl::StatusOr<ledger::LedgerSettlement> s = (*store)->GetSettlement(e.settlement_id);
      if (!s.ok()) return Fail(Cat("reading ", e.settlement_id), s.status());
      AddSettlement(s->record, s->reversal ? &*s->reversal : nullptr, &statement);
    }
    token = page->next_page_token;
  } while (!token.empty());
  out_ << (flags_.format == "json" ? StatementJson(statement) : StatementCsv(statement));
  return 0;
}

}  // namespace

int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const RunOptions& run) {
  Flags flags;
  if (const char* env = std::getenv("MEDSETTLE_LEDGER")) flags.ledger = env;
  CLI::App app{"medsettle-ledger: the ledger (PostgreSQL) of medsettle's settlements",
               "medsettle-ledger"};
  app.require_subcommand(1);
  auto ledger_flag = [&flags](CLI::App* c) {
    c->add_option("--ledger", flags.ledger,
                  "PostgreSQL connection string (libpq); default $MEDSETTLE_LEDGER");
  };
  auto redis_flag = [&flags](CLI::App* c) {
    c->add_option("--redis", flags.redis,
                  "Redis HOST:PORT (--redis-mode cluster: any nodes, HOST:PORT,HOST:PORT,...)")
        ->capture_default_str();
    c->add_option("--redis-mode", flags.redis_mode, "standalone or cluster (a Redis Cluster)")
        ->check(CLI::IsMember({"standalone", "cluster"}))
        ->capture_default_str();
  };
  CLI::App* migrate = app.add_subcommand("migrate", "bring the ledger's schema to this version");
  ledger_flag(migrate);
  CLI::App* put_rules =
      app.add_subcommand("put-rules", "store a policy folder and catalog once per digest");
  ledger_flag(put_rules);
  put_rules->add_option("--policy-dir", flags.policy_dir, "policy YAML folder")->required();
  put_rules->add_option("--catalog", flags.catalog, "catalog CSV")->required();
  CLI::App* ship = app.add_subcommand(
      "ship", "ship the journal of every tag into the ledger, exactly once (daemon)");
  ledger_flag(ship);
  redis_flag(ship);
  ship->add_option("--hot-window-hours", flags.hot_window_hours,
                   "how long a shipped settlement stays in Redis (= the gateways')")
      ->capture_default_str();
  ship->add_option("--entries-per-tag", flags.entries_per_tag, "journal entries read per tag and cycle")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  ship->add_flag("--drain", flags.drain, "ship until the journals are empty, then exit");
  ship->add_option("--report-seconds", flags.report_seconds, "progress line interval (0 = none)")
      ->capture_default_str();
  ship->add_option("--metrics-listen", flags.metrics_listen,
                   "HOST:PORT of a Prometheus endpoint (/metrics, /healthz), e.g. 127.0.0.1:9465; "
                   "port 0 picks one; none by default");
  CLI::App* status = app.add_subcommand("status", "per tag: shipped up to where, lag");
  ledger_flag(status);
  redis_flag(status);
  status->add_flag("--json", flags.json, "JSON output");
  status->add_option("--max-lag-seconds", flags.max_lag_seconds,
                     "exit 3 when the oldest unshipped entry is older");
  CLI::App* verify = app.add_subcommand(
      "verify", "Redis's accumulators and reconcile index against the ledger");
  ledger_flag(verify);
  redis_flag(verify);
  CLI::App* rebuild = app.add_subcommand(
      "rebuild", "restore Redis's accumulators (and recent idempotency records) from the ledger");
  ledger_flag(rebuild);
  redis_flag(rebuild);
  rebuild->add_flag("--yes", flags.yes, "confirm: the gateways are stopped");
  rebuild->add_flag("--overwrite", flags.overwrite, "replace accumulators that differ");
  rebuild->add_option("--year", flags.year, "only this year");
  rebuild->add_option("--region", flags.region, "only persons insured in this region (6 digits)");
  rebuild->add_option("--idempotency-days", flags.idempotency_days,
                      "restore idempotency records of settlements this recent (0 = none)")
      ->capture_default_str();
  CLI::App* recompute = app.add_subcommand(
      "recompute", "recompute settlements from their records with the stored rules");
  ledger_flag(recompute);
  recompute->add_option("--from", flags.from, "first settlement date, YYYY-MM-DD")->required();
  recompute->add_option("--to", flags.to, "last settlement date, YYYY-MM-DD")->required();
  CLI::App* reconcile = app.add_subcommand(
      "reconcile", "a day's totals and detail in the national platform's names (3201/3202)");
  ledger_flag(reconcile);
  reconcile->add_option("--institution", flags.institution, "institution id")->required();
  reconcile->add_option("--date", flags.date, "accounting day, YYYY-MM-DD")->required();
  reconcile->add_option("--format", flags.format, "csv or json")->capture_default_str();

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    out << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::ParseError& e) {
    err << "medsettle-ledger: " << e.what() << "\n" << app.help();
    return 2;
  }
  CLI::App* chosen = app.get_subcommands().front();
  if (flags.ledger.empty()) {
    err << "medsettle-ledger: --ledger (or $MEDSETTLE_LEDGER) is required\n";
    return 2;
  }
  Command command(flags, out, err, run);
  if (chosen == migrate) return command.Migrate();
  if (chosen == put_rules) return command.PutRules();
  if (chosen == ship) return command.Ship();
  if (chosen == status) return command.Status();
  if (chosen == verify) return command.Verify();
  if (chosen == rebuild) return command.Rebuild();
  if (chosen == recompute) return command.Recompute();
  return command.Reconcile();
}

}  // namespace medsettle::ledger_tool
