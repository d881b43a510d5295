// Reading without the lock: an entry, or the list of keys, read while writers may be changing them, retried when
// they did and done under the lock when they keep doing it.
import { type Codec, decodeView } from '../codec.js';
import type { RegionHandle } from '../handle.js';
import { RACED as RACE } from '../layout.js';
import { LOCK_FREE_TRIES } from '../lock.js';
import {
  chunkWord,
  corruptMap,
  expiresOf,
  FLAG_PENDING,
  getBytes,
  isExpired,
  type MapView,
  R_KEY,
  R_VALUE,
  R_VER,
  RECORD_HEADER,
  S_HEAD,
  S_VER,
  slotWord,
  W_EPOCH,
  W_ERA,
} from './layout.js';
import { encoded, encodeKey, find, found, MISS, RACED, touch } from './table.js';

/** No live entry holds the key: none, a fetch marker, or an expired one. */
export const ABSENT = Symbol('absent');

/**
 * Where the last read that returned a value found its entry, so a caller can tell later whether it is still there.
 * One object for every read, as `found` in table.ts: get() allocates nothing to say where.
 */
export const where = { slot: 0, ver: 0, expires: 0 };

/**
 * Reads `name` (decoding its value when `decode`, counting a use for LRU when `use`), without a lock while writers
 * let it, then under the lock (at once when this instance holds it already).
 */
export function read<V>(
  view: MapView,
  codec: Codec<V>,
  name: string,
  decode: boolean,
  use: boolean,
  handle: RegionHandle,
): V | typeof ABSENT {
  encodeKey(name, view.maxKey);
  // The loop of handle.optimistic() written out: get() is the hot path, and its two closures cost it about a tenth.
  if (!handle.locked) {
    for (let attempt = 0; attempt < LOCK_FREE_TRIES; attempt++) {
      const result = readOnce(view, codec, decode, use, false);
      if (result !== RACE) return result;
    }
  }
  // Writers kept changing what this reader read: under the lock they wait. The key may have been overwritten by
  // whatever ran between, so it is encoded again.
  return handle.reading(() => {
    encodeKey(name, view.maxKey);
    // Under the lock no writer races the read: damage throws instead.
    return readOnce(view, codec, decode, use, true) as V | typeof ABSENT;
  });
}

function readOnce<V>(
  view: MapView,
  codec: Codec<V>,
  decode: boolean,
  use: boolean,
  locked: boolean,
): V | typeof ABSENT | typeof RACE {
  // A renumbering (once in 4 billion writes) can give the version read to another record: see ERA.
  const era = view.words[W_ERA];
  const slot = find(view, encoded.bytes, encoded.length, encoded.hash, locked);
  if (slot === MISS) return ABSENT;
  if (slot === RACED) return RACE;
  const { words } = view;
  const { ver, head } = found;
  const word = chunkWord(view, head);
  const keyWord = words[word + R_KEY]!;
  const valueLength = words[word + R_VALUE]!;
  const expires = expiresOf(view, head);
  const pending = keyWord >>> 16 === FLAG_PENDING;
  let payload: Uint8Array | undefined;
  let value: V | undefined;
  let failure: unknown;
  if (decode && !pending && valueLength <= view.maxValue) {
    payload = getBytes(view, head, RECORD_HEADER + (keyWord & 0xffff), valueLength);
    // A broken chain is a writer's doing while it races this reader, and damage under the lock.
    if (payload === undefined) {
      if (locked) throw corruptMap(`the chain of chunk ${head} is broken`);
      return RACE;
    }
    if (payload.buffer === view.bytes.buffer) {
      // A view of the mapping: a copyFirst codec copies it inside the race window; any other decodes it there.
      if (codec.copyFirst) payload = new Uint8Array(payload);
      else {
        try {
          value = codec.decode(payload);
        } catch (error) {
          failure = error;
        }
        payload = undefined;
      }
    }
  }
  const slotWordIndex = slotWord(view, slot);
  if (
    !locked &&
    (Atomics.load(words, slotWordIndex + S_VER) !== ver ||
      Atomics.load(words, slotWordIndex + S_HEAD) !== head ||
      words[W_ERA] !== era)
  ) {
    return RACE;
  }
  if (pending || isExpired(expires)) return ABSENT;
  if (decode && valueLength > view.maxValue) {
    if (locked) throw corruptMap(`the entry in slot ${slot} claims ${valueLength} bytes`);
    return RACE;
  }
  if (use) touch(view, slot);
  where.slot = slot;
  where.ver = ver;
  where.expires = expires;
  if (!decode) return undefined as V;
  if (payload !== undefined) {
    try {
      value = codec.decode(payload);
    } catch (error) {
      failure = error;
    }
  }
  if (failure !== undefined) throw corruptMap(`its value does not decode (${(failure as Error).message})`, failure);
  return value as V;
}

/** The value of the record at `head`, under the lock: damage is reported, not taken for a race. */
export function decodeLocked<V>(
  view: MapView,
  codec: Codec<V>,
  head: number,
  keyLength: number,
  valueLength: number,
): V {
  const bytes = getBytes(view, head, RECORD_HEADER + keyLength, valueLength);
  if (bytes === undefined) throw corruptMap(`the chain of chunk ${head} is broken`);
  try {
    return decodeView(codec, bytes);
  } catch (error) {
    throw corruptMap(`its value does not decode (${(error as Error).message})`, error);
  }
}

/**
 * The keys present now: one pass over the slots without the lock, repeated if slots moved meanwhile (an entry could
 * have moved past the pass), and done under the lock if they keep moving.
 */
export function keyList(view: MapView, handle: RegionHandle): string[] {
  return handle.optimistic(
    () => scanKeys(view, false) ?? RACE,
    () => scanKeys(view, true)!,
  );
}

function scanKeys(view: MapView, locked: boolean): string[] | undefined {
  const { words } = view;
  const epoch = Atomics.load(words, W_EPOCH);
  const era = Atomics.load(words, W_ERA);
  if (!locked && epoch & 1) return undefined;
  const keys: string[] = [];
  const now = Date.now();
  for (let slot = 0; slot < view.slots; slot++) {
    const word = slotWord(view, slot);
    const ver = Atomics.load(words, word + S_VER);
    if (ver === 0) continue;
    const head = Atomics.load(words, word + S_HEAD);
    if (head >= view.chunks) {
      if (locked) throw corruptMap(`slot ${slot} points past the last chunk`);
      return undefined;
    }
    // Read as get() reads: the record's shape is trusted only once its version and the slot are found unchanged.
    const recordWord = chunkWord(view, head);
    const keyWord = words[recordWord + R_KEY]!;
    const keyLength = keyWord & 0xffff;
    const expires = expiresOf(view, head);
    const bytes = keyLength <= view.maxKey ? getBytes(view, head, RECORD_HEADER, keyLength) : undefined;
    const name = bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8');
    if (
      Atomics.load(words, recordWord + R_VER) !== ver ||
      Atomics.load(words, word + S_VER) !== ver ||
      Atomics.load(words, word + S_HEAD) !== head
    ) {
      if (locked) throw corruptMap(`slot ${slot} does not match its record`);
      return undefined;
    }
    if (name === undefined) {
      if (locked) throw corruptMap(`the key in slot ${slot} is damaged`);
      return undefined;
    }
    if (!((keyWord >>> 16) & FLAG_PENDING) && !isExpired(expires, now)) keys.push(name);
  }
  return locked || (Atomics.load(words, W_EPOCH) === epoch && Atomics.load(words, W_ERA) === era) ? keys : undefined;
}
