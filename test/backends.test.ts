// One behavioural suite, run against both backends through the shared interfaces: code that awaits every call must
// behave the same on shared memory (MmapShare, SharedMap, SharedQueue) and on Redis (RedisShare, RedisMap,
// RedisQueue).
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type Cache,
  type CodecOption,
  MmapShare,
  type Queue,
  type Share,
  SharedMap,
  SharedQueue,
} from '../dist/index.mjs';
import { RedisMap, RedisQueue, RedisShare } from '../dist/redis/index.mjs';
import { RedisServer } from './redis/server.js';

interface Backend {
  name: string;
  share<T>(value?: T, codec?: CodecOption<T>): Promise<[Share<T>, Share<T>]>;
  reattach(share: Share<unknown>, codec: CodecOption<unknown>): Promise<Share<unknown>>;
  map<V>(ttl?: number): Promise<[Cache<V>, Cache<V>]>;
  queue<T>(capacity: number, maxMessageSize?: number): Promise<[Queue<T>, Queue<T>]>;
}

let server: RedisServer;
let opened: { close(): unknown }[] = [];
let next = 0;
const keep = <C extends { close(): unknown }>(instance: C): C => (opened.push(instance), instance);

beforeAll(async () => {
  server = await RedisServer.start();
});
afterAll(() => server.stop());
afterEach(async () => {
  await Promise.all(opened.map((instance) => instance.close()));
  opened = [];
});

const handles = new WeakMap<object, string>();
const backends: Backend[] = [
  {
    name: 'shared memory',
    async share<T>(value?: T, codec?: CodecOption<T>) {
      const share = keep(MmapShare.create<T>(4096, value === undefined ? { codec } : { value, codec }));
      handles.set(share, share.handle);
      return [share, keep(MmapShare.attach<T>(share.handle))];
    },
    async reattach(share, codec) {
      return keep(MmapShare.attach(handles.get(share)!, { codec }));
    },
    async map<V>(ttl?: number): Promise<[Cache<V>, Cache<V>]> {
      const map = keep(SharedMap.create<V>({ capacity: '1MB', ttl }));
      return [map, keep(SharedMap.attach<V>(map.handle))];
    },
    async queue<T>(capacity: number, maxMessageSize?: number): Promise<[Queue<T>, Queue<T>]> {
      const queue = keep(SharedQueue.create<T>({ capacity, maxMessageSize }));
      return [queue, keep(SharedQueue.attach<T>(queue.handle))];
    },
  },
  {
    name: 'Redis',
    async share<T>(value?: T, codec?: CodecOption<T>) {
      const key = `share-${next++}`;
      const options = { url: server.url, codec, ...(value === undefined ? {} : { value }) };
      const share = keep(await RedisShare.create<T>(key, options));
      handles.set(share, key);
      return [share, keep(await RedisShare.attach<T>(key, { url: server.url }))];
    },
    async reattach(share, codec) {
      return keep(await RedisShare.attach(handles.get(share)!, { url: server.url, codec }));
    },
    async map<V>(ttl?: number) {
      const name = `map-${next++}`;
      const map = keep(await RedisMap.create<V>(name, { url: server.url, ttl }));
      return [map, keep(await RedisMap.attach<V>(name, { url: server.url }))];
    },
    async queue<T>(capacity: number, maxMessageSize?: number) {
      const name = `queue-${next++}`;
      const queue = keep(await RedisQueue.create<T>(name, { url: server.url, capacity, maxMessageSize }));
      return [queue, keep(await RedisQueue.attach<T>(name, { url: server.url }))];
    },
  },
];

async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  for (let waited = 0; !(await check()); waited += 5) {
    if (waited > 5000) throw new Error('the condition never came true');
    await sleep(5);
  }
}

describe.each(backends)('$name: one shared value', (backend) => {
  it('reads undefined before the first set, then what another instance set, with its types', async () => {
    const [share, other] = await backend.share<{ when: Date; tags: Map<string, number> }>();
    expect(await share.get()).toBeUndefined();
    expect(await share.version).toBe(0);
    const value = { when: new Date('2026-11-23T10:00:00Z'), tags: new Map([['a', 1]]) };
    await share.set(value);
    expect(await other.get()).toStrictEqual(value);
    expect(await other.version).toBe(1);
  });

  it('updates from the current value and returns the new one', async () => {
    const [share, other] = await backend.share<number>(1);
    expect(await other.update((n) => (n ?? 0) + 41)).toBe(42);
    expect(await share.get()).toBe(42);
    expect(await share.version).toBe(2);
  });

  it('excludes another instance while locked, and lets it in after unlock', async () => {
    const [share, other] = await backend.share<string>('before');
    expect(await share.lock()).toStrictEqual({ ownerDied: false });
    expect(await other.tryLock()).toBeUndefined();
    await share.set('holder');
    expect(await other.get()).toBe('holder');
    await share.unlock();
    expect(await other.tryLock()).toStrictEqual({ ownerDied: false });
    await other.set('other');
    await other.unlock();
    expect(await share.get()).toBe('other');
  });

  it('waits in lockAsync() until the holder unlocks, and times out with ERR_LOCK_TIMEOUT', async () => {
    const [share, other] = await backend.share<number>(0);
    await share.lock();
    await expect(other.lockAsync({ timeout: 30 })).rejects.toMatchObject({ code: 'ERR_LOCK_TIMEOUT' });
    const waiting = other.lockAsync();
    await sleep(20);
    await share.unlock();
    expect(await waiting).toStrictEqual({ ownerDied: false });
    await other.unlock();
  });

  it('tells a watcher and a changes() iterator of a change made by another instance', async () => {
    const [share, other] = await backend.share<string>('first');
    const seen: [string | undefined, number][] = [];
    const stop = share.watch((value, version) => seen.push([value, version]), { interval: 1 });
    const iterator = share.changes({ interval: 1 });
    const nextChange = iterator.next();
    await sleep(50);
    await other.set('second');
    expect((await nextChange).value).toBe('second');
    await until(() => seen.length > 0);
    expect(seen).toStrictEqual([['second', 2]]);
    stop();
    await iterator.return(undefined);
  });

  it('gives the documented codes, and keeps the value', async () => {
    const [share, other] = await backend.share<unknown>('kept');
    await expect(async () => share.unlock()).rejects.toMatchObject({ code: 'ERR_NOT_LOCKED' });
    await share.lock();
    await expect(async () => share.lock()).rejects.toMatchObject({ code: 'ERR_ALREADY_LOCKED' });
    await share.unlock();
    await expect(async () => share.set(() => 1)).rejects.toMatchObject({ code: 'ERR_NOT_SERIALIZABLE' });
    await expect(async () => backend.reattach(share, 'msgpack')).rejects.toMatchObject({ code: 'ERR_CODEC_MISMATCH' });
    await other.close();
    await expect(async () => other.get()).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    expect(await share.get()).toBe('kept');
    expect(await share.version).toBe(1);
  });

  it('stores msgpack bytes that read back the same', async () => {
    const [, other] = await backend.share<{ n: bigint }>({ n: 2n ** 70n }, 'msgpack');
    expect(await other.get()).toStrictEqual({ n: 2n ** 70n });
  });
});

describe.each(backends)('$name: a map', (backend) => {
  it('gets, sets, deletes and counts, across instances', async () => {
    const [map, other] = await backend.map<{ n: number }>();
    expect(await map.get('a')).toBeUndefined();
    await map.set('a', { n: 1 });
    expect(await other.get('a')).toStrictEqual({ n: 1 });
    expect(await other.has('a')).toBe(true);
    expect(await other.peek('missing')).toBeUndefined();
    expect(await other.delete('a')).toBe(true);
    expect(await other.delete('a')).toBe(false);
    expect(await map.has('a')).toBe(false);
    expect(await map.stats()).toMatchObject({ entries: 0, hits: 1, misses: 1, sets: 1, deletes: 1 });
  });

  it('counts a fetch() given the value another computation made as coalesced, not as a miss', async () => {
    const [map, other] = await backend.map<number>();
    let computed = 0;
    let finish = () => {};
    const started = new Promise<void>((resolve) => {
      const compute = () => (computed++, resolve(), new Promise<number>((done) => (finish = () => done(7))));
      void map.fetch('k', compute);
    });
    await started;
    const compute = () => (computed++, 0);
    const calls = Array.from({ length: 49 }, (_, i) => (i % 2 ? map : other).fetch('k', compute));
    await sleep(100);
    finish();
    expect(await Promise.all(calls)).toStrictEqual(Array<number>(49).fill(7));
    expect(await map.fetch('k', compute)).toBe(7);
    expect(computed).toBe(1);
    expect(await map.stats()).toMatchObject({ hits: 1, misses: 1, coalesced: 49 });
    expect(await other.fetch('gone', () => undefined)).toBeUndefined();
    expect(await other.stats()).toMatchObject({ hits: 1, misses: 2, coalesced: 49 });
  });

  it('counts one fetch() once: a call that gave up waiting is not counted, the call that got the value is', async () => {
    const [map, other] = await backend.map<number>();
    let finish = () => {};
    const computing = map.fetch('k', () => new Promise<number>((done) => (finish = () => done(7))));
    await until(async () => (await other.peek('k')) === undefined && (await map.stats()).misses === 1);
    const gaveUp = other.fetch('k', () => 0, { timeout: 50 });
    const joined = other.fetch('k', () => 0);
    await expect(gaveUp).rejects.toMatchObject({ code: 'ERR_LOCK_TIMEOUT' });
    finish();
    expect([await computing, await joined]).toStrictEqual([7, 7]);
    expect(await other.stats()).toMatchObject({ hits: 0, misses: 1, coalesced: 1 });
  });

  it('updates atomically, and an update to undefined deletes', async () => {
    const [map, other] = await backend.map<number>();
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? map : other).update('n', (n) => (n ?? 0) + 1)));
    expect(await map.get('n')).toBe(20);
    expect(await other.update('n', () => undefined)).toBeUndefined();
    expect(await map.has('n')).toBe(false);
  });

  it('expires an entry after its ttl, and after the map default', async () => {
    const [map] = await backend.map<string>(60);
    await map.set('short', 'x', { ttl: 30 });
    await map.set('default', 'y');
    await map.set('kept', 'z', { ttl: 0 });
    expect(await map.get('short')).toBe('x');
    await sleep(120);
    expect([await map.get('short'), await map.get('default'), await map.get('kept')]).toStrictEqual([
      undefined,
      undefined,
      'z',
    ]);
  });

  it('update() with keepTtl gives its ttl to a new entry only; one kept for ever stays so; a ttl under 1 ms expires', async () => {
    const [map, other] = await backend.map<number>(60);
    await map.set('old', 1, { ttl: 60_000 });
    await map.set('forever', 1, { ttl: 0 });
    await other.update('old', (n) => (n ?? 0) + 1, { ttl: 30, keepTtl: true });
    await other.update('new', (n) => (n ?? 0) + 1, { ttl: 30, keepTtl: true });
    await other.update('forever', (n) => (n ?? 0) + 1);
    await map.set('tiny', 1, { ttl: 0.4 });
    await sleep(120);
    expect([await map.get('old'), await map.has('new'), await map.get('forever'), await map.has('tiny')]).toStrictEqual(
      [2, false, 2, false],
    );
    await expect(
      (async () => map.update('old', (n) => n, { keepTtl: 1 as unknown as boolean }))(),
    ).rejects.toMatchObject({
      code: 'ERR_BAD_OPTION',
    });
  });

  it('update() runs fn again, on nothing, when the entry expired while fn ran', async () => {
    const [map] = await backend.map<number>();
    await map.set('e', 1, { ttl: 30 });
    const seen: (number | undefined)[] = [];
    const returned = await map.update('e', (n) => {
      seen.push(n);
      for (const until = Date.now() + (n === undefined ? 0 : 60); Date.now() < until;);
      return (n ?? 0) + 10;
    });
    expect([seen, returned, await map.get('e')]).toStrictEqual([[1, undefined], 10, 10]);
  });

  it('a default ttl under 1 ms expires entries; a ttl past 2^53 - 1 ms is ERR_BAD_OPTION, with nothing written', async () => {
    const [tiny] = await backend.map<number>(0.4);
    await tiny.set('a', 1);
    await sleep(20);
    expect(await tiny.has('a')).toBe(false);
    await expect((async () => tiny.set('b', 1, { ttl: 1e21 }))()).rejects.toMatchObject({ code: 'ERR_BAD_OPTION' });
    expect(await tiny.has('b')).toBe(false);
  });

  it('update() without a ttl keeps the expiry time of an entry, and gives a new entry the map default', async () => {
    const [map, other] = await backend.map<number>(10_000);
    await map.set('n', 1, { ttl: 80 });
    await other.update('n', (n) => (n ?? 0) + 1);
    await other.update('fresh', () => 1);
    await sleep(160);
    expect([await map.get('n'), await map.get('fresh')]).toStrictEqual([undefined, 1]);
    await map.update('fresh', (n) => (n ?? 0) + 1, { ttl: 40 });
    await sleep(100);
    expect(await map.has('fresh')).toBe(false);
  });

  it('fetch() computes a missing value once for every caller of both instances', async () => {
    const [map, other] = await backend.map<string>();
    let computed = 0;
    const compute = async (key: string) => {
      computed++;
      await sleep(50);
      return `value of ${key}`;
    };
    const results = await Promise.all([map, other, map, other].map((m) => m.fetch('k', compute)));
    expect(results).toStrictEqual(Array(4).fill('value of k'));
    expect(computed).toBe(1);
    expect(await other.fetch('k', compute)).toBe('value of k');
    expect(computed).toBe(1);
  });

  it('lists keys, counts them, and clears', async () => {
    const [map, other] = await backend.map<number>();
    for (let i = 0; i < 5; i++) await map.set(`key-${i}`, i);
    const keys: string[] = [];
    for await (const key of other.keys()) keys.push(key);
    expect(keys.sort()).toStrictEqual(['key-0', 'key-1', 'key-2', 'key-3', 'key-4']);
    expect(await other.size).toBe(5);
    const before = await other.version;
    await other.clear();
    expect(await map.size).toBe(0);
    expect(await map.version).toBeGreaterThan(before);
  });

  it('refuses a bad key and a bad ttl with their codes, and keeps what is stored', async () => {
    const [map] = await backend.map<string>();
    await map.set('kept', 'v');
    await expect(async () => map.set(42 as unknown as string, 'x')).rejects.toMatchObject({ code: 'ERR_BAD_KEY' });
    await expect(async () => map.get('\ud800')).rejects.toMatchObject({ code: 'ERR_BAD_KEY' });
    await expect(async () => map.set('kept', 'x', { ttl: -1 })).rejects.toMatchObject({ code: 'ERR_BAD_OPTION' });
    expect(await map.get('kept')).toBe('v');
  });
});

describe.each(backends)('$name: a queue', (backend) => {
  it('gives messages back oldest first, once each, with their types, across instances', async () => {
    const [queue, other] = await backend.queue<{ n: number; when: Date } | undefined>(4096);
    for (let n = 0; n < 5; n++) expect(await queue.push({ n, when: new Date(n) })).toBe(true);
    expect(await queue.push(undefined)).toBe(true);
    expect(await other.size).toBe(6);
    expect(await other.shift()).toStrictEqual({ n: 0, when: new Date(0) });
    expect(await other.shiftMany(2)).toStrictEqual([
      { n: 1, when: new Date(1) },
      { n: 2, when: new Date(2) },
    ]);
    expect(await queue.shiftMany()).toStrictEqual([
      { n: 3, when: new Date(3) },
      { n: 4, when: new Date(4) },
      undefined,
    ]);
    // A message may be undefined: take() tells it from none.
    await other.push(undefined);
    expect(await queue.take({ timeout: 1000 })).toBeUndefined();
    expect(await queue.shift()).toBeUndefined();
    expect(await queue.shiftMany(0)).toStrictEqual([]);
    expect(await other.stats()).toMatchObject({ messages: 0, bytes: 0, pushed: 7, taken: 7, repairs: 0 });
  });

  it('refuses a push with no room, and makes room as messages are taken', async () => {
    const [queue, other] = await backend.queue<string>(1024, 100);
    let pushed = 0;
    while (await queue.push(`message ${pushed}`)) pushed++;
    expect(pushed).toBeGreaterThan(10);
    const full = await other.stats();
    expect(full).toMatchObject({ messages: pushed, pushed, taken: 0, capacity: 1024 });
    expect(full.bytes).toBeGreaterThan(1024 - 100);
    expect(await other.shift()).toBe('message 0');
    expect(await queue.push('one more')).toBe(true);
    expect((await other.shiftMany()).at(-1)).toBe('one more');
  });

  it('take() waits for another instance to push; a timed-out or aborted take() takes nothing', async () => {
    const [queue, other] = await backend.queue<string>(4096);
    await expect(queue.take({ timeout: 30 })).rejects.toMatchObject({ code: 'ERR_LOCK_TIMEOUT' });
    const controller = new AbortController();
    const aborted = queue.take({ signal: controller.signal });
    controller.abort();
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    const waiting = queue.take({ timeout: 5000 });
    await sleep(50);
    await other.push('hello');
    expect(await waiting).toBe('hello');
    await other.push('kept');
    expect(await other.stats()).toMatchObject({ messages: 1, pushed: 2, taken: 1 });
    expect(await queue.shift()).toBe('kept');
  });

  it('pushAsync() waits for room that another instance makes; a timed-out one stores nothing', async () => {
    const [queue, other] = await backend.queue<string>(1024, 600);
    expect(await queue.push('x'.repeat(500))).toBe(true);
    await expect(queue.pushAsync('y'.repeat(590), { timeout: 30 })).rejects.toMatchObject({ code: 'ERR_LOCK_TIMEOUT' });
    expect(await queue.size).toBe(1);
    const waiting = queue.pushAsync('z'.repeat(590), { timeout: 5000 });
    await sleep(50);
    expect(await other.shift()).toBe('x'.repeat(500));
    await waiting;
    expect(await other.shiftMany()).toStrictEqual(['z'.repeat(590)]);
  });

  it('for await takes messages as they come and ends on close(), which ends a pending take() with ERR_CLOSED', async () => {
    const [queue, other] = await backend.queue<number>(4096);
    const seen: number[] = [];
    const reading = (async () => {
      for await (const n of other) seen.push(n);
    })();
    for (let n = 0; n < 20; n++) await queue.push(n);
    await until(() => seen.length === 20);
    await other.close();
    await reading;
    expect(seen).toStrictEqual(Array.from({ length: 20 }, (_, n) => n));
    const pending = queue.take();
    await queue.close();
    await expect(pending).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await expect(async () => queue.push(1)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    expect(queue.closed).toBe(true);
  });

  it('takes every message of 3 pushing instances once, in order per producer, in 2 taking instances', async () => {
    const [queue, other] = await backend.queue<[number, number]>(2048);
    const pushers = [queue, other, queue].map(async (q, producer) => {
      for (let seq = 0; seq < 200; seq++) await q.pushAsync([producer, seq], { timeout: 10_000 });
    });
    const taken: [number, number][][] = [[], []];
    const takers = [queue, other].map(async (q, i) => {
      while (taken[0]!.length + taken[1]!.length < 600) {
        const got = await q.take({ timeout: 50 }).catch((error) => {
          if (error.code !== 'ERR_LOCK_TIMEOUT') throw error;
        });
        if (got !== undefined) taken[i]!.push(got);
      }
    });
    await Promise.all([...pushers, ...takers]);
    const all = taken.flat().map(([p, s]) => p * 1000 + s);
    expect(new Set(all).size).toBe(600);
    for (const mine of taken) {
      for (const producer of [0, 1, 2]) {
        const seqs = mine.filter(([p]) => p === producer).map(([, s]) => s);
        expect(seqs).toStrictEqual([...seqs].sort((a, b) => a - b));
      }
    }
    expect(await queue.stats()).toMatchObject({ messages: 0, pushed: 600, taken: 600 });
  });

  it('refuses what it cannot store with its code, and keeps what is queued', async () => {
    const [queue] = await backend.queue<unknown>(4096, 100);
    await queue.push('kept');
    await expect(async () => queue.push('x'.repeat(200))).rejects.toMatchObject({ code: 'ERR_VALUE_TOO_LARGE' });
    await expect(async () => queue.push(() => 1)).rejects.toMatchObject({ code: 'ERR_NOT_SERIALIZABLE' });
    await expect(async () => queue.shiftMany(-1)).rejects.toMatchObject({ code: 'ERR_BAD_OPTION' });
    await expect(async () => queue.take({ timeout: -1 })).rejects.toMatchObject({ code: 'ERR_BAD_OPTION' });
    await expect(async () => queue.take({ signal: 5 } as never)).rejects.toMatchObject({ code: 'ERR_BAD_OPTION' });
    await expect(async () => queue.pushAsync(1, { signal: {} } as never)).rejects.toMatchObject({
      code: 'ERR_BAD_OPTION',
    });
    await expect(async () => queue.take({ tiemout: 5 } as never)).rejects.toMatchObject({ code: 'ERR_BAD_OPTION' });
    expect(await queue.stats()).toMatchObject({ messages: 1, pushed: 1 });
    expect(await queue.shift()).toBe('kept');
  });
});
