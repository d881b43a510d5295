// The region's memory layout: the header words, where the slots lie, and how a value is committed and read.
//
// | word  | bytes   | name         | written by, when                            | meaning                                         |
// |-------|---------|--------------|---------------------------------------------|-------------------------------------------------|
// | 0     | 0-3     | MAGIC        | creator, last step of initialisation        | 0x48534d4d ("MMSH"): the region is ready        |
// | 1     | 4-7     | LAYOUT       | creator                                     | layout version, 1                               |
// | 2     | 8-11    | SIZE         | creator                                     | bytes in each slot                              |
// | 3     | 12-15   | COMMIT       | writer under LOCK_EX, after the payload     | version; 0 = never set; its parity names the    |
// |       |         |              |                                             | slot holding the committed value                |
// | 4     | 16-19   | LENGTH_0     | writer under LOCK_EX, before COMMIT         | payload bytes in slot 0                         |
// | 5     | 20-23   | LENGTH_1     | writer under LOCK_EX, before COMMIT         | payload bytes in slot 1                         |
// | 6     | 24-27   | HOLDER_PID   | each exclusive holder, right after flock    | pid of the exclusive holder; 0 when free        |
// | 7     | 28-31   | HOLDER_START | each exclusive holder, right after flock    | its start time (clock ticks after boot, low 32) |
// | 8     | 32-35   | DEAD_PID     | an exclusive holder that finds HOLDER_PID   | pid of a holder that died holding the lock,     |
// |       |         |              | set; cleared by the lock() that reports it  | until an explicit lock() reports it             |
// | 9     | 36-39   | DEAD_START   | with DEAD_PID                               | that holder's start time                        |
// | 10-11 | 40-47   | REGION_ID    | creator                                     | random id, carried in handles                   |
// | 12-15 | 48-63   | reserved     |                                             | zero                                            |
// | -     | 64...   | slot 0       | writer under LOCK_EX                        | `SIZE` bytes                                    |
// | -     | 64+SIZE | slot 1       | writer under LOCK_EX                        | `SIZE` bytes                                    |
//
// Invariants. Every word is little-endian and read or written as one aligned 32-bit access (Atomics on a
// Uint32Array), never byte by byte. Only the holder of the exclusive flock writes COMMIT, the lengths, the slots
// and the holder words. A writer fills the slot that COMMIT does not name, then its length, and commits last with
// one store of the next version, so a writer killed at any instant leaves the previous value whole. A holder
// clears HOLDER_PID before it releases the flock, so a later holder that finds it set knows its predecessor died
// inside its critical section: flock itself is released by the kernel when a holder dies.
import { shareError } from './errors.js';

export const MAGIC = 0x48534d4d;
export const LAYOUT_VERSION = 1;
export const HEADER_BYTES = 64;
/** The largest `size` accepted: two slots and the header must fit one Node Buffer. */
export const MAX_SIZE = 2 ** 30;

export const W_MAGIC = 0;
export const W_LAYOUT = 1;
export const W_SIZE = 2;
export const W_COMMIT = 3;
export const W_LENGTH_0 = 4;
export const W_HOLDER_PID = 6;
export const W_HOLDER_START = 7;
export const W_DEAD_PID = 8;
export const W_DEAD_START = 9;
export const W_REGION_ID = 10;
const HEADER_WORDS = HEADER_BYTES / 4;

/** A mapped region: the whole mapping as bytes, and its header as words. */
export interface Mapping {
  readonly bytes: Buffer;
  readonly words: Uint32Array;
  readonly size: number;
}

export function regionBytes(size: number): number {
  return HEADER_BYTES + 2 * size;
}

export function headerWords(bytes: Buffer): Uint32Array {
  return new Uint32Array(bytes.buffer, bytes.byteOffset, HEADER_WORDS);
}

/** Writes a fresh header into zeroed memory. The magic goes last so that no one attaches to a half-made header. */
export function initHeader(words: Uint32Array, size: number, id: readonly [number, number]): void {
  Atomics.store(words, W_LAYOUT, LAYOUT_VERSION);
  Atomics.store(words, W_SIZE, size);
  Atomics.store(words, W_REGION_ID, id[0]);
  Atomics.store(words, W_REGION_ID + 1, id[1]);
  Atomics.store(words, W_MAGIC, MAGIC);
}

/** Checks a header read from a file of `fileBytes` bytes and returns its slot size. */
export function checkHeader(words: Uint32Array, fileBytes: number, what: string): number {
  if (Atomics.load(words, W_MAGIC) !== MAGIC) throw shareError('ERR_BAD_HANDLE', `${what} is not an mmap-share region`);
  const layout = Atomics.load(words, W_LAYOUT);
  if (layout !== LAYOUT_VERSION) {
    throw shareError('ERR_BAD_HANDLE', `${what} has layout version ${layout}; this mmap-share reads ${LAYOUT_VERSION}`);
  }
  const size = Atomics.load(words, W_SIZE);
  if (size < 1 || size > MAX_SIZE || regionBytes(size) !== fileBytes) {
    throw shareError('ERR_BAD_HANDLE', `${what} has a damaged header: slot size ${size} in a file of ${fileBytes} bytes`);
  }
  return size;
}

export function regionId(words: Uint32Array): string {
  const hex = (word: number) => Atomics.load(words, word).toString(16).padStart(8, '0');
  return hex(W_REGION_ID) + hex(W_REGION_ID + 1);
}

// Version 0 means "never set", so the count skips it when it wraps; 2 keeps the slots alternating.
function nextVersion(version: number): number {
  return version === 0xffffffff ? 2 : version + 1;
}

function slotOffset(slot: number, size: number): number {
  return HEADER_BYTES + slot * size;
}

/** The committed payload, a view into the mapping; undefined before the first commit. Caller holds a lock. */
export function committed(map: Mapping): Buffer | undefined {
  const version = Atomics.load(map.words, W_COMMIT);
  if (version === 0) return undefined;
  const slot = version & 1;
  const length = Atomics.load(map.words, W_LENGTH_0 + slot);
  if (length > map.size) throw shareError('ERR_BAD_HANDLE', `the region is corrupt: slot ${slot} claims ${length} bytes`);
  const start = slotOffset(slot, map.size);
  return map.bytes.subarray(start, start + length);
}

/** Commits `payload` as the next version. Caller holds the exclusive lock and has checked that it fits. */
export function commit(map: Mapping, payload: Uint8Array): number {
  const version = nextVersion(Atomics.load(map.words, W_COMMIT));
  const slot = version & 1;
  map.bytes.set(payload, slotOffset(slot, map.size));
  Atomics.store(map.words, W_LENGTH_0 + slot, payload.length);
  // The commit word goes last: until this store the previous value stays the committed one.
  Atomics.store(map.words, W_COMMIT, version);
  return version;
}
