// medsettle-ledger: the ledger's operator tool (tools/ledger/README.md).
// The ledger (PostgreSQL, ledger/) is the system of record of settlements;
// Redis is the commit point of the hot path. This tool moves records from
// one to the other and checks that they agree:
//
//   migrate     bring the schema to this version (safe to run twice)
//   put-rules   store a policy folder and catalog by digest
//   ship        the shipper daemon: the journal of every tag into the
//               ledger exactly once, then Redis forgets what was shipped
//   status      per tag, shipped up to where; lag in entries and seconds
//   verify      Redis's accumulators and reconcile index against the ledger
//   rebuild     Redis's accumulators (and recent idempotency records)
//               restored from the ledger after Redis was lost
//   recompute   every settlement of a date range recomputed from its record
//               with the stored rules; differences reported
//   reconcile   a day's totals and detail in the national platform's names
//               (3201 / 3202), CSV or JSON
//
// The logic lives in this library so tests run every command in-process;
// main.cc only forwards argv. Exit codes: 0 done (and, for verify and
// recompute, no difference); 1 a difference was found or an operation
// failed; 2 bad flags; 3 status found a lag above --max-lag-seconds.
#ifndef MEDSETTLE_TOOLS_LEDGER_LEDGER_TOOL_H_
#define MEDSETTLE_TOOLS_LEDGER_LEDGER_TOOL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace medsettle::ledger_tool {

struct RunOptions {
  // ship runs until this is set (main.cc sets it on SIGTERM / SIGINT).
  const std::atomic<bool>* stop = nullptr;
  std::function<int64_t()> now_ms;  // injectable clock; default: the system's
};

int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const RunOptions& run = {});

}  // namespace medsettle::ledger_tool

#endif  // MEDSETTLE_TOOLS_LEDGER_LEDGER_TOOL_H_
