// Keys and the index: a key's bytes and hash, finding its slot with or without the lock, adding and removing slots.
import { step } from '../crash.js';
import { keyFault } from '../options.js';
import {
  CHUNK,
  chunkWord,
  corruptMap,
  getBytes,
  type MapView,
  MAX_KEY_LIMIT,
  R_HASH,
  R_KEY,
  R_VER,
  RECORD_HEADER,
  S_HASH,
  S_HEAD,
  S_STAMP,
  S_VER,
  slotWord,
  W_CLOCK,
  W_EPOCH,
} from './layout.js';

/** The key of the last encodeKey(): its UTF-8 bytes in `bytes` (a scratch buffer, valid until the next call). */
export const encoded = { bytes: Buffer.allocUnsafe(MAX_KEY_LIMIT + 4), length: 0, hash: 0 };

/** Encodes `value` as the current key, or throws ERR_BAD_KEY: not a string, too long, or with a lone surrogate. */
export function encodeKey(value: unknown, maxKey: number): void {
  if (typeof value !== 'string') throw keyFault(value, maxKey)!;
  const { bytes } = encoded;
  let hash = 0x811c9dc5;
  let length = value.length;
  // ASCII keys, the usual ones, are copied and hashed in one pass, without a call into Buffer's encoder.
  let ascii = length <= maxKey;
  for (let i = 0; ascii && i < length; i++) {
    const code = value.charCodeAt(i);
    if (code >= 0x80) ascii = false;
    bytes[i] = code;
    hash = Math.imul(hash ^ code, 0x01000193);
  }
  if (!ascii) {
    length = bytes.write(value, 0, maxKey + 4, 'utf8');
    // A string that did not fit wrote more than maxKey bytes (one character is at most 4 of them); UTF-8 turns a
    // lone surrogate into U+FFFD, the same bytes as another key.
    if (length > maxKey || /\p{Cs}/u.test(value)) throw keyFault(value, maxKey)!;
    hash = 0x811c9dc5;
    for (let i = 0; i < length; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
  }
  encoded.length = length;
  encoded.hash = mix(hash);
}

/** The current key's bytes as a copy of its own, for a writer that calls user code before it writes them. */
export function ownKey(): { readonly bytes: Uint8Array; readonly hash: number } {
  return { bytes: Buffer.from(encoded.bytes.subarray(0, encoded.length)), hash: encoded.hash };
}

// murmur3's finalizer: FNV-1a leaves its high bits weak, and the home slot is taken from them.
function mix(hash: number): number {
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  return (hash ^ (hash >>> 16)) >>> 0;
}

export function home(view: MapView, hash: number): number {
  return Math.min(view.slots - 1, Math.floor(hash * view.scale));
}

export const MISS = -1;
/** A writer changed what a lock-free reader was reading: try again, or take the lock. */
export const RACED = -2;

/** What the last find() that returned a slot found there. */
export const found = { ver: 0, head: 0 };

const SAME = 0;
const OTHER = 1;
const BROKEN = 2;

/**
 * The slot of `bytes` (its first `length` bytes hashing to `hash`), MISS, or RACED. With `locked`, the caller holds
 * a lock, so nothing can race: what a reader would take for a race is corruption, and throws ERR_BAD_HANDLE.
 */
export function find(view: MapView, bytes: Uint8Array, length: number, hash: number, locked: boolean): number {
  const { words, slots } = view;
  const epoch = Atomics.load(words, W_EPOCH);
  if (!locked && (epoch & 1) !== 0) return RACED;
  let slot = home(view, hash);
  for (let probes = 0; probes < slots; probes++) {
    const word = slotWord(view, slot);
    const ver = Atomics.load(words, word + S_VER);
    if (ver === 0) return locked || Atomics.load(words, W_EPOCH) === epoch ? MISS : RACED;
    // Plain loads where a later Atomics load validates what they read: V8 calls a builtin for each Atomics access
    // of a mapping, and cannot move a plain load past one.
    if (words[word + S_HASH] === hash) {
      const head = words[word + S_HEAD]!;
      const match = head < view.chunks ? compareKey(view, head, ver, bytes, length, hash) : BROKEN;
      if (match === SAME) {
        found.ver = ver;
        found.head = head;
        return slot;
      }
      // A key that differs is another key with the same hash only if the slot held still while it was compared.
      if (
        match === BROKEN ||
        Atomics.load(words, word + S_VER) !== ver ||
        Atomics.load(words, word + S_HEAD) !== head
      ) {
        if (locked) throw corruptMap(`slot ${slot} points to chunk ${head}, which does not hold its record`);
        return RACED;
      }
    }
    slot = slot + 1 === slots ? 0 : slot + 1;
  }
  if (locked) throw corruptMap('the index has no empty slot');
  return RACED;
}

function compareKey(view: MapView, head: number, ver: number, bytes: Uint8Array, length: number, hash: number) {
  const { words } = view;
  const word = chunkWord(view, head);
  if (words[word + R_VER] !== ver || words[word + R_HASH] !== hash) return BROKEN;
  if ((words[word + R_KEY]! & 0xffff) !== length) return OTHER;
  if (RECORD_HEADER + length <= CHUNK) {
    const at = view.chunkBase + head * CHUNK + RECORD_HEADER;
    for (let i = 0; i < length; i++) if (view.bytes[at + i] !== bytes[i]) return OTHER;
    return SAME;
  }
  const stored = getBytes(view, head, RECORD_HEADER, length);
  if (stored === undefined) return BROKEN;
  return Buffer.compare(stored, bytes.subarray(0, length)) === 0 ? SAME : OTHER;
}

/** Records a use of the entry in `slot` for LRU: the slot's STAMP becomes the map's CLOCK. */
export function touch(view: MapView, slot: number): void {
  const { words } = view;
  const word = slotWord(view, slot) + S_STAMP;
  const clock = words[W_CLOCK]!;
  // Only a changed stamp is stored, so a hot key read by every process does not bounce its cache line between them.
  if (words[word] !== clock) words[word] = clock;
}

/** Puts a new entry's record into the first empty slot of its probe sequence; VER goes last. */
export function insertSlot(view: MapView, hash: number, head: number, ver: number): number {
  const { words, slots } = view;
  let slot = home(view, hash);
  for (let probes = 0; probes < slots; probes++) {
    const word = slotWord(view, slot);
    if (words[word + S_VER] === 0) {
      words[word + S_HASH] = hash;
      words[word + S_HEAD] = head;
      words[word + S_STAMP] = words[W_CLOCK]!;
      Atomics.store(words, word + S_VER, ver);
      return slot;
    }
    slot = slot + 1 === slots ? 0 : slot + 1;
  }
  throw corruptMap('the index has no empty slot');
}

/** Points a slot at a key's new record: HEAD before VER, so a reader that sees the new VER sees the new HEAD. */
export function replaceSlot(view: MapView, slot: number, head: number, ver: number): void {
  const { words } = view;
  const word = slotWord(view, slot);
  Atomics.store(words, word + S_HEAD, head);
  words[word + S_STAMP] = words[W_CLOCK]!;
  // A writer that dies here leaves the slot's HEAD on the new record and its VER on the old: repair adopts the new.
  step('put.relinking');
  Atomics.store(words, word + S_VER, ver);
}

/**
 * Empties `slot`, moving later slots of its cluster back so that no probe sequence has a hole (linear probing's
 * backward shift). Slots move inside an odd EPOCH: a reader that missed meanwhile tries again.
 */
export function removeSlot(view: MapView, slot: number): void {
  const { words, slots } = view;
  Atomics.add(words, W_EPOCH, 1);
  let hole = slot;
  let next = slot;
  for (let probes = 1; probes < slots; probes++) {
    next = next + 1 === slots ? 0 : next + 1;
    const from = slotWord(view, next);
    if (Atomics.load(words, from + S_VER) === 0) break;
    const start = home(view, Atomics.load(words, from + S_HASH));
    // An entry whose home lies cyclically in (hole, next] must stay where it is.
    if (hole <= next ? start > hole && start <= next : start > hole || start <= next) continue;
    const to = slotWord(view, hole);
    Atomics.store(words, to + S_VER, 0);
    Atomics.store(words, to + S_HASH, Atomics.load(words, from + S_HASH));
    Atomics.store(words, to + S_HEAD, Atomics.load(words, from + S_HEAD));
    Atomics.store(words, to + S_STAMP, Atomics.load(words, from + S_STAMP));
    Atomics.store(words, to + S_VER, Atomics.load(words, from + S_VER));
    step('remove.shifting');
    hole = next;
  }
  Atomics.store(words, slotWord(view, hole) + S_VER, 0);
  Atomics.add(words, W_EPOCH, 1);
}
