// RedisQueue: the SharedQueue API over a Redis list, for processes on several machines. Every method returns a
// promise; waiting blocks on a token list (BLPOP) on a connection of its own. Its keys and scripts are in
// lib/redis/queue-scripts.ts.
import type { LockAsyncOptions, Queue, QueueStats } from '../api.js';
import { type Codec, codecFor, codecId, type CodecOption, resolveCodec } from '../codec.js';
import { shareError } from '../errors.js';
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
import { armDeadline, takeEach } from '../wait.js';
import { checkKey, checkLease, decodeStored, encodeOwned, REDIS_NAMES } from './checks.js';
import { type Connection, type RedisOptions, type Reply, text } from './connection.js';
import { Handle } from './handle.js';
import { ATTACH, CREATE, PUSH, STATS, TAKE } from './queue-scripts.js';

export interface RedisQueueOptions<T> extends RedisOptions {
  /** Bytes of encoded messages the queue holds at most: a number, or a string such as '16MB'. */
  capacity: number | string;
  /** Encoded bytes of one message at most. Default: the capacity. */
  maxMessageSize?: number;
  codec?: CodecOption<T>;
}

export interface RedisQueueAttachOptions<T> extends RedisOptions {
  /** The codec the queue was created with (a custom one must be given); another is ERR_CODEC_MISMATCH. */
  codec?: CodecOption<T>;
}

const CREATE_NAMES: Names<RedisQueueOptions<unknown>> = {
  ...REDIS_NAMES,
  capacity: true,
  maxMessageSize: true,
  codec: true,
};
const ATTACH_NAMES: Names<RedisQueueAttachOptions<unknown>> = { ...REDIS_NAMES, codec: true };
// Redis's limit on one string.
const MAX_CAPACITY = 2 ** 53 - 1;
const MAX_MESSAGE = 512 * 2 ** 20;
// A waiter looks again at least this often, whatever tokens say: the bound on a wake-up lost with a dead waiter, or
// taken by a pusher whose message did not fit.
const LOOK_SECONDS = 1;

/** Messages shared through a Redis list: the SharedQueue API, every method returning a promise. */
export class RedisQueue<T = unknown> implements Queue<T> {
  readonly #handle: Handle;
  readonly #codec: Codec<T>;
  readonly #name: string;
  readonly #maxMessage: number;
  readonly #keys: { record: string; list: string; wake: string; room: string };
  readonly #waits = new Set<AbortController>();
  // The BLPOP in flight on each token list, and how many waits share it.
  readonly #naps = new Map<string, { waiters: number; done: Promise<void> }>();
  // Calls sent and not yet answered.
  readonly #sent = new Set<Promise<unknown>>();

  private constructor(handle: Handle, name: string, codec: Codec<T>, maxMessage: number) {
    this.#handle = handle;
    this.#name = name;
    this.#codec = codec;
    this.#maxMessage = maxMessage;
    const record = `{${name}}:q`;
    this.#keys = { record, list: `${record}:list`, wake: `${record}:wake`, room: `${record}:room` };
  }

  // A queue holds no lease: its handle has the default, for nothing.
  static #handleOn(connection: Connection): Handle {
    return new Handle(connection, 'RedisQueue', checkLease());
  }

  /** Creates the queue named `name`; ERR_EXISTS when Redis holds one under that name already. */
  static async create<T = unknown>(name: string, options: RedisQueueOptions<T>): Promise<RedisQueue<T>> {
    checkKey(name);
    checkNames(options, CREATE_NAMES, 'an object with a capacity');
    const capacity = parseBytes('capacity', options.capacity, 1, MAX_CAPACITY);
    const maxMessage = checkCount(
      'maxMessageSize',
      options.maxMessageSize,
      Math.min(capacity, MAX_MESSAGE),
      Math.min(capacity, MAX_MESSAGE),
    );
    const codec = resolveCodec(options.codec) as Codec<T>;
    return Handle.make(options, async (connection) => {
      const made = await connection.script(CREATE, [`{${name}}:q`], [codec.name, String(capacity), String(maxMessage)]);
      if (made === 0) throw shareError('ERR_EXISTS', `Redis already holds a queue named ${JSON.stringify(name)}`);
      return new RedisQueue<T>(RedisQueue.#handleOn(connection), name, codec, maxMessage);
    });
  }

  /** Attaches to the queue named `name`, with the codec it records. */
  static async attach<T = unknown>(name: string, options: RedisQueueAttachOptions<T> = {}): Promise<RedisQueue<T>> {
    checkKey(name);
    checkNames(options, ATTACH_NAMES);
    return Handle.make(options, async (connection) => {
      const [codecName, , max] = (await connection.script(ATTACH, [`{${name}}:q`], [])) as (Buffer | null)[];
      if (codecName === null || max === null) {
        throw shareError('ERR_BAD_HANDLE', `Redis holds no queue named ${JSON.stringify(name)}`);
      }
      const codec = codecFor(codecId(codecName!.toString()), options.codec) as Codec<T>;
      return new RedisQueue<T>(RedisQueue.#handleOn(connection), name, codec, Number(max));
    });
  }

  /** Appends `value`; false when the queue has no room for it now. Never waits. */
  async push(value: T): Promise<boolean> {
    const message = this.#encode(value);
    return this.#pushed(await this.#script(PUSH, [message]));
  }

  /** Appends `value` once there is room; rejects as lockAsync() does, having stored nothing. */
  async pushAsync(value: T, options: LockAsyncOptions = {}): Promise<void> {
    const message = this.#encode(value);
    await this.#wait(
      async () => (this.#pushed(await this.#script(PUSH, [message])) ? true : undefined),
      this.#keys.room,
      options,
      (timeout) => `no room for a message of ${message.length} bytes within ${timeout} ms`,
    );
  }

  /** Takes the oldest message; undefined when there is none. */
  async shift(): Promise<T | undefined> {
    return (await this.#take(1))[0];
  }

  /** Takes up to `max` messages at once, oldest first: all there are by default. */
  async shiftMany(max = Infinity): Promise<T[]> {
    checkMax(max);
    if (max === 0) {
      this.#handle.open();
      return [];
    }
    return this.#take(max === Infinity ? 2 ** 31 - 1 : max);
  }

  /** Takes the oldest message, waiting for one; rejects as lockAsync() does, having taken nothing. */
  async take(options: LockAsyncOptions = {}): Promise<T> {
    const { taken } = await this.#wait(
      async () => {
        // A message may itself be undefined: what tells a take from none is how many came.
        const taken = await this.#take(1);
        return taken.length === 0 ? undefined : { taken: taken[0] as T };
      },
      this.#keys.wake,
      options,
      (timeout) => `no message within ${timeout} ms`,
    );
    return taken;
  }

  /** Takes messages as they come, waiting for each; ends when this instance is closed. */
  [Symbol.asyncIterator](): AsyncGenerator<T> {
    return takeEach(this);
  }

  /** Messages in the queue now. */
  get size(): Promise<number> {
    return this.stats().then(({ messages }) => messages);
  }

  /** The counts of every process, from one atomic read; `repairs` is always 0 (no lock is held across calls). */
  async stats(): Promise<QueueStats> {
    const reply = (await this.#script(STATS, [], [this.#keys.record, this.#keys.list])) as Reply[];
    if (reply[0] === null) throw this.#gone();
    const [capacity, bytes, pushed, messages] = reply.map((count) =>
      typeof count === 'number' ? count : Number(text(count)),
    ) as [number, number, number, number];
    return { messages, bytes, capacity, pushed, taken: pushed - messages, repairs: 0 };
  }

  /** Encoded bytes of one message at most. */
  get maxMessageSize(): number {
    this.#handle.open();
    return this.#maxMessage;
  }

  /** The queue's name, which attach() takes. */
  get handle(): string {
    return this.#name;
  }

  get closed(): boolean {
    return this.#handle.closed;
  }

  /**
   * Closes the connections once the calls already sent have their answers (a take Redis ran has taken its message:
   * it resolves with it); later calls reject with ERR_CLOSED, and pending waits at once.
   */
  async close(): Promise<void> {
    for (const closing of this.#waits) closing.abort(shareError('ERR_CLOSED', 'this RedisQueue was closed'));
    await this.#handle.close(() => Promise.allSettled(this.#sent));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // Tries `attempt`, and after each miss blocks on the token list `tokens` for a second at most, until the attempt
  // gives something, the timeout passes or the signal aborts (close() aborts it too).
  async #wait<R>(
    attempt: () => Promise<R | undefined>,
    tokens: string,
    options: LockAsyncOptions,
    explain: (timeout: number) => string,
  ): Promise<R> {
    checkNames(options, LOCK_ASYNC_NAMES);
    const { timeout, signal: given } = checkWait(options);
    this.#handle.open();
    const closing = new AbortController();
    this.#waits.add(closing);
    const signal = given ? AbortSignal.any([given, closing.signal]) : closing.signal;
    const deadline = performance.now() + timeout;
    try {
      for (;;) {
        signal.throwIfAborted();
        const got = await attempt();
        if (got !== undefined) return got;
        const left = deadline - performance.now();
        if (left <= 0) throw shareError('ERR_LOCK_TIMEOUT', explain(timeout));
        await this.#token(tokens, deadline, signal);
      }
    } catch (error) {
      // A close() meanwhile fails the command in flight with the connection: the wait ended for close().
      signal.throwIfAborted();
      throw error;
    } finally {
      this.#waits.delete(closing);
    }
  }

  // Waits until a token comes to `key`, the `deadline` (a performance.now() time) passes or `signal` aborts. Every
  // waiter of this instance on `key` shares one BLPOP of a second, so that a token wakes them all; one that comes when
  // they have all given up is put back.
  async #token(key: string, deadline: number, signal: AbortSignal): Promise<void> {
    let nap = this.#naps.get(key);
    if (nap === undefined) {
      const started = { waiters: 0, done: Promise.resolve() };
      started.done = this.#handle.connection.block(key, ['BLPOP', key], LOOK_SECONDS).then(
        (token) => {
          this.#naps.delete(key);
          if (token !== null && started.waiters === 0 && !this.closed) {
            void this.#send(this.#handle.call(['RPUSH', key, '1'])).catch(() => {});
          }
        },
        () => void this.#naps.delete(key),
      );
      this.#naps.set(key, (nap = started));
    }
    nap.waiters++;
    let disarm = () => {};
    let abandon = () => {};
    try {
      await Promise.race([
        nap.done,
        new Promise<void>((resolve, reject) => {
          disarm = armDeadline(deadline, resolve);
          abandon = () => reject(signal.reason);
          if (signal.aborted) abandon();
          signal.addEventListener('abort', abandon, { once: true });
        }),
      ]);
    } finally {
      nap.waiters--;
      disarm();
      signal.removeEventListener('abort', abandon);
    }
  }

  // Counts `call` among the calls sent, which close() lets finish.
  #send<R>(call: Promise<R>): Promise<R> {
    this.#sent.add(call);
    const forget = () => void this.#sent.delete(call);
    call.then(forget, forget);
    return call;
  }

  async #take(max: number): Promise<T[]> {
    const reply = await this.#script(TAKE, [String(max)]);
    if (reply === -1) throw this.#gone();
    return (reply as Buffer[]).map((message) => decodeStored(this.#codec, message));
  }

  #pushed(reply: Reply): boolean {
    if (reply === -1) throw this.#gone();
    return reply === 1;
  }

  #script(source: string, args: (string | Buffer)[], keys = Object.values(this.#keys)) {
    return this.#send(this.#handle.script(source, keys, args));
  }

  #encode(value: T): Buffer {
    this.#handle.open();
    const message = encodeOwned(this.#codec, value);
    checkMessageSize(message.length, this.#maxMessage);
    return message;
  }

  #gone(): Error {
    return shareError('ERR_BAD_HANDLE', `Redis holds no queue named ${JSON.stringify(this.#name)} any more`);
  }
}
