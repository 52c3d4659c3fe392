// The disk floor: how long the disk under Redis's data directory takes to
// make an append durable (write + fdatasync), measured the way Redis does
// it with `appendfsync always` (one append and one fdatasync of a growing
// file per event-loop turn), in the manner of PostgreSQL's pg_test_fsync.
//
// Why: with `appendfsync always` every Settle is acknowledged only after
// the fdatasync of the loop turn that committed it, and Redis serves no
// one while it waits. The tail of that wait is the disk's, not the
// gateway's: a Settle p99 cannot be lower than what this shows for the
// same disk, and a disk whose p99.9 is several milliseconds puts that into
// every busy second. `medsettle-loadgen disk-floor` prints it so an
// operator can tell a slow disk from a slow gateway before going live, and
// docs/PERFORMANCE.md states it beside each latency figure.
//
// It writes one file of its own (medsettle-disk-floor-XXXXXX, mode 0600)
// in the directory given and removes it at the end; the file is bounded by
// appends × bytes, which the tool limits to 1 GiB.
#ifndef MEDSETTLE_TOOLS_LOADGEN_DISK_FLOOR_H_
#define MEDSETTLE_TOOLS_LOADGEN_DISK_FLOOR_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "tools/loadgen/histogram.h"

namespace medsettle::loadgen {

inline constexpr uint64_t kDiskFloorMaxFileBytes = uint64_t{1} << 30;

struct DiskFloorOptions {
  std::string dir;          // where the probe file is made (Redis's `dir`)
  double rate = 800;        // appends per second, open loop; 0: back to back
  double duration_s = 10;   // used when count == 0
  uint64_t count = 0;       // appends instead of a duration
  size_t bytes = 2048;      // per append (about a loop turn's AOF at 1,000 Settles/s)
};

struct DiskFloorResult {
  Histogram latency;         // µs of write + fdatasync, per append
  uint64_t late = 0;         // appends that started more than 1 ms behind the schedule
  double elapsed_s = 0;
  bool stopped = false;      // `stop` was set before the end
};

// Checks the options: INVALID_ARGUMENT naming the flag (--dir, --rate,
// --duration, --count, --bytes) for a missing or unusable directory, a
// negative rate, a size outside 1 B..1 MiB or a file over 1 GiB.
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
