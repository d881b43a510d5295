// fetch() across the cluster: the marker a computing instance stores in place of a missing value, so that one
// process computes it while the others wait, and the lease that lets them take over from a computation that is lost.
import type { Compute } from '../api.js';
import type { Codec } from '../codec.js';
import { step } from '../crash.js';
import { type FlightControl, Flights } from '../flight.js';
import type { RegionHandle } from '../handle.js';
import { RACED as RACE } from '../layout.js';
import { isGone, ownOwner } from '../lock.js';
import { waitOn } from '../bell.js';
import type { Region } from '../region.js';
import { type Exclusive, expiresOf, FLAG_PENDING, isExpired, type MapView, setExpires } from './layout.js';
import { encodeFor, expiry } from './options.js';
import { decodeLocked } from './reader.js';
import { encoded, encodeKey, find, found, MISS, ownKey, RACED } from './table.js';
import type { Outcome } from './counters.js';
import { type Marker, markerBytes, markerOf, put, recordOf, remove } from './writer.js';

// A fetch marker is a lease: its computing instance renews it every LEASE_MS / 3, so that a marker whose thread was
// lost in a way /proc cannot prove (a blocked event loop aside) lets other processes compute after LEASE_MS.
const LEASE_MS = 10_000;
let lastToken = 0;

/** What the marker protocol needs of the map that owns it. */
export interface MarkerHost<V> {
  /** The map's view; its mapping outlives close(), so reading it then is safe, though stale. */
  view: MapView;
  /** Its region, whose doorbell a waiter sleeps on. */
  region: Region;
  codec: Codec<V>;
  exclusive: Exclusive;
  optimistic: RegionHandle['optimistic'];
  /** The view, or ERR_CLOSED once the map is closed. */
  open(): MapView;
  closed(): boolean;
  count(outcome: Outcome): void;
}

/** One map instance's fetches: its runs under way, and its markers in the map. */
export class FetchMarkers<V> {
  readonly #host: MarkerHost<V>;
  readonly #flights: Flights<V | undefined>;
  // This instance's fetch markers: key to token.
  readonly #markers = new Map<string, number>();

  constructor(host: MarkerHost<V>) {
    this.#host = host;
    this.#flights = new Flights(() => host.count('coalesced'));
  }

  /** fetch() past its checks and a miss: joins this instance's run for `key`, or starts one. */
  fetch(
    key: string,
    compute: Compute<V | undefined>,
    ttl: number | undefined,
    timeout: number,
    signal: AbortSignal | undefined,
  ): Promise<V | undefined> {
    return this.#flights.join(key, timeout, signal, (control) => this.#fetchShared(key, compute, ttl, control));
  }

  /** Whether this instance holds markers for dropAll() to remove. */
  get held(): boolean {
    return this.#markers.size > 0;
  }

  /** Removes every marker of this instance, at close. Under the lock. */
  dropAll(view: MapView): void {
    for (const [name, token] of this.#markers) this.#dropMarker(view, name, token);
  }

  async #fetchShared(
    name: string,
    compute: Compute<V | undefined>,
    ttl: number | undefined,
    control: FlightControl,
  ): Promise<V | undefined> {
    for (let waited = false; ; waited = true) {
      const claim = this.#claim(name);
      if (claim.kind === 'value') {
        this.#host.count(waited ? 'coalesced' : 'hits');
        return claim.value;
      }
      if (claim.kind === 'mine') {
        this.#host.count('misses');
        control.computing();
        return this.#compute(name, claim.token, compute, ttl, control.signal);
      }
      control.waitingFor(`pid ${claim.marker.id} to compute it`);
      await waitOn(this.#host.region, () => (this.#markerLapsed(name, claim.ver, claim.marker) ? true : undefined), {
        timeout: Infinity,
        signal: control.signal,
        explain: () => '',
      });
    }
  }

  // Under the lock: the key's value if it has one; else this instance's marker, put in place of none, or of a marker
  // whose lease ran out or whose thread is gone; else the live marker of the thread computing it.
  #claim(
    name: string,
  ): { kind: 'value'; value: V } | { kind: 'mine'; token: number } | { kind: 'wait'; ver: number; marker: Marker } {
    const view = this.#host.open();
    encodeKey(name, view.maxKey);
    const { bytes, hash } = ownKey();
    return this.#host.exclusive(() => {
      const now = Date.now();
      const slot = find(view, bytes, bytes.length, hash, true);
      if (slot !== MISS) {
        const record = recordOf(view, found.head);
        const live = !isExpired(record.expires, now);
        if (!(record.flags & FLAG_PENDING) && live) {
          return {
            kind: 'value',
            value: decodeLocked(view, this.#host.codec, found.head, record.keyLength, record.valueLength),
          };
        }
        const marker = record.flags & FLAG_PENDING && live ? markerOf(view, found.head) : undefined;
        if (marker !== undefined && !isGone(marker)) return { kind: 'wait', ver: found.ver, marker };
      }
      const token = (lastToken = (lastToken + 1) >>> 0);
      const value = markerBytes({ ...ownOwner(), token });
      put(view, { key: bytes, hash, flags: FLAG_PENDING, value, expires: now + LEASE_MS }, now);
      this.#markers.set(name, token);
      step('marker.claimed');
      return { kind: 'mine', token };
    });
  }

  // Runs compute for the marker `token` holds, renewing its lease meanwhile; stores what it returns in place of the
  // marker, or drops the marker on every way out that stores nothing (compute, encode or store failing).
  async #compute(
    name: string,
    token: number,
    compute: Compute<V | undefined>,
    ttl: number | undefined,
    signal: AbortSignal,
  ): Promise<V | undefined> {
    const renewal = setInterval(() => this.#renew(name, token), LEASE_MS / 3);
    renewal.unref();
    try {
      const value = await compute(name, { signal });
      const payload = value === undefined ? undefined : encodeFor(this.#host.view, this.#host.codec, value);
      const view = this.#host.open();
      this.#host.exclusive(() => {
        const slot = this.#markerSlot(view, name, token);
        const key = encoded.bytes.subarray(0, encoded.length);
        const now = Date.now();
        if (slot === MISS) {
          // Without its marker, a value someone set meanwhile is newer than this computation: it stays.
        } else if (payload === undefined) remove(view, slot, undefined);
        else put(view, { key, hash: encoded.hash, flags: 0, value: payload, expires: expiry(view, ttl, now) }, now);
        // A run aborted but still computing must not forget the marker of the run that followed it.
        if (this.#markers.get(name) === token) this.#markers.delete(name);
      });
      return value;
    } catch (error) {
      if (this.#markers.get(name) === token && !this.#host.closed()) {
        this.#host.exclusive(() => this.#dropMarker(this.#host.view, name, token));
      }
      throw error;
    } finally {
      clearInterval(renewal);
    }
  }

  // Extends the lease of this instance's marker for `name`, while it is there.
  #renew(name: string, token: number): void {
    if (this.#host.closed() || this.#markers.get(name) !== token) return;
    const { view } = this.#host;
    try {
      this.#host.exclusive(() => {
        const slot = this.#markerSlot(view, name, token);
        if (slot === MISS) return;
        setExpires(view, found.head, Date.now() + LEASE_MS);
        step('marker.renewed');
      });
    } catch {
      // A timer has no caller to tell: the lease lapses, and the store after compute meets the same damage and throws.
    }
  }

  // The slot of this instance's marker for `name` with `token`, or MISS; leaves the key encoded. Under the lock.
  #markerSlot(view: MapView, name: string, token: number): number {
    encodeKey(name, view.maxKey);
    const slot = find(view, encoded.bytes, encoded.length, encoded.hash, true);
    if (slot === MISS || !(recordOf(view, found.head).flags & FLAG_PENDING)) return MISS;
    const marker = markerOf(view, found.head);
    const owner = ownOwner();
    return marker.token === token && marker.id === owner.id && marker.start === owner.start ? slot : MISS;
  }

  // Removes this instance's marker for `name`, if it is still there.
  #dropMarker(view: MapView, name: string, token: number): void {
    const slot = this.#markerSlot(view, name, token);
    if (slot !== MISS) {
      remove(view, slot, undefined);
      step('marker.dropped');
    }
    this.#markers.delete(name);
  }

  // Whether the marker a waiter saw for `name` (version `ver`) is gone, replaced, past its lease, or its thread gone.
  #markerLapsed(name: string, ver: number, marker: Marker): boolean {
    const view = this.#host.open();
    const replaced = (slot: number) => slot === MISS || found.ver !== ver || isExpired(expiresOf(view, found.head));
    encodeKey(name, view.maxKey);
    const seen = this.#host.optimistic(
      () => {
        const slot = find(view, encoded.bytes, encoded.length, encoded.hash, false);
        return slot === RACED ? RACE : replaced(slot);
      },
      // Writers kept moving slots, or this machine reads only under the lock.
      () => {
        encodeKey(name, view.maxKey);
        return replaced(find(view, encoded.bytes, encoded.length, encoded.hash, true));
      },
    );
    return seen || isGone(marker);
  }
}
