// SharedMap in one process: the API, eviction, expiry, snapshots, iteration, stats, verify and repair.
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { MmapShare, SharedMap, type SharedMapOptions } from '../dist/index.mjs';
import { W_ENTRIES, W_FREE_COUNT } from '../dist/map/layout.js';
import { defer } from './helpers.js';

function map<V = unknown>(options: Partial<SharedMapOptions<V>> = {}): SharedMap<V> {
  const created = SharedMap.create<V>({ capacity: '1MB', ...options });
  defer(() => created.close());
  return created;
}

describe('SharedMap', () => {
  it('gets, sets, deletes and counts entries, each key on its own', () => {
    const m = map<{ id: number }>();
    expect(m.get('a')).toBeUndefined();
    expect(m.set('a', { id: 1 })).toBe(m);
    m.set('b', { id: 2 });
    expect(m.get('a')).toEqual({ id: 1 });
    expect(m.get('b')).toEqual({ id: 2 });
    expect(m.get('a')).not.toBe(m.get('a'));
    expect(m.size).toBe(2);
    expect(m.delete('a')).toBe(true);
    expect(m.delete('a')).toBe(false);
    expect(m.get('a')).toBeUndefined();
    expect(m.get('b')).toEqual({ id: 2 });
    expect(m.size).toBe(1);
    m.set('b', undefined as never);
    expect(m.has('b')).toBe(false);
    expect(m.verify()).toEqual({ ok: true, problems: [] });
  });

  it('keeps values of every kind v8 serializes, and keys of any UTF-8', () => {
    const m = map();
    const values: [string, unknown][] = [
      ['', 'empty key'],
      ['ключ', new Map([[1, new Set([2n])]])],
      ['🔑'.repeat(100), new Date(0)],
      ['k'.repeat(1024), new Uint8Array([1, 2, 3])],
      ['null', null],
      ['big', 'x'.repeat(100_000)],
    ];
    for (const [key, value] of values) m.set(key, value);
    for (const [key, value] of values) expect(m.get(key)).toStrictEqual(value);
    expect(new Set(m.keys())).toEqual(new Set(values.map(([key]) => key)));
  });

  it('updates one key atomically: fn sees the current value, undefined deletes, its expiry is kept', async () => {
    const m = map<number>();
    expect(m.update('n', (n = 0) => n + 1)).toBe(1);
    expect(m.update('n', (n = 0) => n + 1)).toBe(2);
    expect(m.update('n', () => undefined)).toBeUndefined();
    expect(m.has('n')).toBe(false);
    m.set('t', 1, { ttl: 80 });
    m.update('t', (n = 0) => n + 1);
    expect(m.get('t')).toBe(2);
    await sleep(120);
    expect(m.get('t')).toBeUndefined();
    // Calls on the same instance inside fn see the lock as held and do not wait for it.
    expect(m.update('outer', () => (m.set('inner', 5), (m.get('inner') ?? 0) + 1))).toBe(6);
    expect(() =>
      m.update('x', () => {
        throw new Error('no');
      }),
    ).toThrow('no');
    expect(m.has('x')).toBe(false);
  });

  it('expires entries by the map ttl and per set, for every reader at once, and reclaims their room', async () => {
    const m = map<string>({ ttl: 60 });
    const peer = SharedMap.attach<string>(m.handle);
    defer(() => peer.close());
    m.set('short', 'a');
    m.set('long', 'b', { ttl: 10_000 });
    m.set('never', 'c', { ttl: 0 });
    expect(peer.snapshot('short')).toBe('a');
    await sleep(100);
    expect([m.get('short'), peer.get('short'), peer.snapshot('short'), m.has('short')]).toEqual([
      undefined,
      undefined,
      undefined,
      false,
    ]);
    expect(m.get('long')).toBe('b');
    expect(m.get('never')).toBe('c');
    expect(m.size).toBe(3);
    expect(m.purgeStale()).toBe(1);
    expect(m.size).toBe(2);
    expect(m.stats().expirations).toBe(1);
    expect(m.verify().ok).toBe(true);
  });

  it('evicts the least recently used entries when full, and keeps those in use', () => {
    const m = map<string>({ capacity: 256 * 1024 });
    const value = 'v'.repeat(100);
    for (let i = 0; i < 100; i++) m.set(`hot-${i}`, value);
    for (let i = 0; i < 20_000; i++) {
      m.set(`cold-${i}`, value);
      // The hot keys are used between every two inserts.
      for (let j = 0; j < 100; j += 10) m.get(`hot-${(i + j) % 100}`);
    }
    const hot = Array.from({ length: 100 }, (_, i) => m.has(`hot-${i}`)).filter(Boolean).length;
    expect(hot).toBeGreaterThanOrEqual(95);
    expect(m.stats().evictions).toBeGreaterThan(15_000);
    expect(m.verify().ok).toBe(true);
  });

  it('holds capacity / 256 entries of a 10-byte key and a 127-byte value before it evicts anything', () => {
    const capacity = 4 * 1024 * 1024;
    const m = map<Uint8Array>({ capacity, codec: { name: 'raw', encode: (v) => v, decode: (b) => new Uint8Array(b) } });
    const value = new Uint8Array(127).fill(7);
    const count = Math.ceil(capacity / 256);
    for (let i = 0; i < count; i++) m.set(`key-${String(i).padStart(6, '0')}`, value);
    expect(m.stats().evictions).toBe(0);
    expect(m.size).toBe(count);
  });

  it("with eviction 'none', a set that does not fit fails with ERR_NO_SPACE and nothing is lost", () => {
    const m = map<string>({ capacity: 128 * 1024, maxEntries: 100, eviction: 'none' });
    for (let i = 0; i < 100; i++) m.set(`k${i}`, `v${i}`);
    expect(() => m.set('one-more', 'v')).toThrow(expect.objectContaining({ code: 'ERR_NO_SPACE' }));
    m.set('k5', 'replaced');
    expect(m.size).toBe(100);
    expect(m.get('k5')).toBe('replaced');
    expect(m.get('k99')).toBe('v99');
    const bytes = map<string>({ capacity: 64 * 1024, eviction: 'none' });
    let stored = 0;
    try {
      for (; ; stored++) bytes.set(`k${stored}`, 'x'.repeat(1000));
    } catch (error) {
      expect(error).toMatchObject({ code: 'ERR_NO_SPACE' });
    }
    expect(bytes.size).toBe(stored);
    expect(bytes.get('k0')).toBe('x'.repeat(1000));
    expect(bytes.verify().ok).toBe(true);
  });

  it('snapshot() decodes once per entry version, frozen, and sees changes by anyone', () => {
    const m = map<{ n: number; list: number[] }>();
    const peer = SharedMap.attach<{ n: number; list: number[] }>(m.handle);
    defer(() => peer.close());
    m.set('a', { n: 1, list: [1] });
    const first = peer.snapshot('a');
    expect(first).toEqual({ n: 1, list: [1] });
    expect(peer.snapshot('a')).toBe(first);
    expect(Object.isFrozen(first) && Object.isFrozen(first?.list)).toBe(true);
    m.set('a', { n: 2, list: [] });
    expect(peer.snapshot('a')).toEqual({ n: 2, list: [] });
    m.delete('a');
    expect(peer.snapshot('a')).toBeUndefined();
  });

  it('iterates keys, values and entries that hold values', () => {
    const m = map<number>();
    for (let i = 0; i < 500; i++) m.set(`k${i}`, i);
    m.delete('k7');
    const entries = new Map(m);
    expect(entries.size).toBe(499);
    expect(entries.get('k42')).toBe(42);
    expect([...m.values()].reduce((a, b) => a + b, 0)).toBe((499 * 500) / 2 - 7);
    expect([...m.keys()].sort()).toEqual([...entries.keys()].sort());
  });

  it('counts for the whole cluster when more instances than counter rows count at once', () => {
    const m = map<number>();
    const peers = Array.from({ length: 120 }, () => SharedMap.attach<number>(m.handle));
    for (const peer of peers) peer.get('absent');
    m.set('a', 1);
    for (const peer of peers) peer.get('a');
    expect(peers[119]!.stats()).toMatchObject({ hits: 120, misses: 120 });
    for (const peer of peers) peer.close();
    expect(m.stats()).toMatchObject({ hits: 120, misses: 120 });
  });

  it('keeps the counts of instances without a row when their process is killed', () => {
    const m = map<number>();
    const script = `
      const { SharedMap } = await import(${JSON.stringify(join(__dirname, '..', 'dist', 'index.mjs'))});
      const peers = Array.from({ length: 110 }, () => SharedMap.attach(process.argv[1]));
      for (const peer of peers) peer.get('absent');
      process.kill(process.pid, 'SIGKILL');`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script, m.handle]);
    expect(child.signal).toBe('SIGKILL');
    expect(m.stats()).toMatchObject({ hits: 0, misses: 110 });
  });

  it('lets a fetch() that joined another wait longer than setTimeout can count', async () => {
    const m = map<number>();
    let finish = () => {};
    const first = m.fetch('k', () => new Promise<number>((done) => (finish = () => done(5))));
    const long = m.fetch('k', () => 0, { timeout: 2 ** 31 });
    await sleep(50);
    finish();
    expect([await first, await long]).toStrictEqual([5, 5]);
  });

  it('counts hits, misses, sets and evictions for every instance and process together', () => {
    const m = map<number>();
    const peer = SharedMap.attach<number>(m.handle);
    m.set('a', 1);
    m.get('a');
    peer.get('a');
    peer.get('b');
    peer.snapshot('a');
    peer.has('b');
    peer.peek('a');
    expect(m.stats()).toMatchObject({ entries: 1, hits: 3, misses: 1, sets: 1 });
    peer.close();
    // A closed instance's counts stay in the totals.
    expect(m.stats()).toMatchObject({ hits: 3, misses: 1 });
    expect(m.stats().bytes).toBeGreaterThan(0);
    expect(m.stats().capacity).toBeLessThan(1024 * 1024);
  });

  it('version goes up on every change by anyone, and holds still otherwise', () => {
    const m = map();
    const start = m.version;
    m.set('a', 1);
    m.get('a');
    m.update('a', () => 2);
    m.delete('a');
    m.delete('a');
    expect(m.version - start).toBe(3);
    m.clear();
    expect(m.version - start).toBe(4);
  });

  it('fetch() computes a missing value once, shares it, and rethrows a failed compute to its own caller only', async () => {
    const m = map<string>();
    let computes = 0;
    const compute = async (key: string) => {
      computes++;
      await sleep(20);
      return `value of ${key}`;
    };
    const results = await Promise.all([m.fetch('k', compute), m.fetch('k', compute), m.fetch('k', compute)]);
    expect(results).toEqual(['value of k', 'value of k', 'value of k']);
    expect(computes).toBe(1);
    expect(await m.fetch('k', compute)).toBe('value of k');
    expect(computes).toBe(1);
    await expect(m.fetch('bad', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await m.fetch('bad', compute)).toBe('value of bad');
    expect(m.stats().pending).toBe(0);
    expect(m.verify().ok).toBe(true);
  });

  it('mirrors lru-cache names and types where the meaning is the same', () => {
    const ours = map<number>();
    const theirs = new LRUCache<string, number>({ max: 10 });
    for (const cache of [ours, theirs]) {
      cache.set('a', 1).set('b', 2);
      expect(cache.get('a')).toBe(1);
      expect(cache.has('b')).toBe(true);
      expect(cache.peek('b')).toBe(2);
      expect(cache.delete('b')).toBe(true);
      expect(cache.size).toBe(1);
      expect([...cache.entries()]).toEqual([['a', 1]]);
      cache.clear();
      expect(cache.size).toBe(0);
    }
    expectTypeOf(ours.get).returns.toEqualTypeOf<number | undefined>();
    expectTypeOf(() => ours.fetch('a', () => 1)).returns.toEqualTypeOf<Promise<number>>();
  });

  it('is refused by MmapShare.attach(), and an MmapShare region by SharedMap.attach()', () => {
    const m = map();
    expect(() => MmapShare.attach(m.handle)).toThrow(/is a SharedMap region, not an MmapShare region/);
    const share = MmapShare.create(64);
    defer(() => share.close());
    expect(() => SharedMap.attach(share.handle)).toThrow(/is an MmapShare region, not a SharedMap region/);
  });

  it('verify() reports damage, one line a problem', () => {
    const m = map<string>();
    for (let i = 0; i < 50; i++) m.set(`k${i}`, `v${i}`);
    expect(m.verify()).toEqual({ ok: true, problems: [] });
    // Through a descriptor of its own, as another process would: ENTRIES and FREE_COUNT lie.
    const [, pid, fd] = m.handle.split(':');
    const file = openSync(`/proc/${pid}/fd/${fd}`, 'r+');
    defer(() => closeSync(file));
    const word = (index: number, value: number) =>
      writeSync(file, Buffer.from(new Uint32Array([value]).buffer), 0, 4, index * 4);
    word(W_ENTRIES, 7);
    word(W_FREE_COUNT, 3);
    const { ok, problems } = m.verify();
    expect(ok).toBe(false);
    expect(problems).toEqual([
      `FREE_COUNT is 3, but ${m.stats().capacity / 64 - 50} were counted`,
      'ENTRIES is 7, but 50 were counted',
    ]);
  });
});
