// RedisMap and RedisShare against what a real redis-server does to their keys and answers: a small maxmemory that
// evicts, FLUSHALL, a map's record deleted, a server out of memory, and answers held back past commandTimeout.
import { setTimeout as sleep, setImmediate as tick } from 'node:timers/promises';
import { createClient, RESP_TYPES } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisMap, RedisShare } from '../dist/redis/index.mjs';
import { Peer } from './helpers.js';
import { RedisServer } from './redis/server.js';

let server: RedisServer;
let url: string;
let admin: ReturnType<typeof createClient>;
let opened: { close(): unknown }[] = [];
const keep = <C extends { close(): unknown }>(instance: C): C => (opened.push(instance), instance);

beforeAll(async () => {
  server = await RedisServer.start();
  url = server.url;
  admin = createClient({ url });
  await admin.connect();
});
afterAll(async () => {
  admin.destroy();
  await server.stop();
});
afterEach(async () => {
  await Promise.all(opened.map((instance) => instance.close()));
  opened = [];
});

// Runs `body` with the server configured as `config`, and puts the configuration back after.
async function configured(config: Record<string, string>, body: () => Promise<void>): Promise<void> {
  const before = await admin.configGet(Object.keys(config));
  await admin.configSet(config);
  try {
    await body();
  } finally {
    await admin.configSet(before);
  }
}

// Holds back every script (they may write) until `body` ends; reads and CLIENT UNPAUSE still go through.
async function paused(body: () => Promise<void>, before: Promise<unknown>[] = []): Promise<void> {
  await Promise.all([...before, admin.sendCommand(['CLIENT', 'PAUSE', '3000', 'WRITE'])]);
  try {
    await body();
  } finally {
    await admin.sendCommand(['CLIENT', 'UNPAUSE']);
  }
}

// Runs the lock's scripts once, so that Redis knows them: a lock() request is then one command, not two.
async function loadLockScripts(share: RedisShare<unknown>): Promise<void> {
  await share.tryLock();
  await share.unlock();
}

const evictions = async () => Number(/evicted_keys:(\d+)/.exec(await admin.info('stats'))![1]);
const scriptCalls = async () => Number(/cmdstat_eval:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0);

describe('a map whose record Redis drops', () => {
  it('under allkeys-lru in 3 MB, 2 processes x 3,000 sets of 1 KB: new processes attach meanwhile, and the counts are exact', async () => {
    const map = keep(await RedisMap.create<string>('evicted', { url }));
    const workers = [new Peer({}, 'redis-peer.mjs'), new Peer({}, 'redis-peer.mjs')];
    await Promise.all(workers.map((peer) => peer.call('attachMap', { url, name: 'evicted' })));
    const evicted = await evictions();
    await configured({ maxmemory: '3mb', 'maxmemory-policy': 'allkeys-lru' }, async () => {
      let written = false;
      const writing = Promise.all(workers.map((peer) => peer.call('sets', { count: 3000, size: 1024 }))).finally(
        () => (written = true),
      );
      // Respawned workers attach while the others write, with the options the map was created with: between an
      // eviction of the record and the next write, only they say what it was.
      for (let attached = 0; !written || attached === 0; attached++) {
        await (await RedisMap.attach<string>('evicted', { url, codec: 'v8', ttl: 0 })).close();
        await sleep(5);
      }
      await writing;
    });
    expect((await evictions()) - evicted).toBeGreaterThan(3000);
    // An instance gives back the counts Redis lost with its next call.
    await Promise.all(workers.map((peer) => peer.call('stats')));
    const attached = keep(await RedisMap.attach<string>('evicted', { url }));
    expect(await attached.stats()).toMatchObject({ sets: 6000, deletes: 0, hits: 0, misses: 0 });
    expect(await map.version).toBeGreaterThanOrEqual(6000);
  });

  it('after FLUSHALL, the next call of a live instance makes it again: codec, ttl, counts, a version not gone back', async () => {
    const map = keep(await RedisMap.create<{ n: number }>('flushed', { url, codec: 'msgpack', ttl: 60_000 }));
    await map.set('a', { n: 1 });
    await map.set('b', { n: 2 });
    expect(await map.get('a')).toStrictEqual({ n: 1 });
    expect(await map.get('missing')).toBeUndefined();
    const version = await map.version;
    await admin.flushAll();
    // Nothing in Redis says what the map was, and no instance has said it yet.
    await expect(RedisMap.attach('flushed', { url })).rejects.toMatchObject({ code: 'ERR_BAD_HANDLE' });
    expect(await map.get('a')).toBeUndefined();
    const other = keep(await RedisMap.attach<{ n: number }>('flushed', { url }));
    await other.set('c', { n: 3 });
    expect(await map.get('c')).toStrictEqual({ n: 3 });
    expect(await admin.hGet('{flushed}', 'c')).toBe('msgpack');
    expect(await admin.pTTL('{flushed}:e:c')).toBeGreaterThan(59_000);
    // The counts each live instance had added come back with its next call.
    expect(await map.stats()).toStrictEqual({ entries: 1, hits: 2, misses: 2, coalesced: 0, sets: 3, deletes: 0 });
    expect(await map.version).toBeGreaterThan(version);
  });

  it("attach() given the codec and ttl makes it again when Redis holds none; another codec or ttl than the record's is refused", async () => {
    const map = keep(await RedisMap.create<string>('deleted', { url, codec: 'msgpack', ttl: 5000 }));
    await map.set('kept', 'intact');
    await admin.del('{deleted}');
    const options = { url, codec: 'msgpack', ttl: 5000 } as const;
    const other = keep(await RedisMap.attach<string>('deleted', options));
    expect(await other.get('kept')).toBe('intact');
    expect(await admin.hmGet('{deleted}', ['c', 't'])).toStrictEqual(['msgpack', '5000']);
    await expect(RedisMap.attach('deleted', { ...options, ttl: 1000 })).rejects.toMatchObject({
      code: 'ERR_BAD_OPTION',
    });
    await expect(RedisMap.attach('deleted', { ...options, codec: 'v8' })).rejects.toMatchObject({
      code: 'ERR_CODEC_MISMATCH',
    });
  });
});

describe('a share whose record Redis drops', () => {
  it('is made again by the next call, with its codec: attach() finds it, and its version does not go back', async () => {
    const share = keep(await RedisShare.create<{ n: number }>('dropped', { url, value: { n: 1 }, codec: 'msgpack' }));
    await share.set({ n: 2 });
    const version = await share.version;
    await admin.del('{dropped}');
    expect(await share.version).toBeGreaterThan(version);
    expect(await share.update((value) => ({ n: (value?.n ?? 0) + 3 }))).toStrictEqual({ n: 3 });
    const other = keep(await RedisShare.attach<{ n: number }>('dropped', { url }));
    expect(await other.get()).toStrictEqual({ n: 3 });
    expect(await other.version).toBeGreaterThan(version);
  });

  it('attach() given the codec makes it again when Redis holds none; without it, ERR_BAD_HANDLE', async () => {
    keep(await RedisShare.create('deleted-share', { url, value: 1, codec: 'msgpack' }));
    await admin.del('{deleted-share}');
    await expect(RedisShare.attach('deleted-share', { url })).rejects.toMatchObject({ code: 'ERR_BAD_HANDLE' });
    const other = keep(await RedisShare.attach('deleted-share', { url, codec: 'msgpack' }));
    expect(await other.get()).toBeUndefined();
    expect(await admin.hGet('{deleted-share}', 'c')).toBe('msgpack');
    await expect(RedisShare.attach('deleted-share', { url, codec: 'v8' })).rejects.toMatchObject({
      code: 'ERR_CODEC_MISMATCH',
    });
  });

  it("restored from an older snapshot, versions go on from above what each instance saw, and the map's counts come back", async () => {
    const share = keep(await RedisShare.create('snapshot', { url, value: 1 }));
    const map = keep(await RedisMap.create<number>('snapshot-map', { url }));
    // The snapshot holds this instance's count of sets so far: those after it are what it must add again.
    await map.set('k', 1);
    const binary = admin.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
    const snapshots = await Promise.all(['{snapshot}', '{snapshot-map}'].map((key) => binary.dump(key)));
    for (let n = 2; n < 10; n++) await Promise.all([share.set(n), map.set('k', n)]);
    const [shareVersion, mapVersion] = [await share.version, await map.version];
    await Promise.all(
      ['{snapshot}', '{snapshot-map}'].map((key, i) => admin.restore(key, 0, snapshots[i]!, { REPLACE: true })),
    );
    expect(await share.version).toBeGreaterThan(shareVersion);
    expect(await map.version).toBeGreaterThan(mapVersion);
    // The counts made since the snapshot are added again; the values are the snapshot's.
    expect(await map.stats()).toMatchObject({ sets: 9, hits: 0 });
    expect(await share.get()).toBe(1);
  });
});

describe('a lock Redis loses or lets lapse', () => {
  it('is kept under volatile-ttl while keys with a ttl are evicted around it', async () => {
    const share = keep(await RedisShare.create('volatile', { url, value: 0 }));
    const other = keep(await RedisShare.attach('volatile', { url }));
    await share.lock();
    const evicted = await evictions();
    await configured({ maxmemory: '3mb', 'maxmemory-policy': 'volatile-ttl' }, async () => {
      for (let i = 0; (await evictions()) - evicted < 100; i++) {
        await admin.set(`volatile-filler:${i}`, 'x'.repeat(10_000), { EX: 3600 });
      }
    });
    expect(await other.tryLock()).toBeUndefined();
    await share.set(1);
    await share.unlock();
    expect(await other.get()).toBe(1);
  });

  it('lost with the record (FLUSHALL), its holder cannot write: ERR_NOT_LOCKED, not a second writer', async () => {
    const share = keep(await RedisShare.create('fenced', { url, value: 0 }));
    const other = keep(await RedisShare.attach('fenced', { url }));
    await share.lock();
    await admin.flushAll();
    expect(await other.tryLock()).toStrictEqual({ ownerDied: false });
    await other.set(1);
    await expect(share.set(2)).rejects.toMatchObject({ code: 'ERR_NOT_LOCKED' });
    await expect(share.update(() => 3)).rejects.toMatchObject({ code: 'ERR_NOT_LOCKED' });
    await expect(share.unlock()).rejects.toMatchObject({ code: 'ERR_NOT_LOCKED' });
    await other.unlock();
    expect(await share.get()).toBe(1);
  });

  it("whose lease ended unrenewed (a blocked event loop) refuses its holder's next write", async () => {
    const share = keep(await RedisShare.create('lapsed', { url, value: 0, lease: 30 }));
    await share.lock();
    const until = performance.now() + 100;
    while (performance.now() < until);
    await expect(share.set(1)).rejects.toMatchObject({ code: 'ERR_NOT_LOCKED' });
    expect(await share.get()).toBe(0);
  });
});

describe('map names', () => {
  it('with glob characters see only their own entries; braces are refused', async () => {
    const users = keep(await RedisMap.create<number>('users', { url }));
    await users.set('a', 1);
    for (const name of ['user?', 'user*', 'user[s]', 'u\\sers']) {
      const map = keep(await RedisMap.create<number>(name, { url }));
      await map.set('b', 2);
      expect(await map.size).toBe(1);
      await map.clear();
    }
    expect(await users.size).toBe(1);
    expect(await users.get('a')).toBe(1);
    for (const name of ['a{b', 'a}b']) {
      await expect(RedisMap.create(name, { url })).rejects.toMatchObject({ code: 'ERR_BAD_HANDLE' });
      await expect(RedisShare.create(name, { url })).rejects.toMatchObject({ code: 'ERR_BAD_HANDLE' });
    }
  });
});

describe('writes Redis refuses, and answers that come late or never', () => {
  it('a call whose answer does not come within commandTimeout fails with ERR_CONNECTION, and the next goes on', async () => {
    const share = keep(await RedisShare.create('unanswered', { url, value: 0, commandTimeout: 100 }));
    await paused(async () => {
      const started = performance.now();
      await expect(share.set(1)).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
      expect(performance.now() - started).toBeLessThan(1000);
    });
    await share.set(2);
    expect(await share.get()).toBe(2);
  });

  it('fetch() drops its claim when Redis refuses to store the value (out of memory under noeviction)', async () => {
    const map = keep(await RedisMap.create<string>('refused', { url }));
    await configured({ maxmemory: '0', 'maxmemory-policy': 'noeviction' }, async () => {
      const compute = async () => {
        await admin.configSet('maxmemory', '1');
        return 'computed';
      };
      await expect(map.fetch('k', compute)).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    });
    expect(await admin.exists('{refused}:f:k')).toBe(0);
    expect(await map.fetch('k', () => 'again', { timeout: 1000 })).toBe('again');
  });

  it('a claim Redis granted but whose answer came after commandTimeout is dropped, not held for its lease', async () => {
    const map = keep(await RedisMap.create<string>('late-claim', { url, commandTimeout: 100 }));
    const claim = '{late-claim}:f:k';
    await admin.set(claim, 'another process');
    const calls = await scriptCalls();
    const fetching = map.fetch('k', () => 'computed');
    // Its get(), then claims refused: it waits for the other process.
    await expect.poll(async () => (await scriptCalls()) - calls > 2).toBe(true);
    // The other process's claim goes, and the next claim this instance asks for is held back: Redis grants it later.
    await paused(async () => {
      await expect(fetching).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    }, [admin.del(claim)]);
    expect(await admin.exists(claim)).toBe(0);
  });

  it('a lock Redis granted but whose answer came after commandTimeout is given back, not held for its lease', async () => {
    const share = keep(await RedisShare.create('late-lock', { url, value: 0, commandTimeout: 100 }));
    const other = keep(await RedisShare.attach('late-lock', { url }));
    await loadLockScripts(other);
    await paused(async () => {
      await expect(share.lockAsync()).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    });
    expect(await other.tryLock()).toStrictEqual({ ownerDied: false });
    await other.unlock();
  });

  it('close() while lock() waits for its answer gives the lock back', async () => {
    const share = await RedisShare.create('closed-lock', { url, value: 0 });
    const other = keep(await RedisShare.attach('closed-lock', { url }));
    await loadLockScripts(other);
    const locking = share.lock().then(
      () => 'locked',
      (error: { code?: string }) => error.code,
    );
    // The client writes queued commands on the next turn of the event loop: lock()'s request is now on its way.
    await tick();
    await share.close();
    expect(await other.tryLock()).toStrictEqual({ ownerDied: false });
    await other.unlock();
    expect(await locking).toBe('ERR_CLOSED');
  });

  it('close() right after lock() gives the lock back after Redis granted it, even when Redis forgot the scripts', async () => {
    const share = await RedisShare.create('flushed-scripts', { url, value: 0 });
    const other = keep(await RedisShare.attach('flushed-scripts', { url }));
    // Redis knows the script that releases the lock, not the one that takes it (as after a restart).
    await other.lock();
    await admin.scriptFlush();
    await other.unlock();
    const locking = share.tryLock().catch(() => undefined);
    await tick();
    await share.close();
    await locking;
    expect(await other.tryLock()).toStrictEqual({ ownerDied: false });
    await other.unlock();
  });
});
