// What code may rely on from either backend, shared memory (MmapShare, SharedMap, SharedQueue) or Redis (RedisShare,
// RedisMap, RedisQueue): each member returns a value or a promise of one, so code that awaits every call runs
// unchanged on both. The options and results of those members live here too, so this module imports nothing and
// every backend imports it.

/** A value, or a promise of it: `await` takes both. */
export type Awaitable<T> = T | Promise<T>;

/** What `lock()` learned about the previous holder. */
export type LockInfo =
  | { readonly ownerDied: false }
  /** The previous holder died inside its critical section: repair what it may have left half done. */
  | { readonly ownerDied: true; readonly deadPid: number };

/** What verify() found: `ok` when `problems` is empty; one line a problem. */
export interface Verification {
  readonly ok: boolean;
  readonly problems: string[];
}

export interface LockAsyncOptions {
  /** Milliseconds to wait before failing with ERR_LOCK_TIMEOUT. Default: wait for ever. */
  timeout?: number;
  /** Cancels the wait; the promise rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface WatchOptions {
  /** Milliseconds between polls of the version word. Default: 10. */
  interval?: number;
}

export interface ChangesOptions extends WatchOptions {
  /** Ends the iteration: the pending `next()` rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface SetOptions {
  /** Milliseconds this entry lives; 0 for ever. Default: the map's ttl. */
  ttl?: number;
}

export interface UpdateOptions extends SetOptions {
  /**
   * With `ttl`: an entry that exists keeps its expiry time, and only a new one lives `ttl`. Without `ttl`, an entry
   * always keeps its expiry time, and a new one gets the map's ttl. Default: false.
   */
  keepTtl?: boolean;
}

export interface FetchOptions extends SetOptions {
  /**
   * Milliseconds this call waits for a computation it did not run (another process's, or another call's on this
   * instance) before ERR_LOCK_TIMEOUT. Default: for ever.
   */
  timeout?: number;
  /**
   * Cancels this call (AbortError). `compute` gets a signal that aborts once every call waiting for it has been
   * cancelled.
   */
  signal?: AbortSignal;
}

/** How `fetch()` computes a missing value of `key`; `signal` aborts once every call waiting for it gave up. */
export type Compute<V> = (key: string, options: { signal?: AbortSignal }) => V | Promise<V>;

/** One shared value: MmapShare and RedisShare. Reads give `Unset` before the first set. */
export interface Share<T, Unset extends undefined = undefined> {
  get(): Awaitable<T | Unset>;
  set(value: T): Awaitable<void>;
  update(fn: (current: T | Unset) => T): Awaitable<T>;
  lock(): Awaitable<LockInfo>;
  tryLock(): Awaitable<LockInfo | undefined>;
  lockAsync(options?: LockAsyncOptions): Promise<LockInfo>;
  unlock(): Awaitable<void>;
  watch(listener: (value: T | Unset, version: number) => void, options?: WatchOptions): () => void;
  changes(options?: ChangesOptions): AsyncGenerator<T | Unset>;
  readonly version: Awaitable<number>;
  readonly closed: boolean;
  close(): Awaitable<void>;
}

/** The counts both map backends keep for the whole cluster. */
export interface CacheStats {
  entries: number;
  /** Reads that found a value; a fetch() that found one. */
  hits: number;
  /** Reads that found none; a fetch() that computed the value. */
  misses: number;
  /** fetch() calls given the value another computation made: another call's on this instance, or another process's. */
  coalesced: number;
  sets: number;
  deletes: number;
}

/** Counts for every process: `pushed - taken` messages are in the queue. */
export interface QueueStats {
  messages: number;
  /** Bytes in use (SharedQueue: of the ring, records and padding; RedisQueue: of the encoded messages), and in all. */
  bytes: number;
  capacity: number;
  pushed: number;
  taken: number;
  /** Times a writer's death holding the lock was repaired (always 0 on Redis, which holds no lock across calls). */
  repairs: number;
}

/** Messages pushed by any process and taken once each, oldest first: SharedQueue and RedisQueue. */
export interface Queue<T> {
  push(value: T): Awaitable<boolean>;
  pushAsync(value: T, options?: LockAsyncOptions): Promise<void>;
  shift(): Awaitable<T | undefined>;
  shiftMany(max?: number): Awaitable<T[]>;
  take(options?: LockAsyncOptions): Promise<T>;
  [Symbol.asyncIterator](): AsyncIterator<T>;
  readonly size: Awaitable<number>;
  stats(): Awaitable<QueueStats>;
  readonly maxMessageSize: number;
  readonly handle: string;
  readonly closed: boolean;
  close(): Awaitable<void>;
}

/** Many keys, each read and written on its own: SharedMap and RedisMap. */
export interface Cache<V> {
  get(key: string): Awaitable<V | undefined>;
  peek(key: string): Awaitable<V | undefined>;
  has(key: string): Awaitable<boolean>;
  set(key: string, value: V, options?: SetOptions): Awaitable<this>;
  delete(key: string): Awaitable<boolean>;
  update(key: string, fn: (current: V | undefined) => V | undefined, options?: UpdateOptions): Awaitable<V | undefined>;
  fetch(key: string, compute: Compute<V>, options?: FetchOptions): Promise<V>;
  fetch(key: string, compute: Compute<V | undefined>, options?: FetchOptions): Promise<V | undefined>;
  clear(): Awaitable<void>;
  keys(): Iterable<string> | AsyncIterable<string>;
  stats(): Awaitable<CacheStats>;
  readonly size: Awaitable<number>;
  readonly version: Awaitable<number>;
  readonly closed: boolean;
  close(): Awaitable<void>;
}
