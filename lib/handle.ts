// RegionHandle: the lifecycle every kind of region shares: its name in process.env, being closed, the exclusive
// section and the optimistic read that falls back to it.
import { shareError } from './errors.js';
import { deafen, ring } from './bell.js';
import { RACED } from './layout.js';
import { deadHolder, LOCK_FREE_TRIES, releaseLock, takeDeadHolder, takeLock } from './lock.js';
import { closeRegion, envKey, type Region } from './region.js';

/** A kind's open region, held by one instance of MmapShare or SharedMap as a `#private` field. */
export class RegionHandle {
  #region: Region | undefined;
  readonly #kind: string;
  #envName: string | undefined;
  readonly #onDeadHolder: (() => void) | undefined;
  /** Whether this instance holds the exclusive lock: in a section, or taken by a share's lock(). */
  locked = false;
  #sections = 0;

  /**
   * Takes over `region`; with `name`, exports its handle as `MMAP_SHARE_<name>` for forked children. With
   * `onDeadHolder`, the first holder of the lock after one that died runs it to repair what that one left half done.
   */
  constructor(region: Region, kind: string, name?: string, onDeadHolder?: () => void) {
    this.#region = region;
    this.#kind = kind;
    this.#onDeadHolder = onDeadHolder;
    if (name !== undefined) {
      this.#envName = envKey(name);
      process.env[this.#envName] = region.handle;
    }
  }

  /** The region, or ERR_CLOSED once close() has run. */
  open(): Region {
    if (this.#region === undefined) throw shareError('ERR_CLOSED', `this ${this.#kind} is closed`);
    return this.#region;
  }

  get handle(): string {
    return this.open().handle;
  }

  get closed(): boolean {
    return this.#region === undefined;
  }

  /** Whether a section runs: its work (an update function) may not give back the lock it writes under. */
  get inSection(): boolean {
    return this.#sections > 0;
  }

  /** Gives back the lock taken by a section or by lock(), ringing for what was written and for the lock's waiters. */
  release(region: Region, rings = true): void {
    this.locked = false;
    releaseLock(region);
    if (rings) ring(region);
  }

  /**
   * Runs `work` holding the exclusive lock, taking it only if this instance does not hold it already: calls made from
   * `work` on this instance (an update function that calls get()) see the lock as held and do not take it. Rings the
   * region's doorbell after it, for what `work` wrote, and for the lock it gives back.
   */
  exclusive<R>(work: () => R): R {
    return this.#section(work, true);
  }

  /**
   * As exclusive(), for `work` that only reads: it rings for nothing, or a waiter whose look read under the lock
   * would ring for itself.
   */
  reading<R>(work: () => R): R {
    return this.#section(work, false);
  }

  #section<R>(work: () => R, rings: boolean): R {
    const region = this.open();
    if (this.locked) {
      this.#sections++;
      try {
        return work();
      } finally {
        this.#sections--;
        // Not once `work` closed this instance: its descriptor's number may name another file by now.
        if (rings && !this.closed) ring(region);
      }
    }
    takeLock(region);
    this.locked = true;
    this.#sections++;
    try {
      // DEAD is cleared only once the repair is done: a repair that dies or throws is run again by the next writer.
      if (this.#onDeadHolder !== undefined && deadHolder(region)) {
        this.#onDeadHolder();
        takeDeadHolder(region);
      }
      return work();
    } finally {
      this.#sections--;
      // close() from inside `work` has given the lock back already.
      if (this.locked) this.release(region, rings);
    }
  }

  /**
   * `tryOnce()` without the lock until it does not return RACED, LOCK_FREE_TRIES times at most; then `locked()`
   * under it. Writers kept changing what the reader read: under the lock they wait, so it cannot starve.
   */
  optimistic<R>(tryOnce: () => R | typeof RACED, locked: () => R): R {
    if (!this.locked) {
      for (let attempt = 0; attempt < LOCK_FREE_TRIES; attempt++) {
        const result = tryOnce();
        if (result !== RACED) return result;
      }
    }
    return this.reading(locked);
  }

  /**
   * Runs `beforeClose` (if the region is open), then gives back the lock if held, the descriptor and the name in
   * `process.env`, even when `beforeClose` throws. Idempotent.
   */
  close(beforeClose?: () => void): void {
    const region = this.#region;
    if (region === undefined) return;
    try {
      beforeClose?.();
    } finally {
      if (this.locked) this.release(region);
      deafen(region);
      closeRegion(region);
      this.#region = undefined;
      if (this.#envName !== undefined && process.env[this.#envName] === region.handle)
        delete process.env[this.#envName];
    }
  }
}
