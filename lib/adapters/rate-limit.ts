// The express-rate-limit entry, `mmap-share/rate-limit`: a store that counts each client's hits in a SharedMap,
// so that every worker of a cluster counts against one limit (its MemoryStore counts per process, letting N workers
// allow N times the limit); over a RedisMap, every machine.
//
// A client's window is one entry, [hits, resetTime], under `prefix + key`. It is counted by the map's update(), under
// the map's lock (SharedMap) or atomically (RedisMap), and it ends when the entry expires by the map's TTL, at its
// resetTime: every update keeps an existing entry's expiry, so only the hit that opens a window gives one. The map
// alone says whether a window is open, never this process's clock: over a RedisMap, Redis's expiry decides for every
// machine, however their clocks differ.
import type { ClientRateLimitInfo, IncrementResponse, Options, Store } from 'express-rate-limit';
import type { Cache } from '../api.js';
import { shareError } from '../errors.js';
import { checkNames, checkTtl } from '../options.js';
import { checkCache, checkPrefix, clearUnder } from './cache.js';

export { MmapShareError, type ErrorCode } from '../errors.js';

export interface RateLimitStoreOptions {
  /** Put before every client's key, so that several limiters (each with a store of its own) share a map. Default: 'rl:'. */
  prefix?: string;
}

type Window = [hits: number, resetTime: number];

// express-rate-limit's own default, for a store used before init().
const DEFAULT_WINDOW_MS = 60_000;

/**
 * An express-rate-limit store over `cache`: `rateLimit({ store: new RateLimitStore(SharedMap.attach('limits')) })`.
 * One store a limiter, as express-rate-limit asks; limiters that share a map need prefixes of their own.
 */
export class RateLimitStore implements Store {
  /** Keys counted here count in every process: express-rate-limit's double-count check goes by it. */
  readonly localKeys = false;
  readonly prefix: string;
  readonly #cache: Cache<Window>;
  #windowMs = DEFAULT_WINDOW_MS;

  constructor(cache: Cache<unknown>, options: RateLimitStoreOptions = {}) {
    checkNames(options, { prefix: true });
    this.prefix = checkPrefix(options.prefix, 'rl:');
    this.#cache = checkCache(cache as Cache<Window>, 'RateLimitStore');
  }

  /** Called by express-rate-limit with its options: a window lasts `windowMs`. */
  init(options: Pick<Options, 'windowMs'>): void {
    const { windowMs } = options;
    checkTtl(windowMs);
    if (windowMs === 0) throw shareError('ERR_BAD_OPTION', 'windowMs must be more than 0');
    this.#windowMs = windowMs;
  }

  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    const window = await this.#cache.peek(this.prefix + key);
    return window && info(window);
  }

  async increment(key: string): Promise<IncrementResponse> {
    const entry = this.prefix + key;
    // Most hits fall in an open window, which keeps its expiry; the first of a window opens it, with its own.
    const counted = await this.#cache.update(entry, (window) => window && [window[0] + 1, window[1]]);
    if (counted !== undefined) return info(counted);
    const windowMs = this.#windowMs;
    const opened = await this.#cache.update(
      entry,
      (window) => (window ? [window[0] + 1, window[1]] : [1, Date.now() + windowMs]),
      // A window another process opened meanwhile keeps its expiry.
      { ttl: windowMs, keepTtl: true },
    );
    return info(opened!);
  }

  async decrement(key: string): Promise<void> {
    await this.#cache.update(this.prefix + key, (window) => window && [Math.max(0, window[0] - 1), window[1]]);
  }

  async resetKey(key: string): Promise<void> {
    await this.#cache.delete(this.prefix + key);
  }

  /** Forgets every client of this store's prefix; every key of the map when the prefix is ''. */
  async resetAll(): Promise<void> {
    await clearUnder(this.#cache, this.prefix);
  }

  /** Closes the map: call it once the map's last user in this process is done with it. */
  async shutdown(): Promise<void> {
    await this.#cache.close();
  }
}

const info = ([totalHits, resetTime]: Window): ClientRateLimitInfo & IncrementResponse => ({
  totalHits,
  resetTime: new Date(resetTime),
});
