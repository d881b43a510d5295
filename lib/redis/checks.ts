// The checks RedisShare and RedisMap make at their boundary (key, lease, key size) and on their values (encoded
// within Redis's limit, decoded or ERR_BAD_HANDLE), in one place.
import { type Codec, encodeValue } from '../codec.js';
import { describe, shareError } from '../errors.js';
import type { Names } from '../options.js';
import type { RedisOptions } from './connection.js';

const DEFAULT_LEASE_MS = 10_000;
// Redis's limit on one string.
const MAX_VALUE_BYTES = 512 * 2 ** 20;

/** The names of RedisOptions, which every Redis entry point takes. */
export const REDIS_NAMES: Names<RedisOptions> = { url: true, client: true, commandTimeout: true };

export function checkKey(key: unknown): asserts key is string {
  // A brace would end the hash tag early, putting one share's keys in different Cluster slots.
  if (typeof key !== 'string' || key === '' || /\p{Cs}|[{}]/u.test(key)) {
    throw shareError(
      'ERR_BAD_HANDLE',
      `the Redis key must be a non-empty string of text without { or }, got ${describe(key)}`,
    );
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

export function checkFunction(name: string, value: unknown): void {
  if (typeof value !== 'function')
    throw shareError('ERR_BAD_OPTION', `${name} must be a function, got ${describe(value)}`);
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

/** A value read from Redis; what does not decode is ERR_BAD_HANDLE, as damage in shared memory is. */
export function decodeStored<T>(codec: Codec<T>, bytes: Buffer): T {
  try {
    return codec.decode(bytes);
  } catch (error) {
    throw shareError('ERR_BAD_HANDLE', `a stored value does not decode (${(error as Error).message})`, error);
  }
}
