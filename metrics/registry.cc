#include "metrics/registry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace medsettle::metrics {
namespace {

// Debian's Abseil has its own string_view (ABSL_OPTION_USE_STD_STRING_VIEW
// 0): StrCat takes a std::string_view through this.
absl::string_view Arg(std::string_view s) { return absl::string_view(s.data(), s.size()); }

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// Length of the valid UTF-8 sequence at s[i], or 0 when it is not one
// (overlong forms, surrogates and code points above U+10FFFF included).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t length = 0;
  unsigned char min_second = 0x80;
  unsigned char max_second = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    length = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    length = 3;
    if (c == 0xE0) min_second = 0xA0;  // overlong
    if (c == 0xED) max_second = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    length = 4;
    if (c == 0xF0) min_second = 0x90;  // overlong
    if (c == 0xF4) max_second = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + length > s.size()) return 0;
  if (byte(i + 1) < min_second || byte(i + 1) > max_second) return 0;
  for (size_t k = 2; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return length;
}

// Escapes `text` for the exposition: always `\` and newline, `"` when
// `quote`; replaces each invalid UTF-8 byte with U+FFFD.
void AppendEscaped(std::string_view text, bool quote, std::string* out) {
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '"' && quote) {
      out->append("\\\"");
    } else {
      const size_t length = Utf8SequenceLength(text, i);
      if (length == 0) {
        out->append("\xEF\xBF\xBD");
        ++i;
        continue;
      }
      out->append(text.substr(i, length));
      i += length;
      continue;
    }
    ++i;
  }
}

void AppendValue(double value, std::string* out) {
  out->append(FormatValue(value));
}

void AppendUint(uint64_t value, std::string* out) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out->append(buffer, result.ptr);
}

// name{a="x",b="y"[,extra_name="extra_value"]} — the braces only when there
// is a label.
void AppendSeries(std::string_view name, const std::vector<std::string>& label_names,
                  const std::vector<std::string>& label_values,
                  std::string_view extra_name, std::string_view extra_value,
                  std::string* out) {
  out->append(name);
  if (label_names.empty() && extra_name.empty()) return;
  out->push_back('{');
  for (size_t i = 0; i < label_names.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->append(label_names[i]);
    out->append("=\"");
    AppendEscaped(label_values[i], /*quote=*/true, out);
    out->push_back('"');
  }
  if (!extra_name.empty()) {
    if (!label_names.empty()) out->push_back(',');
    out->append(extra_name);
    out->append("=\"");
    out->append(extra_value);  // a formatted number: nothing to escape
    out->push_back('"');
  }
  out->push_back('}');
}

void AppendHeader(const FamilyBase& family, std::string* out) {
  out->append("# HELP ");
  out->append(family.name());
  out->push_back(' ');
  AppendEscaped(family.help(), /*quote=*/false, out);
  out->append("\n# TYPE ");
  out->append(family.name());
  out->push_back(' ');
  out->append(TypeName(family.type()));
  out->push_back('\n');
}

[[noreturn]] void Broken(const std::string& what) {
  std::fprintf(stderr, "medsettle::metrics: %s\n", what.c_str());
  std::abort();
}

// A family whose samples a callback computes at scrape time.
class CallbackFamily final : public FamilyBase {
 public:
  CallbackFamily(std::string name, std::string help, MetricType type,
                 std::vector<std::string> label_names,
                 std::function<std::vector<CallbackSample>()> callback)
      : FamilyBase(std::move(name), std::move(help), type, std::move(label_names)),
        callback_(std::move(callback)) {}

  void Render(std::string* out) const override {
    std::vector<CallbackSample> samples = callback_();
    // Malformed samples are dropped rather than aborting a scrape: the
    // callback runs on the scraper's thread, long after registration.
    std::erase_if(samples, [&](const CallbackSample& s) {
      return s.label_values.size() != label_names_.size();
    });
    std::stable_sort(samples.begin(), samples.end(),
                     [](const CallbackSample& a, const CallbackSample& b) {
                       return a.label_values < b.label_values;
                     });
    // A repeated label tuple would make the scrape invalid; keep the first.
    samples.erase(std::unique(samples.begin(), samples.end(),
                              [](const CallbackSample& a, const CallbackSample& b) {
                                return a.label_values == b.label_values;
                              }),
                  samples.end());
    if (samples.empty()) return;
    AppendHeader(*this, out);
    for (const CallbackSample& sample : samples) {
      AppendSeries(name_, label_names_, sample.label_values, {}, {}, out);
      out->push_back(' ');
      AppendValue(sample.value, out);
      out->push_back('\n');
    }
  }

 private:
  std::function<std::vector<CallbackSample>()> callback_;
};

bool SameLabels(const FamilyBase& family, absl::Span<const std::string_view> label_names) {
  return std::equal(family.label_names().begin(), family.label_names().end(),
                    label_names.begin(), label_names.end());
}

}  // namespace

// ---- Formatting ----

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == 0) return "0";  // also -0: one spelling of zero
  char buffer[64];
  // The shortest round-trip digits in scientific form tell the exponent;
  // then, like Go's strconv.FormatFloat(v, 'g', -1, 64) but keeping plain
  // digits up to 1e21, fixed notation for 1e-4 <= |v| < 1e21 ("0.00025",
  // "1", "123456789") and scientific outside it ("1e-05", "1e+21").
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value,
                              std::chars_format::scientific);
  const std::string_view scientific(buffer, static_cast<size_t>(result.ptr - buffer));
  const size_t e = scientific.find('e');
  int exponent = 0;
  std::from_chars(scientific.data() + e + 1 + (scientific[e + 1] == '+' ? 1 : 0),
                  scientific.data() + scientific.size(), exponent);
  if (exponent < -4 || exponent >= 21) return std::string(scientific);
  result = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::fixed);
  return std::string(buffer, result.ptr);
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  AppendEscaped(help, /*quote=*/false, &out);
  return out;
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  AppendEscaped(value, /*quote=*/true, &out);
  return out;
}

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    const bool digit = c >= '0' && c <= '9';
    if (!(letter || (i > 0 && digit))) return false;
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!(letter || (i > 0 && digit))) return false;
  }
  return true;
}

// ---- Histogram ----

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds->size() + 1)) {}

void Histogram::Observe(double value) {
  // lower_bound: the first bound >= value, so a value equal to a bound
  // counts in that bucket (le = "less than or equal"). NaN compares false
  // with everything; it belongs in +Inf, as in the Go client.
  const size_t index =
      std::isnan(value)
          ? bounds_->size()
          : static_cast<size_t>(std::lower_bound(bounds_->begin(), bounds_->end(), value) -
                                bounds_->begin());
  counts_[index].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Collect() const {
  Snapshot snapshot;
  snapshot.cumulative.resize(bounds_->size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_->size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    snapshot.cumulative[i] = running;
  }
  snapshot.count = running;
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

// ---- Families ----

FamilyBase::FamilyBase(std::string name, std::string help, MetricType type,
                       std::vector<std::string> label_names)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)) {}

void FamilyBase::CheckArity(size_t value_count) const {
  if (value_count != label_names_.size()) {
    Broken(absl::StrCat("WithLabels on ", name_, " with ", value_count,
                        " label values; its labels are {", absl::StrJoin(label_names_, ","),
                        "}"));
  }
}

template <typename Metric>
Family<Metric>::Family(std::string name, std::string help, MetricType type,
                       std::vector<std::string> label_names, std::vector<double> bounds)
    : FamilyBase(std::move(name), std::move(help), type, std::move(label_names)),
      bounds_(std::move(bounds)) {}

template <typename Metric>
Metric& Family<Metric>::WithLabels(absl::Span<const std::string_view> label_values) {
  CheckArity(label_values.size());
  std::vector<std::string> key(label_values.begin(), label_values.end());
  std::lock_guard<std::mutex> lock(mu_);
  auto it = children_.find(key);
  if (it == children_.end()) {
    std::unique_ptr<Metric> child;
    if constexpr (std::is_same_v<Metric, Histogram>) {
      child = std::make_unique<Histogram>(&bounds_);
    } else {
      child = std::make_unique<Metric>();
    }
    it = children_.emplace(std::move(key), std::move(child)).first;
  }
  return *it->second;
}

template <typename Metric>
void Family<Metric>::Render(std::string* out) const {
  // Copy the child pointers under the lock, read the atomics after: a scrape
  // never holds up WithLabels for longer than the copy.
  std::vector<std::pair<const std::vector<std::string>*, const Metric*>> children;
  {
    std::lock_guard<std::mutex> lock(mu_);
    children.reserve(children_.size());
    for (const auto& [labels, child] : children_) children.emplace_back(&labels, child.get());
  }
  if (children.empty()) return;
  AppendHeader(*this, out);
  for (const auto& [labels, child] : children) {
    if constexpr (std::is_same_v<Metric, Counter>) {
      AppendSeries(name_, label_names_, *labels, {}, {}, out);
      out->push_back(' ');
      AppendUint(child->Value(), out);
      out->push_back('\n');
    } else if constexpr (std::is_same_v<Metric, Gauge>) {
      AppendSeries(name_, label_names_, *labels, {}, {}, out);
      out->push_back(' ');
      AppendValue(child->Value(), out);
      out->push_back('\n');
    } else {
      const Histogram::Snapshot snapshot = child->Collect();
      const std::string bucket_name = name_ + "_bucket";
      for (size_t i = 0; i < snapshot.cumulative.size(); ++i) {
        const std::string le = i < bounds_.size() ? FormatValue(bounds_[i]) : "+Inf";
        AppendSeries(bucket_name, label_names_, *labels, "le", le, out);
        out->push_back(' ');
        AppendUint(snapshot.cumulative[i], out);
        out->push_back('\n');
      }
      AppendSeries(name_ + "_sum", label_names_, *labels, {}, {}, out);
      out->push_back(' ');
      AppendValue(snapshot.sum, out);
      out->push_back('\n');
      AppendSeries(name_ + "_count", label_names_, *labels, {}, {}, out);
      out->push_back(' ');
      AppendUint(snapshot.count, out);
      out->push_back('\n');
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---- Registry ----

Registry::~Registry() = default;

absl::Status Registry::Reserve(std::string_view name, std::string_view help, MetricType type,
                               absl::Span<const std::string_view> label_names,
                               Registration registration, FamilyBase** existing) const {
  *existing = nullptr;
  if (!IsValidMetricName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metric name \"", Arg(name), "\" does not match [a-zA-Z_:][a-zA-Z0-9_:]*"));
  }
  if (help.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("metric ", Arg(name), ": empty help"));
  }
  for (size_t i = 0; i < label_names.size(); ++i) {
    const std::string_view label = label_names[i];
    if (!IsValidLabelName(label)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metric ", Arg(name), ": label name \"", Arg(label),
          "\" does not match [a-zA-Z_][a-zA-Z0-9_]* or starts with __"));
    }
    if (type == MetricType::kHistogram && label == "le") {
      return absl::InvalidArgumentError(
          absl::StrCat("histogram ", Arg(name), ": label \"le\" is reserved for buckets"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (label_names[j] == label) {
        return absl::InvalidArgumentError(
            absl::StrCat("metric ", Arg(name), ": label \"", Arg(label), "\" repeated"));
      }
    }
  }
  if (auto it = by_name_.find(name); it != by_name_.end()) {
    FamilyBase* family = it->second;
    if (registration == Registration::kShared && family->type() == type &&
        family->help() == help && SameLabels(*family, label_names)) {
      *existing = family;
      return absl::OkStatus();
    }
    return absl::AlreadyExistsError(absl::StrCat("metric ", Arg(name), " is already registered"));
  }
  std::vector<std::string> exposed = {std::string(name)};
  if (type == MetricType::kHistogram) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      exposed.push_back(absl::StrCat(Arg(name), suffix));
    }
  }
  for (const std::string& series : exposed) {
    if (exposed_names_.contains(series)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "metric ", Arg(name), ": series name ", series, " is already used by another family"));
    }
  }
  return absl::OkStatus();
}

void Registry::Insert(std::unique_ptr<FamilyBase> family) {
  const std::string& name = family->name();
  exposed_names_.insert(name);
  if (family->type() == MetricType::kHistogram) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      exposed_names_.insert(absl::StrCat(Arg(name), suffix));
    }
  }
  by_name_.emplace(name, family.get());
  families_.push_back(std::move(family));
}

absl::StatusOr<CounterFamily*> Registry::AddCounter(std::string_view name, std::string_view help,
                                                    absl::Span<const std::string_view> label_names,
                                                    Registration registration) {
  std::lock_guard<std::mutex> lock(mu_);
  FamilyBase* existing = nullptr;
  if (absl::Status s = Reserve(name, help, MetricType::kCounter, label_names, registration, &existing);
      !s.ok()) {
    return s;
  }
  if (existing != nullptr) return static_cast<CounterFamily*>(existing);
  auto* family = new CounterFamily(std::string(name), std::string(help), MetricType::kCounter,
                                   {label_names.begin(), label_names.end()}, {});
  Insert(std::unique_ptr<FamilyBase>(family));
  if (label_names.empty()) family->WithLabels({});
  return family;
}

absl::StatusOr<GaugeFamily*> Registry::AddGauge(std::string_view name, std::string_view help,
                                                absl::Span<const std::string_view> label_names,
                                                Registration registration) {
  std::lock_guard<std::mutex> lock(mu_);
  FamilyBase* existing = nullptr;
  if (absl::Status s = Reserve(name, help, MetricType::kGauge, label_names, registration, &existing);
      !s.ok()) {
    return s;
  }
  if (existing != nullptr) return static_cast<GaugeFamily*>(existing);
  auto* family = new GaugeFamily(std::string(name), std::string(help), MetricType::kGauge,
                                 {label_names.begin(), label_names.end()}, {});
  Insert(std::unique_ptr<FamilyBase>(family));
  if (label_names.empty()) family->WithLabels({});
  return family;
}

absl::StatusOr<HistogramFamily*> Registry::AddHistogram(
    std::string_view name, std::string_view help, absl::Span<const std::string_view> label_names,
    absl::Span<const double> bucket_bounds, Registration registration) {
  std::vector<double> bounds(bucket_bounds.begin(), bucket_bounds.end());
  if (!bounds.empty() && std::isinf(bounds.back()) && bounds.back() > 0) bounds.pop_back();
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (std::isnan(bounds[i]) || std::isinf(bounds[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "histogram ", Arg(name), ": bucket bound ", FormatValue(bounds[i]), " is not finite"));
    }
    if (i > 0 && !(bounds[i - 1] < bounds[i])) {
      return absl::InvalidArgumentError(absl::StrCat("histogram ", Arg(name),
                                                     ": bucket bounds not strictly increasing at ",
                                                     FormatValue(bounds[i])));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  FamilyBase* existing = nullptr;
  if (absl::Status s =
          Reserve(name, help, MetricType::kHistogram, label_names, registration, &existing);
      !s.ok()) {
    return s;
  }
  if (existing != nullptr) {
    auto* family = static_cast<HistogramFamily*>(existing);
    if (family->bucket_bounds() != bounds) {
      return absl::AlreadyExistsError(
          absl::StrCat("histogram ", Arg(name), " is already registered with other buckets"));
    }
    return family;
  }
  auto* family = new HistogramFamily(std::string(name), std::string(help), MetricType::kHistogram,
                                     {label_names.begin(), label_names.end()}, std::move(bounds));
  Insert(std::unique_ptr<FamilyBase>(family));
  if (label_names.empty()) family->WithLabels({});
  return family;
}

absl::Status Registry::AddCallbackGauge(std::string_view name, std::string_view help,
                                        std::function<double()> callback) {
  return AddCallbackFamily(name, help, MetricType::kGauge, {},
                           [callback = std::move(callback)] {
                             return std::vector<CallbackSample>{{{}, callback()}};
                           });
}

absl::Status Registry::AddCallbackFamily(std::string_view name, std::string_view help,
                                         MetricType type,
                                         absl::Span<const std::string_view> label_names,
                                         std::function<std::vector<CallbackSample>()> callback) {
  if (type == MetricType::kHistogram) {
    return absl::InvalidArgumentError(
        absl::StrCat("metric ", Arg(name), ": a callback family is a counter or a gauge"));
  }
  if (!callback) {
    return absl::InvalidArgumentError(absl::StrCat("metric ", Arg(name), ": no callback"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  FamilyBase* existing = nullptr;
  // Never shared: two callbacks cannot be one family.
  if (absl::Status s = Reserve(name, help, type, label_names, Registration::kUnique, &existing);
      !s.ok()) {
    return s;
  }
  Insert(std::make_unique<CallbackFamily>(std::string(name), std::string(help), type,
                                          std::vector<std::string>(label_names.begin(),
                                                                   label_names.end()),
                                          std::move(callback)));
  return absl::OkStatus();
}

std::string Registry::Render() const {
  std::string out;
  RenderTo(&out);
  return out;
}

void Registry::RenderTo(std::string* out) const {
  // Families are never removed: the pointers stay valid after the lock is
  // released, and callbacks run without it.
  std::vector<const FamilyBase*> families;
  {
    std::lock_guard<std::mutex> lock(mu_);
    families.reserve(families_.size());
    for (const auto& family : families_) families.push_back(family.get());
  }
  for (const FamilyBase* family : families) family->Render(out);
}

}  // namespace medsettle::metrics
