// What code may rely on from either backend, shared memory (MmapShare, SharedMap) or Redis (RedisShare, RedisMap):
// each member returns a value or a promise of one, so code that awaits every call runs unchanged on both.
import type { LockInfo } from './lock.js';
import type { FetchOptions, SetOptions } from './map/map.js';
import type { LockAsyncOptions } from './share.js';
import type { ChangesOptions, WatchOptions } from './watch.js';

/** A value, or a promise of it: `await` takes both. */
export type Awaitable<T> = T | Promise<T>;

/** One shared value: MmapShare and RedisShare. */
export interface Share<T> {
  get(): Awaitable<T | undefined>;
  set(value: T): Awaitable<void>;
  update(fn: (current: T | undefined) => T): Awaitable<T>;
  lock(): Awaitable<LockInfo>;
  tryLock(): Awaitable<LockInfo | undefined>;
  lockAsync(options?: LockAsyncOptions): Promise<LockInfo>;
  unlock(): Awaitable<void>;
  watch(listener: (value: T | undefined, version: number) => void, options?: WatchOptions): () => void;
  changes(options?: ChangesOptions): AsyncGenerator<T | undefined>;
  readonly version: Awaitable<number>;
  readonly closed: boolean;
  close(): Awaitable<void>;
}

/** The counts both map backends keep for the whole cluster. */
export interface CacheStats {
  entries: number;
  hits: number;
  misses: number;
  sets: number;
  deletes: number;
}

/** Many keys, each read and written on its own: SharedMap and RedisMap. */
export interface Cache<V> {
  get(key: string): Awaitable<V | undefined>;
  peek(key: string): Awaitable<V | undefined>;
  has(key: string): Awaitable<boolean>;
  set(key: string, value: V, options?: SetOptions): Awaitable<this>;
  delete(key: string): Awaitable<boolean>;
  update(key: string, fn: (current: V | undefined) => V | undefined, options?: SetOptions): Awaitable<V | undefined>;
  fetch(
    key: string,
    compute: (key: string, options: { signal?: AbortSignal }) => V | Promise<V>,
    options?: FetchOptions,
  ): Promise<V | undefined>;
  clear(): Awaitable<void>;
  keys(): Iterable<string> | AsyncIterable<string>;
  stats(): Awaitable<CacheStats>;
  readonly size: Awaitable<number>;
  readonly version: Awaitable<number>;
  readonly closed: boolean;
  close(): Awaitable<void>;
}
