// SharedMap: many keys in one region, each read without a lock and written on its own, with LRU eviction, TTL and a
// fetch() that computes a missing value once for the whole cluster.
import type { Cache, CacheStats, Compute, FetchOptions, SetOptions } from '../api.js';
import { type Codec, codecId, type CodecOption, deepFreeze, encodeValue, resolveCodec } from '../codec.js';
import { describe, shareError } from '../errors.js';
import { step } from '../crash.js';
import { type FlightControl, Flights } from '../flight.js';
import { isGone, LOCK_FREE_TRIES, ownOwner, releaseLock, takeDeadHolder, takeLock, deadHolder } from '../lock.js';
import { checkTimeout, checkTtl } from '../options.js';
import { pollUntil } from '../wait.js';
import { attachKind, checkPlacement, closeRegion, createRegion, envKey, type Region } from '../region.js';
import {
  attachView,
  chunkWord,
  chunksFor,
  COUNTER_ROW_BYTES,
  COUNTER_ROWS,
  COUNTERS_BYTES,
  corruptMap,
  type EvictionPolicy,
  expiresOf,
  F_DELETES,
  F_EVICTIONS,
  F_EXPIRATIONS,
  F_HITS,
  F_MISSES,
  F_REPAIRS,
  F_SETS,
  F_TTL,
  FLAG_PENDING,
  getBytes,
  initMap,
  isExpired,
  type MapView,
  MAX_KEY_LIMIT,
  MAX_LOAD,
  R_KEY,
  R_VALUE,
  R_VER,
  RECORD_HEADER,
  recordChunks,
  S_HEAD,
  S_VER,
  slotsFor,
  setExpires,
  slotWord,
  W_ENTRIES,
  W_EPOCH,
  W_ERA,
  W_FREE_COUNT,
  W_PENDING,
  W_VERSION,
  CHUNK,
} from './layout.js';
import { repair, type Verification, verify } from './repair.js';
import { encoded, encodeKey, find, found, MISS, ownKey, RACED, touch } from './table.js';
import { clear, type Marker, markerBytes, markerOf, put, recordOf, remove, sweep } from './writer.js';

export interface SharedMapOptions<V> {
  /** Bytes of the whole region: a number, or a string such as '64MB' (KB, MB, GB are powers of 1024). */
  capacity: number | string;
  /** Entries at most. Default: capacity / 128. Each costs 16 / 0.75 bytes of index whether used or not. */
  maxEntries?: number;
  /** Encoded bytes of one value at most. Default: 1 MiB, or a quarter of the room for entries if that is less. */
  maxValueSize?: number;
  /** UTF-8 bytes of one key at most. Default: 1024. */
  maxKeySize?: number;
  /** Milliseconds an entry lives after it is set; 0 (the default) for ever. */
  ttl?: number;
  /** 'lru' (default): make room by evicting the least recently used entries. 'none': a set that does not fit fails. */
  eviction?: EvictionPolicy;
  /** Exports the handle as `MMAP_SHARE_<name>` in `process.env`, so forked children can `attach(name)`. */
  name?: string;
  /** Backs the region with this file (created exclusively, mode 0600) instead of a file with no name. */
  path?: string;
  /** How values are turned into bytes: 'v8' (default), 'msgpack', 'msgpack-refs', or `{ name, encode, decode }`. */
  codec?: CodecOption<V>;
}

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

/** The smallest and largest `capacity`. */
export const MIN_CAPACITY = 64 * 1024;
export const MAX_CAPACITY = 2 ** 31 - 2 ** 16;
const DEFAULT_MAX_KEY = 1024;
const DEFAULT_MAX_VALUE = 2 ** 20;
const BYTES_PER_DEFAULT_ENTRY = 128;
const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30 };

// A fetch marker is a lease: its computing instance renews it every LEASE_MS / 3, so that a marker whose thread was
// lost in a way /proc cannot prove (a blocked event loop aside) lets other processes compute after LEASE_MS.
const LEASE_MS = 10_000;
let lastToken = 0;

const ABSENT = Symbol('absent');
const RACE = Symbol('race');
type Read<V> = V | typeof ABSENT | typeof RACE;

let adopting: { region: Region; codec: Codec } | undefined;

/** Many keys of type string, each holding a value of type `V`, shared by processes and threads. */
export class SharedMap<V = unknown> implements Cache<V> {
  #region: Region | undefined;
  #view: MapView;
  #codec: Codec<V>;
  #locked = false;
  #envName: string | undefined;
  // This instance's row of hit and miss counters, taken at its first count; undefined before, or if none was free.
  #row: { pid: number; hits: number } | undefined;
  #rowTaken = false;
  #hits = 0;
  #misses = 0;
  // Where the last read found its entry.
  #slot = 0;
  #ver = 0;
  #expires = 0;
  #snapshots = new Map<string, { slot: number; ver: number; era: number; expires: number; value: Readonly<V> }>();
  #fetches = new Flights<V | undefined>();
  // This instance's fetch markers: key to token.
  #markers = new Map<string, number>();

  /** Same as `SharedMap.create(options)`. */
  constructor(options: SharedMapOptions<V>) {
    const adopted = adopting;
    adopting = undefined;
    if (adopted === undefined) {
      const plan = planMap(options);
      this.#codec = resolveCodec(options.codec) as Codec<V>;
      this.#region = createRegion('map', plan.capacity, codecId(this.#codec.name), options.path, (bytes) =>
        initMap(bytes, plan),
      );
    } else {
      this.#codec = adopted.codec as Codec<V>;
      this.#region = adopted.region;
    }
    try {
      this.#view = attachView(this.#region.bytes, this.#region.handle);
    } catch (error) {
      closeRegion(this.#region);
      throw error;
    }
    if (adopted === undefined && options.name !== undefined) {
      this.#envName = envKey(options.name);
      process.env[this.#envName] = this.#region.handle;
    }
  }

  /** Creates a map in a region of `capacity` bytes. */
  static create<V = unknown>(options: SharedMapOptions<V>): SharedMap<V> {
    return new SharedMap<V>(options);
  }

  /** Attaches to a map by `map.handle`, by a name given to `create()` in an ancestor, or by path. */
  static attach<V = unknown>(ref: string, options: { codec?: CodecOption<V> } = {}): SharedMap<V> {
    adopting = attachKind(ref, 'map', options.codec);
    return new SharedMap<V>(undefined as never);
  }

  /** The value of `key`, freshly decoded; undefined when absent or expired. Takes no lock, makes no system call. */
  get(key: string): V | undefined {
    return this.#counted(this.#read(key, true, true));
  }

  /** As get(), but not counted as a use for LRU, nor as a hit or miss. */
  peek(key: string): V | undefined {
    const read = this.#read(key, true, false);
    return read === ABSENT ? undefined : (read as V);
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
      this.#count(true);
      return cached.value;
    }
    // Read before the entry: a renumbering between the two leaves the era stale, never the version.
    const era = Atomics.load(view.words, W_ERA);
    const value = this.get(key);
    if (value === undefined) {
      this.#snapshots.delete(key);
      return undefined;
    }
    const entry = {
      slot: this.#slot,
      ver: this.#ver,
      era,
      expires: this.#expires,
      value: deepFreeze(value),
    };
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
    if (value === undefined) {
      this.delete(key);
      return this;
    }
    const expires = this.#expiry(options.ttl);
    const payload = this.#encode(value);
    encodeKey(key, view.maxKey);
    const entry = {
      key: encoded.bytes.subarray(0, encoded.length),
      hash: encoded.hash,
      flags: 0,
      value: payload,
      expires,
    };
    this.#exclusive(() => put(view, entry, Date.now()));
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
   * when the key is absent or expired; returning undefined deletes the key. Without `options.ttl`, an entry keeps
   * its expiry time and a new one gets the map's ttl.
   */
  update(key: string, fn: (current: V | undefined) => V | undefined, options: SetOptions = {}): V | undefined {
    const view = this.#open();
    if (typeof fn !== 'function') throw shareError('ERR_BAD_OPTION', `fn must be a function, got ${describe(fn)}`);
    const given = options.ttl === undefined ? undefined : this.#expiry(options.ttl);
    encodeKey(key, view.maxKey);
    const { bytes, hash } = ownKey();
    return this.#exclusive(() => {
      const now = Date.now();
      const slot = find(view, bytes, bytes.length, hash, true);
      let current: V | undefined;
      let expires = given ?? this.#expiry(undefined);
      if (slot !== MISS) {
        const record = recordOf(view, found.head);
        if (!(record.flags & FLAG_PENDING) && !isExpired(record.expires, now)) {
          current = this.#decodeLocked(view, found.head, record.keyLength, record.valueLength);
          if (given === undefined && record.expires !== 0) expires = record.expires;
        }
      }
      const next = fn(current);
      if (next === undefined) {
        const again = find(view, bytes, bytes.length, hash, true);
        if (again !== MISS && current !== undefined) remove(view, again, F_DELETES);
        return undefined;
      }
      put(view, { key: bytes, hash, flags: 0, value: this.#encode(next), expires }, Date.now());
      return next;
    });
  }

  /**
   * The value of `key`; when it is absent, `compute(key)` runs in exactly one process of the cluster while the others
   * wait for its result, polling without blocking their event loop. If the computing thread dies, or its compute
   * throws (which its own caller alone sees), a waiting process computes instead.
   */
  async fetch(key: string, compute: Compute<V>, options: FetchOptions = {}): Promise<V | undefined> {
    this.#open();
    if (typeof compute !== 'function') {
      throw shareError('ERR_BAD_OPTION', `compute must be a function, got ${describe(compute)}`);
    }
    const timeout = checkTimeout(options.timeout);
    this.#expiry(options.ttl);
    const hit = this.get(key);
    if (hit !== undefined) return hit;
    return this.#fetches.join(key, timeout, options.signal, (control) =>
      this.#fetchShared(key, compute, options.ttl, control),
    );
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
    return this.#exclusive(() => verify(view, (bytes) => this.#codec.decode(bytes)));
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
    let hits = f64[F_HITS]! + (this.#row === undefined ? this.#hits : 0);
    let misses = f64[F_MISSES]! + (this.#row === undefined ? this.#misses : 0);
    for (let row = 0; row < COUNTER_ROWS; row++) {
      const at = rowIndex(row);
      if (Atomics.load(words, at.pid) === 0) continue;
      hits += f64[at.hits]!;
      misses += f64[at.hits + 1]!;
    }
    return {
      entries: Atomics.load(words, W_ENTRIES),
      pending: Atomics.load(words, W_PENDING),
      maxEntries: view.maxEntries,
      bytes: (view.chunks - Atomics.load(words, W_FREE_COUNT)) * CHUNK,
      capacity: view.chunks * CHUNK,
      hits,
      misses,
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
    for (const key of this.#keyList()) {
      const value = this.peek(key);
      if (value !== undefined) yield [key, value];
    }
  }

  [Symbol.iterator](): Generator<[string, V]> {
    return this.entries();
  }

  /** What another process passes to `SharedMap.attach()` to reach this map. */
  get handle(): string {
    this.#open();
    return this.#region!.handle;
  }

  /** Whether close() has run. */
  get closed(): boolean {
    return this.#region === undefined;
  }

  /**
   * Gives back this instance's descriptor, its counter row (its counts stay in stats()), its fetch markers and its
   * name in `process.env`; later calls throw ERR_CLOSED. Idempotent. On a damaged map it still closes, then throws
   * ERR_BAD_HANDLE.
   */
  close(): void {
    const region = this.#region;
    if (region === undefined) return;
    const view = this.#view;
    try {
      if (this.#row !== undefined || this.#hits + this.#misses > 0 || this.#markers.size > 0) {
        this.#exclusive(() => {
          this.#foldCounters(view);
          for (const [name, token] of this.#markers) this.#dropMarker(view, name, token);
        });
      }
    } finally {
      // A damaged map still gives its descriptor back; the error says why its counts were not folded.
      closeRegion(region);
      this.#region = undefined;
      this.#snapshots.clear();
      if (this.#envName !== undefined && process.env[this.#envName] === region.handle)
        delete process.env[this.#envName];
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #open(): MapView {
    if (this.#region === undefined) throw shareError('ERR_CLOSED', 'this SharedMap is closed');
    return this.#view;
  }

  // Runs `work` holding the exclusive lock; the first holder after one that died repairs what it left half done.
  #exclusive<R>(work: () => R): R {
    this.#open();
    const region = this.#region!;
    if (this.#locked) return work();
    takeLock(region);
    this.#locked = true;
    try {
      // DEAD is cleared only once the repair is done: a repair that dies or throws is run again by the next writer.
      if (deadHolder(region)) {
        repair(this.#view);
        takeDeadHolder(region);
      }
      return work();
    } finally {
      this.#locked = false;
      releaseLock(region);
    }
  }

  // Reads `name` (decoding its value when `decode`), without a lock while writers let it, then under the lock.
  #read(name: string, decode: boolean, use: boolean): Read<V> {
    const view = this.#open();
    encodeKey(name, view.maxKey);
    if (!this.#locked) {
      for (let attempt = 0; attempt < LOCK_FREE_TRIES; attempt++) {
        const read = this.#readOnce(view, decode, use, false);
        if (read !== RACE) return read;
      }
    }
    // Writers kept changing what this reader read: under the lock they wait. The key may have been overwritten by
    // whatever ran between, so it is encoded again.
    return this.#exclusive(() => {
      encodeKey(name, view.maxKey);
      return this.#readOnce(view, decode, use, true);
    });
  }

  #readOnce(view: MapView, decode: boolean, use: boolean, locked: boolean): Read<V> {
    // A renumbering (once in 4 billion writes) can give the version read to another record: see ERA.
    const era = view.words[W_ERA];
    const slot = find(view, encoded.bytes, encoded.length, encoded.hash, locked);
    if (slot === MISS) return ABSENT;
    if (slot === RACED) return RACE;
    const { words } = view;
    const { ver, head } = found;
    const word = chunkWord(view, head);
    const keyWord = words[word + R_KEY]!;
    const valueLength = words[word + R_VALUE]!;
    const expires = expiresOf(view, head);
    const pending = keyWord >>> 16 === FLAG_PENDING;
    let payload: Uint8Array | undefined;
    let value: V | undefined;
    let failure: unknown;
    if (decode && !pending && valueLength <= view.maxValue) {
      payload = getBytes(view, head, RECORD_HEADER + (keyWord & 0xffff), valueLength);
      // A broken chain is a writer's doing while it races this reader, and damage under the lock.
      if (payload === undefined) {
        if (locked) throw corruptMap(`the chain of chunk ${head} is broken`);
        return RACE;
      }
      if (payload.buffer === view.bytes.buffer) {
        // A view of the mapping: a copyFirst codec copies it inside the race window; any other decodes it there.
        if (this.#codec.copyFirst) payload = new Uint8Array(payload);
        else {
          try {
            value = this.#codec.decode(payload);
          } catch (error) {
            failure = error;
          }
          payload = undefined;
        }
      }
    }
    const slotWordIndex = slotWord(view, slot);
    if (
      !locked &&
      (Atomics.load(words, slotWordIndex + S_VER) !== ver ||
        Atomics.load(words, slotWordIndex + S_HEAD) !== head ||
        words[W_ERA] !== era)
    ) {
      return RACE;
    }
    if (pending || isExpired(expires)) return ABSENT;
    if (decode && valueLength > view.maxValue) {
      if (locked) throw corruptMap(`the entry in slot ${slot} claims ${valueLength} bytes`);
      return RACE;
    }
    if (use) touch(view, slot);
    this.#slot = slot;
    this.#ver = ver;
    this.#expires = expires;
    if (!decode) return undefined as V;
    if (payload !== undefined) {
      try {
        value = this.#codec.decode(payload);
      } catch (error) {
        failure = error;
      }
    }
    if (failure !== undefined) throw corruptMap(`its value does not decode (${(failure as Error).message})`, failure);
    return value as V;
  }

  #decodeLocked(view: MapView, head: number, keyLength: number, valueLength: number): V {
    const bytes = getBytes(view, head, RECORD_HEADER + keyLength, valueLength);
    if (bytes === undefined) throw corruptMap(`the chain of chunk ${head} is broken`);
    try {
      return this.#codec.decode(this.#codec.copyFirst ? new Uint8Array(bytes) : bytes);
    } catch (error) {
      throw corruptMap(`its value does not decode (${(error as Error).message})`, error);
    }
  }

  #counted(read: Read<V>): V | undefined {
    const hit = read !== ABSENT;
    this.#count(hit);
    return hit ? (read as V) : undefined;
  }

  // Each instance counts in a row of its own: no cache line is shared with another process's counting.
  #count(hit: boolean): void {
    const { f64 } = this.#view;
    if (!this.#rowTaken) this.#claimRow();
    const row = this.#row;
    if (hit) {
      this.#hits++;
      if (row !== undefined) f64[row.hits] = this.#hits;
    } else {
      this.#misses++;
      if (row !== undefined) f64[row.hits + 1] = this.#misses;
    }
  }

  #claimRow(): void {
    this.#rowTaken = true;
    const { words } = this.#view;
    for (let pass = 0; pass < 2; pass++) {
      for (let row = 0; row < COUNTER_ROWS; row++) {
        const at = rowIndex(row);
        const owner = ownOwner();
        if (Atomics.compareExchange(words, at.pid, 0, owner.id) !== 0) continue;
        Atomics.store(words, at.pid + 1, owner.start);
        this.#row = at;
        return;
      }
      // Every row is taken: fold the rows of processes that are gone, then look once more.
      if (pass === 0) this.#exclusive(() => this.#foldDeadRows());
    }
  }

  #foldDeadRows(): void {
    const { words, f64 } = this.#view;
    for (let row = 0; row < COUNTER_ROWS; row++) {
      const at = rowIndex(row);
      const pid = Atomics.load(words, at.pid);
      const start = Atomics.load(words, at.pid + 1);
      if (pid === 0 || start === 0 || !isGone({ id: pid, start })) continue;
      f64[F_HITS]! += f64[at.hits]!;
      f64[F_MISSES]! += f64[at.hits + 1]!;
      f64[at.hits] = 0;
      f64[at.hits + 1] = 0;
      freeRow(words, at);
    }
  }

  #foldCounters(view: MapView): void {
    const { f64, words } = view;
    f64[F_HITS]! += this.#hits;
    f64[F_MISSES]! += this.#misses;
    this.#hits = 0;
    this.#misses = 0;
    const row = this.#row;
    if (row === undefined) return;
    f64[row.hits] = 0;
    f64[row.hits + 1] = 0;
    freeRow(words, row);
    this.#row = undefined;
  }

  async #fetchShared(
    name: string,
    compute: Compute<V>,
    ttl: number | undefined,
    control: FlightControl,
  ): Promise<V | undefined> {
    for (;;) {
      const claim = this.#claim(name);
      if (claim.kind === 'value') return claim.value;
      if (claim.kind === 'mine') {
        control.computing();
        return this.#compute(name, claim.token, compute, ttl, control.signal);
      }
      control.waitingFor(`pid ${claim.marker.id} to compute it`);
      await pollUntil(
        () => (this.#markerLapsed(name, claim.ver, claim.marker) ? true : undefined),
        Infinity,
        control.signal,
        () => '',
      );
    }
  }

  // Under the lock: the key's value if it has one; else this instance's marker, put in place of none, or of a marker
  // whose lease ran out or whose thread is gone; else the live marker of the thread computing it.
  #claim(
    name: string,
  ): { kind: 'value'; value: V } | { kind: 'mine'; token: number } | { kind: 'wait'; ver: number; marker: Marker } {
    const view = this.#open();
    encodeKey(name, view.maxKey);
    const { bytes, hash } = ownKey();
    return this.#exclusive(() => {
      const now = Date.now();
      const slot = find(view, bytes, bytes.length, hash, true);
      if (slot !== MISS) {
        const record = recordOf(view, found.head);
        const live = !isExpired(record.expires, now);
        if (!(record.flags & FLAG_PENDING) && live) {
          return { kind: 'value', value: this.#decodeLocked(view, found.head, record.keyLength, record.valueLength) };
        }
        const marker = record.flags & FLAG_PENDING && live ? markerOf(view, found.head) : undefined;
        if (marker !== undefined && !isGone(marker)) return { kind: 'wait', ver: found.ver, marker };
      }
      const token = (lastToken = (lastToken + 1) >>> 0);
      const value = markerBytes({ ...ownOwner(), token });
      put(view, { key: bytes, hash, flags: FLAG_PENDING, value, expires: now + LEASE_MS }, now);
      this.#markers.set(name, token);
      step('marker.claimed');
      return { kind: 'mine', token };
    });
  }

  // Runs compute for the marker `token` holds, renewing its lease meanwhile; stores what it returns in place of the
  // marker, or drops the marker on every way out that stores nothing (compute, encode or store failing).
  async #compute(
    name: string,
    token: number,
    compute: Compute<V>,
    ttl: number | undefined,
    signal: AbortSignal,
  ): Promise<V | undefined> {
    const renewal = setInterval(() => this.#renew(name, token), LEASE_MS / 3);
    renewal.unref();
    try {
      const value = await compute(name, { signal });
      const payload = value === undefined ? undefined : this.#encode(value);
      const expires = this.#expiry(ttl);
      const view = this.#open();
      this.#exclusive(() => {
        const slot = this.#markerSlot(view, name, token);
        const key = encoded.bytes.subarray(0, encoded.length);
        if (slot === MISS) {
          // Without its marker, a value someone set meanwhile is newer than this computation: it stays.
        } else if (payload === undefined) remove(view, slot, undefined);
        else put(view, { key, hash: encoded.hash, flags: 0, value: payload, expires }, Date.now());
        // A run aborted but still computing must not forget the marker of the run that followed it.
        if (this.#markers.get(name) === token) this.#markers.delete(name);
      });
      return value;
    } catch (error) {
      if (this.#markers.get(name) === token && !this.closed) {
        this.#exclusive(() => this.#dropMarker(this.#view, name, token));
      }
      throw error;
    } finally {
      clearInterval(renewal);
    }
  }

  // Extends the lease of this instance's marker for `name`, while it is there.
  #renew(name: string, token: number): void {
    if (this.closed || this.#markers.get(name) !== token) return;
    const view = this.#view;
    try {
      this.#exclusive(() => {
        const slot = this.#markerSlot(view, name, token);
        if (slot === MISS) return;
        setExpires(view, found.head, Date.now() + LEASE_MS);
        step('marker.renewed');
      });
    } catch {
      // A timer has no caller to tell: the lease lapses, and the store after compute meets the same damage and throws.
    }
  }

  // The slot of this instance's marker for `name` with `token`, or MISS; leaves the key encoded. Under the lock.
  #markerSlot(view: MapView, name: string, token: number): number {
    encodeKey(name, view.maxKey);
    const slot = find(view, encoded.bytes, encoded.length, encoded.hash, true);
    if (slot === MISS || !(recordOf(view, found.head).flags & FLAG_PENDING)) return MISS;
    const marker = markerOf(view, found.head);
    const owner = ownOwner();
    return marker.token === token && marker.id === owner.id && marker.start === owner.start ? slot : MISS;
  }

  // Removes this instance's marker for `name`, if it is still there.
  #dropMarker(view: MapView, name: string, token: number): void {
    const slot = this.#markerSlot(view, name, token);
    if (slot !== MISS) {
      remove(view, slot, undefined);
      step('marker.dropped');
    }
    this.#markers.delete(name);
  }

  // Whether the marker a waiter saw for `name` (version `ver`) is gone, replaced, past its lease, or its thread gone.
  #markerLapsed(name: string, ver: number, marker: Marker): boolean {
    const view = this.#open();
    const replaced = (slot: number) => slot === MISS || found.ver !== ver || isExpired(expiresOf(view, found.head));
    encodeKey(name, view.maxKey);
    for (let attempt = 0; attempt < LOCK_FREE_TRIES; attempt++) {
      const slot = find(view, encoded.bytes, encoded.length, encoded.hash, false);
      if (slot !== RACED) return replaced(slot) || isGone(marker);
    }
    // Writers kept moving slots, or this machine reads only under the lock.
    const seen = this.#exclusive(() => {
      encodeKey(name, view.maxKey);
      return replaced(find(view, encoded.bytes, encoded.length, encoded.hash, true));
    });
    return seen || isGone(marker);
  }

  // The keys present now: one pass over the slots without the lock, repeated if slots moved meanwhile (an entry
  // could have moved past the pass), and done under the lock if they keep moving.
  #keyList(): string[] {
    const view = this.#open();
    for (let attempt = 0; attempt < LOCK_FREE_TRIES; attempt++) {
      const keys = this.#scanKeys(view, false);
      if (keys !== undefined) return keys;
    }
    return this.#exclusive(() => this.#scanKeys(view, true)!);
  }

  #scanKeys(view: MapView, locked: boolean): string[] | undefined {
    const { words } = view;
    const epoch = Atomics.load(words, W_EPOCH);
    const era = Atomics.load(words, W_ERA);
    if (!locked && epoch & 1) return undefined;
    const keys: string[] = [];
    const now = Date.now();
    for (let slot = 0; slot < view.slots; slot++) {
      const word = slotWord(view, slot);
      const ver = Atomics.load(words, word + S_VER);
      if (ver === 0) continue;
      const head = Atomics.load(words, word + S_HEAD);
      if (head >= view.chunks) {
        if (locked) throw corruptMap(`slot ${slot} points past the last chunk`);
        return undefined;
      }
      // Read as get() reads: the record's shape is trusted only once its version and the slot are found unchanged.
      const recordWord = chunkWord(view, head);
      const keyWord = words[recordWord + R_KEY]!;
      const keyLength = keyWord & 0xffff;
      const expires = expiresOf(view, head);
      const bytes = keyLength <= view.maxKey ? getBytes(view, head, RECORD_HEADER, keyLength) : undefined;
      const name = bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8');
      if (
        Atomics.load(words, recordWord + R_VER) !== ver ||
        Atomics.load(words, word + S_VER) !== ver ||
        Atomics.load(words, word + S_HEAD) !== head
      ) {
        if (locked) throw corruptMap(`slot ${slot} does not match its record`);
        return undefined;
      }
      if (name === undefined) {
        if (locked) throw corruptMap(`the key in slot ${slot} is damaged`);
        return undefined;
      }
      if (!((keyWord >>> 16) & FLAG_PENDING) && !isExpired(expires, now)) keys.push(name);
    }
    return locked || (Atomics.load(words, W_EPOCH) === epoch && Atomics.load(words, W_ERA) === era) ? keys : undefined;
  }

  #encode(value: V): Uint8Array {
    const payload = encodeValue(this.#codec, value);
    const { maxValue } = this.#view;
    if (payload.length > maxValue) {
      throw shareError(
        'ERR_VALUE_TOO_LARGE',
        `the value serializes to ${payload.length} bytes; this map takes values of at most ${maxValue}`,
      );
    }
    return payload;
  }

  // The expiry time for a ttl given to a call (checked), or the map's default when none is.
  #expiry(ttl: number | undefined): number {
    if (ttl !== undefined) checkTtl(ttl);
    const ms = ttl ?? this.#view.f64[F_TTL]!;
    if (!(ms >= 0 && ms < Infinity)) throw corruptMap(`its default ttl is ${ms}`);
    return ms === 0 ? 0 : Date.now() + ms;
  }
}

// Gives a counter row back. Its start goes first, so that a row just claimed, whose start is not yet stored, reads
// as one being claimed (start 0), which no one folds, not as the thread that had it before.
function freeRow(words: Uint32Array, at: { pid: number }): void {
  Atomics.store(words, at.pid + 1, 0);
  Atomics.store(words, at.pid, 0);
}

// The float64 index of a counter row's hits (misses follow), and the word index of its pid (its start follows).
function rowIndex(row: number): { pid: number; hits: number } {
  const byte = COUNTERS_BYTES + row * COUNTER_ROW_BYTES;
  return { pid: byte >>> 2, hits: (byte + 16) >>> 3 };
}

/** Bytes from a number or a string such as '64MB'. */
function parseCapacity(capacity: unknown): number {
  const match = typeof capacity === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$/i.exec(capacity) : null;
  const bytes = match === null ? capacity : Math.floor(Number(match[1]) * UNITS[match[2]!.toLowerCase()]!);
  if (typeof bytes !== 'number' || !Number.isInteger(bytes) || bytes < MIN_CAPACITY || bytes > MAX_CAPACITY) {
    throw shareError(
      'ERR_BAD_SIZE',
      `capacity must be an integer number of bytes from ${MIN_CAPACITY} to ${MAX_CAPACITY}, or a string such as '64MB', got ${describe(capacity)}`,
    );
  }
  return bytes;
}

// The geometry of a new map, from its options; every bad option is refused here, before any file is made.
function planMap(options: SharedMapOptions<unknown>) {
  if (typeof options !== 'object' || options === null) {
    throw shareError('ERR_BAD_OPTION', `options must be an object with a capacity, got ${describe(options)}`);
  }
  const capacity = parseCapacity(options.capacity);
  const integer = (name: string, value: unknown, fallback: number, max: number): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
      throw shareError('ERR_BAD_OPTION', `${name} must be an integer from 1 to ${max}, got ${describe(value)}`);
    }
    return value;
  };
  const maxKey = integer('maxKeySize', options.maxKeySize, DEFAULT_MAX_KEY, MAX_KEY_LIMIT);
  const maxEntries = integer(
    'maxEntries',
    options.maxEntries,
    Math.floor(capacity / BYTES_PER_DEFAULT_ENTRY),
    Math.floor((capacity / 32) * MAX_LOAD),
  );
  const slots = slotsFor(maxEntries);
  const chunks = chunksFor(capacity, slots);
  const room = chunks * CHUNK - RECORD_HEADER - maxKey;
  const maxValue = integer(
    'maxValueSize',
    options.maxValueSize,
    Math.min(DEFAULT_MAX_VALUE, Math.floor(room / 4)),
    Math.max(1, room),
  );
  if (maxValue < 1 || recordChunks(maxKey, maxValue) > chunks) {
    throw shareError(
      'ERR_BAD_OPTION',
      `capacity ${capacity} leaves ${chunks * CHUNK} bytes for entries beside an index for ${maxEntries}: too little for a key of ${maxKey} bytes`,
    );
  }
  const { eviction = 'lru', ttl = 0, name, path } = options;
  if (eviction !== 'lru' && eviction !== 'none') {
    throw shareError('ERR_BAD_OPTION', `eviction must be 'lru' or 'none', got ${describe(eviction)}`);
  }
  checkTtl(ttl);
  if ('codec' in options) resolveCodec(options.codec);
  checkPlacement(name, path);
  return { capacity, slots, chunks, maxEntries, maxValue, maxKey, policy: eviction, ttl };
}
