// What the stores of the adapter entries (mmap-share/keyv, /rate-limit, /session) share: the map each is given,
// checked once, and the keys of their own part of it, found by prefix since several stores may share one map.
import type { Cache } from '../api.js';
import { describe, shareError } from '../errors.js';

const MEMBERS = ['get', 'peek', 'has', 'set', 'delete', 'update', 'clear', 'keys'] as const;

/** `cache`, if it is one (a SharedMap, a RedisMap, or any Cache); ERR_BAD_OPTION otherwise. */
export function checkCache<V>(cache: Cache<V>, store: string): Cache<V> {
  const missing = MEMBERS.find((name) => typeof (cache as unknown as Record<string, unknown>)?.[name] !== 'function');
  if (missing !== undefined) {
    throw shareError(
      'ERR_BAD_OPTION',
      `${store} takes a SharedMap or a RedisMap (any Cache), got ${describe(cache)}${cache ? ` without ${missing}()` : ''}`,
    );
  }
  return cache;
}

/** A store's `prefix` option, `fallback` when it is not given; ERR_BAD_OPTION when it is not a string. */
export function checkPrefix(prefix: unknown, fallback: string): string {
  if (prefix === undefined) return fallback;
  if (typeof prefix !== 'string')
    throw shareError('ERR_BAD_OPTION', `prefix must be a string, got ${describe(prefix)}`);
  return prefix;
}

/** The keys of `cache` that start with `prefix`, every one listed before the caller sees any, so it may delete them. */
export async function keysUnder(cache: Cache<unknown>, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of cache.keys()) if (key.startsWith(prefix)) keys.push(key);
  return keys;
}

/** Removes the keys that start with `prefix`; the whole map's when it is ''. */
export async function clearUnder(cache: Cache<unknown>, prefix: string): Promise<void> {
  if (prefix === '') return cache.clear();
  for (const key of await keysUnder(cache, prefix)) await cache.delete(key);
}
