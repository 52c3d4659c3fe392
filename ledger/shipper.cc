#include "ledger/shipper.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <thread>
#include <utility>

#include "cache/rule_files.h"
#include "engine/status.h"
#include "engine/text.h"

namespace medsettle::ledger {
namespace {

using engine::Cat;

std::string TagText(int tag) {
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string{kHex[(tag >> 4) & 15], kHex[tag & 15]};
}

bool AtOrBefore(const StreamPosition& a, const StreamPosition& b) {
  return a.ms < b.ms || (a.ms == b.ms && a.seq <= b.seq);
}

// Sleeps `ms` in short steps, returning early once `stop` is set.
void PauseUnlessStopped(int ms, const std::atomic<bool>& stop) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!stop.load() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(ms, 20)));
  }
}

}  // namespace

bool ParseStreamId(std::string_view id, StreamPosition* out) {
  const size_t dash = id.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == id.size()) return false;
  auto number = [](std::string_view digits, int64_t* value) {
    const char* end = digits.data() + digits.size();
    auto [p, ec] = std::from_chars(digits.data(), end, *value);
    return ec == std::errc() && p == end && *value >= 0;
  };
  return number(id.substr(0, dash), &out->ms) && number(id.substr(dash + 1), &out->seq);
}

Shipper::Shipper(cache::RedisClient& redis, cache::RedisSettlementStore& store, LedgerStore& ledger,
                 ShipperOptions options)
    : redis_(redis), store_(store), ledger_(ledger), options_(std::move(options)) {}

int64_t Shipper::NowMs() const {
  if (options_.now_ms) return options_.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::Status Shipper::EnsureRuleFiles(const std::vector<ShipEntry>& entries) {
  std::vector<RuleFile> missing;
  std::set<std::string> wanted;
  for (const ShipEntry& e : entries) {
    if (e.is_reversal) continue;
    for (const std::string& digest : {e.settlement.policy_sha256(), e.settlement.catalog_sha256()}) {
      if (!digest.empty() && !known_rule_files_.contains(digest)) wanted.insert(digest);
    }
  }
  for (const std::string& digest : wanted) {
    absl::StatusOr<std::optional<cache::RuleFile>> file = cache::ReadRuleFile(redis_, digest);
    if (!file.ok()) return file.status();
    // Not published: Ship refuses the batch naming the digest and the
    // settlement (LEDGER_RULES_MISSING); `medsettle-ledger put-rules`
    // stores the files by hand.
    if (!file->has_value()) continue;
    missing.push_back(RuleFile{.sha256 = (*file)->sha256,
                               .kind = (*file)->kind,
                               .name = (*file)->name,
                               .content = std::move((*file)->content)});
  }
  if (missing.empty()) return absl::OkStatus();
  if (absl::Status s = ledger_.PutRuleFiles(missing); !s.ok()) return s;
  for (const RuleFile& f : missing) known_rule_files_.insert(f.sha256);
  return absl::OkStatus();
}

absl::StatusOr<CycleResult> Shipper::ShipOnce() {
  const auto started = std::chrono::steady_clock::now();
  if (!cursors_loaded_) {
    absl::StatusOr<std::map<std::string, StreamPosition>> cursors = ledger_.Cursors();
    if (!cursors.ok()) return cursors.status();
    absl::StatusOr<std::set<std::string>> digests = ledger_.RuleFileDigests();
    if (!digests.ok()) return digests.status();
    cursors_ = *std::move(cursors);
    known_rule_files_ = *std::move(digests);
    cursors_loaded_ = true;
  }
  absl::StatusOr<std::vector<std::vector<cache::JournalEntry>>> heads =
      store_.ReadJournalHeads(options_.entries_per_tag);
  if (!heads.ok()) return heads.status();

  CycleResult result;
  std::vector<ShipEntry> batch;
  struct Release {
    std::string tag;
    std::string through_id;
    std::vector<cache::JournalEntry> entries;
  };
  std::vector<Release> releases;
  for (size_t t = 0; t < heads->size(); ++t) {
    std::vector<cache::JournalEntry>& journal = (*heads)[t];
    if (journal.empty()) continue;
    const std::string tag = TagText(static_cast<int>(t));
    const auto cursor = cursors_.find(tag);
    Release release{.tag = tag, .through_id = "", .entries = {}};
    for (cache::JournalEntry& e : journal) {
      StreamPosition position;
      if (!ParseStreamId(e.stream_id, &position)) {
        result.stuck[tag] = engine::Refusal(
            absl::StatusCode::kInternal, "JOURNAL_ID_INVALID", "",
            Cat("journal:{", tag, "} returned the malformed stream id '", e.stream_id, "'"));
        break;
      }
      const bool shipped_before = cursor != cursors_.end() && AtOrBefore(position, cursor->second);
      if (!shipped_before) {
        if (!e.status.ok()) {
          result.stuck[tag] = e.status;
          break;
        }
        ShipEntry ship;
        ship.tag = tag;
        ship.position = position;
        ship.bytes = e.bytes;
        ship.is_reversal = e.kind == cache::JournalKind::kReverse;
        if (ship.is_reversal) {
          ship.reversal = e.reversal;
        } else {
          ship.settlement = e.settlement;
        }
        batch.push_back(std::move(ship));
      }
      release.through_id = e.stream_id;
      release.entries.push_back(std::move(e));
    }
    if (!release.entries.empty()) releases.push_back(std::move(release));
  }

  if (!batch.empty()) {
    if (absl::Status s = EnsureRuleFiles(batch); !s.ok()) return s;
    // In transactions of about max_batch_entries, whole tags each (a tag's
    // cursor moves with its entries): PostgreSQL takes batches of a few
    // thousand fastest (docs/PERFORMANCE.md), and a backlog read 200 per
    // tag would otherwise be one transaction of 51,200.
    size_t begin = 0;
    while (begin < batch.size()) {
      size_t end = begin;
      while (end < batch.size() &&
             (end - begin < static_cast<size_t>(options_.max_batch_entries) ||
              batch[end].tag == batch[end - 1].tag)) {
        ++end;
      }
      std::vector<ShipEntry> chunk(std::make_move_iterator(batch.begin() + begin),
                                   std::make_move_iterator(batch.begin() + end));
      if (absl::Status s = ledger_.Ship(chunk); !s.ok()) {
        // The outcome may be unknown (a lost connection at COMMIT): read
        // the cursors again before the next cycle decides what is new.
        // Chunks committed before it are found shipped and released then.
        cursors_loaded_ = false;
        return s;
      }
      for (const ShipEntry& e : chunk) cursors_[e.tag] = e.position;
      result.shipped += static_cast<int64_t>(chunk.size());
      begin = end;
    }
  }
  // Committed in the ledger (now or before a crash): Redis may forget them.
  for (const Release& r : releases) {
    if (absl::Status s =
            store_.ReleaseShipped(r.tag, r.through_id, r.entries, options_.hot_window_ms);
        !s.ok()) {
      return s;
    }
    result.released += static_cast<int64_t>(r.entries.size());
  }
  result.duration_us = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::steady_clock::now() - started)
                           .count();
  return result;
}

void Shipper::Run(const std::atomic<bool>& stop) {
  int backoff_ms = options_.backoff_ms;
  std::map<std::string, int64_t> stuck_reported_ms;  // tag → when last reported
  while (!stop.load()) {
    absl::StatusOr<CycleResult> cycle = ShipOnce();
    if (!cycle.ok()) {
      if (options_.on_cycle_failed) options_.on_cycle_failed();
      if (options_.on_error) options_.on_error(cycle.status());
      PauseUnlessStopped(backoff_ms, stop);
      backoff_ms = std::min(backoff_ms * 2, options_.max_backoff_ms);
      continue;
    }
    backoff_ms = options_.backoff_ms;
    if (options_.on_cycle) options_.on_cycle(*cycle);
    const int64_t now = NowMs();
    std::erase_if(stuck_reported_ms,
                  [&](const auto& tag_at) { return !cycle->stuck.contains(tag_at.first); });
    for (const auto& [tag, status] : cycle->stuck) {
      auto [at, first] = stuck_reported_ms.try_emplace(tag, now);
      if (!first && now - at->second < options_.stuck_report_ms) continue;
      at->second = now;
      if (options_.on_error) options_.on_error(status);
    }
    // A full read means more is waiting: go on at once.
    // A stuck tag costs one short read per cycle; pausing longer for it
    // would delay every other tag.
    if (cycle->shipped == 0 && cycle->released == 0) PauseUnlessStopped(options_.idle_ms, stop);
  }
}

}  // namespace medsettle::ledger
