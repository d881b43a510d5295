// Checks of the options both backends take, in a module that loads no native addon, so the Redis entry loads none.
import { describe, shareError } from './errors.js';

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
