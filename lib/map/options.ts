// A map's options: a new map's, checked and turned into the geometry of its region; and the checks of a value and a
// ttl given to a call.
import { type Codec, type CodecOption, encodeValue, resolveCodec } from '../codec.js';
import { describe, shareError } from '../errors.js';
import { checkCount, checkMaxKeySize, checkNames, checkTtl, type Names, parseBytes } from '../options.js';
import { checkPlacement } from '../region.js';
import {
  CHUNK,
  chunksFor,
  corruptMap,
  type EvictionPolicy,
  F_TTL,
  type MapView,
  MAX_LOAD,
  RECORD_HEADER,
  recordChunks,
  slotsFor,
} from './layout.js';

export interface SharedMapOptions<V> {
  /** Bytes of the whole region: a number, or a string such as '64MB' (KB, MB, GB are powers of 1024). */
  capacity: number | string;
  /** Entries at most. Default: capacity / 128. Each costs 16 / 0.75 bytes of index whether used or not. */
  maxEntries?: number;
  /** Encoded bytes of one value at most. Default: 1 MiB, or a quarter of the room for entries if that is less. */
  maxValueSize?: number;
  /** UTF-8 bytes of one key at most. Default: 1024. */
  maxKeySize?: number;
  /** Milliseconds an entry lives after it is set; 0 (the default) for ever. */
  ttl?: number;
  /** 'lru' (default): make room by evicting the least recently used entries. 'none': a set that does not fit fails. */
  eviction?: EvictionPolicy;
  /** Exports the handle as `MMAP_SHARE_<name>` in `process.env`, so forked children can `attach(name)`. */
  name?: string;
  /** Backs the region with this file (created exclusively, mode 0600) instead of a file with no name. */
  path?: string;
  /** How values are turned into bytes: 'v8' (default), 'msgpack', 'msgpack-refs', or `{ name, encode, decode }`. */
  codec?: CodecOption<V>;
}

const CREATE_NAMES: Names<SharedMapOptions<unknown>> = {
  capacity: true,
  maxEntries: true,
  maxValueSize: true,
  maxKeySize: true,
  ttl: true,
  eviction: true,
  name: true,
  path: true,
  codec: true,
};

/** The smallest and largest `capacity`. */
export const MIN_CAPACITY = 64 * 1024;
export const MAX_CAPACITY = 2 ** 31 - 2 ** 16;
const DEFAULT_MAX_VALUE = 2 ** 20;
const BYTES_PER_DEFAULT_ENTRY = 128;
/** The geometry of a new map, from its options; every bad option is refused here, before any file is made. */
export function planMap(options: SharedMapOptions<unknown>) {
  checkNames(options, CREATE_NAMES, 'an object with a capacity');
  const capacity = parseBytes('capacity', options.capacity, MIN_CAPACITY, MAX_CAPACITY);
  const maxKey = checkMaxKeySize(options.maxKeySize);
  const maxEntries = checkCount(
    'maxEntries',
    options.maxEntries,
    Math.floor(capacity / BYTES_PER_DEFAULT_ENTRY),
    Math.floor((capacity / 32) * MAX_LOAD),
  );
  const slots = slotsFor(maxEntries);
  const chunks = chunksFor(capacity, slots);
  const room = chunks * CHUNK - RECORD_HEADER - maxKey;
  const maxValue = checkCount(
    'maxValueSize',
    options.maxValueSize,
    Math.min(DEFAULT_MAX_VALUE, Math.floor(room / 4)),
    Math.max(1, room),
  );
  if (maxValue < 1 || recordChunks(maxKey, maxValue) > chunks) {
    throw shareError(
      'ERR_BAD_OPTION',
      `capacity ${capacity} leaves ${chunks * CHUNK} bytes for entries beside an index for ${maxEntries}: too little for a key of ${maxKey} bytes`,
    );
  }
  const { eviction = 'lru', ttl = 0, name, path } = options;
  if (eviction !== 'lru' && eviction !== 'none') {
    throw shareError('ERR_BAD_OPTION', `eviction must be 'lru' or 'none', got ${describe(eviction)}`);
  }
  checkTtl(ttl);
  if ('codec' in options) resolveCodec(options.codec);
  checkPlacement(name, path);
  return { capacity, slots, chunks, maxEntries, maxValue, maxKey, policy: eviction, ttl };
}

/** The bytes of `value`, or ERR_VALUE_TOO_LARGE past the map's maxValueSize. */
export function encodeFor<V>(view: MapView, codec: Codec<V>, value: V): Uint8Array {
  const payload = encodeValue(codec, value);
  const { maxValue } = view;
  if (payload.length > maxValue) {
    throw shareError(
      'ERR_VALUE_TOO_LARGE',
      `the value serializes to ${payload.length} bytes; this map takes values of at most ${maxValue}`,
    );
  }
  return payload;
}

/**
 * When an entry written at `now` expires, by a ttl given to a call (checked by the caller) or the map's default. A
 * writer takes `now` once it holds the lock: a ttl counts from the write, however long the lock took to get.
 */
export function expiry(view: MapView, ttl: number | undefined, now: number): number {
  const ms = ttl ?? view.f64[F_TTL]!;
  if (!(ms >= 0 && ms < Infinity)) throw corruptMap(`its default ttl is ${ms}`);
  return ms === 0 ? 0 : now + ms;
}
