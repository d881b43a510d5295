// Checks of the options both backends take, in a module that loads no native addon, so the Redis entry loads none.
import type { ChangesOptions, FetchOptions, LockAsyncOptions, SetOptions, UpdateOptions, WatchOptions } from './api.js';
import { describe, type MmapShareError, shareError } from './errors.js';
import { MAX_KEY_LIMIT } from './map/layout.js';

const DEFAULT_MAX_KEY = 1024;

/** Milliseconds a caller may wait: a non-negative number, Infinity by default. */
/** A wait's `timeout` (Infinity when not given) and `signal`, checked: ERR_BAD_OPTION for anything else. */
export function checkWait({ timeout = Infinity, signal }: { timeout?: unknown; signal?: unknown }): {
  timeout: number;
  signal: AbortSignal | undefined;
} {
  if (typeof timeout !== 'number' || !(timeout >= 0)) {
    throw shareError('ERR_BAD_OPTION', `timeout must be a non-negative number, got ${describe(timeout)}`);
  }
  return { timeout, signal: checkSignal(signal) };
}

export function checkSignal(signal: unknown): AbortSignal | undefined {
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw shareError('ERR_BAD_OPTION', `signal must be an AbortSignal, got ${describe(signal)}`);
  }
  return signal;
}

/** Whether update() keeps an existing entry's expiry time: always without a ttl, else when `keepTtl` says so. */
export function keepsTtl({ ttl, keepTtl = false }: UpdateOptions): boolean {
  if (typeof keepTtl !== 'boolean')
    throw shareError('ERR_BAD_OPTION', `keepTtl must be a boolean, got ${describe(keepTtl)}`);
  return ttl === undefined || keepTtl;
}

export function checkTtl(ttl: unknown): void {
  // At most 2^53 - 1 ms, which Redis takes as a whole number (a larger one it refuses as no integer).
  if (typeof ttl !== 'number' || !(ttl >= 0) || !(ttl <= Number.MAX_SAFE_INTEGER)) {
    throw shareError('ERR_BAD_OPTION', `ttl must be a number of milliseconds from 0 to 2^53 - 1, got ${describe(ttl)}`);
  }
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30 };

/** Bytes from a number or a string such as '64MB', from `min` to `max`; ERR_BAD_SIZE otherwise. */
export function parseBytes(name: string, value: unknown, min: number, max: number): number {
  const match = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$/i.exec(value) : null;
  const bytes = match === null ? value : Math.floor(Number(match[1]) * UNITS[match[2]!.toLowerCase()]!);
  if (typeof bytes !== 'number' || !Number.isInteger(bytes) || bytes < min || bytes > max) {
    throw shareError(
      'ERR_BAD_SIZE',
      `${name} must be an integer number of bytes from ${min} to ${max}, or a string such as '64MB', got ${describe(value)}`,
    );
  }
  return bytes;
}

/** The `max` of a queue's shiftMany(): a non-negative integer, or Infinity for all there are. */
export function checkMax(max: unknown): number {
  if (max !== Infinity && (!Number.isInteger(max) || (max as number) < 0)) {
    throw shareError('ERR_BAD_OPTION', `max must be a non-negative integer, got ${describe(max)}`);
  }
  return max as number;
}

/** ERR_VALUE_TOO_LARGE for a message of `bytes` encoded bytes in a queue that takes `max` at most. */
export function checkMessageSize(bytes: number, max: number): void {
  if (bytes > max) {
    throw shareError(
      'ERR_VALUE_TOO_LARGE',
      `the message serializes to ${bytes} bytes; this queue takes ${max} at most`,
    );
  }
}

/** An integer option from 1 to `max`, `fallback` when not given. */
export function checkCount(name: string, value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw shareError('ERR_BAD_OPTION', `${name} must be an integer from 1 to ${max}, got ${describe(value)}`);
  }
  return value;
}

/** The UTF-8 bytes of one key at most, on either backend. */
export function checkMaxKeySize(maxKeySize: unknown): number {
  return checkCount('maxKeySize', maxKeySize, DEFAULT_MAX_KEY, MAX_KEY_LIMIT);
}

/** Why `key` is no key of a map whose keys take `maxKey` UTF-8 bytes at most, on either backend; else undefined. */
export function keyFault(key: unknown, maxKey: number): MmapShareError | undefined {
  if (typeof key !== 'string') return shareError('ERR_BAD_KEY', `a key must be a string, got ${describe(key)}`);
  const bytes = Buffer.byteLength(key);
  if (bytes > maxKey) return shareError('ERR_BAD_KEY', `a key may take ${maxKey} bytes of UTF-8, got ${bytes}`);
  if (/\p{Cs}/u.test(key)) return shareError('ERR_BAD_KEY', 'a key must not hold a lone surrogate');
  return undefined;
}

/** Every name an options object of type `O` may hold; the type makes the list complete and exact. */
export type Names<O> = { readonly [K in keyof Required<O>]: true };

export const LOCK_ASYNC_NAMES: Names<LockAsyncOptions> = { timeout: true, signal: true };
export const WATCH_NAMES: Names<WatchOptions> = { interval: true };
export const CHANGES_NAMES: Names<ChangesOptions> = { interval: true, signal: true };
export const SET_NAMES: Names<SetOptions> = { ttl: true };
export const UPDATE_NAMES: Names<UpdateOptions> = { ttl: true, keepTtl: true };
export const FETCH_NAMES: Names<FetchOptions> = { ttl: true, timeout: true, signal: true };

/**
 * Refuses `options` unless it is an object whose own names are all in `names`: a misspelt option would otherwise
 * be ignored without a word (a `tll` that leaves a map without expiry).
 */
export function checkNames(options: unknown, names: Names<object>, shape = 'an object'): void {
  if (typeof options !== 'object' || options === null) {
    throw shareError('ERR_BAD_OPTION', `options must be ${shape}, got ${describe(options)}`);
  }
  for (const name in options) {
    if (Object.hasOwn(names, name) || !Object.hasOwn(options, name)) continue;
    const known = Object.keys(names);
    const near = closest(name, known);
    throw shareError(
      'ERR_BAD_OPTION',
      near === undefined
        ? `unknown option ${name}; the options here are ${known.join(', ')}`
        : `unknown option ${name}; did you mean ${near}?`,
    );
  }
}

// The known name a typo most likely meant: the fewest edits (a swap of two neighbours counts as one), ignoring
// case, and few enough that the names still look alike.
function closest(name: string, known: readonly string[]): string | undefined {
  const typed = name.toLowerCase();
  let best: string | undefined;
  let bestEdits = Math.min(2, Math.floor(typed.length / 3));
  for (const candidate of known) {
    const edits = distance(typed, candidate.toLowerCase());
    if (edits <= bestEdits && (best === undefined || edits < bestEdits)) [best, bestEdits] = [candidate, edits];
  }
  return best;
}

// Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps.
function distance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = rows[i]!;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(rows[i - 1]![j]! + 1, row[j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(row[j]!, rows[i - 2]![j - 2]! + 1);
      }
    }
  }
  return rows[a.length]![b.length]!;
}
