// SharedQueue: messages pushed by any process and taken by any process, each exactly once, in order per producer,
// through a ring in one region (its layout: lib/queue/layout.ts).
import type { LockAsyncOptions, Queue, QueueStats, Verification } from '../api.js';
import { type Codec, codecId, type CodecOption, decodeView, encodeValue, resolveCodec } from '../codec.js';
import { step } from '../crash.js';
import { shareError } from '../errors.js';
import { RegionHandle } from '../handle.js';
import { LOOK_MS, QUEUE_GAP_MS, waitOn } from '../bell.js';
import {
  checkCount,
  checkMax,
  checkMessageSize,
  checkNames,
  checkWait,
  LOCK_ASYNC_NAMES,
  type Names,
  parseBytes,
} from '../options.js';
import { takeEach } from '../wait.js';
import { attachKind, checkPlacement, closeRegion, createRegion, type Region } from '../region.js';
import {
  commitHead,
  commitTail,
  corruptQueue,
  ends,
  initQueue,
  lockedEnds,
  looksEmpty,
  PAD,
  type QueueView,
  RECORD_HEADER,
  recordBytes,
  repair,
  repairs,
  snapshot,
  storeTotals,
  TOTALS_EVERY,
  viewOf,
} from './layout.js';
import { verifyQueue } from './verify.js';

export interface SharedQueueOptions<T> {
  /** Bytes of the ring: a number, or a string such as '16MB' (KB, MB, GB are powers of 1024). */
  capacity: number | string;
  /** Encoded bytes of one message at most. Default: as many as an empty ring holds. */
  maxMessageSize?: number;
  /** Exports the handle as `MMAP_SHARE_<name>` in `process.env`, so forked children can `attach(name)`. */
  name?: string;
  /** Backs the region with this file (created exclusively, mode 0600) instead of a file with no name. */
  path?: string;
  /** How messages are turned into bytes: 'v8' (default), 'msgpack', 'msgpack-refs', or `{ name, encode, decode }`. */
  codec?: CodecOption<T>;
}

const MIN_QUEUE_CAPACITY = 1024;
const MAX_QUEUE_CAPACITY = 2 ** 31 - 2 ** 16;

const CREATE_NAMES: Names<SharedQueueOptions<unknown>> = {
  capacity: true,
  maxMessageSize: true,
  name: true,
  path: true,
  codec: true,
};
const ATTACH_NAMES: Names<{ codec?: unknown }> = { codec: true };

// A take that found nothing; a message may itself be undefined.
const EMPTY: unique symbol = Symbol('empty');

/** Many messages of type `T` in one region, pushed and taken by any process or thread, each taken once. */
export class SharedQueue<T = unknown> implements Queue<T> {
  // Set by attach() for the constructor to adopt.
  static #adopting: { region: Region; codec: Codec } | undefined;
  #handle: RegionHandle;
  #view: QueueView;
  #codec: Codec<T>;
  // The waits of take() and pushAsync(), for close() to end.
  readonly #waits = new Set<AbortController>();

  /** Same as `SharedQueue.create(options)`. */
  constructor(options: SharedQueueOptions<T>) {
    const adopted = SharedQueue.#adopting;
    SharedQueue.#adopting = undefined;
    let region: Region;
    if (adopted === undefined) {
      const { capacity, maxMessage } = planQueue(options);
      this.#codec = resolveCodec(options.codec) as Codec<T>;
      region = createRegion('queue', capacity, codecId(this.#codec.name), options.path, (bytes) =>
        initQueue(bytes, maxMessage),
      );
    } else {
      this.#codec = adopted.codec as Codec<T>;
      region = adopted.region;
    }
    try {
      this.#view = viewOf(region.bytes, region.size, region.handle);
    } catch (error) {
      closeRegion(region);
      throw error;
    }
    const name = adopted === undefined ? options.name : undefined;
    this.#handle = new RegionHandle(region, 'SharedQueue', name, () => repair(this.#view));
  }

  /** Creates a queue whose ring holds `capacity` bytes of messages. */
  static create<T = unknown>(options: SharedQueueOptions<T>): SharedQueue<T> {
    return new SharedQueue<T>(options);
  }

  /** Attaches to a queue by `queue.handle`, by a name given to `create()` in an ancestor, or by path. */
  static attach<T = unknown>(ref: string, options: { codec?: CodecOption<T> } = {}): SharedQueue<T> {
    checkNames(options, ATTACH_NAMES);
    SharedQueue.#adopting = attachKind(ref, 'queue', options.codec);
    return new SharedQueue<T>(undefined as never);
  }

  /** Appends `value`; false when the ring has no room for it now. Never waits (but for the lock, briefly). */
  push(value: T): boolean {
    const view = this.#open();
    const payload = this.#encode(value);
    return this.#handle.exclusive(() => append(view, payload));
  }

  /** Appends `value` once there is room: resolves when it is in the queue; rejects as lockAsync() does. */
  async pushAsync(value: T, options: LockAsyncOptions = {}): Promise<void> {
    const view = this.#open();
    const payload = this.#encode(value);
    await this.#wait(
      () => (this.#handle.exclusive(() => append(view, payload)) ? true : undefined),
      options,
      (timeout) => `no room for a message of ${payload.length} bytes within ${timeout} ms`,
    );
  }

  /** Takes the oldest message; undefined when there is none. Never waits (but for the lock, briefly). */
  shift(): T | undefined {
    const taken = this.#take();
    return taken === EMPTY ? undefined : taken;
  }

  /**
   * Takes up to `max` messages at once, oldest first: all there are by default. Stops before a message its codec
   * cannot decode, which the next take meets.
   */
  shiftMany(max = Infinity): T[] {
    checkMax(max);
    const view = this.#open();
    return this.#handle.exclusive(() => {
      const taken: T[] = [];
      while (taken.length < max && lockedEnds(view).count > 0) {
        const next = this.#takeLocked(view, taken.length === 0);
        if (next === EMPTY) break;
        taken.push(next);
      }
      return taken;
    });
  }

  /** Takes the oldest message, waiting for one; rejects as lockAsync() does, having taken nothing. */
  async take(options: LockAsyncOptions = {}): Promise<T> {
    const { taken } = await this.#wait(
      () => {
        const next = this.#take();
        return next === EMPTY ? undefined : { taken: next };
      },
      options,
      (timeout) => `no message within ${timeout} ms`,
    );
    return taken;
  }

  /** Takes messages as they come, waiting for each; ends when this instance is closed. */
  [Symbol.asyncIterator](): AsyncGenerator<T> {
    return takeEach(this);
  }

  /** Messages in the queue now, for every process. */
  get size(): number {
    return ends(this.#open()).count;
  }

  /** The counts, as one moment saw them. */
  stats(): QueueStats {
    const view = this.#open();
    const { head, tail, count, pushed, taken } = snapshot(view);
    // Records and padding from HEAD's offset to TAIL's; with TAIL at HEAD, none or all.
    const bytes = count === 0 ? 0 : (tail.offset - head.offset + view.size) % view.size || view.size;
    return { messages: count, bytes, capacity: view.size, pushed, taken, repairs: repairs(view) };
  }

  /**
   * Checks every invariant of the queue under the lock, after the repair a writer that died holding it calls for:
   * `problems` has one line each; `ok` when there are none.
   */
  verify(): Verification {
    const view = this.#open();
    return this.#handle.reading(() => verifyQueue(view, (bytes) => this.#codec.decode(bytes)));
  }

  /** Encoded bytes of one message at most. */
  get maxMessageSize(): number {
    return this.#open().maxMessage;
  }

  /** What another process passes to `attach()`. */
  get handle(): string {
    return this.#handle.handle;
  }

  /** Whether close() has run. */
  get closed(): boolean {
    return this.#handle.closed;
  }

  /** Releases the descriptor and the name in `process.env`; later calls throw ERR_CLOSED, and waits reject with it. */
  close(): void {
    for (const closing of this.#waits) closing.abort(shareError('ERR_CLOSED', 'this SharedQueue was closed'));
    this.#handle.close();
  }

  /** Same as close(), for `using queue = SharedQueue.attach(ref)`. */
  [Symbol.dispose](): void {
    this.close();
  }

  // Waits on the doorbell until `attempt` gives something, ending at once, with ERR_CLOSED, when close() runs.
  async #wait<R>(attempt: () => R | undefined, options: LockAsyncOptions, explain: (timeout: number) => string) {
    checkNames(options, LOCK_ASYNC_NAMES);
    const { timeout, signal: given } = checkWait(options);
    const region = this.#handle.open();
    const closing = new AbortController();
    this.#waits.add(closing);
    try {
      const signal = given ? AbortSignal.any([given, closing.signal]) : closing.signal;
      // Every push and take rings: only one killed between its commit and its ring goes unheard, until a look a
      // second later.
      const wait = { timeout, signal, explain: () => explain(timeout), lookMs: LOOK_MS, gapMs: QUEUE_GAP_MS };
      return await waitOn(region, attempt, wait);
    } finally {
      this.#waits.delete(closing);
    }
  }

  #take(): T | typeof EMPTY {
    const view = this.#open();
    // Nothing to take is seen without the lock: a waiter's look costs no lock while the queue stays empty.
    if (looksEmpty(view)) return EMPTY;
    return this.#handle.exclusive(() => (lockedEnds(view).count === 0 ? EMPTY : this.#takeLocked(view, true)));
  }

  // Takes the oldest message. One its codec cannot decode is taken too when `drop` (so that it never blocks the queue)
  // and thrown as ERR_BAD_HANDLE; else it is left, and EMPTY returned.
  #takeLocked(view: QueueView, drop: boolean): T | typeof EMPTY {
    const { head } = lockedEnds(view);
    let offset = head.offset;
    let length = view.ring.readUInt32LE(offset);
    if (length === PAD) [offset, length] = [0, view.ring.readUInt32LE(0)];
    if (length > view.maxMessage || offset + recordBytes(length) > view.size) {
      throw corruptQueue(view, `the record at offset ${offset} has length ${length}`);
    }
    const start = offset + RECORD_HEADER;
    let value: T | typeof EMPTY;
    let failure: unknown;
    try {
      value = decodeView(this.#codec, view.ring.subarray(start, start + length));
    } catch (error) {
      if (!drop) return EMPTY;
      value = EMPTY;
      failure = error;
    }
    step('queue.read');
    const count = (head.count + 1) >>> 0;
    commitHead(view, { offset: (offset + recordBytes(length)) % view.size, count });
    step('queue.taken');
    if (count % TOTALS_EVERY === 0) storeTotals(view);
    if (value === EMPTY) {
      throw shareError('ERR_BAD_HANDLE', `${view.what} held a message its codec cannot decode: it was dropped`, {
        cause: failure,
      });
    }
    return value;
  }

  #encode(value: T): Uint8Array {
    const payload = encodeValue(this.#codec, value);
    checkMessageSize(payload.length, this.#view.maxMessage);
    return payload;
  }

  #open(): QueueView {
    this.#handle.open();
    return this.#view;
  }
}

/** The ring's capacity and the largest message of a new queue, from its options; refused here, before any file. */
function planQueue(options: SharedQueueOptions<unknown>): { capacity: number; maxMessage: number } {
  checkNames(options, CREATE_NAMES, 'an object with a capacity');
  // A multiple of 4, so that every record starts aligned.
  const capacity = parseBytes('capacity', options.capacity, MIN_QUEUE_CAPACITY, MAX_QUEUE_CAPACITY) & ~3;
  const maxMessage = checkCount(
    'maxMessageSize',
    options.maxMessageSize,
    capacity - RECORD_HEADER,
    capacity - RECORD_HEADER,
  );
  if ('codec' in options) resolveCodec(options.codec);
  checkPlacement(options.name, options.path);
  return { capacity, maxMessage };
}

/** Writes `payload` as a record past the newest and commits it; false when the free part of the ring is too small. */
function append(view: QueueView, payload: Uint8Array): boolean {
  const { ring, size } = view;
  const need = recordBytes(payload.length);
  const { head, tail: end, count } = lockedEnds(view);
  let at: number;
  if (count === 0) {
    // An empty ring starts again at offset 0, where any message up to MAX_MESSAGE fits.
    if (head.offset !== 0) commitHead(view, { offset: 0, count: head.count });
    at = 0;
  } else {
    // The free part: from TAIL to the ring's end and from its start to HEAD, or from TAIL to HEAD (none: full).
    const [from, oldest] = [end.offset, head.offset];
    if (oldest < from) at = size - from >= need ? from : need <= oldest ? 0 : -1;
    else at = oldest - from >= need ? from : -1;
    if (at < 0) return false;
    if (at !== from) ring.writeUInt32LE(PAD, from);
  }
  ring.set(payload, at + RECORD_HEADER);
  ring.writeUInt32LE(payload.length, at);
  step('queue.written');
  const pushed = (end.count + 1) >>> 0;
  commitTail(view, { offset: (at + need) % size, count: pushed });
  step('queue.committed');
  if (pushed % TOTALS_EVERY === 0) storeTotals(view);
  return true;
}
