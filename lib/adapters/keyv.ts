// The Keyv entry, `mmap-share/keyv`: a Keyv storage adapter over a SharedMap, so that Keyv and what is built on it
// (cache-manager, @nestjs/cache-manager) share one cache among every process of a machine; over a RedisMap, among
// machines. One class serves keyv 5 and keyv 6: it takes a relative ttl and leaves the namespace to Keyv, which is
// all keyv 5 asks of a store, and what keyv 6 bridges a store to when it declares no `capabilities`. It has no
// deleteMany(): keyv 5 wants one boolean of it and keyv 6 one a key, and each makes its own answer from delete().
import { EventEmitter } from 'node:events';
import type { Cache } from '../api.js';
import { checkCache, clearUnder, keysUnder } from './cache.js';

export { MmapShareError, type ErrorCode } from '../errors.js';

/** An entry of `setMany()`: the key (namespaced by Keyv), what Keyv stores for it, and its ttl in milliseconds. */
export interface KeyvStoreEntry {
  key: string;
  value: unknown;
  ttl?: number;
}

/**
 * A Keyv store over `cache`: `new Keyv({ store: new KeyvStore(SharedMap.attach('cache')) })`. An entry expires by
 * the map's own TTL, Keyv's ttl when it gives one, else the map's default. Errors of the map (a value too large, a
 * closed map) reject the call, and Keyv reports them as it does for every store; setMany() emits each as 'error'.
 */
export class KeyvStore extends EventEmitter {
  /**
   * The store's options, as Keyv reads them. keyv 5 gives `iterator()` only to stores of the dialects it knows;
   * this one's is Redis's in shape (prefixed keys, scanned by namespace).
   */
  readonly opts: Record<string, unknown> = { dialect: 'redis' };
  /**
   * Set by keyv 5 to its namespace, which it also puts before every key: clear() and iterator() then touch only its
   * keys. Declared, not initialised: keyv 6 keeps the namespace itself unless the store has this property.
   */
  declare namespace?: string;
  readonly #cache: Cache<unknown>;

  constructor(cache: Cache<unknown>) {
    super();
    this.#cache = checkCache(cache, 'KeyvStore');
  }

  /** The map this store lives in. */
  get cache(): Cache<unknown> {
    return this.#cache;
  }

  async get(key: string): Promise<unknown> {
    return this.#cache.get(key);
  }

  async getMany(keys: string[]): Promise<unknown[]> {
    return Promise.all(keys.map((key) => this.#cache.get(key)));
  }

  async set(key: string, value: unknown, ttl?: number): Promise<boolean> {
    await (ttl === undefined ? this.#cache.set(key, value) : this.#cache.set(key, value, { ttl }));
    return true;
  }

  /**
   * Sets each entry in turn; one that fails is false in the result, and its error is emitted as 'error' if the store
   * has a listener (Keyv adds one): emitted to none, it would throw and skip the entries left.
   */
  async setMany(entries: KeyvStoreEntry[]): Promise<boolean[]> {
    const results: boolean[] = [];
    for (const { key, value, ttl } of entries) {
      try {
        results.push(await this.set(key, value, ttl));
      } catch (error) {
        if (this.listenerCount('error') > 0) this.emit('error', error);
        results.push(false);
      }
    }
    return results;
  }

  async has(key: string): Promise<boolean> {
    return this.#cache.has(key);
  }

  async hasMany(keys: string[]): Promise<boolean[]> {
    return Promise.all(keys.map((key) => this.#cache.has(key)));
  }

  async delete(key: string): Promise<boolean> {
    return this.#cache.delete(key);
  }

  /** Removes the keys of this store's namespace; every key of the map when it has none. */
  async clear(): Promise<void> {
    await clearUnder(this.#cache, prefixOf(this.namespace));
  }

  /** The [key, value] pairs of `namespace` (every pair when it is undefined), keys as stored: namespaced. */
  async *iterator(namespace?: string): AsyncGenerator<[string, unknown]> {
    for (const key of await keysUnder(this.#cache, prefixOf(namespace))) {
      const value = await this.#cache.peek(key);
      if (value !== undefined) yield [key, value];
    }
  }

  /** Closes the map: call it once the map's last user in this process is done with it. */
  async disconnect(): Promise<void> {
    await this.#cache.close();
  }
}

// How keyv 5 puts a namespace before a key.
const prefixOf = (namespace: string | undefined) => (namespace ? `${namespace}:` : '');
