// The header every region starts with: its kind, its layout version, its size, the writers' lock and the identity of
// the region. What follows the header, and words 3-5 of it, belong to the kind: one value (lib/share/layout.ts), a
// map (lib/map/layout.ts), a queue (lib/queue/layout.ts).
//
// | word  | bytes   | name         | written by, when                            | meaning                                         |
// |-------|---------|--------------|---------------------------------------------|-------------------------------------------------|
// | 0     | 0-3     | MAGIC        | creator, last step of initialisation        | the region is ready, and its kind: 0x48534d4d   |
// |       |         |              |                                             | ("MMSH") one value, 0x4d534d4d ("MMSM") a map,  |
// |       |         |              |                                             | 0x514d534d ("MMSQ") a queue                     |
// | 1     | 4-7     | LAYOUT       | creator                                     | layout version, 4                               |
// | 2     | 8-11    | SIZE         | creator                                     | bytes in each slot (a map: bytes of the region; |
// |       |         |              |                                             | a queue: bytes of its ring)                     |
// | 3-5   | 12-23   | (the kind's) | the kind's writer                           | MmapShare: COMMIT, LENGTH_0, LENGTH_1; others 0 |
// | 6-7   | 24-31   | LOCK         | 64-bit compare-and-swap by a writer         | the writers' lock: 0 when free, else its holder |
// |       |         |              | (lib/lock.ts); 0 on release                 | (thread id low, its start time high: OWNER)     |
// | 8-9   | 32-39   | DEAD         | a writer taking LOCK over from a holder     | the OWNER of a holder that died holding LOCK,   |
// |       |         |              | that died; cleared by the lock() reporting  | until a lock() (or a map's repair) reports it   |
// | 10-11 | 40-47   | REGION_ID    | creator                                     | random id, carried in handles                   |
// | 12    | 48-51   | CODEC        | creator                                     | hash of the codec's name (lib/codec.ts)         |
// | 13    | 52-55   | TIME_NS      | creator                                     | its time namespace (inode, low 32 bits): the    |
// |       |         |              |                                             | start times in LOCK are counted in it           |
// | 14    | 56-59   | PARKED       | a LOCK holder in a lock() of its own        | 1 while it also holds the exclusive flock, so   |
// |       |         |              |                                             | waiters sleep in the kernel                     |
// | 15    | 60-63   | PID_NS       | creator                                     | its pid namespace (inode, low 32 bits): LOCK    |
// |       |         |              |                                             | holds thread ids, meaningless outside it        |
// | 16    | 64-67   | LOOKS        | + 1 by a waiter before each look            | how many looks waiters made (wrapping): a       |
// |       |         |              | (lib/bell.ts)                               | writer rings again only once it moved           |
// | 17    | 68-71   | WAITERS      | a waiter registering and leaving            | waiters registered: no ring while 0             |
// | 18    | 72-75   | BELL         | written with pwrite(2) by a ringing writer  | nothing: the write is the ring, which the       |
// |       |         |              |                                             | kernel reports to inotify (a mapping's stores   |
// |       |         |              |                                             | it does not)                                    |
// | 19    | 76-79   | -            |                                             | 0                                               |
// | 20-63 | 80-255  | WAITER_ROWS  | a waiter registering (CAS from 0), leaving; | 22 64-bit OWNERs of the threads that wait, so   |
// |       |         |              | any waiter, for a thread proven gone        | that a dead waiter's registration is reclaimed  |
//
// Invariants. Every word is little-endian and read or written as one aligned 32-bit access (Atomics on a
// Uint32Array), never byte by byte. LOCK and DEAD are 64-bit words, each read and written as one access (Atomics on a
// BigUint64Array), so a holder's identity never tears and a reused thread id shows as another start time. Only the
// holder of LOCK writes PARKED, DEAD and anything of the kind's but what the kind says readers may touch. A waiter
// takes LOCK over, with one compare-and-swap, only from a holder proven gone, and records it in DEAD for the next
// lock() to report (lib/lock.ts). MAGIC is written last, so no one attaches to a half-made header. LOOKS, WAITERS and
// the rows are the doorbell's, written by anyone without the lock (lib/bell.ts says why no wake-up is lost).
import { shareError } from './errors.js';

export const LAYOUT_VERSION = 4;
export const HEADER_BYTES = 256;
/** The largest `size` accepted: the header and two slots must fit one mapping (see MAX_REGION_BYTES). */
export const MAX_SIZE = 2 ** 30 - HEADER_BYTES;

export const W_MAGIC = 0;
export const W_LAYOUT = 1;
export const W_SIZE = 2;
/** The LOCK and DEAD words, as indexes of the header's 64-bit words. */
export const D_LOCK = 3;
export const D_DEAD = 4;
export const W_REGION_ID = 10;
export const W_CODEC = 12;
export const W_PARKED = 14;
export const W_TIME_NS = 13;
export const W_PID_NS = 15;
export const W_LOOKS = 16;
export const W_WAITERS = 17;
export const W_BELL = 18;
/** The waiter rows, as indexes of the header's 64-bit words. */
export const D_WAITER_ROWS = 10;
export const WAITER_ROWS = 22;
const HEADER_WORDS = HEADER_BYTES / 4;

/** What a region holds: one value (MmapShare), many keys (SharedMap) or many messages (SharedQueue). */
export type RegionKind = 'share' | 'map' | 'queue';
/** The bytes a queue keeps between the common header and its ring (lib/queue/layout.ts). */
export const QUEUE_HEADER_BYTES = 64;

// Per kind: its magic word, and the bytes of a region whose SIZE word is `size`.
const KINDS: Record<RegionKind, { magic: number; bytes: (size: number) => number; what: string }> = {
  share: { magic: 0x48534d4d, bytes: (size) => HEADER_BYTES + 2 * size, what: 'an MmapShare region' },
  map: { magic: 0x4d534d4d, bytes: (size) => size, what: 'a SharedMap region' },
  queue: { magic: 0x514d534d, bytes: (size) => HEADER_BYTES + QUEUE_HEADER_BYTES + size, what: 'a SharedQueue region' },
};

/** A mapped region: the whole mapping as bytes, and its header as 32-bit and as 64-bit words. */
export interface Mapping {
  readonly bytes: Buffer;
  readonly words: Uint32Array;
  readonly wide: BigUint64Array;
  readonly size: number;
}

/** The bytes of a region of `kind` whose SIZE word is `size`. */
export function regionBytes(kind: RegionKind, size: number): number {
  return KINDS[kind].bytes(size);
}

/** The header of a mapping, which starts on a page, so its 64-bit words are aligned. */
export function headerWords(bytes: Buffer): { words: Uint32Array; wide: BigUint64Array } {
  return {
    words: new Uint32Array(bytes.buffer, bytes.byteOffset, HEADER_WORDS),
    wide: new BigUint64Array(bytes.buffer, bytes.byteOffset, HEADER_WORDS / 2),
  };
}

/** Writes a fresh header into zeroed memory. The magic goes last so that no one attaches to a half-made header. */
export function initHeader(
  words: Uint32Array,
  kind: RegionKind,
  size: number,
  id: readonly [number, number],
  codec: number,
  namespaces: { pid: number; time: number },
): void {
  Atomics.store(words, W_LAYOUT, LAYOUT_VERSION);
  Atomics.store(words, W_PID_NS, namespaces.pid);
  Atomics.store(words, W_TIME_NS, namespaces.time);
  Atomics.store(words, W_CODEC, codec);
  Atomics.store(words, W_SIZE, size);
  Atomics.store(words, W_REGION_ID, id[0]);
  Atomics.store(words, W_REGION_ID + 1, id[1]);
  Atomics.store(words, W_MAGIC, KINDS[kind].magic);
}

/** Checks a header read from a file of `fileBytes` bytes and returns its kind and SIZE word. */
export function checkHeader(
  words: Uint32Array,
  fileBytes: number,
  what: string,
): { readonly kind: RegionKind; readonly size: number } {
  const magic = Atomics.load(words, W_MAGIC);
  const kind = (Object.keys(KINDS) as RegionKind[]).find((name) => KINDS[name].magic === magic);
  if (kind === undefined) throw shareError('ERR_BAD_HANDLE', `${what} is not an mmap-share region`);
  const layout = Atomics.load(words, W_LAYOUT);
  if (layout !== LAYOUT_VERSION) {
    throw shareError('ERR_BAD_HANDLE', `${what} has layout version ${layout}; this mmap-share reads ${LAYOUT_VERSION}`);
  }
  const size = Atomics.load(words, W_SIZE);
  if (size < 1 || (kind === 'share' && size > MAX_SIZE) || regionBytes(kind, size) !== fileBytes) {
    throw shareError('ERR_BAD_HANDLE', `${what} has a damaged header: size ${size} in a file of ${fileBytes} bytes`);
  }
  return { kind, size };
}

/** Throws unless `region` is of `kind`: a map attached as a share, or the other way round, is refused. */
export function expectKind(region: { readonly kind: RegionKind }, kind: RegionKind, what: string): void {
  if (region.kind !== kind) {
    throw shareError('ERR_BAD_HANDLE', `${what} is ${KINDS[region.kind].what}, not ${KINDS[kind].what}`);
  }
}

export function regionId(words: Uint32Array): string {
  const hex = (word: number) => Atomics.load(words, word).toString(16).padStart(8, '0');
  return hex(W_REGION_ID) + hex(W_REGION_ID + 1);
}

/** Returned by a lock-free read that saw a writer move what it read: what it decoded may be torn. */
export const RACED = Symbol('raced');
