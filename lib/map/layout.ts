// A SharedMap region's memory layout: its header past the common one (lib/layout.ts), the index of keys, the chunk
// table and the chunks that hold entries; and the primitives that read and write them.
//
// | bytes            | name          | written by, when                    | meaning                                       |
// |------------------|---------------|-------------------------------------|-----------------------------------------------|
// | 0-255            | common header | lib/layout.ts                       | magic "MMSM", SIZE = bytes of the region ...  |
// | 256-259 (w64)    | SLOTS         | creator                             | index slots                                   |
// | 260-263 (w65)    | CHUNKS        | creator                             | chunks of CHUNK bytes for entries             |
// | 264-267 (w66)    | MAX_ENTRIES   | creator                             | entries (with fetch markers) at most          |
// | 268-271 (w67)    | MAX_VALUE     | creator                             | encoded bytes of one value at most            |
// | 272-275 (w68)    | MAX_KEY       | creator                             | UTF-8 bytes of one key at most                |
// | 276-279 (w69)    | POLICY        | creator                             | 0: evict least recently used; 1: never evict  |
// | 280-283 (w70)    | EPOCH         | writer, around moving slots         | odd while index slots move                    |
// | 284-287 (w71)    | SEQ           | writer, per record written          | the last record version handed out            |
// | 288-291 (w72)    | CLOCK         | writer, per write                   | logical time; readers stamp slots with it     |
// | 292-295 (w73)    | VERSION       | writer, last step of every change   | +1 per change: pollers skip work while still  |
// | 296-299 (w74)    | ENTRIES       | writer                              | entries holding a value                       |
// | 300-303 (w75)    | PENDING       | writer                              | fetch markers (a computation under way)       |
// | 304-307 (w76)    | FREE_HEAD     | writer                              | first free chunk; END when none               |
// | 308-311 (w77)    | FREE_COUNT    | writer                              | free chunks                                   |
// | 312-315 (w78)    | EXPIRING      | writer                              | entries with an expiry time                   |
// | 316-319 (w79)    | SWEEP         | writer                              | next slot the expiry sweep looks at           |
// | 320-323 (w80)    | PENDING_CHUNKS| writer                              | chunks held by fetch markers                  |
// | 324-327 (w81)    | ERA           | writer, before renumbering versions | +1 each time SEQ wraps: (ERA, VER) names one  |
// |                  |               |                                     | record for ever                               |
// | 384-447 (f48-55) | TTL, SETS,... | creator (TTL); writers              | float64: default ttl ms; sets, deletes,       |
// |                  |               |                                     | evictions, expirations, hits and misses of    |
// |                  |               |                                     | closed instances, repairs                     |
// | 448-455 (f56)    | COALESCED     | writers, folding counter rows       | float64: fetches of closed instances given    |
// |                  |               |                                     | the value another computation made            |
// | 456-479          | OVERFLOW      | instances that found no free row    | uint64, added atomically: their hits, misses  |
// |                  |               | (COUNTER_ROWS taken)                | and coalesced                                 |
// | 1024-4095        | COUNTERS      | each instance, its own row          | COUNTER_ROWS rows of 32 bytes: pid, start,    |
// |                  |               |                                     | coalesced, hits, misses (float64)             |
// | 4096...          | index         | writer                              | SLOTS slots of 4 words: VER, HASH, HEAD,      |
// |                  |               |                                     | STAMP (readers store CLOCK into it on a hit)  |
// | then             | chunk table   | writer                              | CHUNKS words: next chunk of an entry or of    |
// |                  |               |                                     | the free list; END (0xffffffff) ends a chain  |
// | then, 64-aligned | chunks        | writer                              | CHUNKS x CHUNK bytes                          |
//
// An entry is a record laid over a chain of chunks: a 24-byte header (VER, HASH, KEYLEN | FLAGS << 16, VALUELEN,
// EXPIRES as float64 ms since the epoch, 0 for never) in its first chunk, then the key's UTF-8 bytes, then the value.
//
// Invariants. Writers exclude each other with the common header's LOCK word (lib/lock.ts: no system call, and a holder
// whose process is gone is taken over). Only the holder of LOCK writes anything but STAMP words and counter rows. A slot is
// empty when VER is 0; otherwise VER equals the VER of the record at HEAD, a number no other live record holds: when
// SEQ would wrap, the live records are renumbered from 1 and ERA moves on, so a version is never handed out twice in
// one ERA. A writer fills a record
// completely, its VER last, before a slot points to it, and frees a record's chunks only after no slot points to it;
// a replaced key gets a new record (copy on write). So a reader that finds a slot's (VER, HEAD) unchanged after
// reading the record it points to has read a whole record, without a lock. Slots move only inside an odd EPOCH, so a
// reader that finds no key and the same even EPOCH before and after knows the key was absent. A writer that dies
// holding the lock is reported to the next holder (lib/lock.ts), which rebuilds the index, the free list and the
// counts from the records the slots point to (lib/map/repair.ts).
import { shareError } from '../errors.js';
import { HEADER_BYTES } from '../layout.js';

export const CHUNK = 64;
export const RECORD_HEADER = 24;
export const END = 0xffffffff;
export const MAP_HEADER_BYTES = 4096;
/** Index slots are at most this full, so that probes stay short and an empty slot always ends them. */
export const MAX_LOAD = 0.75;
export const MAX_KEY_LIMIT = 0xffff;

export const W_SLOTS = 64;
export const W_CHUNKS = 65;
export const W_MAX_ENTRIES = 66;
export const W_MAX_VALUE = 67;
export const W_MAX_KEY = 68;
export const W_POLICY = 69;
export const W_EPOCH = 70;
export const W_SEQ = 71;
export const W_CLOCK = 72;
export const W_VERSION = 73;
export const W_ENTRIES = 74;
export const W_PENDING = 75;
export const W_FREE_HEAD = 76;
export const W_FREE_COUNT = 77;
export const W_EXPIRING = 78;
export const W_SWEEP = 79;
export const W_PENDING_CHUNKS = 80;
export const W_ERA = 81;

export const F_TTL = 48;
export const F_SETS = 49;
export const F_DELETES = 50;
export const F_EVICTIONS = 51;
export const F_EXPIRATIONS = 52;
export const F_HITS = 53;
export const F_MISSES = 54;
export const F_REPAIRS = 55;
export const F_COALESCED = 56;
/** Byte offset of the counts of instances that found no free counter row: hits, misses, coalesced (uint64). */
export const OVERFLOW_BYTE = 456;

export const COUNTERS_BYTES = 1024;
export const COUNTER_ROW_BYTES = 32;
export const COUNTER_ROWS = (MAP_HEADER_BYTES - COUNTERS_BYTES) / COUNTER_ROW_BYTES;

// Slot words, from the slot's first word.
export const S_VER = 0;
export const S_HASH = 1;
export const S_HEAD = 2;
export const S_STAMP = 3;
const SLOT_WORDS = 4;

// Record words, from the first word of its first chunk.
export const R_VER = 0;
export const R_HASH = 1;
export const R_KEY = 2;
export const R_VALUE = 3;
const R_EXPIRES_BYTE = 16;

/** Record flag: a fetch marker, whose value is the computing thread's identity and its claim's token, not a value. */
export const FLAG_PENDING = 1;
/** The bytes of a fetch marker's value. */
export const MARKER_BYTES = 12;

export type EvictionPolicy = 'lru' | 'none';
const POLICIES: readonly EvictionPolicy[] = ['lru', 'none'];

export interface Geometry {
  readonly slots: number;
  readonly chunks: number;
  readonly maxEntries: number;
  readonly maxValue: number;
  readonly maxKey: number;
  readonly policy: EvictionPolicy;
  readonly ttl: number;
}

/** A mapped SharedMap region: typed views of the whole mapping and its geometry, read once from its header. */
export interface MapView extends Omit<Geometry, 'ttl'> {
  readonly bytes: Buffer;
  readonly words: Uint32Array;
  readonly f64: Float64Array;
  /** Word index of slot 0. */
  readonly slotBase: number;
  /** Word index of the chunk table. */
  readonly tableBase: number;
  /** Byte offset of chunk 0. */
  readonly chunkBase: number;
  /** slots / 2^32: a hash times this is its home slot. */
  readonly scale: number;
}

/** Runs `work` holding a map's exclusive lock, after repairing what a holder that died left half done. */
export type Exclusive = <R>(work: () => R) => R;

const align = (n: number, to: number) => Math.ceil(n / to) * to;
const tableByte = (slots: number) => MAP_HEADER_BYTES + slots * SLOT_WORDS * 4;
const chunkByte = (slots: number, chunks: number) => align(tableByte(slots) + chunks * 4, CHUNK);

/** Slots for `maxEntries` entries. */
export function slotsFor(maxEntries: number): number {
  return Math.max(8, Math.ceil(maxEntries / MAX_LOAD));
}

/** The chunks that fit in `capacity` bytes beside `slots` index slots. */
export function chunksFor(capacity: number, slots: number): number {
  return Math.max(0, Math.floor((capacity - tableByte(slots) - CHUNK) / (CHUNK + 4)));
}

/** Chunks of a record with a key of `keyLength` bytes and a value of `valueLength` bytes. */
export function recordChunks(keyLength: number, valueLength: number): number {
  return Math.ceil((RECORD_HEADER + keyLength + valueLength) / CHUNK);
}

/** Writes the map's header, an empty index and a free list of every chunk into zeroed memory. */
export function initMap(bytes: Buffer, geometry: Geometry): void {
  const view = viewOf(bytes, geometry);
  const { words } = view;
  words[W_SLOTS] = geometry.slots;
  words[W_CHUNKS] = geometry.chunks;
  words[W_MAX_ENTRIES] = geometry.maxEntries;
  words[W_MAX_VALUE] = geometry.maxValue;
  words[W_MAX_KEY] = geometry.maxKey;
  words[W_POLICY] = POLICIES.indexOf(geometry.policy);
  view.f64[F_TTL] = geometry.ttl;
  resetChunks(view);
}

/** Threads every chunk onto the free list, in order, so that fresh records lie in consecutive chunks. */
export function resetChunks(view: MapView): void {
  const { words, tableBase, chunks } = view;
  for (let chunk = 0; chunk < chunks - 1; chunk++) words[tableBase + chunk] = chunk + 1;
  words[tableBase + chunks - 1] = END;
  Atomics.store(words, W_FREE_HEAD, chunks > 0 ? 0 : END);
  Atomics.store(words, W_FREE_COUNT, chunks);
}

/** The view of an attached map region, after checking that its geometry fits the file. */
export function attachView(bytes: Buffer, what: string): MapView {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, HEADER_BYTES / 4 + 32);
  const policy = POLICIES[Atomics.load(words, W_POLICY)];
  const geometry = {
    slots: Atomics.load(words, W_SLOTS),
    chunks: Atomics.load(words, W_CHUNKS),
    maxEntries: Atomics.load(words, W_MAX_ENTRIES),
    maxValue: Atomics.load(words, W_MAX_VALUE),
    maxKey: Atomics.load(words, W_MAX_KEY),
  };
  const { slots, chunks, maxEntries, maxValue, maxKey } = geometry;
  if (
    policy === undefined ||
    slots < 8 ||
    chunks < 1 ||
    chunkByte(slots, chunks) + chunks * CHUNK > bytes.length ||
    maxEntries < 1 ||
    maxEntries > slots * MAX_LOAD ||
    maxKey < 1 ||
    maxKey > MAX_KEY_LIMIT ||
    recordChunks(maxKey, Math.max(maxValue, MARKER_BYTES)) > chunks
  ) {
    throw shareError('ERR_BAD_HANDLE', `${what} has a damaged map header: ${JSON.stringify(geometry)}`);
  }
  return viewOf(bytes, { ...geometry, policy });
}

function viewOf(bytes: Buffer, geometry: Omit<Geometry, 'ttl'>): MapView {
  const { slots, chunks } = geometry;
  return {
    ...geometry,
    bytes,
    words: new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2),
    f64: new Float64Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 3),
    slotBase: MAP_HEADER_BYTES / 4,
    tableBase: tableByte(slots) / 4,
    chunkBase: chunkByte(slots, chunks),
    scale: slots / 2 ** 32,
  };
}

/** Word index of slot `slot`. */
export function slotWord(view: MapView, slot: number): number {
  return view.slotBase + slot * SLOT_WORDS;
}

/** Word index of the first word of chunk `chunk`. */
export function chunkWord(view: MapView, chunk: number): number {
  return (view.chunkBase + chunk * CHUNK) >>> 2;
}

/** The expiry time of the record starting at `head`, ms since the epoch; 0 for never. */
export function expiresOf(view: MapView, head: number): number {
  return view.f64[(view.chunkBase + head * CHUNK + R_EXPIRES_BYTE) >>> 3]!;
}

/** Sets the expiry time of the record starting at `head` in place: a fetch marker's lease, renewed under the lock. */
export function setExpires(view: MapView, head: number, expires: number): void {
  view.f64[(view.chunkBase + head * CHUNK + R_EXPIRES_BYTE) >>> 3] = expires;
}

/** Whether an entry that expires at `expires` (0: never) has expired by `now`; the clock is read only if it may have. */
export function isExpired(expires: number, now?: number): boolean {
  return expires !== 0 && expires <= (now ?? Date.now());
}

/** The chunk after `chunk` in its chain, or END. */
export function nextChunk(view: MapView, chunk: number): number {
  return view.words[view.tableBase + chunk]!;
}

// Writers hold the lock, so their loads and stores are plain except those that publish to lock-free readers (a VER,
// a HEAD, EPOCH): V8 calls a builtin for each Atomics access of a mapping, and moves no plain store past one.

/** Takes `count` chunks off the free list as one chain; the caller has checked that FREE_COUNT has them. */
export function allocate(view: MapView, count: number): number {
  const { words } = view;
  const head = words[W_FREE_HEAD]!;
  if (head >= view.chunks) throw corruptMap(`the free list starts at chunk ${head}, past the last chunk`);
  let last = head;
  for (let taken = 1; taken < count; taken++) last = checkedNext(view, last);
  words[W_FREE_HEAD] = words[view.tableBase + last]!;
  words[view.tableBase + last] = END;
  words[W_FREE_COUNT] = words[W_FREE_COUNT]! - count;
  return head;
}

/** Gives the `count` chunks of the chain at `head` back to the free list. */
export function freeChain(view: MapView, head: number, count: number): void {
  const { words } = view;
  let last = head;
  for (let walked = 1; walked < count; walked++) last = checkedNext(view, last);
  words[view.tableBase + last] = words[W_FREE_HEAD]!;
  words[W_FREE_HEAD] = head;
  words[W_FREE_COUNT] = words[W_FREE_COUNT]! + count;
}

function checkedNext(view: MapView, chunk: number): number {
  const next = nextChunk(view, chunk);
  if (next >= view.chunks) throw corruptMap(`chunk ${chunk} links to ${next}, past the last chunk`);
  return next;
}

/** What a writer stores: a value, or with FLAG_PENDING a fetch marker. */
export interface Entry {
  readonly key: Uint8Array;
  readonly hash: number;
  readonly flags: number;
  readonly value: Uint8Array;
  /** ms since the epoch; 0 for never. */
  readonly expires: number;
}

/** Writes a whole record into the chain at `head`; its VER goes last, so no reader takes a half-written record. */
export function writeRecord(view: MapView, head: number, ver: number, entry: Entry): void {
  const { words } = view;
  const word = chunkWord(view, head);
  words[word + R_HASH] = entry.hash;
  words[word + R_KEY] = entry.key.length | (entry.flags << 16);
  words[word + R_VALUE] = entry.value.length;
  view.f64[(view.chunkBase + head * CHUNK + R_EXPIRES_BYTE) >>> 3] = entry.expires;
  putBytes(view, head, RECORD_HEADER, entry.key);
  putBytes(view, head, RECORD_HEADER + entry.key.length, entry.value);
  Atomics.store(words, word + R_VER, ver);
}

function putBytes(view: MapView, head: number, at: number, source: Uint8Array): void {
  let chunk = head;
  let base = 0;
  // Links are checked even here: a damaged free list can hand out a chain that ends early.
  while (base + CHUNK <= at) [chunk, base] = [checkedNext(view, chunk), base + CHUNK];
  for (let done = 0; done < source.length;) {
    // Consecutive chunks take one copy.
    let last = chunk;
    let end = base + CHUNK;
    while (end < at + source.length && followsOn(view, last)) [last, end] = [last + 1, end + CHUNK];
    const from = at + done;
    const length = Math.min(end, at + source.length) - from;
    view.bytes.set(source.subarray(done, done + length), view.chunkBase + chunk * CHUNK + (from - base));
    done += length;
    if (done < source.length) [chunk, base] = [checkedNext(view, last), end];
  }
}

// Whether the chunk after `chunk` in its chain is the next one in memory.
function followsOn(view: MapView, chunk: number): boolean {
  return chunk + 1 < view.chunks && nextChunk(view, chunk) === chunk + 1;
}

/**
 * The record bytes [at, at + length) of the chain at `head`: a view of the mapping when they lie in consecutive
 * chunks, a copy otherwise. Undefined when the chain is broken, which a lock-free reader takes for a race.
 */
export function getBytes(view: MapView, head: number, at: number, length: number): Uint8Array | undefined {
  let chunk = head;
  let base = 0;
  for (; base + CHUNK <= at; base += CHUNK) {
    chunk = nextChunk(view, chunk);
    if (chunk >= view.chunks) return undefined;
  }
  let last = chunk;
  let end = base + CHUNK;
  while (end < at + length && followsOn(view, last)) [last, end] = [last + 1, end + CHUNK];
  const start = view.chunkBase + chunk * CHUNK + (at - base);
  if (end >= at + length) return view.bytes.subarray(start, start + length);
  const copy = Buffer.allocUnsafe(length);
  let done = view.bytes.copy(copy, 0, start, start + (end - at));
  while (done < length) {
    chunk = nextChunk(view, last);
    if (chunk >= view.chunks) return undefined;
    const from = view.chunkBase + chunk * CHUNK;
    done += view.bytes.copy(copy, done, from, from + Math.min(CHUNK, length - done));
    last = chunk;
  }
  return copy;
}

export function corruptMap(detail: string, cause?: unknown) {
  return shareError('ERR_BAD_HANDLE', `the map is corrupt: ${detail}`, cause);
}
