// verify(): every invariant of lib/queue/layout.ts, checked by walking the ring from HEAD to TAIL.
import type { Verification } from '../api.js';
import { ends, PAD, type QueueView, RECORD_HEADER, recordBytes, TOTALS_EVERY, totalsOf } from './layout.js';

/**
 * Checks that TAIL's count less HEAD's of whole records, each at most MAX_MESSAGE and decoding through `decode`, lead
 * from HEAD's offset to TAIL's, padding only where a record could not fit before the ring's end; that the totals
 * lag the commit words' counts by less than TOTALS_EVERY and differ by the messages queued; and that the unused
 * words are 0. The caller holds the lock, so no repair is pending.
 */
export function verifyQueue(view: QueueView, decode: (bytes: Uint8Array) => unknown): Verification {
  const problems: string[] = [];
  let now: ReturnType<typeof ends>;
  try {
    now = ends(view);
  } catch (error) {
    return { ok: false, problems: [(error as Error).message] };
  }
  const { head, tail, count } = now;
  const { ring, size } = view;
  let offset = head.offset;
  for (let index = 0; index < count; index++) {
    let length = ring.readUInt32LE(offset);
    if (length === PAD) {
      const next = ring.readUInt32LE(0);
      if (next !== PAD && next <= view.maxMessage && offset + recordBytes(next) <= size) {
        problems.push(`message ${index}: padding at offset ${offset}, where its ${next} bytes fitted`);
      }
      [offset, length] = [0, next];
    }
    if (length > view.maxMessage || offset + recordBytes(length) > size) {
      problems.push(`message ${index}: the record at offset ${offset} has length ${length}`);
      return { ok: false, problems };
    }
    try {
      decode(Buffer.from(ring.subarray(offset + RECORD_HEADER, offset + RECORD_HEADER + length)));
    } catch (error) {
      problems.push(`message ${index} at offset ${offset}: it does not decode (${(error as Error).message})`);
    }
    offset = (offset + recordBytes(length)) % size;
    // A walk that comes round to HEAD before its last record has gone through the whole ring.
    if (offset === head.offset && index < count - 1) {
      problems.push(`${count} messages, but the ring is full after ${index + 1}`);
      return { ok: false, problems };
    }
  }
  if (count > 0 && offset !== tail.offset) {
    problems.push(`${count} messages end at offset ${offset}, but TAIL says ${tail.offset}`);
  }
  const { stored, caught, unused } = totalsOf(view);
  for (const [name, total] of [
    ['PUSHED', 'pushed'],
    ['TAKEN', 'taken'],
  ] as const) {
    // Stored at every TOTALS_EVERY-th count, and in every repair: it lags less than that behind the commit word's.
    const lag = caught[total] - stored[total];
    if (lag >= TOTALS_EVERY) problems.push(`${name} is ${stored[total]}, ${lag} behind its commit word's count`);
  }
  if (caught.pushed - caught.taken !== count) {
    problems.push(`PUSHED - TAKEN is ${caught.pushed - caught.taken}, but ${count} messages are queued`);
  }
  if (unused.some((word) => word !== 0)) problems.push(`the unused header words are not 0: ${unused.join(' ')}`);
  return { ok: problems.length === 0, problems };
}
