// The keyed stores a Node cluster could use as a shared cache, each behind the same small interface:
//   create(keys, value) -> ref    in the scenario's primary: a store holding keys key-0 .. key-(keys-1)
//   attach(ref) -> client         in a worker: { get(k), set(k, v), close() }, async where noted (isAsync)
//   serve(ref, worker)            in the primary, for a contestant whose workers ask it rather than attach
//   destroy(ref)                  in the primary, at the end
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { open as openLmdb } from 'lmdb';
import { MmapShare, SharedMap } from '../dist/index.mjs';
import { RedisMap } from '../dist/redis/index.mjs';
import { askPrimary } from './contestants.mjs';

export const keyOf = (i) => `key-${i}`;
const kept = [];

// Room for `keys` entries of about 100 B and as many more inserted by a set workload, without eviction.
const capacityFor = (keys) => Math.max(64 << 20, keys * 400);

function sharedMap(codec, read) {
  return {
    create: (keys, value) => {
      const map = SharedMap.create({ capacity: capacityFor(keys), maxEntries: keys * 2 + 1000, codec });
      for (let i = 0; i < keys; i++) map.set(keyOf(i), value);
      return { handle: map.handle, keep: kept.push(map) - 1 };
    },
    attach: ({ handle }) => {
      const map = SharedMap.attach(handle);
      return { get: (key) => map[read](key), set: (key, value) => map.set(key, value), close: () => map.close() };
    },
    destroy: ({ keep }) => kept[keep].close(),
  };
}

// lmdb-js as a performance-minded user sets it up for a shared cache: one database in /dev/shm, noSync, useWritemap,
// its default msgpack encoding, synchronous puts so that a set is visible to other processes when it returns.
const lmdb = {
  create: (keys, value) => {
    const path = `/dev/shm/mmap-share-bench-lmdb-${randomBytes(6).toString('hex')}`;
    const ref = { path, mapSize: capacityFor(keys) * 4 };
    const db = openLmdb({ path, noSync: true, useWritemap: true, mapSize: ref.mapSize });
    for (let start = 0; start < keys; start += 10_000) {
      db.transactionSync(() => {
        for (let i = start; i < Math.min(keys, start + 10_000); i++) db.putSync(keyOf(i), value);
      });
    }
    db.close();
    return ref;
  },
  attach: ({ path, mapSize }) => {
    const db = openLmdb({ path, noSync: true, useWritemap: true, mapSize });
    return { get: (key) => db.get(key), set: (key, value) => db.putSync(key, value), close: () => db.close() };
  },
  destroy: ({ path }) => rmSync(path, { recursive: true, force: true }),
};

// lru-cache in each process: nothing shared, nothing serialized. The upper bound for a local cache.
const lruCache = {
  create: (keys, value) => ({ keys, value }),
  attach: ({ keys, value }) => {
    const cache = new LRUCache({ max: keys * 2 + 1000 });
    for (let i = 0; i < keys; i++) cache.set(keyOf(i), value);
    return { get: (key) => cache.get(key), set: (key, v) => cache.set(key, v), close: () => {} };
  },
  destroy: () => {},
};

// The whole map as one object in an MmapShare (the cluster-cache example before SharedMap): a get reads the object's
// snapshot, a set rewrites and re-serializes the whole object.
const wholeObject = {
  create: (keys, value) => {
    const entries = {};
    for (let i = 0; i < keys; i++) entries[keyOf(i)] = value;
    const share = MmapShare.create(capacityFor(keys), { value: entries });
    return { handle: share.handle, keep: kept.push(share) - 1 };
  },
  attach: ({ handle }) => {
    const share = MmapShare.attach(handle);
    return {
      get: (key) => share.snapshot()[key],
      set: (key, value) => share.update((entries) => ({ ...entries, [key]: value })),
      close: () => share.close(),
    };
  },
  destroy: ({ keep }) => kept[keep].close(),
};

// How cluster users share state without shared memory: the primary holds a Map, and workers ask it with process.send
// ('advanced' serialization, so values keep their types). Every call is a round trip through the primary.
const messaging = {
  isAsync: true,
  create: (keys, value) => {
    const map = new Map();
    for (let i = 0; i < keys; i++) map.set(keyOf(i), value);
    return { map };
  },
  serve: ({ map }, worker) =>
    worker.on('message', ({ id, op, key, value }) => {
      if (op === undefined) return;
      if (op === 'set') map.set(key, value);
      worker.send({ id, value: op === 'get' ? map.get(key) : undefined });
    }),
  attach: () => {
    const ask = askPrimary();
    const call = (op, key, value) => ask({ op, key, value });
    return { get: (key) => call('get', key), set: (key, value) => call('set', key, value), close: () => {} };
  },
  destroy: () => {},
};

// RedisMap over a Redis server on this machine's loopback (BENCH_REDIS_URL): what crossing the machine boundary costs.
const redisMap = {
  isAsync: true,
  create: async (keys, value) => {
    const name = `bench-${randomBytes(6).toString('hex')}`;
    const map = await RedisMap.create(name, { url: process.env.BENCH_REDIS_URL, codec: 'msgpack' });
    for (let start = 0; start < keys; start += 1000) {
      const batch = [];
      for (let i = start; i < Math.min(keys, start + 1000); i++) batch.push(map.set(keyOf(i), value));
      await Promise.all(batch);
    }
    await map.close();
    return { name };
  },
  attach: async ({ name }) => {
    const map = await RedisMap.attach(name, { url: process.env.BENCH_REDIS_URL });
    return { get: (key) => map.get(key), set: (key, value) => map.set(key, value), close: () => map.close() };
  },
  destroy: async ({ name }) => {
    const map = await RedisMap.attach(name, { url: process.env.BENCH_REDIS_URL });
    await map.clear();
    await map.close();
  },
};

/** Every contestant, by the name the table shows; ratios are taken against lmdb. */
export const mapContestants = {
  'SharedMap msgpack': sharedMap('msgpack', 'get'),
  'SharedMap v8': sharedMap('v8', 'get'),
  'SharedMap snapshot()': sharedMap('msgpack', 'snapshot'),
  lmdb,
  'lru-cache (per process)': lruCache,
  'MmapShare whole object': wholeObject,
  'process.send (primary)': messaging,
  ...(process.env.BENCH_REDIS_URL ? { 'RedisMap msgpack': redisMap } : {}),
};
