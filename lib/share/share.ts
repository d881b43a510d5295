// MmapShare: one structured value shared by processes and threads, behind flock.
import type { ChangesOptions, LockAsyncOptions, LockInfo, Share, WatchOptions } from '../api.js';
import { type Codec, codecId, type CodecOption, deepFreeze, encodeValue, resolveCodec } from '../codec.js';
import { describe, shareError } from '../errors.js';
import { RegionHandle } from '../handle.js';
import { MAX_SIZE } from '../layout.js';
import { commit, type Read, readLocked, readUnlocked, W_COMMIT } from './layout.js';
import { describeHolder, takeDeadHolder, takeLock, tryTakeLock } from '../lock.js';
import {
  CHANGES_NAMES,
  checkNames,
  checkSignal,
  checkWait,
  LOCK_ASYNC_NAMES,
  type Names,
  WATCH_NAMES,
} from '../options.js';
import { attachKind, checkPlacement, createRegion, type Region, unlinkRegion } from '../region.js';
import { changes, checkInterval, watch, type Watched } from '../watch.js';
import { listen, waitOn } from '../bell.js';

export interface CreateOptions<T> {
  /** Exports the handle as `MMAP_SHARE_<name>` in `process.env`, so forked children can `attach(name)`. */
  name?: string;
  /** Backs the region with this file (created exclusively, mode 0600) instead of a file with no name. */
  path?: string;
  /** The first value, committed as version 1. */
  value?: T;
  /** How values are turned into bytes: 'v8' (default), 'msgpack', 'msgpack-refs', or `{ name, encode, decode }`. */
  codec?: CodecOption<T>;
}

export interface AttachOptions<T> {
  /** Needed only for a region written by a codec of your own; built-in codecs are found from the region. */
  codec?: CodecOption<T>;
}

/**
 * A shared region holding one value of type `T`. `Unset` is what reads give before the first set(): undefined, or
 * never for a share created with a `value`.
 */
export class MmapShare<T = unknown, Unset extends undefined = undefined> implements Share<T, Unset> {
  // Set by attach() for the constructor to adopt, so that `new MmapShare(size)` keeps the Perl module's meaning.
  static #adopting: { region: Region; codec: Codec } | undefined;
  #handle: RegionHandle;
  #codec: Codec<T>;
  #snapshot: Read<T> | undefined;
  // The looks of its watchers and changes() iterators, each with what stops it, for close() to end them.
  readonly #listening = new Map<() => void, () => void>();

  /** Same as `MmapShare.create(size, options)`. */
  constructor(size: number, options: CreateOptions<T> = {}) {
    const adopted = MmapShare.#adopting;
    MmapShare.#adopting = undefined;
    let initial: Uint8Array | undefined;
    if (adopted === undefined) {
      checkSize(size);
      checkCreateOptions(options);
      this.#codec = resolveCodec(options.codec) as Codec<T>;
      if ('value' in options) initial = encodeFitting(this.#codec, options.value as T, size);
    } else {
      this.#codec = adopted.codec as Codec<T>;
    }
    const region = adopted?.region ?? createRegion('share', size, codecId(this.#codec.name), options.path);
    if (initial !== undefined) commit(region, initial);
    this.#handle = new RegionHandle(region, 'MmapShare', options.name);
  }

  /** Creates a region with room for one serialized value of `size` bytes. */
  static create<T>(size: number, options: CreateOptions<T> & { value: T }): MmapShare<T, never>;
  static create<T = unknown>(size: number, options?: CreateOptions<T>): MmapShare<T>;
  static create<T>(size: number, options?: CreateOptions<T>): MmapShare<T> {
    return new MmapShare<T>(size, options);
  }

  /** Attaches to a region by `share.handle`, by a name given to `create()` in an ancestor, or by path. */
  static attach<T = unknown>(ref: string, options: AttachOptions<T> = {}): MmapShare<T> {
    checkNames(options, ATTACH_NAMES);
    MmapShare.#adopting = attachKind(ref, 'share', options.codec);
    return new MmapShare<T>(0);
  }

  /** Removes the file of a region created with `{ path }`; processes that have it open keep using it. */
  static unlink(path: string): void {
    if (typeof path !== 'string' || path === '') throw shareError('ERR_BAD_HANDLE', `path must be a non-empty string`);
    unlinkRegion(path);
  }

  /** The value last set, freshly decoded; undefined before the first set. Takes no lock. */
  get(): T | Unset {
    return this.#read(this.#open()).value as T | Unset;
  }

  /**
   * The value last set, decoded once per version: while the version is unchanged, it costs one load of the commit
   * word. Deeply frozen, and shared by every call, so treat it as immutable (Maps, Sets and typed arrays cannot be
   * frozen: do not change them either).
   */
  snapshot(): Readonly<T> | Unset {
    const region = this.#open();
    if (this.#snapshot?.version !== Atomics.load(region.words, W_COMMIT)) {
      const read = this.#read(region);
      this.#snapshot = { version: read.version, value: deepFreeze(read.value) };
    }
    return this.#snapshot.value as Readonly<T> | Unset;
  }

  /** Stores `value`. It is encoded before the lock is taken; nothing is written if that fails or it does not fit. */
  set(value: T): void {
    const region = this.#open();
    const payload = encodeFitting(this.#codec, value, region.size);
    this.#exclusive(() => commit(region, payload));
  }

  /** Replaces the value with `fn(current)` under the exclusive lock, and returns the new value. */
  update(fn: (current: T | Unset) => T): T {
    const region = this.#open();
    if (typeof fn !== 'function') throw shareError('ERR_BAD_OPTION', `fn must be a function, got ${describe(fn)}`);
    return this.#exclusive(() => {
      const next = fn(readLocked(region, this.#codec).value as T | Unset);
      // `fn` may have closed this share, which gave the lock back: nothing is written then.
      this.#open();
      commit(region, encodeFitting(this.#codec, next, region.size));
      return next;
    });
  }

  /**
   * Calls `listener(value, version)` after every change of version, woken by the region's doorbell (or, where the
   * kernel cannot watch the region, by polling the version word every `interval` ms). Several changes between two
   * looks make one call, with the latest value. Keeps no process alive, and stops by itself on close(). Returns the
   * function that stops watching.
   */
  watch(listener: (value: T | Unset, version: number) => void, options: WatchOptions = {}): () => void {
    this.#open();
    checkNames(options, WATCH_NAMES);
    if (typeof listener !== 'function')
      throw shareError('ERR_BAD_OPTION', `listener must be a function, got ${describe(listener)}`);
    return watch(this.#watched(), listener, checkInterval(options));
  }

  /** The value after every change of version, as an async iterator: `for await (const value of share.changes())`. */
  changes(options: ChangesOptions = {}): AsyncGenerator<T | Unset> {
    this.#open();
    checkNames(options, CHANGES_NAMES);
    return changes(this.#watched(), checkInterval(options), checkSignal(options.signal));
  }

  /** Takes the exclusive lock, waiting as long as it takes; blocks the thread while it waits. */
  lock(): LockInfo {
    this.#notLocked();
    takeLock(this.#open(), true);
    return this.#acquired();
  }

  /** Takes the exclusive lock if it is free; undefined when someone else holds it. */
  tryLock(): LockInfo | undefined {
    this.#notLocked();
    return tryTakeLock(this.#open()) ? this.#acquired() : undefined;
  }

  /**
   * Takes the exclusive lock without blocking the event loop or a libuv pool thread. Calls on one instance queue:
   * while it holds the lock, a further lockAsync() waits for its unlock().
   */
  async lockAsync(options: LockAsyncOptions = {}): Promise<LockInfo> {
    checkNames(options, LOCK_ASYNC_NAMES);
    const { timeout, signal } = checkWait(options);
    return waitOn(
      this.#open(),
      // Another call on this instance may have taken the lock while this one slept; wait for its unlock.
      () => (!this.#handle.locked && tryTakeLock(this.#open()) ? this.#acquired() : undefined),
      {
        timeout,
        signal,
        explain: () => `lock not acquired within ${timeout} ms: ${describeHolder(this.#open())}`,
      },
    );
  }

  /** Releases the lock taken by lock(), tryLock() or lockAsync(). */
  unlock(): void {
    const region = this.#open();
    if (!this.#handle.locked) throw shareError('ERR_NOT_LOCKED', 'unlock() without a lock held by this instance');
    if (this.#handle.inSection) {
      throw shareError('ERR_NOT_LOCKED', 'unlock() inside update(): the update holds the lock until it returns');
    }
    this.#handle.release(region);
  }

  /** 0 until the first set, then one more on every set and update, as seen by every process. */
  get version(): number {
    return Atomics.load(this.#open().words, W_COMMIT);
  }

  /** The room for one serialized value, in bytes. */
  get size(): number {
    return this.#open().size;
  }

  /** What another process passes to `MmapShare.attach()` to reach this region. */
  get handle(): string {
    return this.#handle.handle;
  }

  /** Whether close() has run. */
  get closed(): boolean {
    return this.#handle.closed;
  }

  /**
   * Releases the lock if held, the descriptor and the name in `process.env`; later calls throw ERR_CLOSED.
   * Idempotent. The mapping itself is unmapped when it is garbage-collected.
   */
  close(): void {
    this.#handle.close();
    // Every watcher stops listening now, even a changes() iterator nobody pulls any more, then looks once more to see
    // the share closed.
    for (const [look, stop] of this.#listening) {
      stop();
      look();
    }
  }

  /** Same as close(), for `using share = MmapShare.attach(ref)`. */
  [Symbol.dispose](): void {
    this.close();
  }

  // What watch() and changes() see of this share.
  #watched(): Watched<T | Unset> {
    const region = this.#open();
    return {
      version: () => Atomics.load(region.words, W_COMMIT),
      closed: () => this.closed,
      get: () => this.get(),
      listen: (look, interval) => {
        const unlisten = listen(region, look, interval);
        const stop = () => {
          this.#listening.delete(look);
          unlisten();
        };
        this.#listening.set(look, stop);
        return stop;
      },
    };
  }

  #open(): Region {
    return this.#handle.open();
  }

  #read(region: Region): Read<T> {
    const codec = this.#codec;
    return this.#handle.optimistic(
      () => readUnlocked(region, codec),
      () => readLocked(region, codec),
    );
  }

  #notLocked(): void {
    this.#open();
    if (this.#handle.locked) throw shareError('ERR_ALREADY_LOCKED', 'this instance already holds the lock');
  }

  #acquired(): LockInfo {
    this.#handle.locked = true;
    return takeDeadHolder(this.#open());
  }

  #exclusive<R>(work: () => R): R {
    return this.#handle.exclusive(work);
  }
}

function encodeFitting<T>(codec: Codec<T>, value: T, size: number): Uint8Array {
  const payload = encodeValue(codec, value);
  if (payload.length > size) {
    throw shareError(
      'ERR_VALUE_TOO_LARGE',
      `the value serializes to ${payload.length} bytes; the region holds ${size}`,
    );
  }
  return payload;
}

function checkSize(size: unknown): asserts size is number {
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > MAX_SIZE) {
    throw shareError('ERR_BAD_SIZE', `size must be an integer from 1 to ${MAX_SIZE}, got ${describe(size)}`);
  }
}

const CREATE_NAMES: Names<CreateOptions<unknown>> = { name: true, path: true, value: true, codec: true };
const ATTACH_NAMES: Names<AttachOptions<unknown>> = { codec: true };

function checkCreateOptions(options: CreateOptions<unknown>): void {
  checkNames(options, CREATE_NAMES);
  if ('codec' in options) resolveCodec(options.codec);
  checkPlacement(options.name, options.path);
}
