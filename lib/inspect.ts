// What `mmap-share inspect` reports of a region: its header, read without taking any lock, and its value; of a map,
// its geometry, load and counts, and with `check`, what verify() finds.
import { codecFor } from './codec.js';
import { MmapShareError } from './errors.js';
import { RACED, W_CODEC, W_LAYOUT } from './layout.js';
import { holderOf } from './lock.js';
import { attachView, F_TTL } from './map/layout.js';
import { type MapStats, SharedMap } from './map/map.js';
import type { Verification } from './map/repair.js';
import { attachRegion, closeRegion, type Region } from './region.js';
import { readUnlocked, W_COMMIT, W_LENGTH_0 } from './share/layout.js';

export interface Inspection {
  kind: 'share';
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

export interface MapInspection {
  kind: 'map';
  handle: string;
  layout: number;
  /** Bytes of the region. */
  size: number;
  slots: number;
  /** Entries and fetch markers over slots. */
  load: number;
  eviction: string;
  /** The map's default ttl in ms; 0 for none. */
  ttl: number;
  version: number;
  codec: string;
  holder: { pid: number; running: boolean } | null;
  stats: MapStats;
  /** What verify() found, with `check`. */
  check?: Verification;
}

const READ_TRIES = 20;

/** Reports on the region `ref`; for a map with `check`, runs verify(), which takes the lock. */
export function inspectRegion(ref: string, check = false): Inspection | MapInspection {
  const region = attachRegion(ref);
  try {
    return region.kind === 'map' ? inspectMap(region, ref, check) : inspectShare(region);
  } finally {
    closeRegion(region);
  }
}

function inspectMap(region: Region, ref: string, check: boolean): MapInspection {
  const view = attachView(region.bytes, ref);
  const map = SharedMap.attach(ref);
  try {
    const stats = map.stats();
    return {
      kind: 'map',
      handle: region.handle,
      layout: Atomics.load(region.words, W_LAYOUT),
      size: region.size,
      slots: view.slots,
      load: (stats.entries + stats.pending) / view.slots,
      eviction: view.policy,
      ttl: view.f64[F_TTL]!,
      version: map.version,
      codec: codecName(region.words),
      holder: holderOf(region),
      stats,
      ...(check ? { check: map.verify() } : {}),
    };
  } finally {
    map.close();
  }
}

function codecName(words: Uint32Array): string {
  try {
    return codecFor(Atomics.load(words, W_CODEC), undefined).name;
  } catch {
    return 'custom';
  }
}

function inspectShare(region: Region): Inspection {
  const words = region.words;
  const inspection: Inspection = {
    kind: 'share',
    handle: region.handle,
    layout: Atomics.load(words, W_LAYOUT),
    size: region.size,
    version: Atomics.load(words, W_COMMIT),
    slots: [Atomics.load(words, W_LENGTH_0), Atomics.load(words, W_LENGTH_0 + 1)],
    codec: 'custom',
    holder: holderOf(region),
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
}
