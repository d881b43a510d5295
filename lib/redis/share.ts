// RedisShare: the MmapShare API over Redis, for processes on more than one machine. Every method returns a promise.
//
// | key           | type   | holds                                                                      |
// |---------------|--------|----------------------------------------------------------------------------|
// | {K}           | hash   | c: the codec's name; n: the version (0 until the first set); v: the value; |
// |               |        | l: the lock holder's random token, d: the server time in ms its lease ends |
// |               |        | unless renewed; h: the holder's pid, kept from lock() to unlock(): found   |
// |               |        | by the next lock() after the lease ended, it means the holder died         |
// | {K}:changes   | channel| each new version, published by the write that made it                    |
//
// The braces put every key of one share in one Redis Cluster slot. The lock lives in the record, not in a key of its
// own with a ttl, so that Redis cannot evict or expire it apart from the value: volatile-* policies never evict the
// record (it has no ttl), and allkeys-* or FLUSHALL lose lock and value together. Every write carries the writer's
// token, and a token that no longer holds the lock is refused (ERR_NOT_LOCKED): two writers never both write under it.
// Redis may drop the record like any key: the next call makes it again with the caller's codec, and a version above
// any this instance has seen.
import { type Codec, codecFor, codecId, type CodecOption, resolveCodec } from '../codec.js';
import { shareError } from '../errors.js';
import {
  CHANGES_NAMES,
  checkNames,
  checkSignal,
  checkWait,
  LOCK_ASYNC_NAMES,
  type Names,
  WATCH_NAMES,
} from '../options.js';
import { pollUntil } from '../wait.js';
import type { ChangesOptions, LockAsyncOptions, LockInfo, Share, WatchOptions } from '../api.js';
import { checkFunction, checkKey, checkLease, decodeStored, encodeOwned, REDIS_NAMES } from './checks.js';
import { Connection, type RedisOptions, text } from './connection.js';
import { CLOCK, Handle } from './handle.js';
import type { Grant, Lease } from './lease.js';

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

const CREATE_NAMES: Names<RedisShareOptions<unknown>> = { ...REDIS_NAMES, value: true, codec: true, lease: true };
const ATTACH_NAMES: Names<RedisAttachOptions<unknown>> = { ...REDIS_NAMES, codec: true, lease: true };

// Starts every script; the last 2 arguments are the caller's codec and the highest version it has seen. A record
// without its codec is one Redis lost, and one whose version is below what the caller saw went back (a restart from
// an older snapshot): either is made again, going on from the clock. holder() is the lock's token, '' when it is free
// or its lease ended.
const RECORD = `${CLOCK}
local seen = tonumber(ARGV[#ARGV])
if redis.call('HEXISTS', KEYS[1], 'c') == 0 then redis.call('HSET', KEYS[1], 'c', ARGV[#ARGV - 1]) end
if tonumber(redis.call('HGET', KEYS[1], 'n') or '-1') < seen then redis.call('HSET', KEYS[1], 'n', clock()) end
local function now()
  local time = redis.call('TIME')
  return time[1] * 1000 + math.floor(time[2] / 1000)
end
local function holder()
  local token = redis.call('HGET', KEYS[1], 'l')
  if token and tonumber(redis.call('HGET', KEYS[1], 'd')) > now() then return token end
  return ''
end
`;

// Writes ARGV[2] as the next version, unless ARGV[1], the caller's token, no longer holds the lock (-3), another token
// holds it (-1), or the version is not ARGV[3], the expected one (-2).
const WRITE = `${RECORD}
local held = holder()
if ARGV[1] ~= '' and held ~= ARGV[1] then return -3 end
if ARGV[1] == '' and held ~= '' then return -1 end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'n') ~= ARGV[3] then return -2 end
redis.call('HSET', KEYS[1], 'v', ARGV[2])
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('PUBLISH', KEYS[2], n)
return n`;

// The value, its version and the lock's token ('' when free), in one round trip.
const READ = `${RECORD}
return {redis.call('HGET', KEYS[1], 'v') or '', redis.call('HGET', KEYS[1], 'n'), holder()}`;

// The version and the lock's token, without the value.
const STATE = `${RECORD}
return {redis.call('HGET', KEYS[1], 'n'), holder()}`;

// Takes the lock for ARGV[2] ms; returns nil when held, else the pid of a holder that died holding it, or ''.
const ACQUIRE = `${RECORD}
if holder() ~= '' then return nil end
local dead = redis.call('HGET', KEYS[1], 'h') or ''
redis.call('HSET', KEYS[1], 'l', ARGV[1], 'd', now() + tonumber(ARGV[2]), 'h', ARGV[3])
return dead`;

// 0 when the lease ended or another token holds the lock.
const RENEW = `${RECORD}
if holder() ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'd', now() + tonumber(ARGV[2]))
return 1`;

const RELEASE = `${RECORD}
if holder() ~= ARGV[1] then return 0 end
return redis.call('HDEL', KEYS[1], 'l', 'd', 'h')`;

const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'c', ARGV[1], 'n', ARGV[2])
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'v', ARGV[3]) end
return 1`;

// The record's codec; made first from ARGV[1], when given, if Redis holds none.
const ATTACH = `${CLOCK}
if ARGV[1] and redis.call('HSETNX', KEYS[1], 'c', ARGV[1]) == 1 then redis.call('HSET', KEYS[1], 'n', clock()) end
return redis.call('HGET', KEYS[1], 'c')`;

/** One value shared through Redis: the MmapShare API, every method returning a promise. */
export class RedisShare<T = unknown> implements Share<T> {
  readonly #handle: Handle;
  readonly #codec: Codec<T>;
  readonly #keys: { value: string; changes: string };
  // The lock, a lease on fields of the record: every script under it makes the record again too.
  readonly #grant: Grant;
  // The lease of the lock this instance holds.
  #held: Lease | undefined;
  // The highest version this instance has seen: Redis's record going below it went back, and goes on from the clock.
  #seen = 0;
  readonly #watchers = new Set<() => Promise<void>>();

  private constructor(connection: Connection, key: string, codec: Codec<T>, lease: number) {
    this.#handle = new Handle(connection, 'RedisShare', lease);
    this.#codec = codec;
    const base = `{${key}}`;
    this.#keys = { value: base, changes: `${base}:changes` };
    this.#grant = { keys: [base], renew: RENEW, release: RELEASE, args: (args) => this.#record(args) };
  }

  /** Creates the share under `key`; ERR_EXISTS when something is stored there already. */
  static async create<T = unknown>(key: string, options: RedisShareOptions<T> = {}): Promise<RedisShare<T>> {
    checkKey(key);
    checkNames(options, CREATE_NAMES);
    const codec = resolveCodec(options.codec) as Codec<T>;
    const lease = checkLease(options.lease);
    const initial = 'value' in options ? encodeOwned(codec, options.value as T) : undefined;
    return Handle.make(options, async (connection) => {
      const made = await connection.script(CREATE, [`{${key}}`], [codec.name, initial ? '1' : '0', initial ?? '']);
      if (made === 0) throw shareError('ERR_EXISTS', `Redis already holds ${JSON.stringify(key)}`);
      return new RedisShare<T>(connection, key, codec, lease);
    });
  }

  /**
   * Attaches to the share created under `key`, with the codec it records (or `options.codec`, which must match).
   * Given `codec`, it makes the record from it when Redis holds none (evicted, flushed, lost in a restart).
   */
  static async attach<T = unknown>(key: string, options: RedisAttachOptions<T> = {}): Promise<RedisShare<T>> {
    checkKey(key);
    checkNames(options, ATTACH_NAMES);
    const lease = checkLease(options.lease);
    return Handle.make(options, async (connection) => {
      const restore = options.codec === undefined ? [] : [resolveCodec(options.codec).name];
      const name = text(await connection.script(ATTACH, [`{${key}}`], restore));
      if (name === undefined) {
        throw shareError(
          'ERR_BAD_HANDLE',
          `Redis holds no share under ${JSON.stringify(key)} (given the codec it was created with, attach() makes its record again)`,
        );
      }
      return new RedisShare<T>(connection, key, codecFor(codecId(name), options.codec) as Codec<T>, lease);
    });
  }

  /** Removes the share under `key`; instances attached to it then read undefined. */
  static async unlink(key: string, options: RedisOptions = {}): Promise<void> {
    checkKey(key);
    checkNames(options, REDIS_NAMES);
    const connection = await Connection.open(options);
    try {
      await connection.call(['DEL', `{${key}}`]);
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
    this.#handle.open();
    checkFunction('fn', fn);
    for (;;) {
      const [bytes, version, holder] = (await this.#run(READ, [])) as Buffer[];
      // A holder of the lock writes at once: if it holds it no longer, the write says so.
      if (holder!.length > 0 && this.#held === undefined) {
        await this.#waitForUnlock();
        continue;
      }
      const next = fn(this.#decode(bytes!.length > 0 ? bytes : undefined, Number(version!.toString())));
      if ((await this.#write(encodeOwned(this.#codec, next), version!.toString())) !== -2) return next;
    }
  }

  /**
   * Calls `listener(value, version)` after changes, as Redis publishes them: there is no poll, so `interval` is unused.
   * Returns what stops it.
   */
  watch(listener: (value: T | undefined, version: number) => void, options: WatchOptions = {}): () => void {
    this.#handle.open();
    checkNames(options, WATCH_NAMES);
    checkFunction('listener', listener);
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
    const unsubscribe = this.#handle.connection.subscribe(this.#keys.changes, () => {
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
    this.#handle.open();
    checkNames(options, CHANGES_NAMES);
    const signal = checkSignal(options.signal);
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
        while (pending === undefined && !this.#handle.closed) {
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
    checkNames(options, LOCK_ASYNC_NAMES);
    const { timeout, signal } = checkWait(options);
    this.#notLocked();
    return pollUntil(
      () => this.#acquire(),
      timeout,
      signal,
      () => `lock not acquired within ${timeout} ms`,
    );
  }

  /** Releases the lock; ERR_NOT_LOCKED when this instance does not hold it, or its lease ran out meanwhile. */
  async unlock(): Promise<void> {
    this.#handle.open();
    const held = this.#held;
    if (held === undefined) throw shareError('ERR_NOT_LOCKED', 'unlock() without a lock held by this instance');
    this.#held = undefined;
    const released = await held.release();
    if (released === 0) throw shareError('ERR_NOT_LOCKED', 'the lock was lost: its lease ran out before unlock()');
  }

  /** 0 until the first set, then one more on every set and update; when Redis lost it, it goes on from a larger number. */
  get version(): Promise<number> {
    return this.#run(STATE, []).then((reply) => this.#saw(Number(text((reply as Buffer[])[0]!))));
  }

  get closed(): boolean {
    return this.#handle.closed;
  }

  /** Releases the lock if held (or asked for), stops every watcher and closes the connections. Idempotent. */
  close(): Promise<void> {
    return this.#handle.close(() => Promise.all([...this.#watchers].map((stop) => stop())));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #notLocked(): void {
    this.#handle.open();
    if (this.#held !== undefined) throw shareError('ERR_ALREADY_LOCKED', 'this instance already holds the lock');
  }

  // Runs a script that starts with RECORD.
  #run(source: string, args: (string | Buffer)[], keys = [this.#keys.value]) {
    return this.#handle.script(source, keys, this.#record(args));
  }

  // A script's args, then what makes the record again.
  #record(args: (string | Buffer)[]): (string | Buffer)[] {
    return [...args, this.#codec.name, String(this.#seen)];
  }

  // A version Redis answered, which this instance has now seen.
  #saw(version: number): number {
    this.#seen = Math.max(this.#seen, version);
    return version;
  }

  async #read(): Promise<[T | undefined, number]> {
    const [value, version] = (await this.#run(READ, [])) as Buffer[];
    const number = this.#saw(Number(version!.toString()));
    return [this.#decode(value!.length > 0 ? value : undefined, number), number];
  }

  #decode(bytes: Buffer | undefined, version: number): T | undefined {
    return version === 0 || bytes === undefined ? undefined : decodeStored(this.#codec, bytes);
  }

  // Writes the payload, waiting while another instance holds the lock; -2 when `expected` is not the version.
  async #write(payload: Buffer, expected: string): Promise<number> {
    for (;;) {
      const keys = [this.#keys.value, this.#keys.changes];
      const result = (await this.#run(WRITE, [this.#held?.token ?? '', payload, expected], keys)) as number;
      if (result === -3) throw shareError('ERR_NOT_LOCKED', 'the lock was lost: its lease ended, or Redis lost it');
      if (result !== -1) return result < 0 ? result : this.#saw(result);
      await this.#waitForUnlock();
    }
  }

  #waitForUnlock(): Promise<true> {
    return pollUntil(
      async () => (((await this.#run(STATE, [])) as Buffer[])[1]!.length === 0 ? true : undefined),
      Infinity,
      undefined,
      () => '',
    );
  }

  async #acquire(): Promise<LockInfo | undefined> {
    const lease = this.#handle.leases.ask(this.#grant);
    let dead;
    try {
      dead = await this.#run(ACQUIRE, [lease.token, String(this.#handle.leases.ms), String(process.pid)]);
    } catch (error) {
      // Redis may have given the lock to this token though its answer was lost (a command timeout): give it back
      // rather than hold it, unrenewed, until the lease runs out.
      await lease.giveBack();
      throw error;
    }
    if (dead === null) {
      lease.forget();
      return undefined;
    }
    // Closed while the lock was asked for: close() gave it back.
    this.#handle.open();
    // Another call on this instance may have taken the lock while this one waited for Redis: give this one back.
    if (this.#held !== undefined) {
      await lease.giveBack();
      return undefined;
    }
    this.#held = lease;
    lease.hold();
    const deadPid = Number(text(dead as Buffer));
    return deadPid > 0 ? { ownerDied: true, deadPid } : { ownerDied: false };
  }
}
