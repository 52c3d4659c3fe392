// A small Prometheus client: a registry of metric families (counters,
// gauges, histograms, and families computed at scrape time) rendered in the
// Prometheus text exposition format 0.0.4.
//
// Families are registered once, with their label names fixed; a child (one
// labelled time series) is resolved once with WithLabels and then updated
// on the hot path with relaxed atomics only: no lock, no allocation.
//
//   Registry registry;
//   absl::StatusOr<CounterFamily*> calls = registry.AddCounter(
//       "medsettle_settlements_total", "Settlements by result.", {"result"});
//   Counter& ok = (*calls)->WithLabels({"OK"});   // once, at start-up
//   ok.Inc();                                     // per call: one atomic add
//   std::string text = registry.Render();         // per scrape
//
// Errors: registration returns absl::Status (INVALID_ARGUMENT for a bad name,
// label or bucket list; ALREADY_EXISTS for a name taken). Calling WithLabels
// with the wrong number of values is a bug and aborts with a message, in
// release builds too.
//
// Thread safety: every method of Registry, of the families and of the
// children is safe from any number of threads. Families and children are
// never removed: references and pointers stay valid for the registry's life.
#ifndef MEDSETTLE_METRICS_REGISTRY_H_
#define MEDSETTLE_METRICS_REGISTRY_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace medsettle::metrics {

// Standard histogram bucket upper bounds (the +Inf bucket is implicit).
// go-grpc-prometheus latency with sub-millisecond resolution, in seconds:
// a cache hit settles in well under a millisecond.
inline constexpr std::array<double, 16> kGrpcLatencyBucketsSeconds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10};
// The Go client's DefBuckets, in seconds: general request latency.
inline constexpr std::array<double, 11> kDefaultBucketsSeconds = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
// Sizes in bytes, ×4 from 256 B to 16 MiB: payloads, batches, records.
inline constexpr std::array<double, 9> kSizeBucketsBytes = {
    256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216};

// A monotonically increasing count of events. Integer, so Inc is one
// `lock xadd`; a fractional total (seconds, cents) belongs in a histogram's
// _sum or a gauge.
class alignas(64) Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void Inc() { value_.fetch_add(1, std::memory_order_relaxed); }
  void Inc(uint64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down. Set is one store; Add is a CAS loop on
// the double (contended only if several threads add to the same child).
class alignas(64) Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  void Inc() { Add(1); }
  void Dec() { Add(-1); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted into fixed buckets, with their sum. Each bucket
// holds its own (non-cumulative) count; the cumulative counts and _count
// are derived at scrape time from the same reads, so _bucket{le="+Inf"}
// always equals _count. The sum is an atomic double updated by CAS: unlike
// integer nanoseconds it keeps any unit (seconds, bytes, cents) exact to a
// double and cannot overflow; the loop retries only when two threads
// observe the same child at the same instant.
class alignas(64) Histogram {
 public:
  // What a scrape reads: cumulative[i] counts observations <= bounds[i];
  // the last entry is the +Inf bucket and equals count.
  struct Snapshot {
    std::vector<uint64_t> cumulative;
    double sum = 0;
    uint64_t count = 0;
  };

  // REQUIRES: `bounds` strictly increasing and finite (the family checks),
  // and outlives the histogram (the family owns it).
  explicit Histogram(const std::vector<double>* bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Counts `value` in the first bucket whose bound is >= value (+Inf when
  // none, or for NaN) and adds it to the sum. Lock-free.
  void Observe(double value);

  Snapshot Collect() const;

 private:
  const std::vector<double>* bounds_;
  // bounds_->size() + 1 counters; the last is the +Inf bucket.
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

enum class MetricType { kCounter, kGauge, kHistogram };

// Whether registering a name that exists is an error (kUnique, the default)
// or returns the existing family when type, help, label names and buckets
// are identical (kShared: for code that may be instantiated more than once
// per registry, such as one GrpcServerMetrics per gRPC service).
enum class Registration { kUnique, kShared };

// One sample a callback family emits at scrape time.
struct CallbackSample {
  std::vector<std::string> label_values;
  double value = 0;
};

// Rendering and naming shared by the family types. Not for direct use.
class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  // Appends this family in the text format; nothing when it has no sample.
  virtual void Render(std::string* out) const = 0;

 protected:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names);
  // Aborts with a message naming the family when `values` has the wrong
  // arity: a caller that passes the wrong number of values is a bug.
  void CheckArity(size_t value_count) const;

  std::string name_;
  std::string help_;
  MetricType type_;
  std::vector<std::string> label_names_;
};

// The children of one metric family, one per distinct tuple of label values.
template <typename Metric>
class Family final : public FamilyBase {
 public:
  // The child for these label values (in label-name order), created on first
  // use. Takes the family's mutex: resolve once and keep the reference, which
  // is stable for the registry's life. REQUIRES: label_values.size() ==
  // label_names().size() (else aborts). Values may be any UTF-8 text.
  Metric& WithLabels(absl::Span<const std::string_view> label_values);

  // Buckets of a histogram family (empty for the others).
  const std::vector<double>& bucket_bounds() const { return bounds_; }

  void Render(std::string* out) const override;

 private:
  friend class Registry;
  Family(std::string name, std::string help, MetricType type,
         std::vector<std::string> label_names, std::vector<double> bounds);

  std::vector<double> bounds_;  // histograms only; fixed at registration
  mutable std::mutex mu_;
  // Ordered by label values: the exposition order is stable and sorted.
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> children_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  ~Registry();

  // Registers a family. `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*; each label
  // name [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", no repeats; `help`
  // is non-empty. A family without labels has its one child from the start
  // (WithLabels({})), so it is exported as 0 before first use.
  // INVALID_ARGUMENT for a bad name, label or help; ALREADY_EXISTS when the
  // name, or a series name it exposes (a histogram's _bucket/_sum/_count),
  // is taken — unless kShared and the existing family is identical.
  absl::StatusOr<CounterFamily*> AddCounter(
      std::string_view name, std::string_view help,
      absl::Span<const std::string_view> label_names = {},
      Registration registration = Registration::kUnique);
  absl::StatusOr<GaugeFamily*> AddGauge(
      std::string_view name, std::string_view help,
      absl::Span<const std::string_view> label_names = {},
      Registration registration = Registration::kUnique);
  // As AddCounter; also: no label "le"; `bucket_bounds` strictly increasing,
  // no NaN (a trailing +Inf is dropped: that bucket is always there).
  absl::StatusOr<HistogramFamily*> AddHistogram(
      std::string_view name, std::string_view help,
      absl::Span<const std::string_view> label_names,
      absl::Span<const double> bucket_bounds,
      Registration registration = Registration::kUnique);

  // A gauge without labels whose value `callback` computes at each scrape
  // (e.g. the age of the enrollment snapshot). Errors as AddCounter.
  absl::Status AddCallbackGauge(std::string_view name, std::string_view help,
                                std::function<double()> callback);
  // A family whose samples `callback` computes at each scrape (e.g. CRL
  // expiry per issuer). `type` is kCounter or kGauge. Samples whose
  // label_values do not match label_names in number are dropped, as are
  // repeats of a label tuple already emitted; the rest are sorted by labels.
  // Errors as AddCounter; INVALID_ARGUMENT for kHistogram.
  absl::Status AddCallbackFamily(
      std::string_view name, std::string_view help, MetricType type,
      absl::Span<const std::string_view> label_names,
      std::function<std::vector<CallbackSample>()> callback);

  // The text exposition format 0.0.4: families in registration order, each
  // with # HELP and # TYPE, children sorted by label values. Runs the
  // callbacks on the calling thread, without any registry lock held (so a
  // callback may read the registry); they must be thread-safe.
  std::string Render() const;
  void RenderTo(std::string* out) const;

 private:
  // Validates and reserves `name` (and the names it exposes); on success
  // `*existing` is the family of that name if kShared found one.
  absl::Status Reserve(std::string_view name, std::string_view help,
                       MetricType type,
                       absl::Span<const std::string_view> label_names,
                       Registration registration, FamilyBase** existing)
      const;
  void Insert(std::unique_ptr<FamilyBase> family);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<FamilyBase>> families_;  // registration order
  std::map<std::string, FamilyBase*, std::less<>> by_name_;
  std::set<std::string, std::less<>> exposed_names_;   // incl. _bucket etc.
};

// Formatting of the text format, exposed for tests and other exporters.
// A sample value: integers as integers ("3", "-2"), other finite values in
// the shortest form that parses back to the same double ("0.25", "1e-05"),
// and "+Inf", "-Inf", "NaN".
std::string FormatValue(double value);
// # HELP text: `\` → `\\`, newline → `\n`; invalid UTF-8 → U+FFFD.
std::string EscapeHelp(std::string_view help);
// A label value: `\` → `\\`, `"` → `\"`, newline → `\n`; invalid UTF-8 →
// U+FFFD (one bad byte would otherwise fail the whole scrape).
std::string EscapeLabelValue(std::string_view value);
// Name rules of the data model.
bool IsValidMetricName(std::string_view name);
bool IsValidLabelName(std::string_view name);

}  // namespace medsettle::metrics

#endif  // MEDSETTLE_METRICS_REGISTRY_H_
