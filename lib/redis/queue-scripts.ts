// A RedisQueue's keys in Redis, and the Lua scripts that change them, each in one atomic step.
//
// | key         | type | holds                                                                               |
// |-------------|------|-------------------------------------------------------------------------------------|
// | {P}:q       | hash | the record: c: the codec's name; capacity, max: bytes of the messages in all and of |
// |             |      | one at most; bytes: of the messages queued; pushed: messages pushed in all           |
// | {P}:q:list  | list | the messages, oldest first, encoded                                                 |
// | {P}:q:wake  | list | one token while messages wait to be taken, for take() to block on (BLPOP)          |
// | {P}:q:room  | list | one token after a take made room, for pushAsync() to block on                       |
//
// A push and a take each change the list and the counts together, so that `pushed - LLEN` is exactly the messages
// taken. A waiter pops a token and then tries; a take that leaves messages, and a push that leaves room, put the
// token back for the next waiter, so that only a token popped by a waiter that died before its try, or by a pusher
// whose message did not fit, leaves the others to their one-second look.

/** KEYS: the record. ARGV: codec, capacity, max. 0 when the record exists. */
export const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'c', ARGV[1], 'capacity', ARGV[2], 'max', ARGV[3], 'bytes', 0, 'pushed', 0)
return 1`;

/** KEYS: the record. The codec's name, the capacity and the largest message; nils when there is no queue. */
export const ATTACH = `return redis.call('HMGET', KEYS[1], 'c', 'capacity', 'max')`;

/**
 * KEYS: record, list, wake, room. ARGV: the message. 1 pushed, 0 no room now, -1 no record. A push that leaves room
 * passes the room token on, for the next pusher waiting.
 */
export const PUSH = `
local room = redis.call('HMGET', KEYS[1], 'capacity', 'bytes')
if not room[1] then return -1 end
if tonumber(room[2]) + #ARGV[1] > tonumber(room[1]) then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'bytes', #ARGV[1])
redis.call('HINCRBY', KEYS[1], 'pushed', 1)
if redis.call('LLEN', KEYS[3]) == 0 then redis.call('RPUSH', KEYS[3], 1) end
if tonumber(room[2]) + #ARGV[1] < tonumber(room[1]) and redis.call('LLEN', KEYS[4]) == 0 then
  redis.call('RPUSH', KEYS[4], 1)
end
return 1`;

/** KEYS: record, list, wake, room. ARGV: how many at most. The messages taken, oldest first; -1 no record. */
export const TAKE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local taken = redis.call('LPOP', KEYS[2], ARGV[1]) or {}
local bytes = 0
for _, message in ipairs(taken) do bytes = bytes + #message end
if #taken > 0 then
  redis.call('HINCRBY', KEYS[1], 'bytes', -bytes)
  if redis.call('LLEN', KEYS[4]) == 0 then redis.call('RPUSH', KEYS[4], 1) end
end
if redis.call('LLEN', KEYS[2]) == 0 then redis.call('DEL', KEYS[3])
elseif redis.call('LLEN', KEYS[3]) == 0 then redis.call('RPUSH', KEYS[3], 1) end
return taken`;

/** KEYS: record, list. The capacity, bytes queued, messages pushed and messages queued; nils when no record. */
export const STATS = `
local counts = redis.call('HMGET', KEYS[1], 'capacity', 'bytes', 'pushed')
counts[4] = redis.call('LLEN', KEYS[2])
return counts`;
