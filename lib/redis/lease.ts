// Leases: grants in Redis held under a random token for a number of milliseconds, renewed every third of that while
// held, and given back on every way out. What a grant is and how it is taken are the owner's scripts (RedisShare's
// lock, fields of its record; RedisMap's fetch claim, a key of its own): a lease only renews it and gives it back.
import { randomBytes } from 'node:crypto';
import type { Connection, Reply } from './connection.js';

/** The owner's scripts for one kind of grant. */
export interface Grant {
  /** The keys both scripts run on. */
  keys: string[];
  /** Extends the grant: ARGV[1] the token, ARGV[2] the lease in ms; answers 0 when the token no longer holds it. */
  renew: string;
  /** Gives the grant back if ARGV[1], the token, holds it; answers 0 when it does not. */
  release: string;
  /** The args of either script from these first ones (a RedisShare adds what makes its record again). */
  args?: (args: string[]) => (string | Buffer)[];
}

/** The leases one RedisShare or RedisMap may hold: those asked for and not yet answered, and those held. */
export class Leases {
  readonly ms: number;
  readonly #connection: Connection;
  readonly #live = new Set<Lease>();

  constructor(connection: Connection, ms: number) {
    this.#connection = connection;
    this.ms = ms;
  }

  /** A lease under a new token, live from before it is asked for: Redis may grant it though its answer is lost. */
  ask(grant: Grant): Lease {
    const lease = new Lease(this.#connection, this.ms, grant, this.#live);
    this.#live.add(lease);
    return lease;
  }

  /** Gives back every live lease, on close(): one asked for whose answer comes later is given back all the same. */
  async giveBackAll(): Promise<void> {
    await Promise.all([...this.#live].map((lease) => lease.giveBack()));
  }
}

export class Lease {
  readonly token = randomBytes(12).toString('hex');
  readonly #connection: Connection;
  readonly #ms: number;
  readonly #grant: Grant;
  readonly #live: Set<Lease>;
  #renewal: NodeJS.Timeout | undefined;

  constructor(connection: Connection, ms: number, grant: Grant, live: Set<Lease>) {
    this.#connection = connection;
    this.#ms = ms;
    this.#grant = grant;
    this.#live = live;
  }

  /**
   * Renews the grant every third of the lease until it is given back or forgotten. A renewal that finds the lease
   * ended or another holder stops: the owner's next script under this token says the grant was lost.
   */
  hold(): void {
    const renewal = setInterval(() => {
      this.#script(this.#grant.renew, [this.token, String(this.#ms)]).then(
        (renewed) => renewed === 0 && clearInterval(renewal),
        () => {},
      );
    }, this.#ms / 3);
    renewal.unref();
    this.#renewal = renewal;
  }

  /** Stops renewing and forgets the lease without giving it back (not granted, or ended by an owner's script). */
  forget(): boolean {
    clearInterval(this.#renewal);
    this.#renewal = undefined;
    return this.#live.delete(this);
  }

  /** Gives the grant back now; the script's answer, 0 when this token no longer held it. */
  release(): Promise<Reply> {
    this.forget();
    return this.#script(this.#grant.release, [this.token]);
  }

  /**
   * Gives the grant back if this token holds it, even while closing; while Redis cannot be reached, again on
   * reconnect until the lease would have ended. Nothing when the lease was given back or forgotten already.
   */
  async giveBack(): Promise<void> {
    if (!this.forget()) return;
    const { release, keys } = this.#grant;
    await this.#connection.undo(release, keys, this.#args([this.token]), Date.now() + this.#ms);
  }

  #script(source: string, args: string[]): Promise<Reply> {
    return this.#connection.script(source, this.#grant.keys, this.#args(args));
  }

  #args(args: string[]): (string | Buffer)[] {
    return this.#grant.args?.(args) ?? args;
  }
}
