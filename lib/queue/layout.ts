// A SharedQueue's region past the common header (lib/layout.ts, whose words 3-5 a queue leaves 0): two commit words,
// the totals, and a ring of messages. Every change is made under the writers' lock, and is committed by one 64-bit
// store of HEAD (a take) or TAIL (a push): a writer killed before that store changed nothing anyone reads, one killed
// after it has done its whole change, and the totals it had still to store are recovered from the commit words.
//
// | bytes    | name         | written by, when                            | meaning                                         |
// |----------|--------------|---------------------------------------------|-------------------------------------------------|
// | 256-263  | HEAD         | a taker, last step of a take (the commit)   | low 32 bits: the ring offset of the oldest      |
// |          |              |                                             | message; high 32: messages taken (wrapping)     |
// | 264-271  | TAIL         | a pusher, last step of a push (the commit)  | low 32 bits: the ring offset past the newest    |
// |          |              |                                             | message; high 32: messages pushed (wrapping)    |
// | 272-279  | PUSHED       | a pusher, after its commit; the repair      | messages pushed in all: TAIL's high word says   |
// |          |              |                                             | its low 32 bits when it lags                    |
// | 280-287  | TAKEN        | a taker, after its commit; the repair       | messages taken in all, as PUSHED                |
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
import { HEADER_BYTES, QUEUE_HEADER_BYTES } from '../layout.js';

export const RING = HEADER_BYTES + QUEUE_HEADER_BYTES;
/** The length word of a record that is no record: the ring goes on at offset 0. */
export const PAD = 0xffffffff;
export const RECORD_HEADER = 4;

// Indexes of the queue header's 64-bit words and 32-bit words.
const D_HEAD = 0;
const D_TAIL = 1;
const D_PUSHED = 2;
const D_TAKEN = 3;
const W_MAX_MESSAGE = 8;
const W_REPAIRS = 9;

/** A queue's region as its code sees it: the header past the common one, and the ring. */
export interface QueueView {
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

export function viewOf(bytes: Buffer, size: number): QueueView {
  const { buffer, byteOffset } = bytes;
  const wide = new BigUint64Array(buffer, byteOffset + HEADER_BYTES, QUEUE_HEADER_BYTES / 8);
  const words = new Uint32Array(buffer, byteOffset + HEADER_BYTES, QUEUE_HEADER_BYTES / 4);
  return { wide, words, ring: bytes.subarray(RING, RING + size), size, maxMessage: Atomics.load(words, W_MAX_MESSAGE) };
}

export function initQueue(bytes: Buffer, maxMessage: number): void {
  bytes.writeUInt32LE(maxMessage, HEADER_BYTES + W_MAX_MESSAGE * 4);
}

const split = (word: bigint): End => ({ offset: Number(word & 0xffffffffn), count: Number(word >> 32n) });
const join = ({ offset, count }: End): bigint => (BigInt(count >>> 0) << 32n) | BigInt(offset);

export const head = (view: QueueView): End => split(Atomics.load(view.wide, D_HEAD));
export const tail = (view: QueueView): End => split(Atomics.load(view.wide, D_TAIL));
export const commitHead = (view: QueueView, end: End): void => void Atomics.store(view.wide, D_HEAD, join(end));
export const commitTail = (view: QueueView, end: End): void => void Atomics.store(view.wide, D_TAIL, join(end));

/** Messages in the queue: pushed minus taken, mod 2^32. */
export const count = (view: QueueView): number => (tail(view).count - head(view).count) >>> 0;

/** Bytes of `size` bytes of payload as a record. */
export const recordBytes = (size: number): number => RECORD_HEADER + ((size + 3) & ~3);

// A total whose low 32 bits are `low`: the stored one, which lags by less than 2^32, moved up to it.
const caughtUp = (stored: bigint, low: number): number =>
  Number(stored + ((BigInt(low) - (stored & 0xffffffffn)) & 0xffffffffn));

/** Messages pushed and taken in all, as the commit words say, whatever totals a killed writer left behind. */
export function totals(view: QueueView): { pushed: number; taken: number } {
  return {
    pushed: caughtUp(Atomics.load(view.wide, D_PUSHED), tail(view).count),
    taken: caughtUp(Atomics.load(view.wide, D_TAKEN), head(view).count),
  };
}

/** Stores the totals the commit words say, after a push or a take, or in a repair. */
export function storeTotals(view: QueueView): void {
  const { pushed, taken } = totals(view);
  Atomics.store(view.wide, D_PUSHED, BigInt(pushed));
  Atomics.store(view.wide, D_TAKEN, BigInt(taken));
}

export const repairs = (view: QueueView): number => Atomics.load(view.words, W_REPAIRS);

/** After a writer died holding the lock: nothing to undo (it committed all or nothing); the totals caught up. */
export function repair(view: QueueView): void {
  storeTotals(view);
  Atomics.add(view.words, W_REPAIRS, 1);
}
