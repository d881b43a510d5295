// RedisMap: the SharedMap API over Redis. Every method returns a promise; each entry is a Redis string of its own,
// so TTL is Redis's, and eviction is the server's `maxmemory-policy` (allkeys-lru for a cache). Its keys in Redis,
// and the scripts that change them, are in lib/redis/map-scripts.ts.
import { randomBytes } from 'node:crypto';
import { type Codec, codecFor, codecId, type CodecOption, resolveCodec } from '../codec.js';
import { shareError } from '../errors.js';
import { type FlightControl, Flights } from '../flight.js';
import {
  checkMaxKeySize,
  checkNames,
  checkWait,
  checkTtl,
  FETCH_NAMES,
  keepsTtl,
  keyFault,
  type Names,
  SET_NAMES,
  UPDATE_NAMES,
} from '../options.js';
import { pollUntil } from '../wait.js';
import type { Cache, CacheStats, Compute, FetchOptions, SetOptions, UpdateOptions } from '../api.js';
import { checkFunction, checkKey, checkLease, decodeStored, encodeOwned, REDIS_NAMES } from './checks.js';
import { type Connection, type RedisOptions, text } from './connection.js';
import { Handle } from './handle.js';
import type { Lease } from './lease.js';
import {
  ATTACH,
  BUMP,
  CLAIM,
  COUNT,
  COUNTS,
  CREATE,
  DROP,
  FETCHED,
  GET,
  PUT,
  RENEW,
  STATS,
  VERSION,
} from './map-scripts.js';

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
  /** The codec the map was created with; another is ERR_CODEC_MISMATCH. */
  codec?: CodecOption<V>;
  /**
   * The default ttl the map was created with; another is ERR_BAD_OPTION. Given with `codec`, attach() makes the map's
   * record from them when Redis holds none (evicted, flushed, lost in a restart) instead of failing with ERR_BAD_HANDLE.
   */
  ttl?: number;
  maxKeySize?: number;
  lease?: number;
}

const CREATE_NAMES: Names<RedisMapOptions<unknown>> = {
  ...REDIS_NAMES,
  ttl: true,
  codec: true,
  maxKeySize: true,
  lease: true,
};
const ATTACH_NAMES: Names<RedisMapAttachOptions<unknown>> = CREATE_NAMES;

const SCAN_COUNT = '1000';

/** Many keys shared through Redis: the SharedMap API, every method returning a promise. */
export class RedisMap<V = unknown> implements Cache<V> {
  readonly #handle: Handle;
  readonly #codec: Codec<V>;
  readonly #base: string;
  readonly #ttl: number;
  readonly #maxKey: number;
  // The prefix of this instance's fields in the record, and the counts it added there: what it gives back when
  // Redis lost them.
  readonly #field = `i:${randomBytes(8).toString('hex')}:`;
  readonly #counts = { hits: 0, misses: 0, coalesced: 0, sets: 0, deletes: 0 };
  // The highest version this instance has seen: a record below it went back, and goes on from the clock.
  #seen = 0;
  // Counted in the record before the call resolves, so that stats() on any instance sees it; counted here only once
  // Redis has, as every count is, so that what the record lacks of this instance's counts is what Redis lost.
  readonly #fetches = new Flights<V | undefined>(async () => {
    await this.#record(COUNT, [], ['coalesced']).then(
      () => this.#counts.coalesced++,
      () => {},
    );
  });

  private constructor(
    connection: Connection,
    name: string,
    codec: Codec<V>,
    ttl: number,
    maxKey: number,
    lease: number,
  ) {
    this.#handle = new Handle(connection, 'RedisMap', lease);
    this.#base = `{${name}}`;
    this.#codec = codec;
    this.#ttl = ttl;
    this.#maxKey = maxKey;
  }

  /** Creates the map named `name`; ERR_EXISTS when Redis holds one under that name already. */
  static async create<V = unknown>(name: string, options: RedisMapOptions<V> = {}): Promise<RedisMap<V>> {
    checkKey(name);
    checkNames(options, CREATE_NAMES);
    const codec = resolveCodec(options.codec) as Codec<V>;
    const ttl = options.ttl ?? 0;
    checkTtl(ttl);
    const maxKey = checkMaxKeySize(options.maxKeySize);
    const lease = checkLease(options.lease);
    return Handle.make(options, async (connection) => {
      const made = await connection.script(CREATE, [`{${name}}`], [codec.name, String(wholeMs(ttl))]);
      if (made === 0) throw shareError('ERR_EXISTS', `Redis already holds a map named ${JSON.stringify(name)}`);
      return new RedisMap<V>(connection, name, codec, wholeMs(ttl), maxKey, lease);
    });
  }

  /**
   * Attaches to the map named `name`, with the codec and default ttl it records. Given both, as `codec` and `ttl`,
   * it makes the record from them when Redis holds none.
   */
  static async attach<V = unknown>(name: string, options: RedisMapAttachOptions<V> = {}): Promise<RedisMap<V>> {
    checkKey(name);
    checkNames(options, ATTACH_NAMES);
    const maxKey = checkMaxKeySize(options.maxKeySize);
    const lease = checkLease(options.lease);
    if (options.ttl !== undefined) checkTtl(options.ttl);
    const restore =
      options.codec === undefined || options.ttl === undefined
        ? []
        : [resolveCodec(options.codec).name, String(wholeMs(options.ttl))];
    return Handle.make(options, async (connection) => {
      const [codecName, recorded] = (await connection.script(ATTACH, [`{${name}}`], restore)) as (Buffer | null)[];
      if (codecName === null) {
        throw shareError(
          'ERR_BAD_HANDLE',
          `Redis holds no map named ${JSON.stringify(name)} (given the codec and ttl it was created with, attach() makes its record again)`,
        );
      }
      const codec = codecFor(codecId(codecName!.toString()), options.codec) as Codec<V>;
      const ttl = Number(text(recorded ?? null) ?? 0);
      if (options.ttl !== undefined && wholeMs(options.ttl) !== ttl) {
        throw shareError('ERR_BAD_OPTION', `ttl ${options.ttl} is not the map's default ttl, ${ttl}`);
      }
      return new RedisMap<V>(connection, name, codec, ttl, maxKey, lease);
    });
  }

  /** The value of `key`, counted as a hit or a miss; undefined when absent or expired. One round trip. */
  async get(key: string): Promise<V | undefined> {
    return this.#read(key, true);
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
    checkNames(options, SET_NAMES);
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
   * Replaces the value of `key` with `fn(current)` atomically, and returns it; `undefined` deletes the key. Without
   * `options.ttl` (or with `keepTtl`), an entry keeps its expiry time; a new one lives `ttl`, else the map's ttl.
   * Optimistic: when another write came between the read and the write, `fn` runs again on the newer value.
   */
  async update(
    key: string,
    fn: (current: V | undefined) => V | undefined,
    options: UpdateOptions = {},
  ): Promise<V | undefined> {
    checkNames(options, UPDATE_NAMES);
    checkFunction('fn', fn);
    const ttl = this.#expiry(options.ttl);
    const keep = keepsTtl(options);
    const entry = this.#entry(key);
    for (;;) {
      const current = (await this.#call(['GET', entry])) as Buffer | null;
      const next = fn(this.#decode(current));
      const payload = next === undefined ? undefined : encodeOwned(this.#codec, next);
      if ((await this.#put(entry, current, payload, ttl, keep)) !== 0) return next;
    }
  }

  /**
   * The value of `key`; when it is absent, `compute(key)` runs in exactly one process of the cluster while the others
   * wait for its result, polling. If the computing process dies (its claim's lease runs out) or its compute throws,
   * a waiting process computes instead. Each call waits under its own `timeout` and `signal`; compute's signal aborts
   * once every call waiting for it gave up.
   */
  async fetch(key: string, compute: Compute<V>, options?: FetchOptions): Promise<V>;
  async fetch(key: string, compute: Compute<V | undefined>, options?: FetchOptions): Promise<V | undefined>;
  async fetch(key: string, compute: Compute<V | undefined>, options: FetchOptions = {}): Promise<V | undefined> {
    checkNames(options, FETCH_NAMES);
    checkFunction('compute', compute);
    const { timeout, signal } = checkWait(options);
    const ttl = this.#expiry(options.ttl);
    // Counted by how it ends: a hit here or when claiming, a miss when this call computes, else coalesced.
    const hit = await this.#read(key, false);
    if (hit !== undefined) return hit;
    return this.#fetches.join(key, timeout, signal, (control) => this.#fetchShared(key, compute, ttl, control));
  }

  /** Removes every entry. */
  async clear(): Promise<void> {
    for await (const batch of this.#scan()) {
      if (batch.length > 0) await this.#call(['UNLINK', ...batch]);
    }
    await this.#record(BUMP, [], []);
  }

  /** The keys holding values, in no particular order (Redis's SCAN: a key changed meanwhile may be missed). */
  async *keys(): AsyncGenerator<string> {
    const prefix = `${this.#base}:e:`.length;
    for await (const batch of this.#scan()) for (const entry of batch) yield entry.slice(prefix);
  }

  /**
   * Counts for the whole cluster; `entries` scans the keys. When Redis lost them, each live instance gives back its
   * own counts on its next call: those of instances closed or gone since are lost.
   */
  async stats(): Promise<CacheStats> {
    const counts = (await this.#record(STATS, [], [])) as (Buffer | null)[];
    const [hits, misses, coalesced, sets, deletes] = counts.map((count) => Number(text(count) ?? 0));
    return {
      entries: await this.size,
      hits: hits!,
      misses: misses!,
      coalesced: coalesced!,
      sets: sets!,
      deletes: deletes!,
    };
  }

  /** Entries holding a value, counted with SCAN. */
  get size(): Promise<number> {
    return (async () => {
      let count = 0;
      for await (const batch of this.#scan()) count += batch.length;
      return count;
    })();
  }

  /** +1 on every change by any process; when Redis lost it, it goes on from a larger number, never back. */
  get version(): Promise<number> {
    return this.#record(VERSION, [], []).then((reply) => (this.#seen = Math.max(this.#seen, Number(text(reply)))));
  }

  get closed(): boolean {
    return this.#handle.closed;
  }

  /**
   * Closes the connection. A computation this instance runs for fetch() still ends, but its claim is dropped now, so
   * another process computes the value in its place.
   */
  close(): Promise<void> {
    const fields = COUNTS.map((name) => this.#field + name);
    return this.#handle.close(() => this.#handle.connection.call(['HDEL', this.#base, ...fields]).catch(() => {}));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #call(args: (string | Buffer)[]) {
    return this.#handle.call(args);
  }

  // Runs a script that starts with RECORD: the record first among its keys, what makes it again last among its args.
  #record(source: string, keys: string[], args: (string | Buffer)[]) {
    const counts = COUNTS.map((name) => String(this.#counts[name]));
    const record = [this.#field, this.#codec.name, String(this.#ttl), String(this.#seen), ...counts];
    return this.#handle.script(source, [this.#base, ...keys], [...args, ...record]);
  }

  // The value of `key`, counted as a hit, or as a miss when `miss`.
  async #read(key: string, miss: boolean): Promise<V | undefined> {
    const value = await this.#record(GET, [this.#entry(key)], [miss ? '1' : '0']);
    if (value !== null) this.#counts.hits++;
    else if (miss) this.#counts.misses++;
    return this.#decode(value);
  }

  #entry(key: string): string {
    this.#handle.open();
    const fault = keyFault(key, this.#maxKey);
    if (fault !== undefined) throw fault;
    return `${this.#base}:e:${key}`;
  }

  // Writes `payload` (undefined: deletes) if the entry still holds `current` (null: nothing; undefined: whatever).
  // `keep`: an entry that exists keeps its expiry time; `ttl` is then only a new entry's.
  async #put(
    entry: string,
    current: Buffer | null | undefined,
    payload: Buffer | undefined,
    ttl: number,
    keep = false,
  ) {
    const expect = current === undefined ? '' : current === null ? '0' : '1';
    const args = [payload ? '1' : '0', current ?? '', expect, payload ?? '', String(ttl), keep ? '1' : '0'];
    const result = (await this.#record(PUT, [entry], args)) as number;
    if (result === 1) this.#counts[payload ? 'sets' : 'deletes']++;
    return result;
  }

  #decode(bytes: unknown): V | undefined {
    return Buffer.isBuffer(bytes) ? decodeStored(this.#codec, bytes) : undefined;
  }

  // The ttl in ms for a call's option (checked), or the map's default.
  #expiry(ttl: number | undefined): number {
    if (ttl !== undefined) checkTtl(ttl);
    return wholeMs(ttl ?? this.#ttl);
  }

  async #fetchShared(
    key: string,
    compute: Compute<V | undefined>,
    ttl: number,
    control: FlightControl,
  ): Promise<V | undefined> {
    const entry = this.#entry(key);
    const marker = `${this.#base}:f:${key}`;
    const { leases } = this.#handle;
    let lease: Lease | undefined;
    try {
      // A value, once set; else this instance's claim once it can take one (none held, or the holder's lapsed).
      let waited = false;
      const outcome = await pollUntil(
        async () => {
          // Live before it is asked for: Redis may grant a claim whose answer is lost, or comes after close().
          lease = leases.ask({ keys: [marker], renew: RENEW, release: DROP });
          const found = waited ? 'coalesced' : 'hits';
          const reply = await this.#record(CLAIM, [entry, marker], [lease.token, String(leases.ms), found]);
          if (reply === 1) {
            this.#counts.misses++;
            return { claim: lease };
          }
          lease.forget();
          if (Buffer.isBuffer(reply)) {
            this.#counts[found]++;
            return { value: this.#decode(reply) };
          }
          waited = true;
          control.waitingFor('another process to compute it');
          return undefined;
        },
        Infinity,
        control.signal,
        () => '',
      );
      if ('value' in outcome) return outcome.value;
      // Closed while the claim was asked for: close() dropped it.
      this.#handle.open();
      control.computing();
      const { claim } = outcome;
      claim.hold();
      const value = await compute(key, { signal: control.signal });
      if (value === undefined) return undefined;
      const payload = encodeOwned(this.#codec, value);
      const reply = await this.#record(FETCHED, [entry, marker], [claim.token, payload, String(ttl)]);
      // FETCHED dropped the claim.
      claim.forget();
      // Someone set the key while this computed: theirs is newer, and is what every process now reads.
      if (reply === 0) return (await this.peek(key)) ?? value;
      this.#counts.sets++;
      return value;
    } finally {
      // On every other way out (compute, encode or store failing, nothing to store, an answer lost) the claim is
      // dropped here, so that no process waits for its lease to run out.
      await lease?.giveBack();
    }
  }

  async *#scan(): AsyncGenerator<string[]> {
    const prefix = `${this.#base}:e:`;
    // The name is escaped so that a glob character in it matches itself; each key is checked too, as SCAN's MATCH is
    // only a filter.
    const match = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    let cursor = '0';
    do {
      const [next, keys] = (await this.#call(['SCAN', cursor, 'MATCH', match, 'COUNT', SCAN_COUNT])) as [
        Buffer,
        Buffer[],
      ];
      cursor = next.toString();
      yield keys.map((name) => name.toString('utf8')).filter((name) => name.startsWith(prefix));
    } while (cursor !== '0');
  }
}

// A ttl as Redis takes it, whole milliseconds (PX), rounded up so that one above 0 never becomes 0, no expiry.
const wholeMs = (ttl: number) => Math.ceil(ttl);
