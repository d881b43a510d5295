// What a writer does to a map under the exclusive lock: store and remove entries, make room by evicting (sampled
// LRU, as Redis does) and reclaim expired entries.
import { shareError } from '../errors.js';
import { isAlive } from '../lock.js';
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
  isExpired,
  type Entry,
  type MapView,
  R_KEY,
  R_VALUE,
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
import { find, found, insertSlot, removeSlot, replaceSlot } from './table.js';

/** Why an entry left the map, for the counters. */
export type Removal = typeof F_DELETES | typeof F_EVICTIONS | typeof F_EXPIRATIONS | undefined;

// Redis samples 5 keys and keeps a pool; 8 samples without a pool keep the hit rate as close to exact LRU (the bench
// measures it on a Zipf trace).
const SAMPLES = 8;
// Slots the expiry sweep looks at per write, while entries with an expiry exist.
const SWEEP_STEP = 8;

/** A record's shape, read from its first chunk; a shape no writer makes is corruption. */
export function recordOf(view: MapView, head: number) {
  if (head >= view.chunks) throw corruptMap(`an entry starts at chunk ${head}, past the last chunk`);
  const word = chunkWord(view, head);
  const keyWord = view.words[word + R_KEY]!;
  const keyLength = keyWord & 0xffff;
  const valueLength = view.words[word + R_VALUE]!;
  if (keyLength > view.maxKey || valueLength > view.maxValue) {
    throw corruptMap(`the entry at chunk ${head} claims a key of ${keyLength} bytes and a value of ${valueLength}`);
  }
  return {
    keyLength,
    flags: keyWord >>> 16,
    valueLength,
    expires: expiresOf(view, head),
    chunks: recordChunks(keyLength, valueLength),
  };
}

/**
 * Stores `entry`, in place of the record its key has. Room is made first, by the map's policy; when there is none,
 * ERR_NO_SPACE is thrown before anything is changed. Returns the record's version.
 */
export function put(view: MapView, entry: Entry, now: number): number {
  const { words } = view;
  checkCounts(view);
  sweep(view, now, SWEEP_STEP);
  const need = recordChunks(entry.key.length, entry.value.length);
  let slot = find(view, entry.key, entry.key.length, entry.hash, true);
  const old = slot >= 0 ? { ver: found.ver, ...recordOf(view, found.head) } : undefined;
  const oldChunks = old?.chunks ?? 0;
  const pendingChunks = words[W_PENDING_CHUNKS]! - (old && old.flags & FLAG_PENDING ? oldChunks : 0);
  if (need + oldChunks + pendingChunks > view.chunks) {
    throw shareError(
      'ERR_NO_SPACE',
      `the entry needs ${need * CHUNK} bytes, and the map has ${(view.chunks - pendingChunks - oldChunks) * CHUNK} for it`,
    );
  }
  if (isFull(view, need, old === undefined)) {
    if (view.policy === 'none') {
      sweep(view, now, view.slots);
      if (isFull(view, need, old === undefined)) {
        throw shareError(
          'ERR_NO_SPACE',
          `the map is full (${words[W_ENTRIES]} entries, ${words[W_FREE_COUNT]! * CHUNK} bytes free) and its eviction policy is 'none'`,
        );
      }
    }
    while (isFull(view, need, old === undefined)) {
      const victim = sample(view, old?.ver ?? 0, now);
      if (victim < 0) throw shareError('ERR_NO_SPACE', 'the map has nothing left to evict');
      remove(view, victim, sampledExpired ? F_EXPIRATIONS : F_EVICTIONS);
    }
    if (old !== undefined) slot = find(view, entry.key, entry.key.length, entry.hash, true);
  }

  const ver = nextSeq(view);
  const head = allocate(view, need);
  writeRecord(view, head, ver, entry);
  if (old === undefined) {
    insertSlot(view, entry.hash, head, ver);
  } else {
    const oldHead = words[slotWord(view, slot) + S_HEAD]!;
    replaceSlot(view, slot, head, ver);
    freeChain(view, oldHead, oldChunks);
    account(view, old.flags, old.expires, oldChunks, -1);
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
  freeChain(view, head, record.chunks);
  account(view, record.flags, record.expires, record.chunks, -1);
  if (why !== undefined) view.f64[why]!++;
  Atomics.add(view.words, W_VERSION, 1);
}

/** Empties the map: every slot, every chunk. Readers that were reading meanwhile find the EPOCH moved. */
export function clear(view: MapView): void {
  const { words } = view;
  Atomics.add(words, W_EPOCH, 1);
  words.fill(0, view.slotBase, slotWord(view, view.slots));
  resetChunks(view);
  for (const word of [W_ENTRIES, W_PENDING, W_PENDING_CHUNKS, W_EXPIRING]) words[word] = 0;
  Atomics.add(words, W_EPOCH, 1);
  Atomics.add(words, W_VERSION, 1);
}

/**
 * Looks at `count` slots from the sweep cursor and removes the expired entries among them; a full sweep
 * (`count` = slots) also removes fetch markers whose process is gone. Returns how many it removed.
 */
export function sweep(view: MapView, now: number, count: number): number {
  const { words, slots } = view;
  const markers = count >= slots;
  if (Atomics.load(words, W_EXPIRING) === 0 && !(markers && Atomics.load(words, W_PENDING) > 0)) return 0;
  let removed = 0;
  let slot = Atomics.load(words, W_SWEEP) % slots;
  for (let looked = 0; looked < count; looked++) {
    const word = slotWord(view, slot);
    if (Atomics.load(words, word + S_VER) !== 0) {
      const head = Atomics.load(words, word + S_HEAD);
      const record = recordOf(view, head);
      const stale = record.flags & FLAG_PENDING ? markers && !markerAlive(view, head) : isExpired(record.expires, now);
      if (stale) {
        remove(view, slot, record.flags & FLAG_PENDING ? undefined : F_EXPIRATIONS);
        removed++;
        // The backward shift may have moved an unseen entry into this slot: look at it again.
        continue;
      }
    }
    slot = slot + 1 === slots ? 0 : slot + 1;
  }
  Atomics.store(words, W_SWEEP, slot);
  return removed;
}

/** The owner of the fetch marker at `head`: its process id and start time. */
export function markerOwner(view: MapView, head: number): { pid: number; start: number } {
  const word = chunkWord(view, head);
  const at = (word << 2) + RECORD_HEADER + (Atomics.load(view.words, word + R_KEY) & 0xffff);
  return { pid: view.bytes.readUInt32LE(at), start: view.bytes.readUInt32LE(at + 4) };
}

export function markerAlive(view: MapView, head: number): boolean {
  const { pid, start } = markerOwner(view, head);
  return isAlive(pid, start);
}

/** The next record version: never 0, which marks an empty slot. */
export function nextSeq(view: MapView): number {
  const seq = (view.words[W_SEQ]! + 1) >>> 0 || 1;
  view.words[W_SEQ] = seq;
  return seq;
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
