#include "tools/loadgen/disk_floor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <sstream>
#include <thread>
#include <vector>

#include "engine/text.h"
#include "logging/json_log.h"

namespace medsettle::loadgen {

using engine::Cat;

namespace {

using Clock = std::chrono::steady_clock;

uint64_t PlannedAppends(const DiskFloorOptions& o) {
  if (o.count > 0) return o.count;
  // Back to back has no planned count: bound it by the file size instead.
  if (o.rate <= 0) return kDiskFloorMaxFileBytes / std::max<size_t>(o.bytes, 1);
  return static_cast<uint64_t>(std::ceil(o.rate * o.duration_s));
}

// Appends counted strictly above `threshold_us`, to the histogram's bucket
// precision (< 0.8%).
uint64_t CountAbove(const Histogram& h, int64_t threshold_us) {
  uint64_t n = 0;
  for (int i = Histogram::BucketIndex(threshold_us) + 1; i < Histogram::BucketCount(); ++i) {
    n += h.CountAt(i);
  }
  return n;
}

std::string Ms(int64_t us) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(2);
  s << static_cast<double>(us) / 1000.0 << " ms";
  return s.str();
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

absl::Status ValidateDiskFloor(const DiskFloorOptions& o) {
  if (o.dir.empty()) return absl::InvalidArgumentError("--dir: give the directory to measure");
  struct stat st {};
  if (::stat(o.dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(Cat("--dir: ", o.dir, " is not a directory"));
  }
  if (::access(o.dir.c_str(), W_OK | X_OK) != 0) {
    return absl::InvalidArgumentError(Cat("--dir: ", o.dir, " is not writable"));
  }
  if (!(o.rate >= 0) || o.rate > 1e6) {
    return absl::InvalidArgumentError("--rate: appends per second, 0 (back to back) to 1000000");
  }
  if (o.count == 0 && !(o.duration_s > 0)) {
    return absl::InvalidArgumentError("--duration must be > 0");
  }
  if (o.bytes < 1 || o.bytes > (size_t{1} << 20)) {
    return absl::InvalidArgumentError("--bytes: 1 to 1048576 per append");
  }
  if (o.count == 0 && o.rate <= 0) return absl::OkStatus();  // bounded by the file size
  const uint64_t appends = PlannedAppends(o);
  if (appends > kDiskFloorMaxFileBytes / o.bytes) {
    return absl::InvalidArgumentError(
        Cat(o.count > 0 ? "--count" : "--duration", ": ", appends, " appends of ", o.bytes,
            " bytes would write more than 1 GiB; measure for less"));
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
  const auto duration = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(o.duration_s));
  const auto interval =
      o.rate > 0 ? std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / o.rate))
                 : Clock::duration::zero();

  DiskFloorResult result;
  const Clock::time_point start = Clock::now();
  for (uint64_t i = 0; i < planned; ++i) {
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) {
      result.stopped = true;
      break;
    }
    if (by_time && Clock::now() - start >= duration) break;
    if (o.rate > 0) {
      const Clock::time_point due = start + interval * static_cast<int64_t>(i);
      const Clock::time_point now = Clock::now();
      if (now < due) std::this_thread::sleep_until(due);
      else if (now - due > std::chrono::milliseconds(1)) ++result.late;
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
    result.latency.Record(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
  }
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
  s.precision(0);
  s << "  Appends:\t" << h.count() << " in ";
  s.precision(2);
  s << r.elapsed_s << " s" << (r.stopped ? " (stopped early)" : "") << "\n";
  if (h.count() == 0) return s.str();
  s << "  p50:\t\t" << Ms(h.Percentile(50)) << "\n"
    << "  p90:\t\t" << Ms(h.Percentile(90)) << "\n"
    << "  p99:\t\t" << Ms(h.Percentile(99)) << "\n"
    << "  p99.9:\t" << Ms(h.Percentile(99.9)) << "\n"
    << "  max:\t\t" << Ms(h.max_us()) << "\n"
    << "  over 1 ms:\t" << CountAbove(h, 1000) << "\n"
    << "  over 5 ms:\t" << CountAbove(h, 5000) << "\n"
    << "  over 10 ms:\t" << CountAbove(h, 10000) << "\n";
  if (r.late > 0) {
    s << "  late starts:\t" << r.late
      << " (the disk could not keep up with the rate; each append waited for the one before)\n";
  }
  return s.str();
}

std::string DiskFloorJson(const DiskFloorOptions& o, const DiskFloorResult& r) {
  const Histogram& h = r.latency;
  std::ostringstream s;
  std::string dir;
  logging::AppendJsonString(o.dir, &dir);
  s << "{\"dir\":" << dir << ",\"bytes\":" << o.bytes << ",\"rate\":" << o.rate
    << ",\"appends\":" << h.count() << ",\"elapsed_s\":" << r.elapsed_s
    << ",\"stopped\":" << (r.stopped ? "true" : "false") << ",\"late\":" << r.late
    << ",\"p50_us\":" << h.Percentile(50) << ",\"p90_us\":" << h.Percentile(90)
    << ",\"p99_us\":" << h.Percentile(99) << ",\"p999_us\":" << h.Percentile(99.9)
    << ",\"max_us\":" << h.max_us() << ",\"mean_us\":" << h.mean_us()
    << ",\"over_1ms\":" << CountAbove(h, 1000) << ",\"over_5ms\":" << CountAbove(h, 5000)
    << ",\"over_10ms\":" << CountAbove(h, 10000) << "}\n";
  return s.str();
}

}  // namespace medsettle::loadgen
