// After a writer died holding the lock: mend the index in place, then rebuild the free list and the counts from the
// records the slots point to. And verify(): every invariant of lib/map/layout.ts, checked.
import type { Verification } from '../api.js';
import { step } from '../crash.js';
import {
  chunkWord,
  END,
  F_REPAIRS,
  FLAG_PENDING,
  getBytes,
  type MapView,
  nextChunk,
  R_HASH,
  R_VER,
  RECORD_HEADER,
  S_HASH,
  S_HEAD,
  S_STAMP,
  S_VER,
  slotWord,
  W_ENTRIES,
  W_EPOCH,
  W_EXPIRING,
  W_FREE_COUNT,
  W_FREE_HEAD,
  W_PENDING,
  W_PENDING_CHUNKS,
  W_VERSION,
} from './layout.js';
import { home } from './table.js';
import { type recordOf, shapeOf } from './writer.js';

/** A slot that points to a whole record; `ver` is the record's, which a slot left half replaced does not hold. */
interface Live {
  readonly slot: number;
  readonly ver: number;
  readonly slotVer: number;
  readonly hash: number;
  readonly head: number;
  readonly record: ReturnType<typeof recordOf>;
}

/** Every slot checked against its record: the whole ones, what is wrong with the others, and the chunks in use. */
function scan(view: MapView): { live: Live[]; problems: string[]; used: Uint8Array } {
  const { words, chunks } = view;
  const used = new Uint8Array(chunks);
  const versions = new Set<number>();
  const live: Live[] = [];
  const problems: string[] = [];
  for (let slot = 0; slot < view.slots; slot++) {
    const word = slotWord(view, slot);
    const ver = Atomics.load(words, word + S_VER);
    if (ver === 0) continue;
    const hash = Atomics.load(words, word + S_HASH);
    const head = Atomics.load(words, word + S_HEAD);
    const wrong = (what: string) => problems.push(`slot ${slot} (version ${ver}): ${what}`);
    if (head >= chunks) {
      wrong(`points to chunk ${head}, past the last chunk`);
      continue;
    }
    const recordWord = chunkWord(view, head);
    const recordVer = Atomics.load(words, recordWord + R_VER);
    if (recordVer === 0) {
      wrong(`its record at chunk ${head} has no version`);
      continue;
    }
    if (versions.has(recordVer)) {
      wrong('a second slot for the same record');
      continue;
    }
    if (Atomics.load(words, recordWord + R_HASH) !== hash) {
      wrong(`its record at chunk ${head} has another hash`);
      continue;
    }
    const record = shapeOf(view, head);
    if (typeof record === 'string') {
      wrong(record);
      continue;
    }
    const chain = chainOf(view, head, record.chunks, used);
    if (typeof chain === 'string') {
      wrong(chain);
      continue;
    }
    if (recordVer !== ver) wrong(`its record at chunk ${head} has version ${recordVer}: a replacement left half done`);
    for (const chunk of chain) used[chunk] = 1;
    versions.add(recordVer);
    live.push({ slot, ver: recordVer, slotVer: ver, hash, head, record });
  }
  return { live, problems, used };
}

// The chunks of a record, or what is wrong with its chain.
function chainOf(view: MapView, head: number, count: number, used: Uint8Array): number[] | string {
  const chain = [head];
  for (let chunk = head; chain.length <= count;) {
    if (used[chunk]) return `its chain reaches chunk ${chunk}, which another entry holds`;
    const next = nextChunk(view, chunk);
    if (chain.length === count) return next === END ? chain : `its chain goes on past its ${count} chunks`;
    if (next >= view.chunks) return `its chain breaks after ${chain.length} of ${count} chunks`;
    chain.push(next);
    chunk = next;
  }
  return chain;
}

/**
 * Mends the index in place and rebuilds the free list and the counts from it. Run by the next holder of the lock
 * after a holder died; O(slots + chunks). Every step leaves each record that a slot pointed to in some slot, and
 * what is rebuilt is derived from the slots alone, so a repair killed at any point is finished by the next one.
 */
export function repair(view: MapView): void {
  const { words } = view;
  // An odd EPOCH keeps lock-free readers from trusting a miss while slots are mended.
  if ((Atomics.load(words, W_EPOCH) & 1) === 0) Atomics.add(words, W_EPOCH, 1);
  const { live, used } = scan(view);
  const keep = new Set(live.map((entry) => entry.slot));
  for (let slot = 0; slot < view.slots; slot++) {
    const word = slotWord(view, slot);
    if (Atomics.load(words, word + S_VER) === 0 || keep.has(slot)) continue;
    Atomics.store(words, word + S_VER, 0);
    step('repair.dropped');
  }
  for (const entry of live) {
    if (entry.slotVer !== entry.ver) Atomics.store(words, slotWord(view, entry.slot) + S_VER, entry.ver);
  }
  compact(view);
  let free = END;
  let freeCount = 0;
  for (let chunk = view.chunks - 1; chunk >= 0; chunk--) {
    if (used[chunk]) continue;
    Atomics.store(words, view.tableBase + chunk, free);
    free = chunk;
    freeCount++;
  }
  Atomics.store(words, W_FREE_HEAD, free);
  Atomics.store(words, W_FREE_COUNT, freeCount);
  step('repair.listed');
  const counts = { entries: 0, pending: 0, pendingChunks: 0, expiring: 0 };
  for (const { record } of live) {
    if (record.flags & FLAG_PENDING) {
      counts.pending++;
      counts.pendingChunks += record.chunks;
    } else {
      counts.entries++;
    }
    if (record.expires !== 0) counts.expiring++;
  }
  Atomics.store(words, W_ENTRIES, counts.entries);
  Atomics.store(words, W_PENDING, counts.pending);
  Atomics.store(words, W_PENDING_CHUNKS, counts.pendingChunks);
  Atomics.store(words, W_EXPIRING, counts.expiring);
  step('repair.counted');
  view.f64[F_REPAIRS]!++;
  Atomics.add(words, W_VERSION, 1);
  Atomics.add(words, W_EPOCH, 1);
}

// Moves each entry to the first empty slot of its probe sequence until none can move, so that no probe meets a hole
// before its key (slots emptied above, or by a backward shift cut short). An entry only moves nearer its home, so
// this ends; each move fills the new slot, VER last, before it empties the old, so a record is never in no slot.
function compact(view: MapView): void {
  const { words, slots } = view;
  for (let moved = true; moved;) {
    moved = false;
    for (let slot = 0; slot < slots; slot++) {
      const from = slotWord(view, slot);
      const ver = Atomics.load(words, from + S_VER);
      if (ver === 0) continue;
      let at = home(view, Atomics.load(words, from + S_HASH));
      while (at !== slot && Atomics.load(words, slotWord(view, at) + S_VER) !== 0) at = at + 1 === slots ? 0 : at + 1;
      if (at === slot) continue;
      const to = slotWord(view, at);
      for (const field of [S_HASH, S_HEAD, S_STAMP])
        Atomics.store(words, to + field, Atomics.load(words, from + field));
      Atomics.store(words, to + S_VER, ver);
      step('repair.moved');
      Atomics.store(words, from + S_VER, 0);
      moved = true;
    }
  }
}

/**
 * Checks every invariant: each slot points to a whole record with its version and hash, reachable from its home
 * slot, each key once; each chunk in exactly one entry or on the free list; the counts; and, through `decode`, that
 * every value decodes. The caller holds the lock.
 */
export function verify(view: MapView, decode: (bytes: Uint8Array) => unknown): Verification {
  const { words } = view;
  const { live, problems, used } = scan(view);
  if (Atomics.load(words, W_EPOCH) & 1) problems.push('EPOCH is odd: slots were left half moved');
  const keys = new Map<string, number>();
  const counts = { entries: 0, pending: 0, pendingChunks: 0, expiring: 0 };
  for (const { slot, hash, head, record } of live) {
    for (let at = home(view, hash); at !== slot; at = at + 1 === view.slots ? 0 : at + 1) {
      if (Atomics.load(words, slotWord(view, at) + S_VER) === 0) {
        problems.push(`slot ${slot}: unreachable, slot ${at} between it and its home is empty`);
        break;
      }
    }
    const key = getBytes(view, head, RECORD_HEADER, record.keyLength);
    const name = key === undefined ? '' : Buffer.from(key).toString('latin1');
    if (keys.has(name)) problems.push(`slot ${slot}: the key of slot ${keys.get(name)} again`);
    keys.set(name, slot);
    if (record.flags & FLAG_PENDING) {
      counts.pending++;
      counts.pendingChunks += record.chunks;
    } else {
      counts.entries++;
      try {
        decode(Buffer.from(getBytes(view, head, RECORD_HEADER + record.keyLength, record.valueLength)!));
      } catch (error) {
        problems.push(`slot ${slot}: its value does not decode (${(error as Error).message})`);
      }
    }
    if (record.expires !== 0) counts.expiring++;
  }
  let free = 0;
  for (let chunk = Atomics.load(words, W_FREE_HEAD); chunk !== END; chunk = nextChunk(view, chunk)) {
    if (chunk >= view.chunks) {
      problems.push(`the free list reaches chunk ${chunk}, past the last chunk`);
      break;
    }
    if (used[chunk]) {
      problems.push(`the free list reaches chunk ${chunk}, which an entry holds or the list has passed`);
      break;
    }
    used[chunk] = 1;
    free++;
  }
  const lost = used.reduce((sum, bit) => sum + (bit ^ 1), 0);
  if (lost > 0) problems.push(`${lost} chunks are neither in an entry nor free`);
  const expect = (word: number, name: string, actual: number) => {
    const stored = Atomics.load(words, word);
    if (stored !== actual) problems.push(`${name} is ${stored}, but ${actual} were counted`);
  };
  expect(W_FREE_COUNT, 'FREE_COUNT', free);
  expect(W_ENTRIES, 'ENTRIES', counts.entries);
  expect(W_PENDING, 'PENDING', counts.pending);
  expect(W_PENDING_CHUNKS, 'PENDING_CHUNKS', counts.pendingChunks);
  expect(W_EXPIRING, 'EXPIRING', counts.expiring);
  if (counts.entries + counts.pending > view.maxEntries) {
    problems.push(`${counts.entries + counts.pending} entries, over the ${view.maxEntries} allowed`);
  }
  return { ok: problems.length === 0, problems };
}
