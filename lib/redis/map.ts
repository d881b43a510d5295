// RedisMap: the SharedMap API over Redis. Every method returns a promise; each entry is a Redis string of its own,
// so TTL is Redis's, and eviction is the server's `maxmemory-policy` (allkeys-lru for a cache).
//
// | key           | type   | holds                                                                        |
// |---------------|--------|------------------------------------------------------------------------------|
// | {P}           | hash   | c: the codec's name; t: the default ttl in ms (0: none)                      |
// | {P}:v         | string | the version: +1 on every change                                              |
// | {P}:s         | hash   | hits, misses, sets, deletes of the whole cluster                             |
// | {P}:e:<key>   | string | the encoded value of <key>, with its expiry                                  |
// | {P}:f:<key>   | string | while one process computes <key> in fetch(): its token; expires after the   |
// |               |        | lease unless renewed, so a computing process that dies is replaced           |
import { randomBytes } from 'node:crypto';
import { type Codec, codecFor, codecId, type CodecOption, resolveCodec } from '../codec.js';
import { describe, shareError } from '../errors.js';
import { checkTimeout, pollUntil } from '../lock.js';
import { checkTtl, type FetchOptions, joined, type SetOptions } from '../map/map.js';
import { encodeKey } from '../map/table.js';
import type { Cache, CacheStats } from '../api.js';
import { Connection, type RedisOptions, text } from './connection.js';
import { checkKey, checkLease, decodeStored, encodeOwned } from './share.js';

export interface RedisMapOptions<V> extends RedisOptions {
  /** Milliseconds an entry lives when set() names no ttl; 0 for ever. Default: 0. */
  ttl?: number;
  codec?: CodecOption<V>;
  /** UTF-8 bytes of one key at most. Default: 1024. */
  maxKeySize?: number;
  /** Milliseconds a fetch() computation keeps its claim if its process stops renewing it. Default: 10000. */
  lease?: number;
}

export interface RedisMapAttachOptions<V> extends RedisOptions {
  codec?: CodecOption<V>;
  maxKeySize?: number;
  lease?: number;
}

const DEFAULT_MAX_KEY = 1024;
const SCAN_COUNT = '1000';

const GET = `
local value = redis.call('GET', KEYS[1])
redis.call('HINCRBY', KEYS[2], value and 'hits' or 'misses', 1)
return value`;

// Sets (ARGV[1] = '1') or deletes the entry, when it still holds ARGV[2] (ARGV[3] = '1': present; '0': absent; '': any).
// 0 when it did not; 1 when it changed the entry; 2 when there was nothing to delete.
const PUT = `
local current = redis.call('GET', KEYS[1])
if ARGV[3] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif ARGV[3] == '0' and current then return 0 end
if ARGV[1] == '1' then
  if ARGV[5] ~= '0' then redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5]) else redis.call('SET', KEYS[1], ARGV[4]) end
  redis.call('HINCRBY', KEYS[2], 'sets', 1)
elseif current then
  redis.call('DEL', KEYS[1])
  redis.call('HINCRBY', KEYS[2], 'deletes', 1)
else
  return 2
end
redis.call('INCR', KEYS[3])
return 1`;

// Ends a fetch() computation: drops its claim, and stores its value unless someone set one meanwhile.
const FETCHED = `
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[3] ~= '0' then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) else redis.call('SET', KEYS[1], ARGV[2]) end
redis.call('HINCRBY', KEYS[2], 'sets', 1)
redis.call('INCR', KEYS[3])
return 1`;

// The value of the entry if it has one; else 1 when this claim to compute it was taken, 0 when another holds one.
const CLAIM = `
local value = redis.call('GET', KEYS[1])
if value then return value end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0`;

const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])`;

const DROP = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'c', ARGV[1], 't', ARGV[2])
return 1`;

/** Many keys shared through Redis: the SharedMap API, every method returning a promise. */
export class RedisMap<V = unknown> implements Cache<V> {
  readonly #connection: Connection;
  readonly #codec: Codec<V>;
  readonly #base: string;
  readonly #ttl: number;
  readonly #maxKey: number;
  readonly #lease: number;
  readonly #fetches = new Map<string, Promise<V | undefined>>();
  #closed = false;

  private constructor(
    connection: Connection,
    name: string,
    codec: Codec<V>,
    ttl: number,
    maxKey: number,
    lease: number,
  ) {
    this.#connection = connection;
    this.#base = `{${name}}`;
    this.#codec = codec;
    this.#ttl = ttl;
    this.#maxKey = maxKey;
    this.#lease = lease;
  }

  /** Creates the map named `name`; ERR_EXISTS when Redis holds one under that name already. */
  static async create<V = unknown>(name: string, options: RedisMapOptions<V> = {}): Promise<RedisMap<V>> {
    checkKey(name);
    const codec = resolveCodec(options.codec) as Codec<V>;
    const ttl = options.ttl ?? 0;
    checkTtl(ttl);
    const [maxKey, lease] = checkLimits(options);
    const connection = await Connection.open(options);
    const made = await connection.script(CREATE, [`{${name}}`], [codec.name, String(Math.round(ttl))]);
    if (made === 0) {
      await connection.close();
      throw shareError('ERR_EXISTS', `Redis already holds a map named ${JSON.stringify(name)}`);
    }
    return new RedisMap<V>(connection, name, codec, Math.round(ttl), maxKey, lease);
  }

  /** Attaches to the map named `name`, with the codec and default ttl it records. */
  static async attach<V = unknown>(name: string, options: RedisMapAttachOptions<V> = {}): Promise<RedisMap<V>> {
    checkKey(name);
    const [maxKey, lease] = checkLimits(options);
    const connection = await Connection.open(options);
    try {
      const [codecName, ttl] = (await connection.call(['HMGET', `{${name}}`, 'c', 't'])) as (Buffer | null)[];
      if (codecName === null) throw shareError('ERR_BAD_HANDLE', `Redis holds no map named ${JSON.stringify(name)}`);
      const codec = codecFor(codecId(codecName!.toString()), options.codec) as Codec<V>;
      return new RedisMap<V>(connection, name, codec, Number(text(ttl ?? null) ?? 0), maxKey, lease);
    } catch (error) {
      await connection.close();
      throw error;
    }
  }

  /** The value of `key`, counted as a hit or a miss; undefined when absent or expired. One round trip. */
  async get(key: string): Promise<V | undefined> {
    return this.#decode(await this.#run(GET, [this.#entry(key), this.#stats()], []));
  }

  /** The value of `key`, not counted. */
  async peek(key: string): Promise<V | undefined> {
    return this.#decode(await this.#call(['GET', this.#entry(key)]));
  }

  async has(key: string): Promise<boolean> {
    return (await this.#call(['EXISTS', this.#entry(key)])) === 1;
  }

  /** Stores `value` under `key` for `ttl` ms (default: the map's); `undefined` deletes the key. */
  async set(key: string, value: V, options: SetOptions = {}): Promise<this> {
    if (value === undefined) {
      await this.delete(key);
      return this;
    }
    const ttl = this.#expiry(options.ttl);
    await this.#put(this.#entry(key), undefined, encodeOwned(this.#codec, value), ttl);
    return this;
  }

  /** Removes `key`; true when it held a value. One round trip. */
  async delete(key: string): Promise<boolean> {
    return (await this.#put(this.#entry(key), undefined, undefined, 0)) === 1;
  }

  /**
   * Replaces the value of `key` with `fn(current)` atomically, and returns it; `undefined` deletes the key.
   * Optimistic: when another write came between the read and the write, `fn` runs again on the newer value.
   */
  async update(
    key: string,
    fn: (current: V | undefined) => V | undefined,
    options: SetOptions = {},
  ): Promise<V | undefined> {
    if (typeof fn !== 'function') throw shareError('ERR_BAD_OPTION', `fn must be a function, got ${describe(fn)}`);
    const ttl = this.#expiry(options.ttl);
    const entry = this.#entry(key);
    for (;;) {
      const current = (await this.#call(['GET', entry])) as Buffer | null;
      const next = fn(this.#decode(current));
      const payload = next === undefined ? undefined : encodeOwned(this.#codec, next);
      if ((await this.#put(entry, current, payload, ttl)) !== 0) return next;
    }
  }

  /**
   * The value of `key`; when it is absent, `compute(key)` runs in exactly one process of the cluster while the others
   * wait for its result, polling. If the computing process dies (its claim's lease runs out) or its compute throws,
   * a waiting process computes instead.
   */
  async fetch(
    key: string,
    compute: (key: string, options: { signal?: AbortSignal }) => V | Promise<V>,
    options: FetchOptions = {},
  ): Promise<V | undefined> {
    if (typeof compute !== 'function') {
      throw shareError('ERR_BAD_OPTION', `compute must be a function, got ${describe(compute)}`);
    }
    const timeout = checkTimeout(options.timeout);
    this.#expiry(options.ttl);
    const hit = await this.get(key);
    if (hit !== undefined) return hit;
    return joined(this.#fetches, key, () => this.#fetchShared(key, compute, options, timeout));
  }

  /** Removes every entry. */
  async clear(): Promise<void> {
    for await (const batch of this.#scan()) {
      if (batch.length > 0) await this.#call(['UNLINK', ...batch]);
    }
    await this.#call(['INCR', `${this.#base}:v`]);
  }

  /** The keys holding values, in no particular order (Redis's SCAN: a key changed meanwhile may be missed). */
  async *keys(): AsyncGenerator<string> {
    const prefix = `${this.#base}:e:`.length;
    for await (const batch of this.#scan()) for (const entry of batch) yield entry.slice(prefix);
  }

  /** Counts for the whole cluster; `entries` scans the keys. */
  async stats(): Promise<CacheStats> {
    const counts = (await this.#call([
      'HMGET',
      this.#stats(),
      'hits',
      'misses',
      'sets',
      'deletes',
    ])) as (Buffer | null)[];
    const [hits, misses, sets, deletes] = counts.map((count) => Number(text(count) ?? 0));
    return { entries: await this.size, hits: hits!, misses: misses!, sets: sets!, deletes: deletes! };
  }

  /** Entries holding a value, counted with SCAN. */
  get size(): Promise<number> {
    return (async () => {
      let count = 0;
      for await (const batch of this.#scan()) count += batch.length;
      return count;
    })();
  }

  /** +1 on every change by any process. */
  get version(): Promise<number> {
    return this.#call(['GET', `${this.#base}:v`]).then((reply) => Number(text(reply) ?? 0));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the connection; a computation this instance runs for fetch() still ends, and its claim lapses. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#connection.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #open(): void {
    if (this.#closed) throw shareError('ERR_CLOSED', 'this RedisMap is closed');
  }

  #call(args: (string | Buffer)[]) {
    this.#open();
    return this.#connection.call(args);
  }

  #run(source: string, keys: string[], args: (string | Buffer)[]) {
    this.#open();
    return this.#connection.script(source, keys, args);
  }

  #entry(key: string): string {
    this.#open();
    encodeKey(key, this.#maxKey);
    return `${this.#base}:e:${key}`;
  }

  #stats(): string {
    return `${this.#base}:s`;
  }

  // Writes `payload` (undefined: deletes) if the entry still holds `current` (null: nothing; undefined: whatever).
  async #put(entry: string, current: Buffer | null | undefined, payload: Buffer | undefined, ttl: number) {
    const keys = [entry, this.#stats(), `${this.#base}:v`];
    const expect = current === undefined ? '' : current === null ? '0' : '1';
    const args = [payload ? '1' : '0', current ?? '', expect, payload ?? '', String(ttl)];
    return (await this.#run(PUT, keys, args)) as number;
  }

  #decode(bytes: unknown): V | undefined {
    return Buffer.isBuffer(bytes) ? decodeStored(this.#codec, bytes) : undefined;
  }

  // The ttl in ms for a call's option (checked), or the map's default.
  #expiry(ttl: number | undefined): number {
    if (ttl !== undefined) checkTtl(ttl);
    return Math.round(ttl ?? this.#ttl);
  }

  async #fetchShared(
    key: string,
    compute: (key: string, options: { signal?: AbortSignal }) => V | Promise<V>,
    options: FetchOptions,
    timeout: number,
  ): Promise<V | undefined> {
    const entry = this.#entry(key);
    const marker = `${this.#base}:f:${key}`;
    const token = randomBytes(12).toString('hex');
    // A value, once set; else this instance's claim once it can take one (none held, or the holder's lapsed).
    const outcome = await pollUntil(
      async () => {
        const reply = await this.#run(CLAIM, [entry, marker], [token, String(this.#lease)]);
        if (Buffer.isBuffer(reply)) return { value: this.#decode(reply) };
        return reply === 1 ? { claimed: true as const } : undefined;
      },
      timeout,
      options.signal,
      () => `no value for ${JSON.stringify(key)} within ${timeout} ms: another process is computing it`,
    );
    if ('value' in outcome) return outcome.value;
    const renewal = setInterval(() => {
      this.#run(RENEW, [marker], [token, String(this.#lease)]).catch(() => {});
    }, this.#lease / 3);
    renewal.unref();
    let value: V;
    try {
      value = await compute(key, { signal: options.signal });
    } catch (error) {
      if (!this.#closed) await this.#run(DROP, [marker], [token]).catch(() => {});
      throw error;
    } finally {
      clearInterval(renewal);
    }
    if (value === undefined) {
      await this.#run(DROP, [marker], [token]);
      return undefined;
    }
    const keys = [entry, this.#stats(), `${this.#base}:v`, marker];
    const stored = await this.#run(FETCHED, keys, [
      token,
      encodeOwned(this.#codec, value),
      String(this.#expiry(options.ttl)),
    ]);
    // Someone set the key while this computed: theirs is newer, and is what every process now reads.
    return stored === 1 ? value : ((await this.peek(key)) ?? value);
  }

  async *#scan(): AsyncGenerator<string[]> {
    let cursor = '0';
    do {
      const [next, keys] = (await this.#call(['SCAN', cursor, 'MATCH', `${this.#base}:e:*`, 'COUNT', SCAN_COUNT])) as [
        Buffer,
        Buffer[],
      ];
      cursor = next.toString();
      yield keys.map((name) => name.toString('utf8'));
    } while (cursor !== '0');
  }
}

function checkLimits(options: { maxKeySize?: number; lease?: number }): [number, number] {
  const { maxKeySize = DEFAULT_MAX_KEY } = options;
  if (!Number.isInteger(maxKeySize) || maxKeySize < 1 || maxKeySize > 0xffff) {
    throw shareError('ERR_BAD_OPTION', `maxKeySize must be an integer from 1 to 65535, got ${describe(maxKeySize)}`);
  }
  return [maxKeySize, checkLease(options.lease)];
}
