// mmap-share/session: SessionStore over both backends, sessions ending with their cookies by the map's TTL, touch()
// that keeps what another request wrote, and a full map that refuses a new session instead of logging a user out.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SessionData } from 'express-session';
import { describe, expect, it } from 'vitest';
import { type Cache, SharedMap } from '../dist/index.mjs';
import { SessionStore } from '../dist/adapters/session.mjs';
import { defer } from './helpers.js';
import { redisForFile } from './redis/fresh.js';

declare module 'express-session' {
  interface SessionData {
    n: number;
    user: string;
    cart: string[];
  }
}

const redis = redisForFile();
const backends = [
  {
    name: 'SharedMap',
    async map(): Promise<Cache<unknown>> {
      const map = SharedMap.create({ capacity: '1MB', eviction: 'none' });
      defer(() => map.close());
      return map;
    },
  },
  {
    name: 'RedisMap',
    map: async (): Promise<Cache<unknown>> => (await redis.map()).map,
  },
];

// A session as express-session hands it to a store, its cookie ending in `ms` (none: a browser-session cookie).
const session = (data: object, ms?: number) =>
  ({
    ...data,
    cookie: {
      originalMaxAge: ms ?? null,
      expires: ms === undefined ? null : new Date(Date.now() + ms),
      httpOnly: true,
      path: '/',
    },
  }) as unknown as SessionData;

// The store's callback form, as a promise of what it was called with.
const called = <T>(call: (callback: (error: unknown, result?: T) => void) => void) =>
  new Promise<[unknown, T | undefined]>((resolve) => call((error, result) => resolve([error, result])));

describe.each(backends)('SessionStore over a $name', (backend) => {
  it('sets, gets, counts, lists and destroys sessions, through callbacks and promises alike', async () => {
    const map = await backend.map();
    const store = new SessionStore(map);
    expect(await called((done) => store.set('a', session({ user: 'ann' }, 60_000), done))).toStrictEqual([
      null,
      undefined,
    ]);
    await store.set('b', session({ user: 'bob' }));
    await map.set('other', 'kept');
    const [error, got] = await called<SessionData | null>((done) => store.get('a', done));
    expect(error).toBeNull();
    expect(got).toMatchObject({ user: 'ann', cookie: { path: '/', httpOnly: true, expires: expect.any(Date) } });
    expect(await store.get('missing')).toBeNull();
    expect(await called<number>((done) => store.length(done))).toStrictEqual([null, 2]);
    expect(Object.keys((await store.all()) as Record<string, SessionData>).sort()).toStrictEqual(['a', 'b']);
    await store.destroy('a');
    expect(await store.get('a')).toBeNull();
    await store.clear();
    expect([await store.length(), await map.get('other')]).toStrictEqual([0, 'kept']);
  });

  it("ends a session with its cookie, by the map's TTL; one whose cookie has ended is destroyed, not stored", async () => {
    const map = await backend.map();
    const store = new SessionStore(map);
    await store.set('short', session({ n: 1 }, 80));
    await store.set('ended', session({ n: 2 }));
    await store.set('ended', session({ n: 3 }, -1));
    expect([(await store.get('short'))?.cookie, await map.has('sess:ended')]).toStrictEqual([
      expect.any(Object),
      false,
    ]);
    await sleep(130);
    expect([await store.get('short'), await map.has('sess:short')]).toStrictEqual([null, false]);
  });

  it('touch() moves the expiry, keeps what another request wrote meanwhile, and brings nothing back', async () => {
    const map = await backend.map();
    const [mine, theirs] = [new SessionStore(map), new SessionStore(map)];
    const read = session({ cart: ['book'] }, 100);
    await mine.set('s', read);
    await theirs.set('s', session({ cart: ['book', 'pen'] }, 100));
    await mine.touch('s', session({ cart: ['book'] }, 60_000));
    await sleep(150);
    const kept = await mine.get('s');
    expect(kept).toMatchObject({ cart: ['book', 'pen'] });
    expect(new Date(kept!.cookie.expires!).getTime()).toBeGreaterThan(Date.now() + 50_000);
    await theirs.destroy('s');
    await mine.touch('s', session({ cart: ['book'] }, 60_000));
    expect(await mine.get('s')).toBeNull();
  });

  it('gives an error of the map to the callback, or rejects with it; one called with neither ends nothing', async () => {
    const map = await backend.map();
    const store = new SessionStore(map);
    await map.close();
    const [error] = await called((done) => store.get('a', done));
    expect(error).toMatchObject({ code: 'ERR_CLOSED' });
    await expect(store.set('a', session({}))).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    // As express-session calls it for req.session.destroy() with no callback.
    const unhandled: unknown[] = [];
    const hear = (reason: unknown) => void unhandled.push(reason);
    process.on('unhandledRejection', hear);
    defer(() => process.off('unhandledRejection', hear));
    void store.destroy('a', undefined as unknown as () => void);
    await sleep(20);
    expect(unhandled).toStrictEqual([]);
  });

  it('keeps a session whose cookie has no expiry for ttl, or for ever with a ttl of 0', async () => {
    const map = await backend.map();
    const [forEver, short] = [
      new SessionStore(map, { ttl: 0, prefix: 'a:' }),
      new SessionStore(map, { ttl: 60, prefix: 'b:' }),
    ];
    await forEver.set('s', session({ n: 1 }));
    await short.set('s', session({ n: 2 }));
    await sleep(100);
    expect([(await forEver.get('s'))?.n, await short.get('s')]).toStrictEqual([1, null]);
  });
});

describe('SessionStore callbacks', () => {
  it('are called outside the promise: one that throws is an uncaught exception, as with the MemoryStore', () => {
    const script = `
      const { SharedMap } = require('mmap-share');
      const { SessionStore } = require('mmap-share/session');
      process.on('uncaughtException', (error) => console.log('uncaught: ' + error.message));
      process.on('unhandledRejection', (error) => console.log('unhandled: ' + error.message));
      const store = new SessionStore(SharedMap.create({ capacity: '1MB', eviction: 'none' }));
      let calls = 0;
      store.get('sid', () => { calls++; throw new Error('thrown by the callback'); });
      setTimeout(() => console.log('calls: ' + calls), 50);`;
    const out = execFileSync(process.execPath, ['-e', script], { cwd: join(__dirname, '..'), encoding: 'utf8' });
    expect(out).toBe('uncaught: thrown by the callback\ncalls: 1\n');
  });
});

describe('SessionStore and a full map', () => {
  it("refuses, by default, a map that evicts when full (a SharedMap's default)", () => {
    const map = SharedMap.create({ capacity: '1MB' });
    defer(() => map.close());
    expect(() => new SessionStore(map)).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_OPTION', message: expect.stringContaining("eviction: 'none'") }),
    );
  });

  // Sessions of about 1 KB in a map with room for fewer than 100.
  const big = (n: number) => session({ n, pad: 'x'.repeat(1000) }, 60_000);
  const fill = async (store: SessionStore) => {
    const refused: unknown[] = [];
    for (let n = 0; n < 100; n++) await store.set(`s${n}`, big(n)).catch((error: unknown) => refused.push(error));
    return refused;
  };

  it('over a map that never evicts, a session that does not fit fails with ERR_NO_SPACE and none is lost', async () => {
    const map = SharedMap.create({ capacity: 64 * 1024, eviction: 'none' });
    defer(() => map.close());
    const store = new SessionStore(map);
    const refused = await fill(store);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((error) => (error as { code?: string }).code === 'ERR_NO_SPACE')).toBe(true);
    const stored = 100 - refused.length;
    expect(await store.length()).toBe(stored);
    for (let n = 0; n < stored; n++) expect((await store.get(`s${n}`))?.n).toBe(n);
  });

  it('with allowEviction, a new session evicts the least recently used ones, as the map does', async () => {
    const map = SharedMap.create({ capacity: 64 * 1024 });
    defer(() => map.close());
    const store = new SessionStore(map, { allowEviction: true });
    expect(await fill(store)).toStrictEqual([]);
    expect([await store.get('s0'), (await store.get('s99'))?.n]).toStrictEqual([null, 99]);
    expect(map.stats().evictions).toBeGreaterThan(0);
  });

  it.each([
    ['a prefix that is not a string', { prefix: 1 }],
    ['a ttl that is not a number of ms', { ttl: -1 }],
    ['an allowEviction that is not a boolean', { allowEviction: 'yes' }],
    ['an unknown option', { allowEvictions: true }],
  ])('refuses %s with ERR_BAD_OPTION', (_, options) => {
    const map = SharedMap.create({ capacity: '1MB', eviction: 'none' });
    defer(() => map.close());
    expect(() => new SessionStore(map, options as object)).toThrow(expect.objectContaining({ code: 'ERR_BAD_OPTION' }));
  });
});
