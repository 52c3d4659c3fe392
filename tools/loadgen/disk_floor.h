// The disk floor: how long the disk under Redis's data directory takes to
// make an append durable (write + fdatasync), measured the way Redis does
// it with `appendfsync always` (one append and one fdatasync of a growing
// file per event-loop turn), in the manner of PostgreSQL's pg_test_fsync.
//
// Why: with `appendfsync always` every Settle is acknowledged only after
// the fdatasync of the loop turn that committed it, and Redis serves no
// one while it waits. That wait is the disk's, not the gateway's: a Settle
// p99 hardly goes below the disk's own p99, and a disk whose p99.9 is
// several milliseconds puts that into every busy second.
// `medsettle-loadgen disk-floor` prints it so an operator can tell a slow
// disk from a slow gateway before going live; deploy/loadtest.sh prints it
// before every load test.
//
// The figures are service times (write + fdatasync of each append, as
// Redis's loop turn incurs them); an append that starts more than 1 ms
// behind its schedule, because the one before was slow or the CPU busy,
// is counted as late instead of adding its delay.
//
// It writes one file of its own (medsettle-disk-floor-XXXXXX, mode 0600)
// in the directory given and removes it on every return; the file never
// exceeds 1 GiB (kDiskFloorMaxFileBytes): a count or rate × duration that
// would is refused, and a back-to-back run stops there (`capped`).
#ifndef MEDSETTLE_TOOLS_LOADGEN_DISK_FLOOR_H_
#define MEDSETTLE_TOOLS_LOADGEN_DISK_FLOOR_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "tools/loadgen/histogram.h"

namespace medsettle::loadgen {

inline constexpr uint64_t kDiskFloorMaxFileBytes = uint64_t{1} << 30;

// The defaults are what Redis does at 1,000 Settles/s when each loop turn
// commits one Settle: 1,000 appends a second of one Settle's AOF (about
// 2.7 KB, docs/PERFORMANCE.md).
struct DiskFloorOptions {
  std::string dir;            // where the probe file is made (Redis's `dir`)
  double rate = 1000;         // appends per second, open loop; 0: back to back
  double duration_s = 10;     // used when count == 0
  uint64_t count = 0;         // appends instead of a duration
  size_t bytes = 2700;        // per append
  uint64_t max_file_bytes = kDiskFloorMaxFileBytes;  // the bound (tests lower it)
};

struct DiskFloorResult {
  Histogram latency;           // µs of write + fdatasync, per append
  uint64_t late = 0;           // appends that started more than 1 ms behind the schedule
  uint64_t over_1ms = 0;       // appends that took more than 1, 5, 10 ms (exact)
  uint64_t over_5ms = 0;
  uint64_t over_10ms = 0;
  double elapsed_s = 0;
  bool stopped = false;        // `stop` was set before the end
  bool capped = false;         // back to back: stopped at max_file_bytes

  // Counts one append that took `took` (write + fdatasync).
  void Record(std::chrono::nanoseconds took);
};

// Checks the options: INVALID_ARGUMENT naming the flag for a missing or
// unusable directory (--dir), a rate that is neither 0 nor 1..1,000,000
// a second (--rate), a size outside 1 B..1 MiB (--bytes), a run longer
// than 7 days or a file over 1 GiB (--count, --duration).
absl::Status ValidateDiskFloor(const DiskFloorOptions& options);

// Runs the probe (after ValidateDiskFloor). `stop` (may be null) ends it
// early, with what was measured so far. The probe file is removed on every
// return. An I/O error is the status, naming the file.
absl::StatusOr<DiskFloorResult> MeasureDiskFloor(const DiskFloorOptions& options,
                                                  const std::atomic<bool>* stop);

// The text summary: appends, rate, percentiles, maximum, and how many
// appends took over 1, 5 and 10 ms.
std::string FormatDiskFloor(const DiskFloorOptions& options, const DiskFloorResult& result);

// The same figures as one JSON object (µs), for scripts.
std::string DiskFloorJson(const DiskFloorOptions& options, const DiskFloorResult& result);

}  // namespace medsettle::loadgen

#endif  // MEDSETTLE_TOOLS_LOADGEN_DISK_FLOOR_H_
