// The express-session entry, `mmap-share/session`: a session store in a SharedMap, so that a session made by one
// worker of a cluster is found by every other (its MemoryStore keeps each in the process that made it); over a
// RedisMap, by every machine. A session expires with its cookie, by the map's TTL.
//
// Losing a session logs its user out, so a store refuses a map that evicts when full unless told it may: over a map
// made with eviction 'none', a session that does not fit fails with ERR_NO_SPACE and every stored one stays.
import type { SessionData, Store as SessionStoreBase } from 'express-session';
import type { Cache } from '../api.js';
import { describe, shareError } from '../errors.js';
import { checkNames, checkTtl } from '../options.js';
import { requirePeer } from '../peer.js';
import { checkCache, checkPrefix, clearUnder, keysUnder } from './cache.js';

export { MmapShareError, type ErrorCode } from '../errors.js';

const { Store } = requirePeer<{ Store: typeof SessionStoreBase }>('express-session', 'mmap-share/session');

export interface SessionStoreOptions {
  /** Put before every session id, so that several stores share a map. Default: 'sess:'. */
  prefix?: string;
  /** Milliseconds a session lives when its cookie has no expiry (a browser-session cookie); 0 for ever. Default: a day. */
  ttl?: number;
  /**
   * Lets the store live in a map that evicts its least recently used entries when full (SharedMap's default), at the
   * cost of logging out the users whose sessions are evicted. Default: false, which refuses such a map.
   */
  allowEviction?: boolean;
}

const OPTION_NAMES = { prefix: true, ttl: true, allowEviction: true } as const;
const DAY_MS = 86_400_000;

type Callback<T> = (error: unknown, result?: T) => void;

/**
 * An express-session store over `cache`: `session({ store: new SessionStore(SharedMap.attach('sessions')), ... })`.
 * Each method takes express-session's callback, or returns a promise when given none.
 */
export class SessionStore extends Store {
  readonly prefix: string;
  readonly #cache: Cache<SessionData>;
  readonly #ttl: number;

  constructor(cache: Cache<unknown>, options: SessionStoreOptions = {}) {
    super();
    checkNames(options, OPTION_NAMES);
    const { ttl = DAY_MS, allowEviction = false } = options;
    this.prefix = checkPrefix(options.prefix, 'sess:');
    checkTtl(ttl);
    if (typeof allowEviction !== 'boolean') {
      throw shareError('ERR_BAD_OPTION', `allowEviction must be a boolean, got ${describe(allowEviction)}`);
    }
    this.#cache = checkCache(cache as Cache<SessionData>, 'SessionStore');
    if ((cache as { eviction?: string }).eviction === 'lru' && !allowEviction) {
      throw shareError(
        'ERR_BAD_OPTION',
        "SessionStore refuses a map that evicts when full, since a session evicted logs its user out: create the map with eviction: 'none' (a session that does not fit then fails with ERR_NO_SPACE), or pass { allowEviction: true }",
      );
    }
    this.#ttl = ttl;
  }

  /** The session of `sid`, or null when there is none (or it expired). */
  override get(sid: string): Promise<SessionData | null>;
  override get(sid: string, callback: Callback<SessionData | null>): void;
  override get(sid: string, callback?: Callback<SessionData | null>): Promise<SessionData | null> | void {
    return settle(async () => (await this.#cache.get(this.prefix + sid)) ?? null, callback);
  }

  /** Stores `session` until its cookie expires; one whose cookie has expired is destroyed instead. */
  override set(sid: string, session: SessionData): Promise<void>;
  override set(sid: string, session: SessionData, callback: Callback<void>): void;
  override set(sid: string, session: SessionData, callback?: Callback<void>): Promise<void> | void {
    return settle(async () => {
      const ttl = this.#lifetime(session);
      if (ttl === undefined) await this.#cache.delete(this.prefix + sid);
      else await this.#cache.set(this.prefix + sid, stored(session), { ttl });
    }, callback);
  }

  /**
   * Gives the session of `sid` the expiry of `session`'s cookie, keeping what is stored: a request that only read
   * its session must not undo what another request wrote meanwhile. A session that is gone stays gone.
   */
  override touch(sid: string, session: SessionData): Promise<void>;
  override touch(sid: string, session: SessionData, callback: Callback<void>): void;
  override touch(sid: string, session: SessionData, callback?: Callback<void>): Promise<void> | void {
    return settle(async () => {
      const ttl = this.#lifetime(session);
      if (ttl === undefined) return void (await this.#cache.delete(this.prefix + sid));
      const { cookie } = stored(session);
      await this.#cache.update(this.prefix + sid, (current) => current && { ...current, cookie }, { ttl });
    }, callback);
  }

  override destroy(sid: string): Promise<void>;
  override destroy(sid: string, callback: Callback<void>): void;
  override destroy(sid: string, callback?: Callback<void>): Promise<void> | void {
    return settle(async () => void (await this.#cache.delete(this.prefix + sid)), callback);
  }

  /** Every session of this store, by session id, as express-session's MemoryStore gives them. */
  override all(): Promise<Record<string, SessionData>>;
  override all(callback: Callback<Record<string, SessionData>>): void;
  override all(callback?: Callback<Record<string, SessionData>>): Promise<Record<string, SessionData>> | void {
    return settle(async () => {
      const sessions: Record<string, SessionData> = {};
      for (const key of await keysUnder(this.#cache, this.prefix)) {
        const session = await this.#cache.peek(key);
        if (session !== undefined) sessions[key.slice(this.prefix.length)] = session;
      }
      return sessions;
    }, callback);
  }

  override length(): Promise<number>;
  override length(callback: Callback<number>): void;
  override length(callback?: Callback<number>): Promise<number> | void {
    return settle(async () => (await keysUnder(this.#cache, this.prefix)).length, callback);
  }

  /** Removes every session of this store's prefix; every key of the map when the prefix is ''. */
  override clear(): Promise<void>;
  override clear(callback: Callback<void>): void;
  override clear(callback?: Callback<void>): Promise<void> | void {
    return settle(() => clearUnder(this.#cache, this.prefix), callback);
  }

  /** Closes the map: call it once the map's last user in this process is done with it. */
  async close(): Promise<void> {
    await this.#cache.close();
  }

  // Milliseconds until the cookie expires, undefined once it has (or when its expiry is no date); the store's ttl
  // for a cookie without an expiry.
  #lifetime(session: SessionData): number | undefined {
    const expires = session.cookie?.expires;
    if (!expires) return this.#ttl;
    const ms = Math.ceil(new Date(expires).getTime() - Date.now());
    return ms > 0 ? ms : undefined;
  }
}

// The session as stored: its own fields, and the cookie's settings (a Cookie's are behind accessors).
function stored(session: SessionData): SessionData {
  const cookie = session.cookie as SessionData['cookie'] & { toJSON?: () => SessionData['cookie'] };
  return { ...session, cookie: typeof cookie?.toJSON === 'function' ? cookie.toJSON() : cookie };
}

// Runs `work`, then calls `callback` with its outcome, outside the promise (a callback that throws is an uncaught
// exception, as with express-session's MemoryStore). Without a callback, the outcome is returned as a promise, whose
// rejection is not an unhandled one: express-session calls a store without a callback (`req.session.destroy()`), and
// a failure the caller chose not to hear must not end the process.
function settle<T>(work: () => Promise<T>, callback: Callback<T> | undefined): Promise<T> | void {
  const done = work();
  if (callback !== undefined) {
    done.then(
      (result) => process.nextTick(callback, null, result),
      (error: unknown) => process.nextTick(callback, error),
    );
    return;
  }
  done.catch(() => {});
  return done;
}
