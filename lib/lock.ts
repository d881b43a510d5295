// The writers' lock: a 64-bit word in the region naming its holder, flock for waiters to sleep on, and the proof a
// waiter needs before it takes the lock over from a holder that died.
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import type { LockInfo } from './api.js';
import { step } from './crash.js';
import { errnoOf, shareError } from './errors.js';
import { D_DEAD, D_LOCK, W_PARKED } from './layout.js';
import { flock } from './native.js';

/**
 * A thread as lock words, fetch markers and counter rows record it: its thread id (the pid, for a main thread) and
 * its start time in clock ticks after boot (low 32 bits).
 */
export interface Owner {
  readonly id: number;
  readonly start: number;
}

// The kernel's word on a thread: its start time and whether it is a zombie; undefined when /proc gave no answer.
function procStat(id: number): { start: number; zombie: boolean } | 'gone' | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${id}/stat`, 'latin1');
  } catch (error) {
    return errnoOf(error) === 'ENOENT' || errnoOf(error) === 'ESRCH' ? 'gone' : undefined;
  }
  // The command name in parentheses may hold spaces; the fields after it are plain: state first, starttime 20th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { start: Number(fields[19]) >>> 0, zombie: fields[0] === 'Z' || fields[0] === 'X' };
}

/**
 * Whether the thread `owner` is proven gone: /proc has no such thread, or shows a zombie, or a thread of another start
 * time (its id reused, or a word damaged into a live thread's id). Anything else (descriptors exhausted, /proc
 * unreadable) leaves it alive: a waiter that cannot prove a holder dead waits on.
 */
export function isGone(owner: Owner): boolean {
  const stat = procStat(owner.id);
  if (stat === 'gone') return true;
  return stat !== undefined && (stat.zombie || stat.start !== owner.start);
}

// This thread's id: /proc/thread-self names it (Linux 3.17); before that only a main thread's is known, its pid.
const ownId = (() => {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return process.pid;
  }
})();
let owner: Owner | undefined = ownerNow();

function ownerNow(): Owner | undefined {
  const stat = procStat(ownId);
  return typeof stat === 'object' ? { id: ownId, start: stat.start } : undefined;
}

/**
 * This thread, as it records itself: read once, at load, so that it never changes. Where /proc could not tell its
 * start time even then, ERR_NO_SPACE: a thread that cannot name itself must not take a lock.
 */
export function ownOwner(): Owner {
  owner ??= ownerNow();
  if (owner === undefined) {
    throw shareError(
      'ERR_NO_SPACE',
      `cannot read this thread's start time from /proc/${ownId}/stat (out of descriptors?)`,
    );
  }
  return owner;
}

const namespaces = new Map<string, number>();

/**
 * This process's `kind` namespace ('pid' or 'time'): the low 32 bits of its inode, or 0 where /proc does not tell.
 * Thread ids mean something only within one pid namespace, and start times within one time namespace.
 */
export function namespaceOf(kind: 'pid' | 'time'): number {
  let id = namespaces.get(kind);
  if (id === undefined) {
    try {
      id = statSync(`/proc/self/ns/${kind}`).ino % 2 ** 32;
    } catch {
      id = 0;
    }
    namespaces.set(kind, id);
  }
  return id;
}

/** An owner as one 64-bit word: its id low, its start time high; 0n is no owner. */
export function ownerWord(owner: Owner): bigint {
  return BigInt(owner.id) | (BigInt(owner.start) << 32n);
}

export function ownerOf(word: bigint): Owner {
  return { id: Number(word & 0xffffffffn), start: Number(word >> 32n) };
}

// Lock-free reads rely on x86-64 keeping loads in order (see readUnlocked); elsewhere every read takes the flock.
/** How many times a lock-free read is tried before the reader takes the lock. */
export const LOCK_FREE_TRIES = process.arch === 'x64' ? 4 : 0;

/** A region as the lock sees it: its id, its own descriptor, its header as 32-bit and 64-bit words. */
interface Lockable {
  readonly fd: number;
  readonly words: Uint32Array;
  readonly wide: BigUint64Array;
}

let mine: bigint | undefined;

// This thread's LOCK word.
function me(): bigint {
  mine ??= ownerWord(ownOwner());
  return mine;
}

/**
 * Takes the writers' lock, waiting as long as it takes (blocking the thread). `own` asks for a critical section of
 * the caller's own (lock()): the holder then also takes the exclusive flock, so that waiters sleep in the kernel until
 * it ends instead of polling.
 */
export function takeLock(region: Lockable, own = false): void {
  takeWordLock(region, me());
  held(region, own);
}

/**
 * Takes the writers' lock for a critical section of the caller's own if it is free, or if its holder is proven gone;
 * false when someone holds it.
 */
export function tryTakeLock(region: Lockable): boolean {
  const mine = me();
  const holder = Atomics.compareExchange(region.wide, D_LOCK, 0n, mine);
  if (holder !== 0n && (holder === mine || !isGone(ownerOf(holder)) || !takeOver(region, holder, mine))) return false;
  held(region, true);
  return true;
}

// Takes LOCK over from `holder`, proven gone, unless another waiter did first; records it in DEAD for lock() to report.
function takeOver(region: Lockable, holder: bigint, mine: bigint): boolean {
  if (Atomics.compareExchange(region.wide, D_LOCK, holder, mine) !== holder) return false;
  step('lock.tookOver');
  Atomics.store(region.wide, D_DEAD, holder);
  // The flock of a holder that died is free already; PARKED is what it left behind.
  Atomics.store(region.words, W_PARKED, 0);
  return true;
}

function held(region: Lockable, own: boolean): void {
  step('lock.taken');
  // Only a main thread parks waiters: a worker's descriptor, and so its flock, can outlive it (trackUnmanagedFds).
  if (own && isMainThread) {
    // Waiters take the shared flock only once PARKED is set, and drop it at once: this wait is short.
    flock(region.fd, 'ex');
    Atomics.store(region.words, W_PARKED, 1);
  }
}

/** Releases the writers' lock. */
export function releaseLock(region: Lockable): void {
  if (Atomics.exchange(region.words, W_PARKED, 0) !== 0) flock(region.fd, 'un');
  step('lock.releasing');
  Atomics.store(region.wide, D_LOCK, 0n);
}

// A waiter spins this long before it sleeps: writers hold the lock for about a microsecond.
const SPIN_MS = 0.02;
const LONGEST_SLEEP_MS = 0.1;
// How often a waiter asks whether the holder still runs.
const HOLDER_CHECK_MS = 5;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Takes the LOCK word with a compare-and-swap of this thread's owner word: no system call, where flock costs two. A
 * waiter spins briefly, then sleeps in growing steps, or in the shared flock while the holder is in a critical section
 * of its own (PARKED). Every HOLDER_CHECK_MS, and whenever the flock comes free while PARKED stays set, it checks
 * whether the holder is proven gone (isGone), and takes such a lock over with a compare-and-swap, so by one waiter.
 */
function takeWordLock(region: Lockable, mine: bigint): void {
  const { words, wide, fd } = region;
  let holder = Atomics.compareExchange(wide, D_LOCK, 0n, mine);
  if (holder === 0n) return;
  let seen = -1n;
  let since = 0;
  let checked = 0;
  let sleep = 0.01;
  for (;;) {
    if (holder === mine) {
      throw shareError('ERR_ALREADY_LOCKED', 'another instance in this thread holds the lock: waiting would deadlock');
    }
    const now = performance.now();
    if (holder !== seen) {
      // A new holder is checked as soon as the spin ends: one that died may have been found holding the lock.
      [seen, since, checked, sleep] = [holder, now, -Infinity, 0.01];
    }
    if (now - since >= SPIN_MS) {
      if (Atomics.load(words, W_PARKED) !== 0) {
        flock(fd, 'sh');
        flock(fd, 'un');
        // The flock came free with the lock still held and PARKED still set: the holder may have died with it.
        if (Atomics.load(wide, D_LOCK) === seen && Atomics.load(words, W_PARKED) !== 0) checked = -Infinity;
      }
      if (now - checked >= HOLDER_CHECK_MS) {
        checked = now;
        if (isGone(ownerOf(holder)) && takeOver(region, holder, mine)) return;
      }
      Atomics.wait(sleeper, 0, 0, sleep);
      sleep = Math.min(sleep * 2, LONGEST_SLEEP_MS);
    }
    holder = Atomics.load(wide, D_LOCK);
    if (holder === 0n) {
      holder = Atomics.compareExchange(wide, D_LOCK, 0n, mine);
      if (holder === 0n) return;
    }
  }
}

/** Whether a holder died holding the lock since the last report; for the holder to read. */
export function deadHolder(region: Lockable): boolean {
  return Atomics.load(region.wide, D_DEAD) !== 0n;
}

/** Reports, once, a holder that died holding the lock since the last report. */
export function takeDeadHolder(region: Lockable): LockInfo {
  const dead = Atomics.exchange(region.wide, D_DEAD, 0n);
  return dead === 0n ? { ownerDied: false } : { ownerDied: true, deadPid: ownerOf(dead).id };
}

/** The current holder of the lock and whether it still runs, read without the lock, so only a hint. */
export function holderOf(region: Lockable): { pid: number; running: boolean } | null {
  const word = Atomics.load(region.wide, D_LOCK);
  if (word === 0n) return null;
  const owner = ownerOf(word);
  return { pid: owner.id, running: !isGone(owner) };
}

/** Describes the current holder for an error message. */
export function describeHolder(region: Lockable): string {
  const holder = holderOf(region);
  if (holder === null) return 'the lock was just released';
  return `held by ${holder.pid === process.pid ? 'this process' : `pid ${holder.pid}`} (${holder.running ? 'running' : 'gone'})`;
}
