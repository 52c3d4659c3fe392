// The ledger's advisory locks (pg_advisory_lock(namespace, key)): one
// namespace for medsettle, one key per purpose. Operators see them in
// pg_locks (locktype 'advisory', classid = kNamespace, objid = the key).
#ifndef MEDSETTLE_LEDGER_LOCKS_H_
#define MEDSETTLE_LEDGER_LOCKS_H_

namespace medsettle::ledger::locks {

inline constexpr int kNamespace = 0x4D534C44;  // "MSLD": medsettle ledger
inline constexpr int kMigrate = 1;    // session lock of Migrate
inline constexpr int kShipper = 2;    // session lock of the one shipper (LockShipper)
inline constexpr int kPartitions = 3; // transaction lock of ledger.ensure_month_partition

}  // namespace medsettle::ledger::locks

#endif  // MEDSETTLE_LEDGER_LOCKS_H_
