// SharedMap: many keys in one region, each read without a lock and written on its own, with LRU eviction, TTL and a
// fetch() that computes a missing value once for the whole cluster.
import type { Cache, CacheStats, Compute, FetchOptions, SetOptions, UpdateOptions, Verification } from '../api.js';
import { type Codec, codecId, type CodecOption, deepFreeze, resolveCodec } from '../codec.js';
import { describe, shareError } from '../errors.js';
import { RegionHandle } from '../handle.js';
import {
  checkNames,
  checkTtl,
  checkWait,
  FETCH_NAMES,
  keepsTtl,
  type Names,
  SET_NAMES,
  UPDATE_NAMES,
} from '../options.js';
import { attachKind, closeRegion, createRegion, type Region } from '../region.js';
import { Counters } from './counters.js';
import { FetchMarkers } from './fetch.js';
import {
  attachView,
  CHUNK,
  type EvictionPolicy,
  type Exclusive,
  F_DELETES,
  F_EVICTIONS,
  F_EXPIRATIONS,
  F_REPAIRS,
  F_SETS,
  FLAG_PENDING,
  initMap,
  isExpired,
  type MapView,
  S_VER,
  slotWord,
  W_ENTRIES,
  W_ERA,
  W_FREE_COUNT,
  W_PENDING,
  W_VERSION,
} from './layout.js';
import { encodeFor, expiry, planMap, type SharedMapOptions } from './options.js';
import { ABSENT, decodeLocked, keyList, read, where } from './reader.js';
import { repair, verify } from './repair.js';
import { encoded, encodeKey, find, found, MISS, ownKey, touch } from './table.js';
import { clear, put, recordOf, remove, sweep } from './writer.js';

export { MAX_CAPACITY, MIN_CAPACITY, type SharedMapOptions } from './options.js';

const ATTACH_NAMES: Names<{ codec?: unknown }> = { codec: true };

/** Counts for the whole cluster: every process's hits and misses, and what writers did. */
export interface MapStats extends CacheStats {
  /** fetch() computations under way. */
  pending: number;
  maxEntries: number;
  /** Bytes of entries' chunks in use, and room for them in all. */
  bytes: number;
  capacity: number;
  evictions: number;
  expirations: number;
  /** Times a writer's death holding the lock was repaired. */
  repairs: number;
}

/** Many keys of type string, each holding a value of type `V`, shared by processes and threads. */
export class SharedMap<V = unknown> implements Cache<V> {
  // Set by attach() for the constructor to adopt.
  static #adopting: { region: Region; codec: Codec } | undefined;
  #handle: RegionHandle;
  #view: MapView;
  #codec: Codec<V>;
  #counters: Counters;
  #fetches: FetchMarkers<V>;
  #snapshots = new Map<string, { slot: number; ver: number; era: number; expires: number; value: Readonly<V> }>();

  /** Same as `SharedMap.create(options)`. */
  constructor(options: SharedMapOptions<V>) {
    const adopted = SharedMap.#adopting;
    SharedMap.#adopting = undefined;
    let region: Region;
    if (adopted === undefined) {
      const plan = planMap(options);
      this.#codec = resolveCodec(options.codec) as Codec<V>;
      region = createRegion('map', plan.capacity, codecId(this.#codec.name), options.path, (bytes) =>
        initMap(bytes, plan),
      );
    } else {
      this.#codec = adopted.codec as Codec<V>;
      region = adopted.region;
    }
    try {
      this.#view = attachView(region.bytes, region.handle);
    } catch (error) {
      closeRegion(region);
      throw error;
    }
    this.#counters = new Counters(this.#view, this.#exclusive);
    this.#fetches = new FetchMarkers<V>({
      view: this.#view,
      region,
      codec: this.#codec,
      exclusive: this.#exclusive,
      optimistic: (tryOnce, locked) => this.#handle.optimistic(tryOnce, locked),
      open: () => this.#open(),
      closed: () => this.closed,
      count: (outcome) => this.#counters.count(outcome),
    });
    const name = adopted === undefined ? options.name : undefined;
    this.#handle = new RegionHandle(region, 'SharedMap', name, () => repair(this.#view));
  }

  /** Creates a map in a region of `capacity` bytes. */
  static create<V = unknown>(options: SharedMapOptions<V>): SharedMap<V> {
    return new SharedMap<V>(options);
  }

  /** Attaches to a map by `map.handle`, by a name given to `create()` in an ancestor, or by path. */
  static attach<V = unknown>(ref: string, options: { codec?: CodecOption<V> } = {}): SharedMap<V> {
    checkNames(options, ATTACH_NAMES);
    SharedMap.#adopting = attachKind(ref, 'map', options.codec);
    return new SharedMap<V>(undefined as never);
  }

  /** The value of `key`, freshly decoded; undefined when absent or expired. Takes no lock, makes no system call. */
  get(key: string): V | undefined {
    const value = this.#read(key, true, true);
    this.#counters.count(value === ABSENT ? 'misses' : 'hits');
    return value === ABSENT ? undefined : value;
  }

  /** As get(), but not counted as a use for LRU, nor as a hit or miss. */
  peek(key: string): V | undefined {
    const value = this.#read(key, true, false);
    return value === ABSENT ? undefined : value;
  }

  /** Whether `key` holds a value that has not expired; not counted as a use for LRU. */
  has(key: string): boolean {
    return this.#read(key, false, false) !== ABSENT;
  }

  /**
   * The value of `key`, decoded once per version of the entry in this process: while it is unchanged, a call costs
   * a few loads from the map. Deeply frozen and shared by every call, so treat it as immutable.
   */
  snapshot(key: string): Readonly<V> | undefined {
    const view = this.#open();
    const cached = this.#snapshots.get(key);
    // The slot still holds the record decoded: in one era, its version names that record and no other. ERA is read
    // after VER (a renumbering moves ERA before any version), with a plain load, which V8 keeps after an Atomics one.
    if (
      cached !== undefined &&
      Atomics.load(view.words, slotWord(view, cached.slot) + S_VER) === cached.ver &&
      view.words[W_ERA] === cached.era &&
      !isExpired(cached.expires)
    ) {
      touch(view, cached.slot);
      this.#counters.count('hits');
      return cached.value;
    }
    // Read before the entry: a renumbering between the two leaves the era stale, never the version.
    const era = Atomics.load(view.words, W_ERA);
    const value = this.get(key);
    if (value === undefined) {
      this.#snapshots.delete(key);
      return undefined;
    }
    const entry = { slot: where.slot, ver: where.ver, era, expires: where.expires, value: deepFreeze(value) };
    this.#snapshots.delete(key);
    if (this.#snapshots.size >= this.#view.maxEntries) this.#snapshots.delete(this.#snapshots.keys().next().value!);
    this.#snapshots.set(key, entry);
    return entry.value;
  }

  /**
   * Stores `value` under `key`, evicting least recently used entries if it needs room. The value is encoded before
   * the lock is taken; nothing changes if that fails or it does not fit. `undefined` deletes the key.
   */
  set(key: string, value: V, options: SetOptions = {}): this {
    const view = this.#open();
    checkNames(options, SET_NAMES);
    if (value === undefined) {
      this.delete(key);
      return this;
    }
    if (options.ttl !== undefined) checkTtl(options.ttl);
    const payload = encodeFor(this.#view, this.#codec, value);
    encodeKey(key, view.maxKey);
    const entry = {
      key: encoded.bytes.subarray(0, encoded.length),
      hash: encoded.hash,
      flags: 0,
      value: payload,
      expires: 0,
    };
    this.#exclusive(() => {
      const now = Date.now();
      entry.expires = expiry(view, options.ttl, now);
      put(view, entry, now);
    });
    return this;
  }

  /** Removes `key`; true when it held a value that had not expired. */
  delete(key: string): boolean {
    const view = this.#open();
    encodeKey(key, view.maxKey);
    const { bytes, hash } = ownKey();
    return this.#exclusive(() => {
      const slot = find(view, bytes, bytes.length, hash, true);
      if (slot === MISS) return false;
      const record = recordOf(view, found.head);
      if (record.flags & FLAG_PENDING) return false;
      const expired = isExpired(record.expires, Date.now());
      remove(view, slot, expired ? F_EXPIRATIONS : F_DELETES);
      return !expired;
    });
  }

  /**
   * Replaces the value of `key` with `fn(current)` under the exclusive lock, and returns it. `current` is undefined
   * when the key is absent or expired; returning undefined deletes the key. Without `options.ttl` (or with
   * `keepTtl`), an entry keeps its expiry time; a new one lives `ttl`, else the map's ttl, from its write. If the
   * entry expires while `fn` runs, `fn` runs again, on undefined.
   */
  update(key: string, fn: (current: V | undefined) => V | undefined, options: UpdateOptions = {}): V | undefined {
    const view = this.#open();
    checkNames(options, UPDATE_NAMES);
    if (typeof fn !== 'function') throw shareError('ERR_BAD_OPTION', `fn must be a function, got ${describe(fn)}`);
    const { ttl } = options;
    if (ttl !== undefined) checkTtl(ttl);
    const keep = keepsTtl(options);
    encodeKey(key, view.maxKey);
    const { bytes, hash } = ownKey();
    return this.#exclusive(() => {
      for (;;) {
        const slot = find(view, bytes, bytes.length, hash, true);
        let current: V | undefined;
        let kept: number | undefined;
        if (slot !== MISS) {
          const record = recordOf(view, found.head);
          if (!(record.flags & FLAG_PENDING) && !isExpired(record.expires, Date.now())) {
            current = decodeLocked(view, this.#codec, found.head, record.keyLength, record.valueLength);
            if (keep) kept = record.expires;
          }
        }
        const next = fn(current);
        // `fn` may have closed this map, which gave the lock back: nothing is written then.
        this.#open();
        if (next === undefined) {
          const again = find(view, bytes, bytes.length, hash, true);
          if (again !== MISS && current !== undefined) remove(view, again, F_DELETES);
          return undefined;
        }
        // A new entry's ttl counts from its write, once `fn` has run. An entry that expired while `fn` ran is gone:
        // `fn` runs again on nothing, as a RedisMap's does when its write finds the entry changed.
        const now = Date.now();
        if (kept !== undefined && isExpired(kept, now)) continue;
        const expires = kept ?? expiry(view, ttl, now);
        put(view, { key: bytes, hash, flags: 0, value: encodeFor(view, this.#codec, next), expires }, now);
        return next;
      }
    });
  }

  /**
   * The value of `key`; when it is absent, `compute(key)` runs in exactly one process of the cluster while the others
   * wait for its result on the doorbell, without blocking their event loop. If the computing thread dies, or its compute
   * throws (which its caller and the calls that joined it see), a waiting process computes instead. A compute that
   * returns undefined stores nothing; fetch() then gives undefined.
   */
  async fetch(key: string, compute: Compute<V>, options?: FetchOptions): Promise<V>;
  async fetch(key: string, compute: Compute<V | undefined>, options?: FetchOptions): Promise<V | undefined>;
  async fetch(key: string, compute: Compute<V | undefined>, options: FetchOptions = {}): Promise<V | undefined> {
    this.#open();
    checkNames(options, FETCH_NAMES);
    if (typeof compute !== 'function') {
      throw shareError('ERR_BAD_OPTION', `compute must be a function, got ${describe(compute)}`);
    }
    const { timeout, signal } = checkWait(options);
    if (options.ttl !== undefined) checkTtl(options.ttl);
    // Counted by how it ends: a hit here or when claiming, a miss when this call computes, else coalesced.
    const hit = this.#read(key, true, true);
    if (hit !== ABSENT) {
      this.#counters.count('hits');
      return hit;
    }
    return this.#fetches.fetch(key, compute, options.ttl, timeout, signal);
  }

  /** Removes every entry. */
  clear(): void {
    const view = this.#open();
    this.#exclusive(() => clear(view));
    this.#snapshots.clear();
  }

  /** Removes every expired entry, and the markers of fetches whose thread is gone or whose lease ran out; returns how many. */
  purgeStale(): number {
    const view = this.#open();
    return this.#exclusive(() => sweep(view, Date.now(), view.slots));
  }

  /**
   * Checks every invariant of the map under the lock, after repairing what a writer that died holding it left half
   * done (as any write would). `problems` has one line each; `ok` when there are none.
   */
  verify(): Verification {
    const view = this.#open();
    return this.#handle.reading(() => verify(view, (bytes) => this.#codec.decode(bytes)));
  }

  /** Entries holding a value, counting expired ones not yet reclaimed. */
  get size(): number {
    return Atomics.load(this.#open().words, W_ENTRIES);
  }

  /** +1 on every change by any process: a poller skips all work while it holds still. */
  get version(): number {
    return Atomics.load(this.#open().words, W_VERSION);
  }

  /** Counts for the whole cluster. */
  stats(): MapStats {
    const view = this.#open();
    const { words, f64 } = view;
    const { hits, misses, coalesced } = this.#counters.totals();
    return {
      entries: Atomics.load(words, W_ENTRIES),
      pending: Atomics.load(words, W_PENDING),
      maxEntries: view.maxEntries,
      bytes: (view.chunks - Atomics.load(words, W_FREE_COUNT)) * CHUNK,
      capacity: view.chunks * CHUNK,
      hits,
      misses,
      coalesced,
      sets: f64[F_SETS]!,
      deletes: f64[F_DELETES]!,
      evictions: f64[F_EVICTIONS]!,
      expirations: f64[F_EXPIRATIONS]!,
      repairs: f64[F_REPAIRS]!,
    };
  }

  /** The keys holding values, in no particular order. Not counted as uses. */
  *keys(): Generator<string> {
    for (const [key] of this.entries()) yield key;
  }

  /** The values, in the order of keys(). Not counted as uses. */
  *values(): Generator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  /**
   * [key, value] pairs, in no particular order: the keys present when the iteration starts, each read when it is
   * reached (skipped if gone by then). Not counted as uses.
   */
  *entries(): Generator<[string, V]> {
    for (const key of keyList(this.#open(), this.#handle)) {
      const value = this.peek(key);
      if (value !== undefined) yield [key, value];
    }
  }

  [Symbol.iterator](): Generator<[string, V]> {
    return this.entries();
  }

  /** What a set does when the map is full: 'lru' evicts the least recently used entries; 'none' refuses. */
  get eviction(): EvictionPolicy {
    return this.#open().policy;
  }

  /** What another process passes to `SharedMap.attach()` to reach this map. */
  get handle(): string {
    return this.#handle.handle;
  }

  /** Whether close() has run. */
  get closed(): boolean {
    return this.#handle.closed;
  }

  /**
   * Gives back this instance's descriptor, its counter row (its counts stay in stats()), its fetch markers and its
   * name in `process.env`; later calls throw ERR_CLOSED. Idempotent. On a damaged map it still closes, then throws
   * ERR_BAD_HANDLE.
   */
  close(): void {
    this.#snapshots.clear();
    // A damaged map still gives its descriptor back; the error says why its counts were not folded.
    this.#handle.close(() => {
      if (this.#counters.held || this.#fetches.held) {
        this.#exclusive(() => {
          this.#counters.fold();
          this.#fetches.dropAll(this.#view);
        });
      }
    });
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #open(): MapView {
    this.#handle.open();
    return this.#view;
  }

  // Runs `work` holding the exclusive lock; the first holder after one that died repairs what it left half done.
  #exclusive: Exclusive = (work) => this.#handle.exclusive(work);

  #read(name: string, decode: boolean, use: boolean): V | typeof ABSENT {
    return read(this.#open(), this.#codec, name, decode, use, this.#handle);
  }
}
