#include "tools/loadgen/disk_floor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>
#include <thread>
#include <vector>

#include "engine/text.h"
#include "logging/json_log.h"
#include "tools/loadgen/runner.h"

namespace medsettle::loadgen {

using engine::Cat;

namespace {

using Clock = std::chrono::steady_clock;

constexpr double kMaxRunSeconds = 7 * 86400.0;

// The appends the file may hold: max_file_bytes of them.
uint64_t MaxAppends(const DiskFloorOptions& o) {
  return o.max_file_bytes / std::max<size_t>(o.bytes, 1);
}

uint64_t PlannedAppends(const DiskFloorOptions& o) {
  if (o.count > 0) return o.count;
  // Back to back has no planned count: the file size bounds it.
  if (o.rate <= 0) return MaxAppends(o);
  return static_cast<uint64_t>(std::ceil(o.rate * o.duration_s));
}

// Sleeps until `due`, in slices, so that a stop (SIGINT) is seen within
// 50 ms. Returns false when stopped.
bool SleepUntil(Clock::time_point due, const std::atomic<bool>* stop) {
  while (Clock::now() < due) {
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) return false;
    std::this_thread::sleep_until(std::min(due, Clock::now() + std::chrono::milliseconds(50)));
  }
  return true;
}

// Removes the probe file on every return of MeasureDiskFloor.
class ProbeFile {
 public:
  ProbeFile() = default;
  ProbeFile(const ProbeFile&) = delete;
  ProbeFile& operator=(const ProbeFile&) = delete;
  ~ProbeFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  absl::Status Create(const std::string& dir) {
    std::string pattern = dir + (dir.empty() || dir.back() != '/' ? "/" : "") +
                          "medsettle-disk-floor-XXXXXX";
    std::vector<char> name(pattern.begin(), pattern.end());
    name.push_back('\0');
    fd_ = ::mkostemp(name.data(), O_APPEND | O_CLOEXEC);
    if (fd_ < 0) {
      return absl::UnavailableError(
          Cat("--dir: cannot create a file in ", dir, ": ", std::strerror(errno)));
    }
    path_ = name.data();
    return absl::OkStatus();
  }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace

void DiskFloorResult::Record(std::chrono::nanoseconds took) {
  using std::chrono::milliseconds;
  latency.Record(std::chrono::duration_cast<std::chrono::microseconds>(took).count());
  over_1ms += took > milliseconds(1) ? 1 : 0;
  over_5ms += took > milliseconds(5) ? 1 : 0;
  over_10ms += took > milliseconds(10) ? 1 : 0;
}

absl::Status ValidateDiskFloor(const DiskFloorOptions& o) {
  if (o.dir.empty()) return absl::InvalidArgumentError("--dir: give the directory to measure");
  struct stat st {};
  if (::stat(o.dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(Cat("--dir: ", o.dir, " is not a directory"));
  }
  if (::access(o.dir.c_str(), W_OK | X_OK) != 0) {
    return absl::InvalidArgumentError(Cat("--dir: ", o.dir, " is not writable"));
  }
  if (!(o.rate == 0 || (o.rate >= 1 && o.rate <= 1e6))) {
    return absl::InvalidArgumentError(
        "--rate: appends per second, 1 to 1000000, or 0 for back to back");
  }
  if (o.count == 0 && !(o.duration_s > 0 && o.duration_s <= kMaxRunSeconds)) {
    return absl::InvalidArgumentError("--duration must be > 0 and at most 7 days");
  }
  if (o.bytes < 1 || o.bytes > (size_t{1} << 20)) {
    return absl::InvalidArgumentError("--bytes: 1 to 1048576 per append");
  }
  if (o.count > 0 && o.rate > 0 && static_cast<double>(o.count) / o.rate > kMaxRunSeconds) {
    return absl::InvalidArgumentError("--count: at --rate it would run for more than 7 days");
  }
  if (o.count == 0 && o.rate <= 0) return absl::OkStatus();  // capped by the file size
  const uint64_t appends = PlannedAppends(o);
  if (appends > MaxAppends(o)) {
    return absl::InvalidArgumentError(
        Cat(o.count > 0 ? "--count" : "--duration", ": ", appends, " appends of ", o.bytes,
            " bytes would write more than ", o.max_file_bytes, " bytes; measure for less"));
  }
  return absl::OkStatus();
}

absl::StatusOr<DiskFloorResult> MeasureDiskFloor(const DiskFloorOptions& o,
                                                  const std::atomic<bool>* stop) {
  if (absl::Status s = ValidateDiskFloor(o); !s.ok()) return s;
  ProbeFile file;
  if (absl::Status s = file.Create(o.dir); !s.ok()) return s;
  const std::string block(o.bytes, 'x');
  const uint64_t planned = PlannedAppends(o);
  const bool by_time = o.count == 0;
  // Converted only when it was validated: with a count it is not used.
  const auto duration = by_time ? std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(o.duration_s))
                                : Clock::duration::zero();
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(o.rate > 0 ? 1.0 / o.rate : 0.0));

  DiskFloorResult result;
  const Clock::time_point start = Clock::now();
  uint64_t i = 0;
  for (; i < planned; ++i) {
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) {
      result.stopped = true;
      break;
    }
    if (by_time && Clock::now() - start >= duration) break;
    if (o.rate > 0) {
      const Clock::time_point due = start + interval * static_cast<int64_t>(i);
      if (Clock::now() - due > std::chrono::milliseconds(1)) ++result.late;
      if (!SleepUntil(due, stop)) {
        result.stopped = true;
        break;
      }
    }
    const Clock::time_point t0 = Clock::now();
    size_t written = 0;
    while (written < block.size()) {
      const ssize_t n = ::write(file.fd(), block.data() + written, block.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        return absl::UnavailableError(Cat("cannot append to ", file.path(), ": ",
                                          n < 0 ? std::strerror(errno) : "short write"));
      }
      written += static_cast<size_t>(n);
    }
    int synced = ::fdatasync(file.fd());
    while (synced != 0 && errno == EINTR) synced = ::fdatasync(file.fd());  // SIGINT arrived
    if (synced != 0) {
      return absl::UnavailableError(
          Cat("fdatasync of ", file.path(), " failed: ", std::strerror(errno)));
    }
    result.Record(Clock::now() - t0);
  }
  result.capped = i == planned && o.count == 0 && o.rate <= 0;
  result.elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

std::string FormatDiskFloor(const DiskFloorOptions& o, const DiskFloorResult& r) {
  const Histogram& h = r.latency;
  std::ostringstream s;
  s << "Disk floor: " << o.dir << " (append " << o.bytes << " bytes + fdatasync, ";
  if (o.rate > 0) s << o.rate << "/s)\n";
  else s << "back to back)\n";
  s.setf(std::ios::fixed);
  s.precision(2);
  s << "  Appends:\t" << FormatCount(h.count()) << " in " << r.elapsed_s << " s"
    << (r.stopped ? " (stopped early)" : "")
    << (r.capped ? Cat(" (stopped at the file limit, ", o.max_file_bytes, " bytes)") : "")
    << "\n";
  if (h.count() == 0) return s.str();
  s << "  p50:\t\t" << FormatLatency(h.Percentile(50)) << "\n"
    << "  p90:\t\t" << FormatLatency(h.Percentile(90)) << "\n"
    << "  p99:\t\t" << FormatLatency(h.Percentile(99)) << "\n"
    << "  p99.9:\t" << FormatLatency(h.Percentile(99.9)) << "\n"
    << "  max:\t\t" << FormatLatency(h.max_us()) << "\n"
    << "  over 1 ms:\t" << FormatCount(r.over_1ms) << "\n"
    << "  over 5 ms:\t" << FormatCount(r.over_5ms) << "\n"
    << "  over 10 ms:\t" << FormatCount(r.over_10ms) << "\n";
  if (r.late > 0) {
    s << "  late starts:\t" << FormatCount(r.late)
      << " (began over 1 ms behind the schedule: the append before was slow, or the CPU busy)\n";
  }
  return s.str();
}

std::string DiskFloorJson(const DiskFloorOptions& o, const DiskFloorResult& r) {
  const Histogram& h = r.latency;
  std::string dir;
  logging::AppendJsonString(o.dir, &dir);
  std::ostringstream s;
  s << "{\"dir\":" << dir << ",\"bytes\":" << o.bytes << ",\"rate\":" << o.rate
    << ",\"appends\":" << h.count() << ",\"elapsed_s\":" << r.elapsed_s
    << ",\"stopped\":" << (r.stopped ? "true" : "false")
    << ",\"capped\":" << (r.capped ? "true" : "false") << ",\"late\":" << r.late
    << ",\"p50_us\":" << h.Percentile(50) << ",\"p90_us\":" << h.Percentile(90)
    << ",\"p99_us\":" << h.Percentile(99) << ",\"p999_us\":" << h.Percentile(99.9)
    << ",\"max_us\":" << h.max_us() << ",\"mean_us\":" << h.mean_us()
    << ",\"over_1ms\":" << r.over_1ms << ",\"over_5ms\":" << r.over_5ms
    << ",\"over_10ms\":" << r.over_10ms << "}\n";
  return s.str();
}

}  // namespace medsettle::loadgen
