// The typed public surface of both entries, checked against the declarations in dist/ that users get: these
// assertions are checked by `tsc -p tsconfig.json` (vitest only runs them as no-ops), so the types cannot drift.
import { createCache } from 'cache-manager';
import { rateLimit, type Store as RateLimitStoreType } from 'express-rate-limit';
import session, { type SessionData, type Store as SessionStoreType } from 'express-session';
import Keyv from 'keyv';
import Keyv6 from 'keyv6';
import { describe, expectTypeOf, it } from 'vitest';
import type * as cjs from '../dist/index.js';
import {
  type Awaitable,
  type Cache,
  type CacheStats,
  type ChangesOptions,
  type Compute,
  type ErrorCode,
  type FetchOptions,
  type LockAsyncOptions,
  type LockInfo,
  type MapStats,
  MmapShare,
  MmapShareError,
  type SetOptions,
  type Share,
  type UpdateOptions,
  SharedMap,
  type WatchOptions,
} from '../dist/index.mjs';
import type * as keyvCjs from '../dist/adapters/keyv.js';
import { KeyvStore } from '../dist/adapters/keyv.mjs';
import type * as rateLimitCjs from '../dist/adapters/rate-limit.js';
import { RateLimitStore } from '../dist/adapters/rate-limit.mjs';
import type * as sessionCjs from '../dist/adapters/session.js';
import { SessionStore } from '../dist/adapters/session.mjs';
import type * as redisCjs from '../dist/redis/index.js';
import * as redis from '../dist/redis/index.mjs';

describe('types of mmap-share', () => {
  it('the classes implement Share<T> and Cache<V>', () => {
    expectTypeOf<MmapShare<number>>().toExtend<Share<number>>();
    expectTypeOf<SharedMap<number>>().toExtend<Cache<number>>();
    expectTypeOf((size: number) => MmapShare.create<number>(size)).returns.toEqualTypeOf<MmapShare<number>>();
    expectTypeOf(SharedMap.create<number>).returns.toEqualTypeOf<SharedMap<number>>();
  });

  it('option types', () => {
    expectTypeOf<SetOptions>().toEqualTypeOf<{ ttl?: number }>();
    expectTypeOf<FetchOptions>().toEqualTypeOf<{ ttl?: number; timeout?: number; signal?: AbortSignal }>();
    expectTypeOf<LockAsyncOptions>().toEqualTypeOf<{ timeout?: number; signal?: AbortSignal }>();
    expectTypeOf<WatchOptions>().toEqualTypeOf<{ interval?: number }>();
    expectTypeOf<ChangesOptions>().toEqualTypeOf<{ interval?: number; signal?: AbortSignal }>();
    expectTypeOf<SharedMap<number>['set']>().parameter(2).toEqualTypeOf<SetOptions | undefined>();
    expectTypeOf<UpdateOptions>().toEqualTypeOf<{ ttl?: number; keepTtl?: boolean }>();
    expectTypeOf<SharedMap<number>['update']>().parameter(2).toEqualTypeOf<UpdateOptions | undefined>();
    expectTypeOf<SharedMap<number>['fetch']>().parameter(2).toEqualTypeOf<FetchOptions | undefined>();
    expectTypeOf<MmapShare<number>['lockAsync']>().parameter(0).toEqualTypeOf<LockAsyncOptions | undefined>();
    expectTypeOf<MmapShare<number>['watch']>().parameter(1).toEqualTypeOf<WatchOptions | undefined>();
    expectTypeOf<MmapShare<number>['changes']>().parameter(0).toEqualTypeOf<ChangesOptions | undefined>();
  });

  it('stats: MapStats is CacheStats and more', () => {
    expectTypeOf<MapStats>().toExtend<CacheStats>();
    expectTypeOf<CacheStats>().toEqualTypeOf<{
      entries: number;
      hits: number;
      misses: number;
      coalesced: number;
      sets: number;
      deletes: number;
    }>();
    expectTypeOf<SharedMap['stats']>().returns.toEqualTypeOf<MapStats>();
  });

  it('ErrorCode is a union of string literals, and MmapShareError.code is one', () => {
    expectTypeOf<string>().not.toExtend<ErrorCode>();
    expectTypeOf<ErrorCode>().toExtend<`ERR_${string}`>();
    expectTypeOf<'ERR_LOCK_TIMEOUT' | 'ERR_CLOSED' | 'ERR_BAD_OPTION'>().toExtend<ErrorCode>();
    expectTypeOf<MmapShareError['code']>().toEqualTypeOf<ErrorCode>();
    expectTypeOf<MmapShareError>().toExtend<Error>();
  });

  it('Compute<V> is the fetch() callback', () => {
    expectTypeOf<Compute<number>>().toEqualTypeOf<
      (key: string, options: { signal?: AbortSignal }) => number | Promise<number>
    >();
    expectTypeOf((map: SharedMap<number>, compute: Compute<number>) => map.fetch('k', compute)).toBeFunction();
    expectTypeOf((map: Cache<number>, compute: Compute<number>) => map.fetch('k', compute)).toBeFunction();
  });

  it('LockInfo tells whether the previous holder died, and names it when it did', () => {
    expectTypeOf<LockInfo>().toEqualTypeOf<
      { readonly ownerDied: false } | { readonly ownerDied: true; readonly deadPid: number }
    >();
    expectTypeOf<MmapShare['lock']>().returns.toEqualTypeOf<LockInfo>();
    expectTypeOf<MmapShare['tryLock']>().returns.toEqualTypeOf<LockInfo | undefined>();
    expectTypeOf<MmapShare['lockAsync']>().returns.toEqualTypeOf<Promise<LockInfo>>();
    expectTypeOf<Share<number>['lock']>().returns.toEqualTypeOf<Awaitable<LockInfo>>();
  });

  it('fetch() resolves to what compute returns: the value, or undefined only when compute may return it', () => {
    expectTypeOf((map: SharedMap<number>) => map.fetch('k', () => 1)).returns.toEqualTypeOf<Promise<number>>();
    expectTypeOf((map: Cache<number>) => map.fetch('k', async () => 1)).returns.toEqualTypeOf<Promise<number>>();
    const maybe = async (): Promise<number | undefined> => undefined;
    expectTypeOf((map: SharedMap<number>) => map.fetch('k', maybe)).returns.toEqualTypeOf<
      Promise<number | undefined>
    >();
    expectTypeOf((map: Cache<number>) => map.fetch('k', maybe)).returns.toEqualTypeOf<Promise<number | undefined>>();
  });

  it('a share created with a value reads T, never undefined; one created without, or attached, T | undefined', () => {
    const made = () => MmapShare.create(64, { value: { logLevel: 'info' } });
    expectTypeOf(made).returns.toEqualTypeOf<MmapShare<{ logLevel: string }, never>>();
    expectTypeOf<MmapShare<number, never>['get']>().returns.toEqualTypeOf<number>();
    expectTypeOf<MmapShare<number, never>['snapshot']>().returns.toEqualTypeOf<Readonly<number>>();
    expectTypeOf<MmapShare<number, never>['watch']>()
      .parameter(0)
      .toEqualTypeOf<(value: number, version: number) => void>();
    expectTypeOf<MmapShare<number, never>['changes']>().returns.toEqualTypeOf<AsyncGenerator<number>>();
    expectTypeOf<MmapShare<number, never>>().toExtend<Share<number, never>>();
    expectTypeOf(() => MmapShare.create<number>(64)).returns.toEqualTypeOf<MmapShare<number>>();
    expectTypeOf<MmapShare<number>['get']>().returns.toEqualTypeOf<number | undefined>();
    expectTypeOf(() => MmapShare.attach<number>('h')).returns.toEqualTypeOf<MmapShare<number>>();
  });

  it('the CommonJS and ESM declarations agree', () => {
    expectTypeOf<cjs.Share<number>>().toEqualTypeOf<Share<number>>();
    expectTypeOf<cjs.Cache<number>>().toEqualTypeOf<Cache<number>>();
    expectTypeOf<cjs.Compute<number>>().toEqualTypeOf<Compute<number>>();
    expectTypeOf<cjs.LockInfo>().toEqualTypeOf<LockInfo>();
    expectTypeOf<cjs.FetchOptions>().toEqualTypeOf<FetchOptions>();
    expectTypeOf<cjs.MmapShare<number>>().toEqualTypeOf<MmapShare<number>>();
    expectTypeOf<cjs.SharedMap<number>>().toEqualTypeOf<SharedMap<number>>();
  });
});

describe('types of mmap-share/redis', () => {
  it('the classes implement Share<T> and Cache<V>, the same interfaces as the main entry', () => {
    expectTypeOf<redis.RedisShare<number>>().toExtend<redis.Share<number>>();
    expectTypeOf<redis.RedisMap<number>>().toExtend<redis.Cache<number>>();
    expectTypeOf<redis.Share<number>>().toEqualTypeOf<Share<number>>();
    expectTypeOf<redis.Cache<number>>().toEqualTypeOf<Cache<number>>();
    expectTypeOf<redis.CacheStats>().toEqualTypeOf<CacheStats>();
    expectTypeOf<redis.Awaitable<number>>().toEqualTypeOf<Awaitable<number>>();
    expectTypeOf((key: string) => redis.RedisShare.create<number>(key)).returns.toEqualTypeOf<
      Promise<redis.RedisShare<number>>
    >();
    expectTypeOf(redis.RedisMap.create<number>).returns.toEqualTypeOf<Promise<redis.RedisMap<number>>>();
  });

  it('option types are the main entry’s', () => {
    expectTypeOf<redis.RedisMap<number>['set']>().parameter(2).toEqualTypeOf<SetOptions | undefined>();
    expectTypeOf<redis.RedisMap<number>['fetch']>().parameter(2).toEqualTypeOf<FetchOptions | undefined>();
    expectTypeOf<redis.RedisShare<number>['lockAsync']>().parameter(0).toEqualTypeOf<LockAsyncOptions | undefined>();
    expectTypeOf<redis.RedisShare<number>['changes']>().parameter(0).toEqualTypeOf<ChangesOptions | undefined>();
    expectTypeOf<redis.RedisOptions>().toHaveProperty('url').toEqualTypeOf<string | undefined>();
  });

  it('ErrorCode and MmapShareError are the main entry’s', () => {
    expectTypeOf<redis.ErrorCode>().toEqualTypeOf<ErrorCode>();
    expectTypeOf<redis.MmapShareError>().toEqualTypeOf<MmapShareError>();
    expectTypeOf<redis.MmapShareError['code']>().toEqualTypeOf<ErrorCode>();
  });

  it('Compute<V> is the fetch() callback', () => {
    expectTypeOf<redis.Compute<number>>().toEqualTypeOf<Compute<number>>();
    expectTypeOf((map: redis.RedisMap<number>, compute: Compute<number>) => map.fetch('k', compute)).toBeFunction();
  });

  it('lock results are LockInfo', () => {
    expectTypeOf<redis.RedisShare['lock']>().returns.toEqualTypeOf<Promise<LockInfo>>();
    expectTypeOf<redis.RedisShare['tryLock']>().returns.toEqualTypeOf<Promise<LockInfo | undefined>>();
    expectTypeOf<redis.RedisShare['lockAsync']>().returns.toEqualTypeOf<Promise<LockInfo>>();
  });

  it('fetch() resolves to what compute returns', () => {
    expectTypeOf((map: redis.RedisMap<number>) => map.fetch('k', () => 1)).returns.toEqualTypeOf<Promise<number>>();
    const maybe = (): number | undefined => undefined;
    expectTypeOf((map: redis.RedisMap<number>) => map.fetch('k', maybe)).returns.toEqualTypeOf<
      Promise<number | undefined>
    >();
  });

  it('the CommonJS and ESM declarations agree', () => {
    expectTypeOf<redisCjs.RedisShare<number>>().toEqualTypeOf<redis.RedisShare<number>>();
    expectTypeOf<redisCjs.RedisMap<number>>().toEqualTypeOf<redis.RedisMap<number>>();
    expectTypeOf<redisCjs.Compute<number>>().toEqualTypeOf<redis.Compute<number>>();
  });
});

describe('types of the adapter entries', () => {
  it('each store is what its library takes, over a SharedMap or a RedisMap', () => {
    expectTypeOf((map: SharedMap) => createCache({ stores: [new Keyv({ store: new KeyvStore(map) })] })).toBeFunction();
    expectTypeOf((map: redis.RedisMap) => new Keyv6({ store: new KeyvStore(map) })).toBeFunction();
    expectTypeOf<RateLimitStore>().toExtend<RateLimitStoreType>();
    expectTypeOf((map: SharedMap) => rateLimit({ store: new RateLimitStore(map, { prefix: 'api:' }) })).toBeFunction();
    expectTypeOf<SessionStore>().toExtend<SessionStoreType>();
    expectTypeOf((map: redis.RedisMap) => session({ store: new SessionStore(map), secret: 's' })).toBeFunction();
  });

  it("a SessionStore's methods give a promise without a callback", () => {
    expectTypeOf((store: SessionStore) => store.get('sid')).returns.toEqualTypeOf<Promise<SessionData | null>>();
    expectTypeOf((store: SessionStore) => store.get('sid', () => {})).returns.toEqualTypeOf<void>();
    expectTypeOf((store: SessionStore) => store.length()).returns.toEqualTypeOf<Promise<number>>();
  });

  it('the CommonJS and ESM declarations agree', () => {
    expectTypeOf<keyvCjs.KeyvStore>().toEqualTypeOf<KeyvStore>();
    expectTypeOf<rateLimitCjs.RateLimitStore>().toEqualTypeOf<RateLimitStore>();
    expectTypeOf<sessionCjs.SessionStore>().toEqualTypeOf<SessionStore>();
  });
});
