// Internal to cache/: how a hiredis reply becomes our owned RedisReply, in
// one place for the blocking connection (redis_connection.cc) and the
// asynchronous client (async_redis.cc), so both hand callers identical
// values. Not part of the library's surface: include it only from cache/*.cc.
// hiredis stays out (its reply type is only declared here).
#ifndef MEDSETTLE_CACHE_REDIS_REPLY_H_
#define MEDSETTLE_CACHE_REDIS_REPLY_H_

#include <utility>

#include "cache/redis_client.h"

struct redisReply;  // hiredis

namespace medsettle::cache::internal {

// A deep copy of `reply`: nil, integer, string, status, error and arrays of
// them. Any other type (RESP3, which medsettle never asks for) becomes an
// error reply that names it.
RedisReply ConvertReply(const redisReply& reply);

// `reply`, or the status its error reply maps to (ErrorReplyStatus).
inline RedisResult ToResult(RedisReply reply) {
  if (reply.is_error()) return ErrorReplyStatus(reply.str);
  return reply;
}

}  // namespace medsettle::cache::internal

#endif  // MEDSETTLE_CACHE_REDIS_REPLY_H_
