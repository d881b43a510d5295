// A RedisMap's keys in Redis, and the Lua scripts that read and change them, each in one atomic step.
//
// | key           | type   | holds                                                                        |
// |---------------|--------|------------------------------------------------------------------------------|
// | {P}           | hash   | the record: c: the codec's name; t: the default ttl in ms (0: none); n: the  |
// |               |        | version, +1 on every change; hits, misses, coalesced, sets, deletes of the   |
// |               |        | whole cluster; i:<id>:hits, i:<id>:misses...: how many of them the record    |
// |               |        | holds from each live instance                                                |
// | {P}:e:<key>   | string | the encoded value of <key>, with its expiry                                  |
// | {P}:f:<key>   | string | while one process computes <key> in fetch(): its token; expires after the   |
// |               |        | lease unless renewed, so a computing process that dies is replaced           |
//
// Redis may drop the record like any other key: an allkeys-* policy evicts it (no key is out of its reach, and the
// LRU clock is too coarse for a busy key to be safe; volatile-* spare it, having no ttl), FLUSHALL or a restart
// without persistence loses it. Every live instance knows what it held, so every script that counts or changes
// something makes it again (RECORD): codec and ttl as the instance has them, a version above any the lost record
// reached, and the instance's own counts so far. A restart from an older snapshot brings back an older record: each
// instance adds again what it counted since, and its version goes on from above any the instance saw.
// attach() can make it from its options alone.
import { CLOCK } from './handle.js';

export const COUNTS = ['hits', 'misses', 'coalesced', 'sets', 'deletes'] as const;

// Makes the missing fields of the record KEYS[1]; a version made again, or gone below `seen` (a restart from an older
// snapshot), goes on from the server's clock.
const RESTORE = `${CLOCK}
local function restore(codec, ttl, seen)
  redis.call('HSETNX', KEYS[1], 'c', codec)
  redis.call('HSETNX', KEYS[1], 't', ttl)
  if tonumber(redis.call('HGET', KEYS[1], 'n') or '-1') < tonumber(seen) then redis.call('HSET', KEYS[1], 'n', clock()) end
end`;

// Starts every script that counts or changes something. The last 9 arguments: this instance's field prefix, its
// codec's name, its default ttl, the highest version it has seen, and its COUNTS so far. What
// the record holds of them less than that, Redis lost (the record evicted, or restored from an older snapshot): it is
// added again. count() counts in the totals and in the instance's own fields together.
const RECORD = `${RESTORE}
local r = #ARGV - 8
for i, name in ipairs({'hits', 'misses', 'coalesced', 'sets', 'deletes'}) do
  local missing = tonumber(ARGV[r + 3 + i]) - tonumber(redis.call('HGET', KEYS[1], ARGV[r] .. name) or '0')
  if missing > 0 then
    redis.call('HINCRBY', KEYS[1], name, missing)
    redis.call('HINCRBY', KEYS[1], ARGV[r] .. name, missing)
  end
end
restore(ARGV[r + 1], ARGV[r + 2], ARGV[r + 3])
local function count(name)
  redis.call('HINCRBY', KEYS[1], name, 1)
  redis.call('HINCRBY', KEYS[1], ARGV[r] .. name, 1)
end
`;

// A miss is counted only given ARGV[1] = '1': fetch() counts one when it computes.
export const GET = `${RECORD}
local value = redis.call('GET', KEYS[2])
if value then count('hits') elseif ARGV[1] == '1' then count('misses') end
return value`;

// Sets (ARGV[1] = '1') or deletes the entry, when it still holds ARGV[2] (ARGV[3] = '1': present; '0': absent; '': any).
// A set entry expires in ARGV[5] ms (0: never); one that existed keeps its expiry when ARGV[6] = '1'. 0 when it did
// not; 1 when it changed the entry; 2 when there was nothing to delete.
export const PUT = `${RECORD}
local current = redis.call('GET', KEYS[2])
if ARGV[3] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif ARGV[3] == '0' and current then return 0 end
if ARGV[1] == '1' then
  if ARGV[6] == '1' and current then redis.call('SET', KEYS[2], ARGV[4], 'KEEPTTL')
  elseif ARGV[5] ~= '0' then redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
  else redis.call('SET', KEYS[2], ARGV[4]) end
  count('sets')
elseif current then
  redis.call('DEL', KEYS[2])
  count('deletes')
else
  return 2
end
redis.call('HINCRBY', KEYS[1], 'n', 1)
return 1`;

// Ends a fetch() computation: drops its claim, and stores its value unless someone set one meanwhile.
export const FETCHED = `${RECORD}
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if ARGV[3] ~= '0' then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) else redis.call('SET', KEYS[2], ARGV[2]) end
count('sets')
redis.call('HINCRBY', KEYS[1], 'n', 1)
return 1`;

export const STATS = `${RECORD}
return redis.call('HMGET', KEYS[1], 'hits', 'misses', 'coalesced', 'sets', 'deletes')`;

// Counts one ARGV[1]: a fetch() given the value of a run another call of this instance started.
export const COUNT = `${RECORD}
count(ARGV[1])
return 0`;

export const VERSION = `${RECORD}
return redis.call('HGET', KEYS[1], 'n')`;

export const BUMP = `${RECORD}
return redis.call('HINCRBY', KEYS[1], 'n', 1)`;

// The value of the entry if it has one, counted as ARGV[3] (a hit, or coalesced after a wait); else 1 when this
// claim to compute it was taken (a miss), 0 when another holds one.
export const CLAIM = `${RECORD}
local value = redis.call('GET', KEYS[2])
if value then
  count(ARGV[3])
  return value
end
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then
  count('misses')
  return 1
end
return 0`;

export const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])`;

export const DROP = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'c', ARGV[1], 't', ARGV[2], 'n', 0)
return 1`;

// The record's codec and ttl; made first from ARGV[1] (codec) and ARGV[2] (ttl), when given, if Redis holds none.
export const ATTACH = `${RESTORE}
if ARGV[1] then restore(ARGV[1], ARGV[2], '0') end
return redis.call('HMGET', KEYS[1], 'c', 't')`;
