// What a RedisShare and a RedisMap are made of alike: a connection of their own, the leases they may hold on it, and
// being closed; and the Lua clock both records go on from when Redis lost them.
import { shareError } from '../errors.js';
import { Connection, type RedisOptions, type Reply } from './connection.js';
import { Leases } from './lease.js';

/**
 * A Lua function, clock(): the server's time in microseconds, as the version of a record made again after Redis lost
 * it. It is above any version the lost record reached, unless that took more than one change a microsecond.
 */
export const CLOCK = `
local function clock()
  local now = redis.call('TIME')
  return now[1] .. string.format('%06d', now[2])
end`;

export class Handle {
  readonly connection: Connection;
  readonly leases: Leases;
  readonly #name: string;
  #closed = false;

  constructor(connection: Connection, name: string, lease: number) {
    this.connection = connection;
    this.leases = new Leases(connection, lease);
    this.#name = name;
  }

  /**
   * Opens a connection and makes a handle on it with `make`; the connection is closed again when that fails (the
   * record is missing, or is another's).
   */
  static async make<H>(options: RedisOptions, make: (connection: Connection) => Promise<H>): Promise<H> {
    const connection = await Connection.open(options);
    try {
      return await make(connection);
    } catch (error) {
      await connection.close();
      throw error;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** ERR_CLOSED once closed. */
  open(): void {
    if (this.#closed) throw shareError('ERR_CLOSED', `this ${this.#name} is closed`);
  }

  call(args: (string | Buffer)[]): Promise<Reply> {
    this.open();
    return this.connection.call(args);
  }

  script(source: string, keys: string[], args: (string | Buffer)[]): Promise<Reply> {
    this.open();
    return this.connection.script(source, keys, args);
  }

  /**
   * Closes once: gives back every lease the handle may hold (asked for or held), then runs `closing`, then closes the
   * connection whatever they did.
   */
  async close(closing: () => Promise<unknown>): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.leases.giveBackAll();
      await closing();
    } finally {
      await this.connection.close();
    }
  }
}
