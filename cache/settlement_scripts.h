// The Lua scripts of the settlement store (cache/settlement_store.h), run
// with EVALSHA. Each validates everything before its first write, so a
// refused call writes nothing. Every key is declared in KEYS and all share
// the person's hash tag: one slot. Totals are compared as Lua numbers
// (exact below 2^53; engine::kMaxAccumulatedCents is 10^15) and changed
// with HINCRBY / written as the caller's decimal text, never formatted by
// Lua.
// Internal to cache/: include only from settlement_store.cc.
#ifndef MEDSETTLE_CACHE_SETTLEMENT_SCRIPTS_H_
#define MEDSETTLE_CACHE_SETTLEMENT_SCRIPTS_H_

#include <string_view>

namespace medsettle::cache::scripts {

// KEYS: acc, idem, stl, journal, recon (the hash of the institution's
// settlement date), recon ids (its list); optional 7th: the e-insurance
// code's nonce key (single use).
// ARGV: 1 expected version, 2 content hash, 3 settlement id, 4 response,
// 5 institution, 6 request id, 7 person key, 8 year, 9 settlement date,
// 10 now (unix s), 11 n, then n accumulator field names, n totals after,
// n delta values; then m, m amount names, m amount values; then the visit
// type number, the idempotency TTL in seconds (0 = none), and the audit
// fields: certificate fingerprint, credential kind, presenter key, and the
// nonce key's TTL in seconds.
// Returns {'REPLAYED', id, response, status} | {'CONFLICT', id} |
// {'NONCE_USED', settlement id} | {'VERSION_MOVED', version found} |
// {'COMMITTED', id, new version}; the status is '' or 'REVERSED' (set by
// the reversal script). A replay wins over a used nonce: re-sending the
// request that used the code returns its settlement.
inline constexpr std::string_view kCommitSettlement = R"lua(
local idem = redis.call('HMGET', KEYS[2], 'hash', 'settlement_id', 'response', 'status')
if idem[1] then
  if idem[1] == ARGV[2] then return {'REPLAYED', idem[2], idem[3] or '', idem[4] or ''} end
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
local n = tonumber(ARGV[11])
local version = tostring(tonumber(found) + 1)
local acc = {'version', version}
local rec = {'person_key', ARGV[7], 'year', ARGV[8], 'institution', ARGV[5],
             'request_id', ARGV[6], 'hash', ARGV[2], 'status', 'SETTLED',
             'response', ARGV[4], 'date', ARGV[9], 'settled_at', ARGV[10]}
local entry = {'kind', 'SETTLE', 'settlement_id', ARGV[3], 'person_key', ARGV[7],
               'year', ARGV[8], 'institution', ARGV[5], 'request_id', ARGV[6],
               'date', ARGV[9], 'at', ARGV[10]}
for i = 1, n do
  local name = ARGV[11 + i]
  acc[#acc + 1] = name
  acc[#acc + 1] = ARGV[11 + n + i]
  local d = ARGV[11 + 2 * n + i]
  if d ~= '0' then
    rec[#rec + 1] = 'd.' .. name
    rec[#rec + 1] = d
    entry[#entry + 1] = 'd.' .. name
    entry[#entry + 1] = d
  end
end
local at = 12 + 3 * n
local m = tonumber(ARGV[at])
local visit = ARGV[at + 2 * m + 1]
local ttl = tonumber(ARGV[at + 2 * m + 2])
local audit = {'cert', ARGV[at + 2 * m + 3], 'credential', ARGV[at + 2 * m + 4],
               'presenter', ARGV[at + 2 * m + 5]}
local nonce_ttl = tonumber(ARGV[at + 2 * m + 6])
rec[#rec + 1] = 'visit'
rec[#rec + 1] = visit
for i = 1, #audit do
  rec[#rec + 1] = audit[i]
  entry[#entry + 1] = audit[i]
end
entry[#entry + 1] = 'outcome'
entry[#entry + 1] = 'SETTLED'
local recon = {}
for i = 1, m do
  local x = ARGV[at + m + i]
  if x ~= '0' then
    rec[#rec + 1] = 'a.' .. ARGV[at + i]
    rec[#rec + 1] = x
    entry[#entry + 1] = 'a.' .. ARGV[at + i]
    entry[#entry + 1] = x
    recon[#recon + 1] = 'settled.a.' .. ARGV[at + i]
    recon[#recon + 1] = x
  end
end
redis.call('HSET', KEYS[1], unpack(acc))
redis.call('HSET', KEYS[3], unpack(rec))
redis.call('HSET', KEYS[2], 'hash', ARGV[2], 'settlement_id', ARGV[3], 'response', ARGV[4])
if ttl > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
if KEYS[7] then redis.call('SET', KEYS[7], ARGV[3], 'EX', math.max(nonce_ttl, 1)) end
redis.call('XADD', KEYS[4], '*', unpack(entry))
redis.call('HINCRBY', KEYS[5], 'settled.count', 1)
for i = 1, #recon, 2 do redis.call('HINCRBY', KEYS[5], recon[i], recon[i + 1]) end
redis.call('RPUSH', KEYS[6], ARGV[3])
return {'COMMITTED', ARGV[3], version}
)lua";

// KEYS: stl, acc (of the record's person and year), journal, recon (the
// hash of the requesting institution and the record's settlement date),
// idem (the record's idempotency record: marked REVERSED if it still
// exists, so a replayed Settle reports the reversal without another read).
// ARGV: 1 institution, 2 reversal request id, 3 response, 4 now (unix s),
// 5 settlement id, 6 the record's settlement date as read before (the
// recon key's; '' for a record without one: then recon is not written),
// 7 the reversing caller's certificate fingerprint (audit).
// Returns {'NOT_FOUND'} | {'NOT_YOURS'} | {'NEGATIVE', field} |
// {'REPLAYED' | 'REVERSED', reversal id, response, reversed at, acc fields…}.
inline constexpr std::string_view kCommitReversal = R"lua(
local r = redis.call('HGETALL', KEYS[1])
if #r == 0 then return {'NOT_FOUND'} end
local rec = {}
for i = 1, #r, 2 do rec[r[i]] = r[i + 1] end
if rec['institution'] ~= ARGV[1] then return {'NOT_YOURS'} end
if (rec['date'] or '') ~= ARGV[6] then
  return redis.error_reply('ERR settlement date differs from the one read')
end
if rec['status'] == 'REVERSED' then
  local out = {'REPLAYED', rec['reversal_id'] or '', rec['reversal_response'] or '',
               rec['reversed_at'] or '0'}
  for _, v in ipairs(redis.call('HGETALL', KEYS[2])) do out[#out + 1] = v end
  return out
end
for i = 1, #r, 2 do
  if string.sub(r[i], 1, 2) == 'd.' then
    local name = string.sub(r[i], 3)
    local current = tonumber(redis.call('HGET', KEYS[2], name) or '0')
    if current < tonumber(r[i + 1]) then return {'NEGATIVE', name} end
  end
end
local entry = {'kind', 'REVERSE', 'settlement_id', ARGV[5], 'person_key', rec['person_key'],
               'year', rec['year'], 'institution', ARGV[1], 'request_id', ARGV[2],
               'date', rec['date'] or '', 'at', ARGV[4], 'cert', ARGV[7],
               'credential', rec['credential'] or '', 'presenter', rec['presenter'] or '',
               'outcome', 'REVERSED'}
local indexed = ARGV[6] ~= ''
if indexed then redis.call('HINCRBY', KEYS[4], 'reversed.count', 1) end
for i = 1, #r, 2 do
  local prefix = string.sub(r[i], 1, 2)
  if prefix == 'd.' then
    redis.call('HINCRBY', KEYS[2], string.sub(r[i], 3), '-' .. r[i + 1])
  end
  if prefix == 'a.' and indexed then
    redis.call('HINCRBY', KEYS[4], 'reversed.' .. r[i], r[i + 1])
  end
  if prefix == 'd.' or prefix == 'a.' then
    entry[#entry + 1] = r[i]
    entry[#entry + 1] = r[i + 1]
  end
end
redis.call('HINCRBY', KEYS[2], 'version', 1)
redis.call('HSET', KEYS[1], 'status', 'REVERSED', 'reversal_id', ARGV[2],
           'reversal_response', ARGV[3], 'reversed_at', ARGV[4], 'reversal_cert', ARGV[7])
if redis.call('EXISTS', KEYS[5]) == 1 then redis.call('HSET', KEYS[5], 'status', 'REVERSED') end
redis.call('XADD', KEYS[3], '*', unpack(entry))
local out = {'REVERSED', ARGV[2], ARGV[3], ARGV[4]}
for _, v in ipairs(redis.call('HGETALL', KEYS[2])) do out[#out + 1] = v end
return out
)lua";

}  // namespace medsettle::cache::scripts

#endif  // MEDSETTLE_CACHE_SETTLEMENT_SCRIPTS_H_
