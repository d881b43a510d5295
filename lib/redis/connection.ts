// One connection to Redis for a RedisShare or RedisMap: every command goes through call(), which gives replies as
// Buffers, fails fast while the connection is down instead of queueing, and turns client errors into coded ones.
import { createClient, type RedisClientType, RESP_TYPES } from 'redis';
import { MmapShareError, shareError } from '../errors.js';

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
    // Commands sent while the connection is down fail at once (a coded error, never a hang); the client reconnects
    // by itself, and the next command after that goes through.
    const own = {
      disableOfflineQueue: true,
      socket: { reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, LONGEST_RECONNECT_MS) },
      commandOptions: { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer, [RESP_TYPES.SIMPLE_STRING]: Buffer } },
    };
    const client = (options.client === undefined
      ? createClient({ url: options.url ?? 'redis://127.0.0.1:6379', ...own })
      : options.client.duplicate({
          ...(options.url === undefined ? {} : { url: options.url }),
          ...own,
        })) as unknown as RedisClientType;
    return new Connection(await connect(client, timeout), timeout);
  }

  /** Runs one command; its reply with every string as a Buffer. */
  async call(args: (string | Buffer)[]): Promise<Reply> {
    try {
      // The client's own timeout ends only a command still waiting to be written, not one waiting for its answer.
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
    this.#subscriber ??= connect(this.#client.duplicate() as RedisClientType, this.#timeout).catch((error) => {
      this.#subscriber = undefined;
      throw error;
    });
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

  /** Closes the connections; one with grants still to give back stays, unreferenced, until they are or lapse. */
  async close(): Promise<void> {
    const subscriber = await this.#subscriber?.catch(() => undefined);
    if (subscriber?.isOpen) subscriber.destroy();
    this.#closing = true;
    if (this.#undo.length === 0) return this.#end();
    this.#client.unref();
    setTimeout(() => this.#end(), Math.max(...this.#undo.map((undo) => undo.lapses)) - Date.now()).unref();
  }

  #end(): void {
    if (this.#undo.length === 0 || Date.now() >= Math.max(...this.#undo.map((undo) => undo.lapses))) {
      this.#undo = [];
      if (this.#client.isOpen) this.#client.destroy();
    }
  }
}

// Connects `client`; errors of the connection itself are reported by the commands that meet them.
async function connect(client: RedisClientType, timeout: number): Promise<RedisClientType> {
  client.on('error', () => {});
  try {
    await withTimeout(client.connect(), timeout);
  } catch (error) {
    client.destroy();
    throw connectionError(error);
  }
  return client;
}

/** A reply that is a Buffer, as a string; undefined for nil. */
export function text(reply: Reply): string | undefined {
  return Buffer.isBuffer(reply) ? reply.toString('utf8') : undefined;
}

function connectionError(error: unknown): Error {
  if (error instanceof MmapShareError) return error;
  return shareError('ERR_CONNECTION', `Redis: ${(error as Error).message ?? String(error)}`, error);
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
