// What `mmap-share inspect` reports of a region: its header, read without taking any lock, and its value; of a map,
// its geometry, load and counts, and on request its keys or one key's value; of a queue, its counts; of either, with
// `check`, what verify() finds.
import { codecFor } from './codec.js';
import { MmapShareError } from './errors.js';
import { RACED, W_CODEC, W_LAYOUT } from './layout.js';
import { waitersOf } from './bell.js';
import { holderOf } from './lock.js';
import { attachView, F_TTL } from './map/layout.js';
import { type MapStats, SharedMap } from './map/map.js';
import type { QueueStats, Verification } from './api.js';
import { SharedQueue } from './queue/queue.js';
import { attachRegion, closeRegion, envKey, isName, type Region } from './region.js';
import { readUnlocked, W_COMMIT, W_LENGTH_0 } from './share/layout.js';

export interface Inspection {
  kind: 'share';
  /** What another process attaches by: the handle given (for a name, the one it stands for), or the absolute path. */
  handle: string;
  layout: number;
  size: number;
  version: number;
  /** Payload bytes in each slot; the committed one is `version & 1`. */
  slots: [number, number];
  codec: string;
  holder: { pid: number; running: boolean } | null;
  /** Threads registered on the region's doorbell (lib/bell.ts). */
  waiters: number;
  /** The decoded value, or why it could not be decoded. */
  value: unknown;
  valueError?: string;
}

export interface MapInspection {
  kind: 'map';
  /** As in Inspection. */
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
  /** Threads registered on the region's doorbell (lib/bell.ts). */
  waiters: number;
  stats: MapStats;
  /** What verify() found, with `check`. */
  check?: Verification;
}

export interface QueueInspection {
  kind: 'queue';
  /** As in Inspection. */
  handle: string;
  layout: number;
  codec: string;
  /** Encoded bytes of one message at most. */
  maxMessage: number;
  holder: { pid: number; running: boolean } | null;
  /** Threads registered on the region's doorbell: take() and pushAsync() waiters among them. */
  waiters: number;
  stats: QueueStats;
  /** As in MapInspection. */
  check?: Verification;
}

/** Some of a map's keys, in code unit order, and how many it holds. */
export interface KeyListing {
  handle: string;
  keys: string[];
  total: number;
}

/** One key of a map and its value; `value` is undefined when the key holds none (a map cannot store undefined). */
export interface Lookup {
  handle: string;
  key: string;
  value: unknown;
}

const READ_TRIES = 20;

/** Reports on the region `ref`; for a map or a queue with `check`, runs verify(), which takes the lock. */
export function inspectRegion(ref: string, check = false): Inspection | MapInspection | QueueInspection {
  return withRegion(ref, (region, handle) =>
    region.kind === 'map'
      ? inspectMap(region, handle, ref, check)
      : region.kind === 'queue'
        ? inspectQueue(region, handle, ref, check)
        : inspectShare(region, handle),
  );
}

/** The first `limit` keys of the map `ref` in code unit order, and how many there are; undefined if it is no map. */
export function mapKeys(ref: string, limit: number): KeyListing | undefined {
  return withMap(ref, (map, handle) => {
    // keys() reads without the lock and counts no use, so the listing leaves recency and counts as they were.
    const keys = [...map.keys()].sort();
    return { handle, keys: keys.slice(0, limit), total: keys.length };
  });
}

/** The value of `key` in the map `ref`; undefined if it is no map. */
export function mapValue(ref: string, key: string): Lookup | undefined {
  // peek(), not get(): looking must not make the key recently used, nor count as a hit or miss.
  return withMap(ref, (map, handle) => ({ handle, key, value: map.peek(key) }));
}

function withRegion<R>(ref: string, work: (region: Region, handle: string) => R): R {
  const region = attachRegion(ref);
  try {
    // Attached by handle, the region's own handle names this process's descriptor, which dies with it.
    const given = isName(ref) ? process.env[envKey(ref)]! : ref;
    return work(region, region.handle.startsWith('/') ? region.handle : given);
  } finally {
    closeRegion(region);
  }
}

function withMap<R>(ref: string, work: (map: SharedMap, handle: string) => R): R | undefined {
  return withRegion(ref, (region, handle) => {
    if (region.kind !== 'map') return undefined;
    const map = SharedMap.attach(ref);
    try {
      return work(map, handle);
    } finally {
      map.close();
    }
  });
}

function inspectMap(region: Region, handle: string, ref: string, check: boolean): MapInspection {
  const view = attachView(region.bytes, ref);
  const map = SharedMap.attach(ref);
  try {
    const stats = map.stats();
    return {
      kind: 'map',
      handle,
      layout: Atomics.load(region.words, W_LAYOUT),
      size: region.size,
      slots: view.slots,
      load: (stats.entries + stats.pending) / view.slots,
      eviction: view.policy,
      ttl: view.f64[F_TTL]!,
      version: map.version,
      codec: codecName(region.words),
      holder: holderOf(region),
      waiters: waitersOf(region),
      stats,
      ...(check ? { check: map.verify() } : {}),
    };
  } finally {
    map.close();
  }
}

function inspectQueue(region: Region, handle: string, ref: string, check: boolean): QueueInspection {
  const queue = SharedQueue.attach(ref);
  try {
    return {
      kind: 'queue',
      handle,
      layout: Atomics.load(region.words, W_LAYOUT),
      codec: codecName(region.words),
      maxMessage: queue.maxMessageSize,
      holder: holderOf(region),
      waiters: waitersOf(region),
      stats: queue.stats(),
      ...(check ? { check: queue.verify() } : {}),
    };
  } finally {
    queue.close();
  }
}

function codecName(words: Uint32Array): string {
  try {
    return codecFor(Atomics.load(words, W_CODEC), undefined).name;
  } catch {
    return 'custom';
  }
}

function inspectShare(region: Region, handle: string): Inspection {
  const words = region.words;
  const inspection: Inspection = {
    kind: 'share',
    handle,
    layout: Atomics.load(words, W_LAYOUT),
    size: region.size,
    version: Atomics.load(words, W_COMMIT),
    slots: [Atomics.load(words, W_LENGTH_0), Atomics.load(words, W_LENGTH_0 + 1)],
    codec: 'custom',
    holder: holderOf(region),
    waiters: waitersOf(region),
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
