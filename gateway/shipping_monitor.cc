#include "gateway/shipping_monitor.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <utility>

namespace medsettle::gateway {

int64_t StreamIdAgeMs(std::string_view stream_id, int64_t now_ms) {
  const std::string_view ms_text = stream_id.substr(0, stream_id.find('-'));
  int64_t ms = 0;
  const auto [end, error] = std::from_chars(ms_text.data(), ms_text.data() + ms_text.size(), ms);
  if (error != std::errc() || end != ms_text.data() + ms_text.size() || ms_text.empty()) return 0;
  return std::max<int64_t>(0, now_ms - ms);
}

ShippingMonitor::ShippingMonitor(cache::RedisSettlementStore& store, Options options,
                                 std::function<void(bool)> on_health)
    : store_(store),
      options_(std::move(options)),
      on_health_(std::move(on_health)),
      // A failure shows as NOT_SERVING and known = false.
      poller_(std::chrono::milliseconds(options_.poll_ms), [this] { (void)PollNow(); }) {}

ShippingMonitor::~ShippingMonitor() { Stop(); }

absl::Status ShippingMonitor::PollNow() {
  const int64_t now =
      options_.now_ms ? options_.now_ms()
                      : std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  absl::StatusOr<std::vector<cache::RedisSettlementStore::JournalLength>> lengths =
      store_.JournalLengths();
  if (!lengths.ok()) {
    Publish(ShippingBacklog{});  // unknown: an operator must not read "no backlog"
    return lengths.status();
  }
  ShippingBacklog backlog{.known = true, .measured_at_ms = now};
  for (const cache::RedisSettlementStore::JournalLength& tag : *lengths) {
    backlog.entries += tag.entries;
    backlog.lag_ms = std::max(backlog.lag_ms, StreamIdAgeMs(tag.oldest_id, now));
  }
  Publish(backlog);
  return absl::OkStatus();
}

void ShippingMonitor::Publish(const ShippingBacklog& backlog) {
  const bool serving = backlog.known && backlog.lag_ms <= options_.max_lag_seconds * 1000;
  bool changed = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // A failed poll keeps the last figures for display but marks them unknown.
    if (backlog.known) {
      current_ = backlog;
    } else {
      current_.known = false;
    }
    const int verdict = serving ? 1 : 0;
    changed = health_ != verdict;
    health_ = verdict;
  }
  if (changed && on_health_) on_health_(serving);
}

void ShippingMonitor::Start() { poller_.Start(); }

void ShippingMonitor::Stop() { poller_.Stop(); }

ShippingBacklog ShippingMonitor::Current() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return current_;
}

}  // namespace medsettle::gateway
