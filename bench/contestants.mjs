// The ways a Node user could share one value between processes, each behind the same small interface:
//   create(value, room) -> ref       in the scenario's primary; ref is plain data passed to its workers
//   attach(ref, primary) -> client   in a worker: { get(), set(v), increment(), peek(), close() }, async where noted
//   destroy(ref)                     in the primary, at the end
// peek() returns the current value as cheaply as the contestant allows, for the broadcast workload's pollers;
// process.send, which pushes, has onPublish(listener) instead.
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { deserialize, serialize } from 'node:v8';
import mmapIo from '@riaskov/mmap-io';
import fsExt from 'fs-ext-extra-prebuilt';
import { open as openLmdb } from 'lmdb';
import { MmapShare } from '../dist/index.mjs';
import { RedisShare } from '../dist/redis/index.mjs';

const bump = (value) => ({ ...value, count: value.count + 1 });
const shmPath = (kind) => `/dev/shm/mmap-share-bench-${kind}-${randomBytes(6).toString('hex')}`;

function mmapShare(codec, read) {
  return {
    create: (value, room) => {
      const share = MmapShare.create(room, { codec, value });
      // The primary keeps its instance open until destroy(), which keeps the nameless region alive.
      return { handle: share.handle, keep: mmapShare.kept.push(share) - 1 };
    },
    attach: ({ handle }) => {
      const share = MmapShare.attach(handle);
      let seen = -1;
      let last;
      return {
        get: () => share[read](),
        set: (value) => share.set(value),
        increment: () => share.update(bump),
        // A poller reads the version word, and decodes only when it moved: snapshot() does that itself.
        peek: () => {
          if (read === 'snapshot') return share.snapshot();
          if (share.version !== seen) [seen, last] = [share.version, share.get()];
          return last;
        },
        close: () => share.close(),
      };
    },
    destroy: ({ keep }) => mmapShare.kept[keep].close(),
  };
}
mmapShare.kept = [];

// For the broadcast workload alone: watch() woken by the region's doorbell, and the version word polled every 10 ms,
// as watch() did before the doorbell at its default interval (the other pollers look every 1 ms).
function mmapShareWatched(push) {
  const base = mmapShare('v8', 'get');
  return {
    ...base,
    only: 'broadcast',
    ...(push ? {} : { pollEveryMs: 10 }),
    attach: (ref) => {
      const client = base.attach(ref);
      const share = MmapShare.attach(ref.handle);
      return push ? { ...client, onPublish: (listener) => share.watch(listener), close: () => share.close() } : client;
    },
  };
}

// The floor: what a minimal mmap store does. One slot with a (length, version) header, flock LOCK_SH around
// every read and LOCK_EX around every write, v8.serialize, decoding straight from the mapping.
const floor = {
  create: (value, room) => {
    const path = shmPath('floor');
    const fd = openSync(path, 'wx+');
    writeSync(fd, Buffer.alloc(room + 8));
    closeSync(fd);
    const client = floor.attach({ path, room });
    client.set(value);
    client.close();
    return { path, room };
  },
  attach: ({ path, room }) => {
    const fd = openSync(path, 'r+');
    const bytes = mmapIo.map(room + 8, 3, mmapIo.MAP_SHARED, fd);
    const header = new Uint32Array(bytes.buffer, bytes.byteOffset, 2);
    const read = () => deserialize(bytes.subarray(8, 8 + header[0]));
    const write = (payload) => {
      bytes.set(payload, 8);
      header[0] = payload.length;
      header[1]++;
    };
    const locked = (mode, work) => {
      fsExt.flockSync(fd, mode);
      try {
        return work();
      } finally {
        fsExt.flockSync(fd, 'un');
      }
    };
    let seen = -1;
    let last;
    return {
      get: () => locked('sh', read),
      set: (value) => {
        const payload = serialize(value);
        locked('ex', () => write(payload));
      },
      increment: () => locked('ex', () => write(serialize(bump(read())))),
      peek: () => {
        if (header[1] !== seen) [seen, last] = locked('sh', () => [header[1], read()]);
        return last;
      },
      close: () => closeSync(fd),
    };
  },
  destroy: ({ path }) => rmSync(path),
};

// lmdb-js as a performance-minded user sets it up for this job: one key, data in /dev/shm, noSync (no fsync; the
// data lives in memory anyway), useWritemap (writes straight into the map), its default msgpack encoding, and
// synchronous puts so that a set() is visible to other processes when it returns, as with every other contestant.
const lmdb = {
  create: (value, room) => {
    const path = shmPath('lmdb');
    const ref = { path, mapSize: 4 * room + (1 << 20) };
    const client = lmdb.attach(ref);
    client.set(value);
    client.close();
    return ref;
  },
  attach: ({ path, mapSize }) => {
    const db = openLmdb({ path, noSync: true, useWritemap: true, mapSize });
    return {
      get: () => db.get('value'),
      set: (value) => db.putSync('value', value),
      increment: () => db.transactionSync(() => db.putSync('value', bump(db.get('value')))),
      peek: () => db.get('value'),
      close: () => db.close(),
    };
  },
  destroy: ({ path }) => rmSync(path, { recursive: true }),
};

// A file in /dev/shm: write a temporary file and rename it over the value, read the whole file, and take an flock
// on a side file around read-modify-write.
const file = {
  create: (value) => {
    const path = shmPath('file');
    writeFileSync(path, serialize(value));
    writeFileSync(`${path}.lock`, '');
    return { path };
  },
  attach: ({ path }) => {
    const temporary = `${path}.${process.pid}`;
    const lockFd = openSync(`${path}.lock`, 'r');
    const get = () => deserialize(readFileSync(path));
    const set = (value) => {
      writeFileSync(temporary, serialize(value));
      renameSync(temporary, path);
    };
    return {
      get,
      set,
      increment: () => {
        fsExt.flockSync(lockFd, 'ex');
        try {
          set(bump(get()));
        } finally {
          fsExt.flockSync(lockFd, 'un');
        }
      },
      peek: get,
      close: () => closeSync(lockFd),
    };
  },
  destroy: ({ path }) => (rmSync(path), rmSync(`${path}.lock`)),
};

// How cluster users share state today: the primary holds the value and workers ask it with process.send, using
// the 'advanced' (v8) serialization so that values keep their types. Every call is a request/response round trip.
const messaging = {
  isAsync: true,
  create: (value) => ({ value }),
  // In the primary: answer one worker's requests.
  serve: (ref, worker) => {
    worker.on('message', ({ op, id, value }) => {
      if (op === 'set') ref.value = value;
      if (op === 'increment') ref.value = bump(ref.value);
      worker.send({ id, value: op === 'get' ? ref.value : undefined });
    });
  },
  attach: () => {
    const ask = askPrimary();
    const call = (op, value) => ask({ op, value });
    return {
      get: () => call('get'),
      set: (value) => call('set', value),
      increment: () => call('increment'),
      // Messages are pushed: a broadcast is noticed when it arrives, not at a poll.
      onPublish: (listener) => process.on('message', (message) => message.op === 'publish' && listener(message.value)),
      close: () => {},
    };
  },
  destroy: () => {},
};

// RedisShare: the same API across machines, through a Redis server on this machine's loopback (BENCH_REDIS_URL), so
// the figures show the cost of the round trips, not of a network. Broadcasts come through Redis pub/sub, not polls.
function redis(codec) {
  const url = process.env.BENCH_REDIS_URL;
  return {
    isAsync: true,
    create: async (value) => {
      const key = `bench-${randomBytes(6).toString('hex')}`;
      await (await RedisShare.create(key, { url, codec, value })).close();
      return { key };
    },
    attach: async ({ key }) => {
      const share = await RedisShare.attach(key, { url });
      return {
        get: () => share.get(),
        set: (value) => share.set(value),
        increment: () => share.update(bump),
        onPublish: (listener) => share.watch(listener),
        close: () => share.close(),
      };
    },
    destroy: ({ key }) => RedisShare.unlink(key, { url }),
  };
}

/**
 * In a worker: a function that sends `message` to the primary with a fresh `id` and resolves with the `value` of the
 * reply that carries the same id.
 */
export function askPrimary() {
  const pending = new Map();
  let next = 0;
  process.on('message', ({ id, value }) => {
    pending.get(id)?.(value);
    pending.delete(id);
  });
  return (message) =>
    new Promise((resolve) => {
      const id = next++;
      pending.set(id, resolve);
      process.send({ ...message, id });
    });
}

/** Every contestant, by the name the table shows. The first is the one every ratio is taken against. */
export const contestants = {
  'mmap-share v8': mmapShare('v8', 'get'),
  'mmap-share v8 snapshot()': mmapShare('v8', 'snapshot'),
  'mmap-share msgpack': mmapShare('msgpack', 'get'),
  'mmap-share watch()': mmapShareWatched(true),
  'mmap-share poll 10 ms': mmapShareWatched(false),
  floor,
  lmdb,
  'shm file': file,
  'process.send': messaging,
  ...(process.env.BENCH_REDIS_URL ? { 'Redis v8': redis('v8'), 'Redis msgpack': redis('msgpack') } : {}),
};
