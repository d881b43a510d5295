// Checks of the options both backends take, in a module that loads no native addon, so the Redis entry loads none.
import { describe, shareError } from './errors.js';
import { MAX_KEY_LIMIT } from './map/layout.js';

const DEFAULT_MAX_KEY = 1024;

/** Milliseconds a caller may wait: a non-negative number, Infinity by default. */
export function checkTimeout(timeout: unknown = Infinity): number {
  if (typeof timeout !== 'number' || !(timeout >= 0)) {
    throw shareError('ERR_BAD_OPTION', `timeout must be a non-negative number, got ${describe(timeout)}`);
  }
  return timeout;
}

export function checkTtl(ttl: unknown): void {
  if (typeof ttl !== 'number' || !(ttl >= 0) || !Number.isFinite(ttl)) {
    throw shareError('ERR_BAD_OPTION', `ttl must be a finite number of milliseconds, 0 or more, got ${describe(ttl)}`);
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
