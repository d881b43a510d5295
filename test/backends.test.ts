// One behavioural suite, run against both backends through the shared interfaces: code that awaits every call must
// behave the same on shared memory (MmapShare, SharedMap) and on Redis (RedisShare, RedisMap).
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Cache, type CodecOption, MmapShare, type Share, SharedMap } from '../dist/index.mjs';
import { RedisMap, RedisShare } from '../dist/redis/index.mjs';
import { RedisServer } from './redis/server.js';

interface Backend {
  name: string;
  share<T>(value?: T, codec?: CodecOption<T>): Promise<[Share<T>, Share<T>]>;
  reattach(share: Share<unknown>, codec: CodecOption<unknown>): Promise<Share<unknown>>;
  map<V>(ttl?: number): Promise<[Cache<V>, Cache<V>]>;
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
