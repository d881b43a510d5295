// RedisShare: the MmapShare API over Redis, for processes on more than one machine. Every method returns a promise.
//
// | key           | type   | holds                                                                      |
// |---------------|--------|----------------------------------------------------------------------------|
// | {K}           | hash   | c: the codec's name; n: the version (0 until the first set); v: the value |
// | {K}:lock      | string | the lock holder's random token; expires after the lease unless renewed     |
// | {K}:holder    | string | the holder's pid, kept from lock() to unlock(): found by the next lock()   |
// |               |        | while {K}:lock is gone, it means the holder died holding it               |
// | {K}:changes   | channel| each new version, published by the write that made it                    |
//
// The braces put every key of one share in one Redis Cluster slot, so one script can touch them all. Redis may drop
// {K} like any key (evicted, flushed): a write then makes it again with the writer's codec.
import { randomBytes } from 'node:crypto';
import { type Codec, codecFor, codecId, type CodecOption, encodeValue, resolveCodec } from '../codec.js';
import { describe, shareError } from '../errors.js';
import { checkTimeout, type LockInfo, pollUntil } from '../lock.js';
import type { LockAsyncOptions } from '../share.js';
import type { ChangesOptions } from '../watch.js';
import type { Share } from '../api.js';
import { Connection, type RedisOptions, text } from './connection.js';

export interface RedisShareOptions<T> extends RedisOptions {
  /** The first value, committed as version 1. */
  value?: T;
  /** 'v8' (default), 'msgpack', 'msgpack-refs', or a codec of your own: the same bytes as in shared memory. */
  codec?: CodecOption<T>;
  /** Milliseconds a lock() holder keeps the lock if it stops renewing it (it renews every third of it). Default 10000. */
  lease?: number;
}

export interface RedisAttachOptions<T> extends RedisOptions {
  codec?: CodecOption<T>;
  lease?: number;
}

const DEFAULT_LEASE_MS = 10_000;
// Redis's limit on one string.
const MAX_VALUE_BYTES = 512 * 2 ** 20;

/**
 * A Lua function, clock(): the server's time in microseconds, as the version of a record made again after Redis lost
 * it. It is above any version the lost record reached, unless that took more than one change a microsecond.
 */
export const CLOCK = `
local function clock()
  local now = redis.call('TIME')
  return now[1] .. string.format('%06d', now[2])
end`;

// Writes `v` as the next version, unless another token holds the lock (-1) or the version is not the expected one (-2).
// A record without its codec (ARGV[4]) is one Redis lost: it is made again.
const WRITE = `${CLOCK}
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return -1 end
if ARGV[3] ~= '' and (redis.call('HGET', KEYS[1], 'n') or '0') ~= ARGV[3] then return -2 end
if redis.call('HSETNX', KEYS[1], 'c', ARGV[4]) == 1 then redis.call('HSET', KEYS[1], 'n', clock()) end
redis.call('HSET', KEYS[1], 'v', ARGV[2])
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('PUBLISH', KEYS[3], n)
return n`;

// The value, its version and the lock's token ('' when free), in one round trip.
const READ = `
return {redis.call('HGET', KEYS[1], 'v') or '', redis.call('HGET', KEYS[1], 'n') or '0', redis.call('GET', KEYS[2]) or ''}`;

// Takes the lock for ARGV[2] ms; returns nil when held, else the pid of a holder that died holding it, or ''.
const ACQUIRE = `
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return nil end
local dead = redis.call('GET', KEYS[2]) or ''
redis.call('SET', KEYS[2], ARGV[3])
return dead`;

const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])`;

const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1], KEYS[2])`;

const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'c', ARGV[1], 'n', ARGV[2])
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'v', ARGV[3]) end
return 1`;

/** One value shared through Redis: the MmapShare API, every method returning a promise. */
export class RedisShare<T = unknown> implements Share<T> {
  readonly #connection: Connection;
  readonly #codec: Codec<T>;
  readonly #keys: { value: string; lock: string; holder: string; changes: string };
  readonly #lease: number;
  #token: string | undefined;
  #renewal: NodeJS.Timeout | undefined;
  // Tokens asked for and not yet answered: Redis may grant one whose answer is lost, or comes after close().
  readonly #asking = new Set<string>();
  #closed = false;
  readonly #watchers = new Set<() => Promise<void>>();

  private constructor(connection: Connection, key: string, codec: Codec<T>, lease: number) {
    this.#connection = connection;
    this.#codec = codec;
    this.#lease = lease;
    const base = `{${key}}`;
    this.#keys = { value: base, lock: `${base}:lock`, holder: `${base}:holder`, changes: `${base}:changes` };
  }

  /** Creates the share under `key`; ERR_EXISTS when something is stored there already. */
  static async create<T = unknown>(key: string, options: RedisShareOptions<T> = {}): Promise<RedisShare<T>> {
    checkKey(key);
    const codec = resolveCodec(options.codec) as Codec<T>;
    const lease = checkLease(options.lease);
    const initial = 'value' in options ? encodeOwned(codec, options.value as T) : undefined;
    const connection = await Connection.open(options);
    const share = new RedisShare<T>(connection, key, codec, lease);
    const made = await share.#run(CREATE, [share.#keys.value], [codec.name, initial ? '1' : '0', initial ?? '']);
    if (made === 0) {
      await connection.close();
      throw shareError('ERR_EXISTS', `Redis already holds ${JSON.stringify(key)}`);
    }
    return share;
  }

  /** Attaches to the share created under `key`, with the codec it records (or `options.codec`, which must match). */
  static async attach<T = unknown>(key: string, options: RedisAttachOptions<T> = {}): Promise<RedisShare<T>> {
    checkKey(key);
    const lease = checkLease(options.lease);
    const connection = await Connection.open(options);
    try {
      const name = text(await connection.call(['HGET', `{${key}}`, 'c']));
      if (name === undefined) throw shareError('ERR_BAD_HANDLE', `Redis holds no share under ${JSON.stringify(key)}`);
      return new RedisShare<T>(connection, key, codecFor(codecId(name), options.codec) as Codec<T>, lease);
    } catch (error) {
      await connection.close();
      throw error;
    }
  }

  /** Removes the share under `key`; instances attached to it then read undefined. */
  static async unlink(key: string, options: RedisOptions = {}): Promise<void> {
    checkKey(key);
    const connection = await Connection.open(options);
    try {
      await connection.call(['DEL', `{${key}}`, `{${key}}:lock`, `{${key}}:holder`]);
    } finally {
      await connection.close();
    }
  }

  /** The value last set, freshly decoded; undefined before the first set. One round trip. */
  async get(): Promise<T | undefined> {
    return (await this.#read())[0];
  }

  /** Stores `value`, waiting while another instance holds the lock. One round trip when it is free. */
  async set(value: T): Promise<void> {
    const payload = encodeOwned(this.#codec, value);
    await this.#write(payload, '');
  }

  /**
   * Replaces the value with `fn(current)` atomically, and returns the new value. Optimistic: when another write
   * came between the read and the write, `fn` runs again on the newer value, so it must have no other effect.
   */
  async update(fn: (current: T | undefined) => T): Promise<T> {
    this.#open();
    if (typeof fn !== 'function') throw shareError('ERR_BAD_OPTION', `fn must be a function, got ${describe(fn)}`);
    for (;;) {
      const [bytes, version, holder] = (await this.#run(READ, [this.#keys.value, this.#keys.lock], [])) as Buffer[];
      if (holder!.length > 0 && holder!.toString() !== this.#token) {
        await this.#waitForUnlock();
        continue;
      }
      const next = fn(this.#decode(bytes!.length > 0 ? bytes : undefined, Number(version!.toString())));
      if ((await this.#write(encodeOwned(this.#codec, next), version!.toString())) !== -2) return next;
    }
  }

  /**
   * Calls `listener(value, version)` after changes, as Redis publishes them: there is no poll, so no interval.
   * Returns what stops it.
   */
  watch(listener: (value: T | undefined, version: number) => void): () => void {
    this.#open();
    if (typeof listener !== 'function')
      throw shareError('ERR_BAD_OPTION', `listener must be a function, got ${describe(listener)}`);
    let stopped = false;
    let seen = -1;
    let reading: Promise<void> | undefined;
    let again = false;
    // Messages that come while the value is read make one more read: the listener sees the latest, once.
    const read = async () => {
      do {
        again = false;
        const [value, version] = await this.#read();
        if (!stopped && version > seen) {
          seen = version;
          listener(value, version);
        }
      } while (again && !stopped);
    };
    const unsubscribe = this.#connection.subscribe(this.#keys.changes, () => {
      if (reading !== undefined) return void (again = true);
      reading = read()
        .catch(() => {})
        .finally(() => (reading = undefined));
    });
    const stop = async () => {
      stopped = true;
      this.#watchers.delete(stop);
      await (
        await unsubscribe.catch(() => async () => {})
      )();
    };
    this.#watchers.add(stop);
    return () => void stop();
  }

  /** The value after every change, as an async iterator, from Redis's notifications; ends on close(). */
  async *changes(options: ChangesOptions = {}): AsyncGenerator<T | undefined> {
    this.#open();
    const { signal } = options;
    let wake: (() => void) | undefined;
    let pending: { value: T | undefined } | undefined;
    const stop = this.watch((value) => {
      pending = { value };
      wake?.();
    });
    const aborted = () => wake?.();
    signal?.addEventListener('abort', aborted);
    try {
      for (;;) {
        while (pending === undefined && !this.#closed) {
          signal?.throwIfAborted();
          await new Promise<void>((resolve) => (wake = resolve));
        }
        signal?.throwIfAborted();
        if (pending === undefined) return;
        const { value } = pending;
        pending = undefined;
        yield value;
      }
    } finally {
      signal?.removeEventListener('abort', aborted);
      stop();
    }
  }

  /** Takes the lock, waiting as long as it takes; same as lockAsync(). */
  lock(): Promise<LockInfo> {
    return this.lockAsync();
  }

  /** Takes the lock if it is free; undefined when another instance holds it. */
  async tryLock(): Promise<LockInfo | undefined> {
    this.#notLocked();
    return this.#acquire();
  }

  /** Takes the lock, polling without blocking the event loop; a lease that this instance renews while it holds it. */
  async lockAsync(options: LockAsyncOptions = {}): Promise<LockInfo> {
    const timeout = checkTimeout(options.timeout);
    this.#notLocked();
    return pollUntil(
      () => this.#acquire(),
      timeout,
      options.signal,
      () => `lock not acquired within ${timeout} ms`,
    );
  }

  /** Releases the lock; ERR_NOT_LOCKED when this instance does not hold it, or its lease ran out meanwhile. */
  async unlock(): Promise<void> {
    this.#open();
    const token = this.#token;
    if (token === undefined) throw shareError('ERR_NOT_LOCKED', 'unlock() without a lock held by this instance');
    this.#dropToken();
    const released = await this.#run(RELEASE, [this.#keys.lock, this.#keys.holder], [token]);
    if (released === 0) throw shareError('ERR_NOT_LOCKED', 'the lock was lost: its lease ran out before unlock()');
  }

  /** 0 until the first set, then one more on every set and update. */
  get version(): Promise<number> {
    return this.#call(['HGET', this.#keys.value, 'n']).then((reply) => Number(text(reply) ?? 0));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Releases the lock if held, stops every watcher and closes the connections. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const token = this.#token;
    this.#dropToken();
    this.#closed = true;
    try {
      await Promise.all([...this.#asking].map((asked) => this.#giveBack(asked)));
      if (token !== undefined) await this.#run(RELEASE, [this.#keys.lock, this.#keys.holder], [token], true);
      await Promise.all([...this.#watchers].map((stop) => stop()));
    } finally {
      await this.#connection.close();
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #open(): void {
    if (this.#closed) throw shareError('ERR_CLOSED', 'this RedisShare is closed');
  }

  #notLocked(): void {
    this.#open();
    if (this.#token !== undefined) throw shareError('ERR_ALREADY_LOCKED', 'this instance already holds the lock');
  }

  #call(args: (string | Buffer)[]) {
    this.#open();
    return this.#connection.call(args);
  }

  #run(source: string, keys: string[], args: (string | Buffer)[], closing = false) {
    if (!closing) this.#open();
    return this.#connection.script(source, keys, args);
  }

  async #read(): Promise<[T | undefined, number]> {
    const [value, version] = (await this.#call(['HMGET', this.#keys.value, 'v', 'n'])) as (Buffer | null)[];
    const number = Number(text(version ?? null) ?? 0);
    return [this.#decode(value ?? undefined, number), number];
  }

  #decode(bytes: Buffer | undefined, version: number): T | undefined {
    return version === 0 || bytes === undefined ? undefined : decodeStored(this.#codec, bytes);
  }

  // Writes the payload, waiting while another instance holds the lock; -2 when `expected` is not the version.
  async #write(payload: Buffer, expected: string): Promise<number> {
    for (;;) {
      const keys = [this.#keys.value, this.#keys.lock, this.#keys.changes];
      const result = (await this.#run(WRITE, keys, [this.#token ?? '', payload, expected, this.#codec.name])) as number;
      if (result !== -1) return result;
      await this.#waitForUnlock();
    }
  }

  #waitForUnlock(): Promise<true> {
    return pollUntil(
      async () => ((await this.#call(['EXISTS', this.#keys.lock])) === 0 ? true : undefined),
      Infinity,
      undefined,
      () => '',
    );
  }

  async #acquire(): Promise<LockInfo | undefined> {
    const token = randomBytes(12).toString('hex');
    this.#asking.add(token);
    let dead;
    try {
      dead = await this.#run(
        ACQUIRE,
        [this.#keys.lock, this.#keys.holder],
        [token, String(this.#lease), String(process.pid)],
      );
    } catch (error) {
      // Redis may have given the lock to this token though its answer was lost (a command timeout): give it back
      // rather than hold it, unrenewed, until the lease runs out.
      await this.#giveBack(token);
      throw error;
    } finally {
      this.#asking.delete(token);
    }
    if (dead === null) return undefined;
    // Closed while the lock was asked for: close() gave it back.
    this.#open();
    // Another call on this instance may have taken the lock while this one waited for Redis: give this one back.
    if (this.#token !== undefined) {
      await this.#giveBack(token);
      return undefined;
    }
    this.#token = token;
    this.#renewal = setInterval(() => {
      this.#run(RENEW, [this.#keys.lock], [token, String(this.#lease)]).catch(() => {});
    }, this.#lease / 3);
    this.#renewal.unref();
    const deadPid = Number(text(dead as Buffer));
    return deadPid > 0 ? { ownerDied: true, deadPid } : { ownerDied: false };
  }

  // Releases the lock if `token` holds it, even while closing; when Redis cannot be reached, the lease runs out.
  #giveBack(token: string): Promise<unknown> {
    return this.#run(RELEASE, [this.#keys.lock, this.#keys.holder], [token], true).catch(() => {});
  }

  #dropToken(): void {
    clearInterval(this.#renewal);
    this.#renewal = undefined;
    this.#token = undefined;
  }
}

/** The bytes of `value` in a Buffer of its own: a command may be written after the next encode. */
export function encodeOwned<T>(codec: Codec<T>, value: T): Buffer {
  const bytes = encodeValue(codec, value);
  if (bytes.length > MAX_VALUE_BYTES) {
    throw shareError(
      'ERR_VALUE_TOO_LARGE',
      `the value serializes to ${bytes.length} bytes; Redis holds ${MAX_VALUE_BYTES}`,
    );
  }
  return Buffer.from(bytes);
}

export function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key === '' || /\p{Cs}/u.test(key)) {
    throw shareError('ERR_BAD_HANDLE', `the Redis key must be a non-empty string of text, got ${describe(key)}`);
  }
}

/** A value read from Redis; what does not decode is ERR_BAD_HANDLE, as damage in shared memory is. */
export function decodeStored<T>(codec: Codec<T>, bytes: Buffer): T {
  try {
    return codec.decode(bytes);
  } catch (error) {
    throw shareError('ERR_BAD_HANDLE', `a stored value does not decode (${(error as Error).message})`, error);
  }
}

export function checkLease(lease: unknown = DEFAULT_LEASE_MS): number {
  if (typeof lease !== 'number' || !(lease >= 10) || !Number.isFinite(lease)) {
    throw shareError(
      'ERR_BAD_OPTION',
      `lease must be a finite number of milliseconds, at least 10, got ${describe(lease)}`,
    );
  }
  return Math.round(lease);
}
