// An MmapShare region's memory layout: the common header (lib/layout.ts), whose words 3-5 it uses, and two slots,
// one holding the committed value while the other takes the next; and how a value is committed and read.
//
// | word | bytes   | name     | written by, when                  | meaning                                             |
// |------|---------|----------|-----------------------------------|-----------------------------------------------------|
// | 0-63 | 0-255   | header   | lib/layout.ts                     | magic "MMSH", SIZE = bytes of each slot             |
// | 3    | 12-15   | COMMIT   | LOCK holder, after the payload    | version; 0 = never set; its parity names the slot   |
// |      |         |          |                                   | holding the committed value                         |
// | 4    | 16-19   | LENGTH_0 | LOCK holder, before COMMIT        | payload bytes in slot 0                             |
// | 5    | 20-23   | LENGTH_1 | LOCK holder, before COMMIT        | payload bytes in slot 1                             |
// | -    | 256...  | slot 0   | LOCK holder                       | SIZE bytes                                          |
// | -    | 256+SIZE| slot 1   | LOCK holder                       | SIZE bytes                                          |
//
// Invariants. Only the holder of LOCK writes COMMIT, the lengths and the slots. A writer fills the slot that COMMIT
// does not name, then its length, and commits last with one store of the next version, so a writer killed at any
// instant leaves the previous value whole. Readers take no lock (readUnlocked below).
import { type Codec, decodeView } from '../codec.js';
import { step } from '../crash.js';
import { shareError } from '../errors.js';
import { HEADER_BYTES, type Mapping, RACED } from '../layout.js';

export const W_COMMIT = 3;
export const W_LENGTH_0 = 4;

// Version 0 means "never set", so the count skips it when it wraps; 2 keeps the slots alternating.
function nextVersion(version: number): number {
  return version === 0xffffffff ? 2 : version + 1;
}

function slotOffset(slot: number, size: number): number {
  return HEADER_BYTES + slot * size;
}

/** A value read, with the version it was committed as. */
export interface Read<T> {
  readonly version: number;
  readonly value: T | undefined;
}

/** Decodes the committed value; the caller holds a lock, so no writer can commit meanwhile. */
export function readLocked<T>(map: Mapping, codec: Codec<T>): Read<T> {
  const version = Atomics.load(map.words, W_COMMIT);
  if (version === 0) return { version, value: undefined };
  try {
    const payload = payloadOf(map, version);
    return { version, value: decodeView(codec, payload) };
  } catch (error) {
    throw corrupt(error);
  }
}

/**
 * Decodes the committed value without a lock, as a seqlock reader does. A copyFirst codec decodes only after the
 * check, from its copy, so the race window is a memcpy, not a decode.
 *
 * Why it is safe: a writer only ever fills the slot that COMMIT does not name, and the slot named by version `v` is
 * next written by the writer of `v + 2`, which can start only after `v + 1` is committed. So if COMMIT still reads
 * `v` after decoding slot `v & 1`, no byte of it changed while it was read. If COMMIT moved, a writer may have
 * rewritten the slot under the decoder: the bytes may be torn, the length may exceed the slot, the decoder may throw;
 * all of it is discarded and RACED returned, for the caller to retry or to read under the lock.
 * Ordering: V8's Atomics.load is a sequentially consistent load and x86-64 never reorders loads with loads, so the
 * second COMMIT load happens after every payload load; on other architectures the caller reads under the lock.
 */
export function readUnlocked<T>(map: Mapping, codec: Codec<T>): Read<T> | typeof RACED {
  const version = Atomics.load(map.words, W_COMMIT);
  if (version === 0) return { version, value: undefined };
  let value: T | undefined;
  let copy: Uint8Array | undefined;
  let failure: unknown;
  try {
    const payload = payloadOf(map, version);
    if (codec.copyFirst) copy = new Uint8Array(payload);
    else value = codec.decode(payload);
  } catch (error) {
    failure = error;
  }
  if (Atomics.load(map.words, W_COMMIT) !== version) return RACED;
  if (failure !== undefined) throw corrupt(failure);
  if (copy === undefined) return { version, value };
  try {
    return { version, value: codec.decode(copy) };
  } catch (error) {
    throw corrupt(error);
  }
}

function payloadOf(map: Mapping, version: number): Uint8Array {
  const slot = version & 1;
  const length = Atomics.load(map.words, W_LENGTH_0 + slot);
  if (length > map.size) throw new RangeError(`slot ${slot} claims ${length} bytes of ${map.size}`);
  const start = slotOffset(slot, map.size);
  return map.bytes.subarray(start, start + length);
}

function corrupt(cause: unknown) {
  return shareError(
    'ERR_BAD_HANDLE',
    `the region is corrupt: its value does not decode (${(cause as Error).message})`,
    cause,
  );
}

/** Commits `payload` as the next version. Caller holds the exclusive lock and has checked that it fits. */
export function commit(map: Mapping, payload: Uint8Array): number {
  const version = nextVersion(Atomics.load(map.words, W_COMMIT));
  const slot = version & 1;
  map.bytes.set(payload, slotOffset(slot, map.size));
  step('commit.payload');
  Atomics.store(map.words, W_LENGTH_0 + slot, payload.length);
  step('commit.length');
  // The commit word goes last: until this store the previous value stays the committed one.
  Atomics.store(map.words, W_COMMIT, version);
  return version;
}
