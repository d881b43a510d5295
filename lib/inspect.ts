// What `mmap-share inspect` reports of a region: its header, read without taking any lock, and its value.
import { codecFor } from './codec.js';
import { MmapShareError } from './errors.js';
import {
  RACED,
  readUnlocked,
  W_CODEC,
  W_COMMIT,
  W_HOLDER_PID,
  W_HOLDER_START,
  W_LAYOUT,
  W_LENGTH_0,
} from './layout.js';
import { isAlive } from './lock.js';
import { attachRegion, closeRegion } from './region.js';

export interface Inspection {
  handle: string;
  layout: number;
  size: number;
  version: number;
  /** Payload bytes in each slot; the committed one is `version & 1`. */
  slots: [number, number];
  codec: string;
  holder: { pid: number; running: boolean } | null;
  /** The decoded value, or why it could not be decoded. */
  value: unknown;
  valueError?: string;
}

const READ_TRIES = 20;

export function inspectRegion(ref: string): Inspection {
  const region = attachRegion(ref);
  try {
    const words = region.words;
    const holderPid = Atomics.load(words, W_HOLDER_PID);
    const inspection: Inspection = {
      handle: region.handle,
      layout: Atomics.load(words, W_LAYOUT),
      size: region.size,
      version: Atomics.load(words, W_COMMIT),
      slots: [Atomics.load(words, W_LENGTH_0), Atomics.load(words, W_LENGTH_0 + 1)],
      codec: 'custom',
      holder:
        holderPid === 0 ? null : { pid: holderPid, running: isAlive(holderPid, Atomics.load(words, W_HOLDER_START)) },
      value: undefined,
    };
    try {
      const codec = codecFor(Atomics.load(words, W_CODEC), undefined);
      inspection.codec = codec.name;
      // No lock: an inspector must never wait for, or hold up, the processes it looks at.
      for (let attempt = 0; attempt < READ_TRIES; attempt++) {
        const read = readUnlocked(region, codec);
        if (read === RACED) continue;
        inspection.version = read.version;
        inspection.value = read.value;
        return inspection;
      }
      inspection.valueError = 'writers kept changing the value while it was read';
    } catch (error) {
      if (!(error instanceof MmapShareError)) throw error;
      inspection.valueError = error.message;
    }
    return inspection;
  } finally {
    closeRegion(region);
  }
}
