// A SharedQueue's region past the common header (lib/layout.ts, whose words 3-5 a queue leaves 0): two commit words,
// the totals, and a ring of messages. Every change is made under the writers' lock, and is committed by one 64-bit
// store of HEAD (a take) or TAIL (a push): a writer killed before that store changed nothing anyone reads, one killed
// after it has done its whole change. The totals need no store of their own at each change: their low 32 bits are
// the commit words' counts, so a stored total only has to lag by less than 2^32, and is stored every TOTALS_EVERY.
//
// | bytes    | name         | written by, when                            | meaning                                         |
// |----------|--------------|---------------------------------------------|-------------------------------------------------|
// | 256-263  | HEAD         | a taker, last step of a take (the commit)   | low 32 bits: the ring offset of the oldest      |
// |          |              |                                             | message; high 32: messages taken (wrapping)     |
// | 264-271  | TAIL         | a pusher, last step of a push (the commit)  | low 32 bits: the ring offset past the newest    |
// |          |              |                                             | message; high 32: messages pushed (wrapping)    |
// | 272-279  | PUSHED       | a pusher whose count reached a multiple of  | messages pushed in all, as of then: TAIL's high |
// |          |              | TOTALS_EVERY, after its commit; the repair  | word gives the low 32 bits of what it is now    |
// | 280-287  | TAKEN        | a taker, as PUSHED; the repair              | messages taken in all, as PUSHED                |
// | 288-291  | MAX_MESSAGE  | creator                                     | encoded bytes of one message at most            |
// | 292-295  | REPAIRS      | the first writer after one that died        | times a dead writer's lock was taken over       |
// | 296-319  | -            |                                             | 0                                               |
// | 320-     | RING         | pushers, in the free part only              | SIZE bytes of records, from HEAD's offset to    |
// |          |              |                                             | TAIL's, wrapping at the end                     |
//
// A record: its payload's length (32 bits), then the payload, padded to 4 bytes. One never wraps: where a record does
// not fit before the ring's end, the pusher writes PAD there and the record at offset 0. The queue holds TAIL's count
// - HEAD's count messages (mod 2^32); with none, the offsets mean nothing and the next push starts at offset 0, so
// that any message up to MAX_MESSAGE fits an empty queue. With some, HEAD and TAIL at one offset mean a full ring.
import { MmapShareError, shareError } from '../errors.js';
import { HEADER_BYTES, QUEUE_HEADER_BYTES } from '../layout.js';

export const RING = HEADER_BYTES + QUEUE_HEADER_BYTES;
/** The length word of a record that is no record: the ring goes on at offset 0. */
export const PAD = 0xffffffff;
export const RECORD_HEADER = 4;

/** A writer stores a total when the count it committed is a multiple of this, so that totals lag by less. */
export const TOTALS_EVERY = 2 ** 16;

// Indexes of the queue header's 64-bit words and 32-bit words: HEAD and TAIL's halves, offset then count.
const D_HEAD = 0;
const D_TAIL = 1;
const D_PUSHED = 2;
const D_TAKEN = 3;
const W_HEAD = 0;
const W_TAIL = 2;
const W_MAX_MESSAGE = 8;
const W_REPAIRS = 9;

/** A queue's region as its code sees it: the header past the common one, and the ring. */
export interface QueueView {
  /** The region's handle, for errors. */
  readonly what: string;
  readonly wide: BigUint64Array;
  readonly words: Uint32Array;
  readonly ring: Buffer;
  readonly size: number;
  readonly maxMessage: number;
}

/** A commit word, split: the ring offset, and the count (mod 2^32) of messages pushed or taken. */
export interface End {
  readonly offset: number;
  readonly count: number;
}

/** The queue in `bytes`, a region whose ring holds `size` bytes; ERR_BAD_HANDLE when MAX_MESSAGE cannot be. */
export function viewOf(bytes: Buffer, size: number, what: string): QueueView {
  const { buffer, byteOffset } = bytes;
  const wide = new BigUint64Array(buffer, byteOffset + HEADER_BYTES, QUEUE_HEADER_BYTES / 8);
  const words = new Uint32Array(buffer, byteOffset + HEADER_BYTES, QUEUE_HEADER_BYTES / 4);
  const maxMessage = Atomics.load(words, W_MAX_MESSAGE);
  if (maxMessage < 1 || recordBytes(maxMessage) > size) {
    throw shareError('ERR_BAD_HANDLE', `${what} has a damaged header: maxMessageSize ${maxMessage}`);
  }
  return { what, wide, words, ring: bytes.subarray(RING, RING + size), size, maxMessage };
}

/** ERR_BAD_HANDLE, for a queue whose words or records cannot be what a writer left. */
export function corruptQueue(view: QueueView, why: string): Error {
  return shareError('ERR_BAD_HANDLE', `${view.what} is damaged: ${why}`);
}

export function initQueue(bytes: Buffer, maxMessage: number): void {
  bytes.writeUInt32LE(maxMessage, HEADER_BYTES + W_MAX_MESSAGE * 4);
}

const split = (word: bigint): End => ({ offset: Number(word & 0xffffffffn), count: Number(word >> 32n) });
const join = ({ offset, count }: End): bigint => (BigInt(count >>> 0) << 32n) | BigInt(offset);

type Ends = { head: End; tail: End; count: number };

/**
 * HEAD and TAIL as one moment saw them, for a reader without the lock: read again until HEAD did not move around the
 * read of TAIL (HEAD's count only grows, so an unchanged word is an unchanged head). ERR_BAD_HANDLE for words no
 * writer leaves.
 */
export function ends(view: QueueView): Ends {
  const { wide } = view;
  let first: bigint;
  let last: bigint;
  do {
    first = Atomics.load(wide, D_HEAD);
    last = Atomics.load(wide, D_TAIL);
  } while (Atomics.load(wide, D_HEAD) !== first);
  return checked(view, split(first), split(last));
}

/** As ends(), for the lock holder: no one else writes the words, so their halves are read as they are, no BigInt. */
export function lockedEnds(view: QueueView): Ends {
  const { words } = view;
  const head = { offset: words[W_HEAD]!, count: words[W_HEAD + 1]! };
  return checked(view, head, { offset: words[W_TAIL]!, count: words[W_TAIL + 1]! });
}

/**
 * Whether the queue held no message at one moment, for a reader without the lock: HEAD's count read before TAIL's,
 * each word's half whole. Equal, the head was at the tail when its count was read (it never passes the tail).
 */
export function looksEmpty(view: QueueView): boolean {
  return Atomics.load(view.words, W_HEAD + 1) === Atomics.load(view.words, W_TAIL + 1);
}

function checked(view: QueueView, head: End, tail: End): Ends {
  const { size } = view;
  const count = (tail.count - head.count) >>> 0;
  // Each record takes 4 bytes at least, and starts at an aligned offset inside the ring.
  if (count > size / RECORD_HEADER || head.offset >= size || tail.offset >= size || (head.offset | tail.offset) & 3) {
    throw corruptQueue(view, `head ${head.offset}, tail ${tail.offset}, ${count} messages in a ring of ${size} bytes`);
  }
  return { head, tail, count };
}

export const commitHead = (view: QueueView, end: End): void => void Atomics.store(view.wide, D_HEAD, join(end));
export const commitTail = (view: QueueView, end: End): void => void Atomics.store(view.wide, D_TAIL, join(end));

/** Bytes of `size` bytes of payload as a record (arithmetic, not bitwise: a damaged size may pass 2^31). */
export const recordBytes = (size: number): number => RECORD_HEADER + Math.ceil(size / 4) * 4;

// A total whose low 32 bits are `low`: the stored one, which lags by less than 2^32, moved up to it.
const caughtUp = (stored: bigint, low: number): number =>
  Number(stored + ((BigInt(low) - (stored & 0xffffffffn)) & 0xffffffffn));

/** The ends and the totals as one moment saw them, whatever totals a killed writer left behind. */
export function snapshot(view: QueueView): { head: End; tail: End; count: number; pushed: number; taken: number } {
  // The stored totals first: they lag the commit words read after them, never run ahead of them.
  const [pushed, taken] = [Atomics.load(view.wide, D_PUSHED), Atomics.load(view.wide, D_TAKEN)];
  const now = ends(view);
  return { ...now, pushed: caughtUp(pushed, now.tail.count), taken: caughtUp(taken, now.head.count) };
}

/** Stores the totals the commit words say, under the lock: in a repair, and every TOTALS_EVERY pushes or takes. */
export function storeTotals(view: QueueView): void {
  const { pushed, taken } = snapshot(view);
  Atomics.store(view.wide, D_PUSHED, BigInt(pushed));
  Atomics.store(view.wide, D_TAKEN, BigInt(taken));
}

/** The totals as stored and as caught up, and the header's unused words, for verify(). */
export function totalsOf(view: QueueView) {
  const [pushed, taken] = [Number(Atomics.load(view.wide, D_PUSHED)), Number(Atomics.load(view.wide, D_TAKEN))];
  return { stored: { pushed, taken }, caught: snapshot(view), unused: [...view.words.subarray(W_REPAIRS + 1)] };
}

export const repairs = (view: QueueView): number => Atomics.load(view.words, W_REPAIRS);

/**
 * After a writer died holding the lock: nothing to undo (it committed all or nothing); the totals caught up. Damaged
 * commit words are left as they are, for verify() to report and every push and take to refuse, instead of failing the
 * repair, which would leave it pending for ever.
 */
export function repair(view: QueueView): void {
  Atomics.add(view.words, W_REPAIRS, 1);
  try {
    storeTotals(view);
  } catch (error) {
    if (!(error instanceof MmapShareError && error.code === 'ERR_BAD_HANDLE')) throw error;
  }
}
