// The Lua scripts of the settlement store (cache/settlement_store.h), run
// with EVALSHA. Each validates everything before its first write, so a
// refused call writes nothing. Every key is declared in KEYS and all share
// the person's hash tag: one slot. The settlement record (and a reversal's)
// arrives as one opaque value, a serialized medsettle.v1.LedgerRecord
// (LedgerReversal), stored and journaled as it is; only what a script must
// check or index comes separately, as name/value pairs. A record is a
// string key of its own (stl:…, rev:…): small hashes of one big value would
// cost Redis a hash table each. Totals are compared
// as Lua numbers (exact below 2^53; engine::kMaxAccumulatedCents is 10^15)
// and changed with HINCRBY of the caller's decimal text, never formatted by
// Lua.
// Internal to cache/: include only from settlement_store.cc.
#ifndef MEDSETTLE_CACHE_SETTLEMENT_SCRIPTS_H_
#define MEDSETTLE_CACHE_SETTLEMENT_SCRIPTS_H_

#include <string_view>

namespace medsettle::cache::scripts {

// KEYS: 1 acc, 2 idem, 3 stl (a string: the record), 4 journal, 5 recon (the hash of the
// institution's settlement date), 6 recon ids (its list); optional 7th:
// the e-insurance code's nonce key (single use).
// ARGV: 1 expected accumulator version, 2 content hash, 3 settlement id,
// 4 the record (LedgerRecord, as stored: cache/record_codec.h), 5 the idempotency TTL in seconds
// (0 = none), 6 the nonce key's TTL in seconds, 7 n; then n pairs of an
// accumulator field and its delta (non-zero ones only); then pairs of an
// amount name and its value (non-zero ones only) for the Reconcile index.
// A replay writes only the idempotency record's hash again, unchanged.
// Returns {'REPLAYED', id, status} | {'CONFLICT', id} |
// {'NONCE_USED', settlement id} | {'VERSION_MOVED', version found} |
// {'COMMITTED', id, new version}; the status is '' or 'REVERSED' (set by
// the reversal script). A replay wins over a used nonce: re-sending the
// request that used the code returns its settlement.
inline constexpr std::string_view kCommitSettlement = R"lua(
local idem = redis.call('HMGET', KEYS[2], 'hash', 'settlement_id', 'status')
if idem[1] then
  if idem[1] == ARGV[2] then
    -- Rewrites the same value: a write, so a WAIT after this call also
    -- covers the settlement it replays (redis.replica_acks).
    redis.call('HSET', KEYS[2], 'hash', idem[1])
    return {'REPLAYED', idem[2], idem[3] or ''}
  end
  return {'CONFLICT', idem[2] or ''}
end
if KEYS[7] then
  local used = redis.call('GET', KEYS[7])
  if used then return {'NONCE_USED', used} end
end
local found = redis.call('HGET', KEYS[1], 'version') or '0'
if tonumber(found) ~= tonumber(ARGV[1]) then return {'VERSION_MOVED', found} end
if redis.call('EXISTS', KEYS[3]) == 1 then
  return redis.error_reply('ERR settlement id already used')
end
local n = tonumber(ARGV[7])
for i = 8, 7 + 2 * n, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('SET', KEYS[3], ARGV[4])
redis.call('HSET', KEYS[2], 'hash', ARGV[2], 'settlement_id', ARGV[3])
local ttl = tonumber(ARGV[5])
if ttl > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
if KEYS[7] then redis.call('SET', KEYS[7], ARGV[3], 'EX', math.max(tonumber(ARGV[6]), 1)) end
redis.call('XADD', KEYS[4], '*', 'kind', 'SETTLE', 'rec', ARGV[4])
redis.call('HINCRBY', KEYS[5], 'settled.count', 1)
for i = 8 + 2 * n, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[5], 'settled.a.' .. ARGV[i], ARGV[i + 1])
end
redis.call('RPUSH', KEYS[6], ARGV[3])
return {'COMMITTED', ARGV[3], tostring(version)}
)lua";

// KEYS: 1 stl, 2 acc (of the record's person and year), 3 journal, 4 recon
// (the hash of the record's institution and settlement date), 5 idem (the
// record's idempotency record: marked REVERSED if it still exists, so a
// replayed Settle reports the reversal without another read), 6 rev (the
// reversal's record; it exists once the settlement is reversed).
// ARGV: 1 the reversal (stored LedgerReversal bytes), 2 n; then n pairs of
// an accumulator field and the settlement's delta (non-zero ones only, as
// the record holds them; the record is immutable, so what the caller read
// is what the settlement added); then pairs of an amount name and its value.
// Returns {'NOT_FOUND'} | {'NEGATIVE', field} |
// {'REPLAYED' | 'REVERSED', reversal bytes, acc field, value, …}.
inline constexpr std::string_view kCommitReversal = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
local done = redis.call('GET', KEYS[6])
if done then
  -- Adds 0 to the version (no change): a write, so a WAIT after this call
  -- also covers the reversal it replays (redis.replica_acks).
  redis.call('HINCRBY', KEYS[2], 'version', 0)
  local out = {'REPLAYED', done}
  for _, v in ipairs(redis.call('HGETALL', KEYS[2])) do out[#out + 1] = v end
  return out
end
local n = tonumber(ARGV[2])
for i = 3, 2 + 2 * n, 2 do
  local current = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')
  if current < tonumber(ARGV[i + 1]) then return {'NEGATIVE', ARGV[i]} end
end
for i = 3, 2 + 2 * n, 2 do redis.call('HINCRBY', KEYS[2], ARGV[i], '-' .. ARGV[i + 1]) end
redis.call('HINCRBY', KEYS[2], 'version', 1)
redis.call('SET', KEYS[6], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[6], ttl) end
if redis.call('EXISTS', KEYS[5]) == 1 then redis.call('HSET', KEYS[5], 'status', 'REVERSED') end
redis.call('XADD', KEYS[3], '*', 'kind', 'REVERSE', 'rec', ARGV[1])
redis.call('HINCRBY', KEYS[4], 'reversed.count', 1)
for i = 3 + 2 * n, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[4], 'reversed.a.' .. ARGV[i], ARGV[i + 1])
end
local out = {'REVERSED', ARGV[1]}
for _, v in ipairs(redis.call('HGETALL', KEYS[2])) do out[#out + 1] = v end
return out
)lua";

// KEYS: 1 idem. Rewrites the idempotency record's content hash unchanged,
// if the record exists: a write, so that a WAIT after it covers the
// settlement a replay reports (redis.replica_acks). Returns 1.
inline constexpr std::string_view kTouchIdempotency = R"lua(
local hash = redis.call('HGET', KEYS[1], 'hash')
if hash then redis.call('HSET', KEYS[1], 'hash', hash) end
return 1
)lua";

}  // namespace medsettle::cache::scripts

#endif  // MEDSETTLE_CACHE_SETTLEMENT_SCRIPTS_H_
