// Codecs turn values into the bytes of a slot and back; the header records which one wrote a region.
import { deserialize, serialize } from 'node:v8';
import { describe, shareError } from './errors.js';

/** A codec of your own: `decode` gets a view into shared memory and must copy whatever it keeps. */
export interface Codec<T = unknown> {
  /** Recorded (as a hash) in the region, so that an instance using another codec cannot attach. */
  readonly name: string;
  /** The bytes of `value`; throwing makes set() fail with ERR_NOT_SERIALIZABLE, with nothing written. */
  encode(value: T): Uint8Array;
  /** The value of `bytes`: a view of shared memory unless `copyFirst` is set. */
  decode(bytes: Uint8Array): T;
  /** Set by codecs that must be given a private copy of the bytes, which they may keep. */
  readonly copyFirst?: boolean;
}

/**
 * `'v8'` (full structured-clone fidelity, the default), `'msgpack'` (plain data, the fastest), `'msgpack-refs'`
 * (msgpack that keeps shared and circular references), or a codec of your own.
 */
export type CodecOption<T = unknown> = 'v8' | 'msgpack' | 'msgpack-refs' | Codec<T>;

// v8.deserialize returns typed arrays and Buffers as views of its input where alignment allows, so it must decode a
// private copy of the slot, never the slot itself: copyFirst. The copy also keeps the slow decoding out of a lock-free
// read's race window (lib/share/layout.ts).
const v8Codec: Codec = { name: 'v8', encode: serialize, decode: deserialize, copyFirst: true };

const msgpackCodecs = new Map<string, Codec>();

// msgpackr is loaded on first use, so that regions using the v8 codec never pay for it. copyBuffers: decoded binary
// data must not be a view of a slot that a later writer overwrites. structuredClone, for 'msgpack-refs', tracks every
// object it encodes in a Map to find references again: it doubles the cost of encoding a large value, so plain data
// does without it, as lmdb-js does. Every encode reuses one buffer (RESET_BUFFER_MODE): the bytes it returns are
// copied into the region before the next encode can run.
function msgpack(name: 'msgpack' | 'msgpack-refs'): Codec {
  let codec = msgpackCodecs.get(name);
  if (codec === undefined) {
    const { Packr, RESET_BUFFER_MODE } = require('msgpackr') as typeof import('msgpackr');
    const packr = new Packr({
      structuredClone: name === 'msgpack-refs',
      useRecords: true,
      moreTypes: true,
      copyBuffers: true,
      useBigIntExtension: true,
    });
    codec = { name, encode: (value) => packr.pack(value, RESET_BUFFER_MODE), decode: (bytes) => packr.unpack(bytes) };
    msgpackCodecs.set(name, codec);
  }
  return codec;
}

/** The bytes of `value`; a codec that throws, or gives something else than bytes, makes ERR_NOT_SERIALIZABLE. */
export function encodeValue<T>(codec: Codec<T>, value: T): Uint8Array {
  let bytes: unknown;
  try {
    bytes = codec.encode(value);
  } catch (error) {
    throw shareError('ERR_NOT_SERIALIZABLE', `the value cannot be encoded: ${(error as Error).message}`, error);
  }
  if (!(bytes instanceof Uint8Array)) {
    throw shareError(
      'ERR_NOT_SERIALIZABLE',
      `the codec ${codec.name} encoded the value as ${describe(bytes)}, not bytes`,
    );
  }
  return bytes;
}

/** The value of `bytes`, a view of shared memory: decoded from a private copy for a codec that keeps what it gets. */
export function decodeView<T>(codec: Codec<T>, bytes: Uint8Array): T {
  return codec.decode(codec.copyFirst ? new Uint8Array(bytes) : bytes);
}

export function resolveCodec(option: unknown = 'v8'): Codec {
  if (option === 'v8') return v8Codec;
  if (option === 'msgpack' || option === 'msgpack-refs') return msgpack(option);
  const codec = option as Codec;
  if (
    typeof codec !== 'object' ||
    codec === null ||
    typeof codec.name !== 'string' ||
    codec.name === '' ||
    typeof codec.encode !== 'function' ||
    typeof codec.decode !== 'function'
  ) {
    throw shareError('ERR_BAD_OPTION', "codec must be 'v8', 'msgpack', 'msgpack-refs' or { name, encode, decode }");
  }
  // Bound once here, so the read path can pass decode around without losing the codec's `this`.
  return {
    name: codec.name,
    encode: (value) => codec.encode(value),
    decode: (bytes) => codec.decode(bytes),
    copyFirst: codec.copyFirst === true,
  };
}

/** The codec word of the header: a 32-bit FNV-1a hash of the codec's name, never 0. */
export function codecId(name: string): number {
  let hash = 0x811c9dc5;
  for (const char of name) hash = Math.imul(hash ^ char.codePointAt(0)!, 0x01000193);
  return hash >>> 0 || 1;
}

/** The codec for a region whose header records `id`: the one given, which must match, or a built-in one. */
export function codecFor(id: number, given: unknown): Codec {
  if (given !== undefined) {
    const codec = resolveCodec(given);
    if (codecId(codec.name) !== id)
      throw shareError('ERR_CODEC_MISMATCH', `the region was not written by the ${codec.name} codec`);
    return codec;
  }
  if (id === codecId('v8')) return v8Codec;
  if (id === codecId('msgpack')) return msgpack('msgpack');
  if (id === codecId('msgpack-refs')) return msgpack('msgpack-refs');
  throw shareError(
    'ERR_CODEC_MISMATCH',
    'the region was written by a codec of its own: pass it to attach() as { codec }',
  );
}

/** Freezes `value` and everything it holds, for values shared by every caller (snapshot()). */
export function deepFreeze<V>(value: V): V {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value) || ArrayBuffer.isView(value)) return value;
  Object.freeze(value);
  for (const key of Reflect.ownKeys(value)) deepFreeze((value as Record<PropertyKey, unknown>)[key]);
  if (value instanceof Map) {
    for (const [key, entry] of value) {
      deepFreeze(key);
      deepFreeze(entry);
    }
  }
  if (value instanceof Set) for (const entry of value) deepFreeze(entry);
  return value;
}
