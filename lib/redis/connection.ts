// One connection to Redis for a RedisShare or RedisMap: every command goes through call(), which gives replies as
// Buffers, fails fast while the connection is down instead of queueing, and turns client errors into coded ones.
import type { RedisClientOptions, RedisClientType } from 'redis';
import { MmapShareError, shareError } from '../errors.js';
import { requirePeer } from '../peer.js';

/** Where to reach Redis: a URL, or a node-redis client whose options a connection of our own copies. */
export interface RedisOptions {
  /** `redis://host:port`. Default: the client's, else `redis://127.0.0.1:6379`. */
  url?: string;
  /** A node-redis client; mmap-share opens connections of its own with the same options and never closes it. */
  client?: RedisClientType;
  /** Milliseconds a command may take before it fails with ERR_CONNECTION. Default: 5000. */
  commandTimeout?: number;
}

const DEFAULT_TIMEOUT_MS = 5000;
const LONGEST_RECONNECT_MS = 1000;

export type Reply = Buffer | number | null | Reply[];

export class Connection {
  readonly #client: RedisClientType;
  readonly #timeout: number;
  // Scripts that give back a grant, failed while the connection was down: sent again once it is up, until the grant
  // would have lapsed by itself (`lapses`, in Date.now() ms).
  #undo: { source: string; keys: string[]; args: (string | Buffer)[]; lapses: number }[] = [];
  #closing = false;
  #subscriber: Promise<RedisClientType> | undefined;
  // A connection for each lane of blocking commands, each running one at a time.
  readonly #lanes = new Map<string, Promise<RedisClientType>>();

  private constructor(client: RedisClientType, timeout: number) {
    this.#client = client;
    this.#timeout = timeout;
    client.on('ready', () => void this.#retryUndo());
  }

  static async open(options: RedisOptions): Promise<Connection> {
    const timeout = options.commandTimeout ?? DEFAULT_TIMEOUT_MS;
    if (typeof timeout !== 'number' || !(timeout > 0)) {
      throw shareError('ERR_BAD_OPTION', `commandTimeout must be a positive number of milliseconds`);
    }
    const { createClient } = loadRedis();
    const { client, url } = options;
    const made = await connect(
      (own) =>
        client === undefined
          ? (createClient({ url: url ?? 'redis://127.0.0.1:6379', ...own }) as unknown as RedisClientType)
          : // The client's socket options (host, port, tls) are kept, unless the url says where instead.
            (client.duplicate({ ...(url === undefined ? {} : { url }), ...own }) as unknown as RedisClientType),
      url === undefined ? client?.options?.socket : undefined,
      timeout,
    );
    return new Connection(made, timeout);
  }

  /** Runs one command; its reply with every string as a Buffer. */
  async call(args: (string | Buffer)[]): Promise<Reply> {
    // Between tries to connect again, node-redis would say "The client is closed": the socket's error says why.
    if (!this.#client.isOpen) throw connectionError(lost.get(this.#client) ?? new Error('the connection is closed'));
    try {
      // The client's own timeout ends only a command still waiting to be written, not one waiting for its answer.
      // Ours also holds the process open until the answer comes: the socket, unreferenced, does not.
      return await withTimeout(this.#client.sendCommand<Reply>(args), this.#timeout);
    } catch (error) {
      throw connectionError(error);
    }
  }

  /**
   * Runs a Lua script. Always EVAL, never EVALSHA then EVAL on NOSCRIPT: the resent EVAL would run after commands
   * sent meanwhile (a give-back overtaking the grant it undoes). Redis caches the script by its SHA1 all the same.
   */
  script(source: string, keys: string[], args: (string | Buffer)[]): Promise<Reply> {
    return this.call(['EVAL', source, String(keys.length), ...keys, ...args]);
  }

  /** Runs a script that gives back a grant; while Redis cannot be reached, again on reconnect until `lapses`. */
  async undo(source: string, keys: string[], args: (string | Buffer)[], lapses: number): Promise<void> {
    try {
      await this.script(source, keys, args);
    } catch {
      if (Date.now() < lapses) this.#undo.push({ source, keys, args, lapses });
    }
  }

  async #retryUndo(): Promise<void> {
    const pending = this.#undo.filter((undo) => Date.now() < undo.lapses);
    this.#undo = [];
    await Promise.all(pending.map(({ source, keys, args, lapses }) => this.undo(source, keys, args, lapses)));
    if (this.#closing) this.#end();
  }

  /** Calls `listener` for every message on `channel`, on a second connection; returns what unsubscribes. */
  async subscribe(channel: string, listener: (message: Buffer) => void): Promise<() => Promise<void>> {
    // One connection for every subscription, made once even when two calls ask for it at once.
    this.#subscriber ??= this.#duplicate(() => (this.#subscriber = undefined));
    const subscriber = await this.#subscriber;
    try {
      await subscriber.subscribe(channel, listener, true);
    } catch (error) {
      throw connectionError(error);
    }
    return async () => {
      if (subscriber.isOpen) await subscriber.unsubscribe(channel, listener, true).catch(() => {});
    };
  }

  /**
   * Runs a blocking command (BLPOP) that waits up to `seconds`, on a connection of the lane `lane`, so that the other
   * connections go on meanwhile. The caller sends one command at a time a lane.
   */
  async block(lane: string, args: string[], seconds: number): Promise<Reply> {
    let blocker = this.#lanes.get(lane);
    if (blocker === undefined) this.#lanes.set(lane, (blocker = this.#duplicate(() => this.#lanes.delete(lane))));
    const client = await blocker;
    if (!client.isOpen) throw connectionError(lost.get(client) ?? new Error('the connection is closed'));
    try {
      return await withTimeout(client.sendCommand<Reply>([...args, String(seconds)]), seconds * 1000 + this.#timeout);
    } catch (error) {
      throw connectionError(error);
    }
  }

  // A connection of its own with this one's options, for commands that would hold this one up.
  #duplicate(failed: () => void): Promise<RedisClientType> {
    const duplicate = (own: Own) => this.#client.duplicate(own) as unknown as RedisClientType;
    return connect(duplicate, this.#client.options?.socket, this.#timeout).catch((error) => {
      failed();
      throw error;
    });
  }

  /** Closes the connections; one with grants still to give back stays, unreferenced, until they are or lapse. */
  async close(): Promise<void> {
    for (const second of [this.#subscriber, ...this.#lanes.values()]) {
      const client = await second?.catch(() => undefined);
      if (client !== undefined) end(client);
    }
    this.#closing = true;
    if (this.#undo.length === 0) return this.#end();
    setTimeout(() => this.#end(), Math.max(...this.#undo.map((undo) => undo.lapses)) - Date.now()).unref();
  }

  #end(): void {
    if (this.#undo.length === 0 || Date.now() >= Math.max(...this.#undo.map((undo) => undo.lapses))) {
      this.#undo = [];
      end(this.#client);
    }
  }
}

let redis: typeof import('redis') | undefined;

// The optional peer is loaded by the first connection: mmap-share/redis imports without it, and says what to install.
const loadRedis = () => (redis ??= requirePeer<typeof import('redis')>('redis', 'mmap-share/redis'));

type Own = RedisClientOptions & Required<Pick<RedisClientOptions, 'socket'>>;

// Clients we destroyed: a connection lost is made again only for a client still in use.
const ended = new WeakSet<RedisClientType>();
// Why each client's connection was lost last, while it is being made again.
const lost = new WeakMap<RedisClientType, unknown>();

function end(client: RedisClientType): void {
  ended.add(client);
  client.destroy();
}

/**
 * Makes a client with `make` from the options every connection of ours has, and connects it. A first connection
 * that fails (refused, say) is reported at once: trying again until commandTimeout would only hide the cause.
 * Commands sent while the connection is down fail at once (a coded error, never a hang), and a connection lost is
 * made again by itself, the next command after that going through. Errors of the connection then are reported by
 * the commands that meet them.
 */
async function connect(
  make: (own: Own) => RedisClientType,
  socket: RedisClientOptions['socket'],
  timeout: number,
): Promise<RedisClientType> {
  const { RESP_TYPES } = loadRedis();
  const client = make({
    disableOfflineQueue: true,
    // node-redis waits between tries on a timer that holds the process open: it gives up at once instead, and the
    // tries again are ours, on timers that do not.
    socket: { ...socket, reconnectStrategy: (_retries, cause) => cause },
    commandOptions: { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer, [RESP_TYPES.SIMPLE_STRING]: Buffer } },
  } as Own);
  client.on('error', () => {});
  try {
    await withTimeout(client.connect(), timeout);
  } catch (error) {
    end(client);
    throw connectionError(error);
  }
  let retries = 0;
  client.on('ready', () => (retries = 0));
  // Each try that fails ends the client again, and so schedules the next.
  client.on('terminated', (cause: unknown) => {
    lost.set(client, cause);
    const wait = Math.min(50 * 2 ** retries++, LONGEST_RECONNECT_MS);
    setTimeout(() => ended.has(client) || client.connect().catch(() => {}), wait).unref();
  });
  // An idle connection lets the process end, as an unclosed SharedMap does; a watcher does not hold it open either.
  client.unref();
  return client;
}

/** A reply that is a Buffer, as a string; undefined for nil. */
export function text(reply: Reply): string | undefined {
  return Buffer.isBuffer(reply) ? reply.toString('utf8') : undefined;
}

function connectionError(error: unknown): Error {
  if (error instanceof MmapShareError) return error;
  // A connection our reconnect strategy gave up on wraps the socket's error: that is the cause (ECONNREFUSED).
  const cause = (error as { socketError?: unknown } | undefined)?.socketError ?? error;
  return shareError('ERR_CONNECTION', `Redis: ${(cause as Error).message ?? String(cause)}`, cause);
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
