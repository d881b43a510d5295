// mmap-share/rate-limit: RateLimitStore over both backends, counting exactly across processes, its windows ending
// by the map's TTL, and express-rate-limit's own checks finding nothing to say.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import express from 'express';
import { rateLimit } from 'express-rate-limit';
import { rateLimit as rateLimit7 } from 'express-rate-limit-7';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { type Cache, SharedMap } from '../dist/index.mjs';
import { RateLimitStore } from '../dist/adapters/rate-limit.mjs';
import { defer, Peer, request } from './helpers.js';
import { redisForFile } from './redis/fresh.js';

const redis = redisForFile();
let next = 0;
// A fresh map of each backend, closed after the test; `attach` is what a peer process is given to reach it.
const backends = [
  {
    name: 'SharedMap',
    async map() {
      const name = `limits_${process.pid}_${next++}`;
      const map = SharedMap.create({ name, capacity: '1MB', codec: 'msgpack' });
      defer(() => map.close());
      return { map: map as Cache<unknown>, attach: { name } };
    },
  },
  {
    name: 'RedisMap',
    async map() {
      const { map, name } = await redis.map();
      return { map: map as Cache<unknown>, attach: { name, url: redis.url } };
    },
  },
];

describe.each(backends)('RateLimitStore over a $name', (backend) => {
  const storeOf = (map: Cache<unknown>, windowMs: number, prefix?: string) => {
    const store = new RateLimitStore(map, prefix === undefined ? {} : { prefix });
    store.init({ windowMs });
    return store;
  };

  it('counts hits in a window that ends windowMs after its first, and forgets a key on resetKey()', async () => {
    const { map } = await backend.map();
    const store = storeOf(map, 60_000);
    const before = Date.now();
    const first = await store.increment('client');
    expect(first.totalHits).toBe(1);
    expect(first.resetTime!.getTime()).toBeGreaterThanOrEqual(before + 60_000);
    expect(first.resetTime!.getTime()).toBeLessThanOrEqual(Date.now() + 60_000);
    expect((await store.increment('client')).totalHits).toBe(2);
    expect(await store.get('client')).toStrictEqual({ totalHits: 2, resetTime: first.resetTime });
    await store.decrement('client');
    await store.decrement('client');
    await store.decrement('client');
    expect(await store.get('client')).toStrictEqual({ totalHits: 0, resetTime: first.resetTime });
    expect((await store.increment('client')).totalHits).toBe(1);
    await store.resetKey('client');
    expect(await store.get('client')).toBeUndefined();
    await store.decrement('never seen');
    expect(await map.has('rl:never seen')).toBe(false);
  });

  it("ends a window by the map's TTL at its resetTime, which later hits do not move, then opens a new one", async () => {
    const { map } = await backend.map();
    const store = storeOf(map, 200);
    const { resetTime } = await store.increment('client');
    await sleep(100);
    expect(await store.increment('client')).toStrictEqual({ totalHits: 2, resetTime });
    await sleep(resetTime!.getTime() - Date.now() + 30);
    expect(await map.has('rl:client')).toBe(false);
    expect(await store.get('client')).toBeUndefined();
    const fresh = await store.increment('client');
    expect(fresh.totalHits).toBe(1);
    expect(fresh.resetTime!.getTime()).toBeGreaterThan(resetTime!.getTime());
  });

  it("keeps a window open while the map holds it, whatever this process's clock says", async () => {
    const { map } = await backend.map();
    const store = storeOf(map, 60_000);
    const { resetTime } = await store.increment('client');
    // This machine's clock runs a window and more ahead of the map's: over a RedisMap, of Redis's.
    if (backend.name === 'RedisMap') {
      const now = Date.now.bind(Date);
      defer(() => spy.mockRestore());
      const spy = vi.spyOn(Date, 'now').mockImplementation(() => now() + 61_000);
    }
    expect(await store.increment('client')).toStrictEqual({ totalHits: 2, resetTime });
  });

  it("counts a hit into a window another process opened while it looked, leaving that window's expiry", async () => {
    const { map } = await backend.map();
    const other = storeOf(map, 150);
    // This store's first look finds no window; before it looks again, the other store opens one, and time passes.
    let raced = false;
    const racing = new Proxy(map, {
      get: (target, name) =>
        name !== 'update'
          ? Reflect.get(target, name)
          : async (...args: Parameters<Cache<unknown>['update']>) => {
              const result = await target.update(...args);
              if (!raced && result === undefined) {
                raced = true;
                await other.increment('client');
                await sleep(60);
              }
              return result;
            },
    });
    const opened = Date.now();
    expect((await storeOf(racing, 150).increment('client')).totalHits).toBe(2);
    await sleep(opened + 175 - Date.now());
    expect(await map.has('rl:client')).toBe(false);
  });

  it('resetAll() forgets the clients of its own prefix only', async () => {
    const { map } = await backend.map();
    const [a, b] = [storeOf(map, 60_000, 'a:'), storeOf(map, 60_000, 'b:')];
    await Promise.all([a.increment('x'), a.increment('y'), b.increment('x'), map.set('other', 1)]);
    await a.resetAll();
    expect([await a.get('x'), await a.get('y'), (await b.get('x'))?.totalHits, await map.get('other')]).toStrictEqual([
      undefined,
      undefined,
      1,
      1,
    ]);
  });

  it('4 processes incrementing one key together are given each count from 1 to the total once', async () => {
    const { map, attach } = await backend.map();
    const count = backend.name === 'SharedMap' ? 500 : 100;
    const peers = Array.from({ length: 4 }, () => new Peer({}, 'adapter-peer.mjs'));
    const seen = await Promise.all(
      peers.map((peer) => peer.call<number[]>('increments', { ...attach, key: 'client', count, windowMs: 60_000 })),
    );
    expect(seen.flat().sort((x, y) => x - y)).toStrictEqual(Array.from({ length: 4 * count }, (_, i) => i + 1));
    expect((await storeOf(map, 60_000).get('client'))?.totalHits).toBe(4 * count);
  });
});

describe.each([
  ['8', rateLimit],
  ['7', rateLimit7 as unknown as typeof rateLimit],
])('RateLimitStore with express-rate-limit %s', (_, rateLimit) => {
  // An app with one limiter on `store`, express-rate-limit's validations on; what they log, after a few requests.
  async function logged(store: RateLimitStore, second?: RateLimitStore) {
    // Where both majors log their validations when given no logger.
    const said: string[] = [];
    for (const level of ['error', 'warn'] as const) {
      const spy = vi.spyOn(console, level).mockImplementation((error: unknown) => {
        said.push((error as { code?: string }).code ?? String(error));
      });
      defer(() => spy.mockRestore());
    }
    const app = express();
    const limit = { windowMs: 60_000, limit: 2, standardHeaders: 'draft-7' as const, legacyHeaders: false };
    app.use('/a', rateLimit({ ...limit, store }));
    if (second) app.use('/b', rateLimit({ ...limit, store: second }));
    app.get(['/a', '/b'], (_, res) => void res.send('ok'));
    const listener = app.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    defer(() => listener.close());
    const url = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`;
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await request(`${url}/a`)).status);
    return { said, statuses };
  }

  it('passes its validations: nothing is logged, and the third request of a limit of 2 is refused', async () => {
    const map = SharedMap.create({ capacity: '1MB' });
    defer(() => map.close());
    expect(await logged(new RateLimitStore(map))).toStrictEqual({ said: [], statuses: [200, 200, 429] });
  });

  it('is told, as every store is, when one store serves two limiters', async () => {
    const map = SharedMap.create({ capacity: '1MB' });
    defer(() => map.close());
    const store = new RateLimitStore(map);
    expect((await logged(store, store)).said).toContain('ERR_ERL_STORE_REUSE');
  });
});

describe('RateLimitStore refuses', () => {
  const map = SharedMap.create({ capacity: '1MB' });
  afterAll(() => map.close());
  it.each([
    ['a map that is not one', () => new RateLimitStore({} as Cache<unknown>)],
    ['a prefix that is not a string', () => new RateLimitStore(map, { prefix: 1 as unknown as string })],
    ['an unknown option', () => new RateLimitStore(map, { prefx: 'x' } as object)],
    ['a windowMs of 0', () => new RateLimitStore(map).init({ windowMs: 0 })],
    ['a windowMs that is not a number', () => new RateLimitStore(map).init({ windowMs: NaN })],
  ])('%s, with ERR_BAD_OPTION', (_, make) => {
    expect(make).toThrow(expect.objectContaining({ code: 'ERR_BAD_OPTION' }));
  });
});
