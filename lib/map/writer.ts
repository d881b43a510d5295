// What a writer does to a map under the exclusive lock: store and remove entries, make room by evicting (sampled
// LRU, as Redis does) and reclaim expired entries.
import { shareError } from '../errors.js';
import { step } from '../crash.js';
import { isGone, type Owner } from '../lock.js';
import {
  allocate,
  chunkWord,
  corruptMap,
  expiresOf,
  F_DELETES,
  F_EVICTIONS,
  F_EXPIRATIONS,
  F_SETS,
  FLAG_PENDING,
  freeChain,
  getBytes,
  MARKER_BYTES,
  isExpired,
  type Entry,
  type MapView,
  R_KEY,
  R_VALUE,
  R_VER,
  recordChunks,
  resetChunks,
  RECORD_HEADER,
  S_HEAD,
  S_STAMP,
  S_VER,
  slotWord,
  W_CLOCK,
  W_ENTRIES,
  W_EPOCH,
  W_ERA,
  W_EXPIRING,
  W_FREE_COUNT,
  W_PENDING,
  W_PENDING_CHUNKS,
  W_SEQ,
  W_SWEEP,
  W_VERSION,
  writeRecord,
  CHUNK,
} from './layout.js';
import { find, found, insertSlot, MISS, removeSlot, replaceSlot } from './table.js';

/** Why an entry left the map, for the counters. */
export type Removal = typeof F_DELETES | typeof F_EVICTIONS | typeof F_EXPIRATIONS | undefined;

// Redis samples 5 keys and keeps a pool; 8 samples without a pool keep the hit rate as close to exact LRU (the bench
// measures it on a Zipf trace).
const SAMPLES = 8;
// Slots the expiry sweep looks at per write, while entries with an expiry exist.
const SWEEP_STEP = 8;

/** A record's shape, read from its first chunk; a shape no writer makes is corruption. */
export function recordOf(view: MapView, head: number) {
  const shape = shapeOf(view, head);
  if (typeof shape === 'string') throw corruptMap(shape);
  return shape;
}

/** A record's shape, or what is wrong with it: a key or value longer than any writer makes, a head past the end. */
export function shapeOf(view: MapView, head: number) {
  if (head >= view.chunks) return `an entry starts at chunk ${head}, past the last chunk`;
  const word = chunkWord(view, head);
  const keyWord = view.words[word + R_KEY]!;
  const keyLength = keyWord & 0xffff;
  const flags = keyWord >>> 16;
  const valueLength = view.words[word + R_VALUE]!;
  if (keyLength > view.maxKey || valueLength > (flags & FLAG_PENDING ? MARKER_BYTES : view.maxValue)) {
    return `the entry at chunk ${head} claims a key of ${keyLength} bytes and a value of ${valueLength}`;
  }
  return {
    keyLength,
    flags,
    valueLength,
    expires: expiresOf(view, head),
    chunks: recordChunks(keyLength, valueLength),
  };
}

/**
 * Stores `entry`, in place of the record its key has. Room is made first, by the map's policy; when there is none,
 * ERR_NO_SPACE is thrown before anything but expired entries and stale fetch markers is removed. Returns the record's
 * version.
 */
export function put(view: MapView, entry: Entry, now: number): number {
  const { words } = view;
  checkCounts(view);
  sweep(view, now, SWEEP_STEP);
  const need = recordChunks(entry.key.length, entry.value.length);
  // The key is looked up again after each removal: making room may remove its own record (expired, or a stale
  // marker), or move its slot.
  for (let swept = false; ;) {
    const slot = find(view, entry.key, entry.key.length, entry.hash, true);
    const old = slot === MISS ? undefined : { ver: found.ver, head: found.head, ...recordOf(view, found.head) };
    if (!isFull(view, need, old === undefined)) return store(view, entry, need, slot, old);
    const oldChunks = old?.chunks ?? 0;
    const pendingChunks = words[W_PENDING_CHUNKS]! - (old && old.flags & FLAG_PENDING ? oldChunks : 0);
    if (need + oldChunks + pendingChunks > view.chunks) {
      throw shareError(
        'ERR_NO_SPACE',
        `the entry needs ${need * CHUNK} bytes, and the map has ${(view.chunks - pendingChunks - oldChunks) * CHUNK} for it`,
      );
    }
    if (view.policy === 'none') {
      if (swept) {
        throw shareError(
          'ERR_NO_SPACE',
          `the map is full (${words[W_ENTRIES]} entries, ${words[W_FREE_COUNT]! * CHUNK} bytes free) and its eviction policy is 'none'`,
        );
      }
      sweep(view, now, view.slots);
      swept = true;
      continue;
    }
    const victim = sample(view, old?.ver ?? 0, now);
    if (victim < 0) throw shareError('ERR_NO_SPACE', 'the map has nothing left to evict');
    remove(view, victim, sampledExpired ? F_EXPIRATIONS : F_EVICTIONS);
    step('put.evicted');
  }
}

// Writes `entry` as a new record and points `slot` (MISS: a new slot) to it, then frees the `old` record it replaces.
function store(
  view: MapView,
  entry: Entry,
  need: number,
  slot: number,
  old: { head: number; flags: number; expires: number; chunks: number } | undefined,
): number {
  const { words } = view;
  const ver = nextSeq(view);
  const head = allocate(view, need);
  step('put.allocated');
  writeRecord(view, head, ver, entry);
  step('put.written');
  if (old === undefined) {
    insertSlot(view, entry.hash, head, ver);
    step('put.linked');
  } else {
    replaceSlot(view, slot, head, ver);
    step('put.linked');
    freeChain(view, old.head, old.chunks);
    step('put.freed');
    account(view, old.flags, old.expires, old.chunks, -1);
  }
  account(view, entry.flags, entry.expires, need, 1);
  if (!(entry.flags & FLAG_PENDING)) view.f64[F_SETS]!++;
  words[W_CLOCK]!++;
  Atomics.add(words, W_VERSION, 1);
  return ver;
}

// Whether `need` more chunks, and with `adding` one more entry, do not fit now.
function isFull(view: MapView, need: number, adding: boolean): boolean {
  const { words } = view;
  return words[W_FREE_COUNT]! < need || (adding && words[W_ENTRIES]! + words[W_PENDING]! >= view.maxEntries);
}

/** Removes the entry in `slot` and gives its chunks back; `why` names the counter it adds to. */
export function remove(view: MapView, slot: number, why: Removal): void {
  const head = Atomics.load(view.words, slotWord(view, slot) + S_HEAD);
  const record = recordOf(view, head);
  removeSlot(view, slot);
  step('remove.unlinked');
  freeChain(view, head, record.chunks);
  step('remove.freed');
  account(view, record.flags, record.expires, record.chunks, -1);
  if (why !== undefined) view.f64[why]!++;
  Atomics.add(view.words, W_VERSION, 1);
}

/** Empties the map: every slot, every chunk. Readers that were reading meanwhile find the EPOCH moved. */
export function clear(view: MapView): void {
  const { words } = view;
  Atomics.add(words, W_EPOCH, 1);
  words.fill(0, view.slotBase, slotWord(view, view.slots));
  step('clear.slots');
  resetChunks(view);
  for (const word of [W_ENTRIES, W_PENDING, W_PENDING_CHUNKS, W_EXPIRING]) words[word] = 0;
  Atomics.add(words, W_EPOCH, 1);
  Atomics.add(words, W_VERSION, 1);
}

/**
 * Looks at `count` slots from the sweep cursor and removes the expired entries and fetch markers whose lease ran out
 * among them; a full sweep (`count` = slots) also removes fetch markers whose thread is gone. Returns how many it
 * removed.
 */
export function sweep(view: MapView, now: number, count: number): number {
  const { words, slots } = view;
  const markers = count >= slots;
  if (Atomics.load(words, W_EXPIRING) === 0) return 0;
  let removed = 0;
  let slot = Atomics.load(words, W_SWEEP) % slots;
  for (let looked = 0; looked < count; looked++) {
    const word = slotWord(view, slot);
    if (Atomics.load(words, word + S_VER) !== 0) {
      const head = Atomics.load(words, word + S_HEAD);
      const record = recordOf(view, head);
      const pending = (record.flags & FLAG_PENDING) !== 0;
      if (isExpired(record.expires, now) || (pending && markers && isGone(markerOf(view, head)))) {
        remove(view, slot, pending ? undefined : F_EXPIRATIONS);
        step('sweep.removed');
        removed++;
        // The backward shift may have moved an unseen entry into this slot: look at it again, as one more look.
        looked--;
        continue;
      }
    }
    slot = slot + 1 === slots ? 0 : slot + 1;
  }
  Atomics.store(words, W_SWEEP, slot);
  return removed;
}

/** A fetch marker's value: the thread computing it and its claim's token. */
export interface Marker extends Owner {
  readonly token: number;
}

export function markerBytes(marker: Marker): Uint8Array {
  const bytes = Buffer.alloc(MARKER_BYTES);
  bytes.writeUInt32LE(marker.id, 0);
  bytes.writeUInt32LE(marker.start, 4);
  bytes.writeUInt32LE(marker.token, 8);
  return bytes;
}

/** The fetch marker at `head`, a record of the shape recordOf() checked; its value may lie in a later chunk. */
export function markerOf(view: MapView, head: number): Marker {
  const at = RECORD_HEADER + (view.words[chunkWord(view, head) + R_KEY]! & 0xffff);
  const bytes = getBytes(view, head, at, MARKER_BYTES);
  if (bytes === undefined) throw corruptMap(`the chain of chunk ${head} is broken`);
  const value = Buffer.from(bytes.buffer, bytes.byteOffset, MARKER_BYTES);
  return { id: value.readUInt32LE(0), start: value.readUInt32LE(4), token: value.readUInt32LE(8) };
}

/** The next record version: never 0, which marks an empty slot, and never one a live record holds. */
export function nextSeq(view: MapView): number {
  const { words } = view;
  const seq = words[W_SEQ]! === 0xffffffff ? renumber(view) + 1 : words[W_SEQ]! + 1;
  words[W_SEQ] = seq;
  return seq;
}

/**
 * Gives the live records the versions 1 to n, in the order of the versions they hold, and returns n: once in 4
 * billion writes, so that versions never wrap into a live record. In that order the new version of a record is at
 * most its old one and above every one given so far, so no two records share a version even if the writer dies half
 * way (a repair then adopts the records' versions, and the next write renumbers again).
 */
function renumber(view: MapView): number {
  const { words } = view;
  // First: a reader holding a version of the last era must not take a renumbered record for it.
  Atomics.add(words, W_ERA, 1);
  const live: { word: number; ver: number }[] = [];
  for (let slot = 0; slot < view.slots; slot++) {
    const word = slotWord(view, slot);
    const ver = words[word + S_VER]!;
    if (ver !== 0) live.push({ word, ver });
  }
  live.sort((a, b) => a.ver - b.ver);
  live.forEach(({ word, ver }, index) => {
    if (ver === index + 1) return;
    Atomics.store(words, chunkWord(view, words[word + S_HEAD]!) + R_VER, index + 1);
    step('renumber.record');
    Atomics.store(words, word + S_VER, index + 1);
  });
  return live.length;
}

// Counts no writer can leave, which would send a writer evicting or allocating past the end of the map.
function checkCounts(view: MapView): void {
  const { words, chunks } = view;
  const free = words[W_FREE_COUNT]!;
  const pendingChunks = words[W_PENDING_CHUNKS]!;
  const entries = words[W_ENTRIES]! + words[W_PENDING]!;
  if (free > chunks || pendingChunks > chunks - free || entries > view.maxEntries) {
    throw corruptMap(`its counts are impossible: ${free} chunks free, ${pendingChunks} pending, ${entries} entries`);
  }
}

function account(view: MapView, flags: number, expires: number, chunks: number, sign: 1 | -1): void {
  const { words } = view;
  if (flags & FLAG_PENDING) {
    words[W_PENDING]! += sign;
    words[W_PENDING_CHUNKS]! += sign * chunks;
  } else {
    words[W_ENTRIES]! += sign;
  }
  if (expires !== 0) words[W_EXPIRING]! += sign;
}

/** Whether the last sample() chose an expired entry. */
let sampledExpired = false;

/**
 * The slot of the entry to evict: of SAMPLES entries found from random slots (fetch markers and the version `keep` left
 * out), the first expired one, or else the one used longest ago. -1 when there is none.
 */
function sample(view: MapView, keep: number, now: number): number {
  const { words, slots } = view;
  const clock = words[W_CLOCK]!;
  let best = -1;
  let oldest = -1;
  sampledExpired = false;
  for (let taken = 0; taken < SAMPLES; taken++) {
    let slot = Math.floor(Math.random() * slots);
    let looked = 0;
    for (; looked < slots; looked++) {
      const word = slotWord(view, slot);
      const ver = words[word + S_VER]!;
      if (ver !== 0 && ver !== keep) {
        const record = recordOf(view, words[word + S_HEAD]!);
        if (!(record.flags & FLAG_PENDING)) {
          if (isExpired(record.expires, now)) {
            sampledExpired = true;
            return slot;
          }
          const age = (clock - words[word + S_STAMP]!) >>> 0;
          if (age > oldest) [best, oldest] = [slot, age];
          break;
        }
      }
      slot = slot + 1 === slots ? 0 : slot + 1;
    }
    if (looked === slots) break;
  }
  return best;
}
