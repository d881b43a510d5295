// The writers' lock: a word in the region, flock for waiters to sleep on, and the holder words that tell the next
// holder whether its predecessor died.
import { readFileSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, errnoOf, shareError } from './errors.js';
import { W_DEAD_PID, W_DEAD_START, W_HOLDER_PID, W_HOLDER_START, W_LOCK, W_PARKED } from './layout.js';
import { fsExt } from './native.js';

/** What `lock()` learned about the previous holder. */
export type LockInfo =
  | { readonly ownerDied: false }
  /** The previous holder died inside its critical section: repair what it may have left half done. */
  | { readonly ownerDied: true; readonly deadPid: number };

/** Start time of a process in clock ticks after boot (low 32 bits), or undefined when it is gone. */
export function startTimeOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name in parentheses may hold spaces; the fields after it are plain. starttime is field 22.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]) >>> 0;
  } catch {
    return undefined;
  }
}

let ownNamespace: number | undefined;

/** This process's pid namespace: the low 32 bits of its inode, or 0 where /proc does not tell. */
export function pidNamespace(): number {
  if (ownNamespace === undefined) {
    try {
      ownNamespace = statSync('/proc/self/ns/pid').ino % 2 ** 32;
    } catch {
      ownNamespace = 0;
    }
  }
  return ownNamespace;
}

let ownStart: number | undefined;

/** This process's start time, as recorded in holder words and fetch markers. */
export function ownStartTime(): number {
  ownStart ??= startTimeOf(process.pid) ?? 0;
  return ownStart;
}

// Lock-free reads rely on x86-64 keeping loads in order (see readUnlocked); elsewhere every read takes the flock.
/** How many times a lock-free read is tried before the reader takes the lock. */
export const LOCK_FREE_TRIES = process.arch === 'x64' ? 4 : 0;

// Polls for a lock (or anything else another process must release) use growing pauses instead of a blocking call,
// which would park the thread or a libuv pool thread.
const FIRST_PAUSE_MS = 1;
const LONGEST_PAUSE_MS = 16;

/**
 * Polls `ready` with growing, jittered pauses until it returns something other than undefined. Rejects with
 * ERR_LOCK_TIMEOUT (the message from `explain`) once `timeout` ms have passed, and with an AbortError on `signal`.
 */
export async function pollUntil<R>(
  ready: () => R | undefined | Promise<R | undefined>,
  timeout: number,
  signal: AbortSignal | undefined,
  explain: () => string,
): Promise<R> {
  signal?.throwIfAborted();
  const deadline = performance.now() + timeout;
  for (let pause = FIRST_PAUSE_MS; ; pause = Math.min(pause * 2, LONGEST_PAUSE_MS)) {
    const result = await ready();
    if (result !== undefined) return result;
    const left = deadline - performance.now();
    if (left <= 0) throw shareError('ERR_LOCK_TIMEOUT', explain());
    try {
      // Jitter keeps waiting processes from retrying in step.
      await sleep(Math.min(left, pause * (0.5 + Math.random())), undefined, { signal });
    } catch (error) {
      signal?.throwIfAborted();
      throw error;
    }
  }
}

/** Milliseconds a caller may wait: a non-negative number, Infinity by default. */
export function checkTimeout(timeout: unknown = Infinity): number {
  if (typeof timeout !== 'number' || !(timeout >= 0)) {
    throw shareError('ERR_BAD_OPTION', `timeout must be a non-negative number, got ${describe(timeout)}`);
  }
  return timeout;
}

// Locks held by instances of this thread, by region id: waiting for one would never end, because the holder can only
// release it from this same thread.
const heldInThisThread = new Set<string>();

/** A region as the lock sees it: its id, its own descriptor, its header words, its file as /proc/<pid>/maps names it. */
interface Lockable {
  readonly id: string;
  readonly fd: number;
  readonly words: Uint32Array;
  readonly mapsId: string;
}

/**
 * Takes the writers' lock, waiting as long as it takes (blocking the thread), and records this process as its holder.
 * `own` asks for a critical section of the caller's own (lock()): the holder then also takes the exclusive flock, so
 * that waiters sleep in the kernel until it ends instead of polling.
 */
export function takeLock(region: Lockable, own = false): void {
  if (heldInThisThread.has(region.id)) {
    throw shareError('ERR_ALREADY_LOCKED', 'another instance in this thread holds the lock: waiting would deadlock');
  }
  takeWordLock(region);
  held(region, own);
}

/**
 * Takes the writers' lock for a critical section of the caller's own if it is free, or if its holder is gone; false
 * when someone holds it.
 */
export function tryTakeLock(region: Lockable): boolean {
  if (heldInThisThread.has(region.id)) return false;
  const { words } = region;
  const holder = Atomics.compareExchange(words, W_LOCK, 0, process.pid);
  if (holder !== 0) {
    const recorded = Atomics.load(words, W_HOLDER_PID) === holder;
    const start = recorded ? Atomics.load(words, W_HOLDER_START) : startTimeOf(holder);
    if (holderLives(region, holder, start) !== false || !takeOver(words, holder)) return false;
  }
  held(region, true);
  return true;
}

// Whether the process `pid`, found holding LOCK when its start time was `start`, can still release it: false when it
// is gone, its pid now names a later process, or it does not map the region (a lock word damaged into another
// process's pid); undefined when its maps cannot be read.
function holderLives(region: Lockable, pid: number, start: number | undefined): boolean | undefined {
  if (start === undefined || startTimeOf(pid) !== start) return false;
  return isMappedBy(pid, region.mapsId);
}

// Takes LOCK over from `holder`, unless another waiter did first.
function takeOver(words: Uint32Array, holder: number): boolean {
  if (Atomics.compareExchange(words, W_LOCK, holder, process.pid) !== holder) return false;
  // The flock of a holder that died is free already; PARKED is what it left behind.
  Atomics.store(words, W_PARKED, 0);
  return true;
}

function held(region: Lockable, own: boolean): void {
  recordHolder(region.words);
  heldInThisThread.add(region.id);
  if (own) {
    // Waiters take the shared flock only once PARKED is set, and drop it at once: this wait is short.
    fsExt.flockSync(region.fd, 'ex');
    Atomics.store(region.words, W_PARKED, 1);
  }
}

/** Releases the writers' lock: the holder words first, so that a holder seen there while the lock is free died. */
export function releaseLock(region: Lockable): void {
  clearHolder(region.words);
  heldInThisThread.delete(region.id);
  if (Atomics.exchange(region.words, W_PARKED, 0) !== 0) fsExt.flockSync(region.fd, 'un');
  Atomics.store(region.words, W_LOCK, 0);
}

// A waiter spins this long before it sleeps: writers hold the lock for about a microsecond.
const SPIN_MS = 0.02;
const LONGEST_SLEEP_MS = 0.1;
// How often a waiter asks whether the holder still runs.
const HOLDER_CHECK_MS = 5;
// Where a holder's mappings cannot be read, a waiter takes over after finding the holder words naming another process
// at this many checks in a row: a holder records itself there right after it takes the lock word.
const UNRECORDED_CHECKS = 20;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Takes the LOCK word: 0 when free, else the pid of its holder. It costs no system call, where flock costs two. A
 * waiter spins briefly, then sleeps in growing steps, or in the shared flock while the holder is in a critical section
 * of its own (PARKED). Every HOLDER_CHECK_MS, and whenever the flock comes free while PARKED stays set, it checks
 * that the holder could hold it: that its process still runs (the same pid with the same start time it first saw) and
 * that it maps the region (when /proc/<pid>/maps cannot be read: that the holder words name it). The lock of a holder
 * that cannot is taken over with a compare-and-swap, so by one waiter.
 */
function takeWordLock(region: Lockable): void {
  const { words, fd } = region;
  const pid = process.pid;
  let holder = Atomics.compareExchange(words, W_LOCK, 0, pid);
  if (holder === 0) return;
  let seen = holder;
  let seenStart = startTimeOf(holder);
  let since = performance.now();
  // A holder whose process could not be found is checked as soon as the spin ends, not HOLDER_CHECK_MS later.
  let checked = seenStart === undefined ? -Infinity : since;
  let unrecorded = 0;
  let sleep = 0.01;
  for (;;) {
    holder = Atomics.load(words, W_LOCK);
    if (holder === 0) {
      holder = Atomics.compareExchange(words, W_LOCK, 0, pid);
      if (holder === 0) return;
    }
    const now = performance.now();
    if (holder !== seen) {
      [seen, seenStart, since, sleep, unrecorded] = [holder, startTimeOf(holder), now, 0.01, 0];
      checked = seenStart === undefined ? -Infinity : now;
    }
    if (now - since < SPIN_MS) continue;
    if (Atomics.load(words, W_PARKED) !== 0) {
      fsExt.flockSync(fd, 'sh');
      fsExt.flockSync(fd, 'un');
      // The flock came free with the lock still held and PARKED still set: the holder may have died with it.
      if (Atomics.load(words, W_LOCK) === seen && Atomics.load(words, W_PARKED) !== 0) checked = -Infinity;
    }
    if (now - checked >= HOLDER_CHECK_MS) {
      checked = now;
      const lives = holderLives(region, holder, seenStart);
      unrecorded = Atomics.load(words, W_HOLDER_PID) === holder ? 0 : unrecorded + 1;
      if (lives === false || (lives === undefined && unrecorded >= UNRECORDED_CHECKS)) {
        if (takeOver(words, holder)) return;
        continue;
      }
    }
    Atomics.wait(sleeper, 0, 0, sleep);
    sleep = Math.min(sleep * 2, LONGEST_SLEEP_MS);
  }
}

/** Whether process `pid` maps the file `mapsId` names; undefined when its maps cannot be read. */
function isMappedBy(pid: number, mapsId: string): boolean | undefined {
  try {
    return readFileSync(`/proc/${pid}/maps`, 'latin1').includes(mapsId);
  } catch (error) {
    return errnoOf(error) === 'ENOENT' ? false : undefined;
  }
}

/** Whether the process that recorded (pid, start) still runs: a reused pid has another start time. */
export function isAlive(pid: number, start: number): boolean {
  return startTimeOf(pid) === start;
}

// Records this process as the holder, right after it took the lock; keeps note of a dead predecessor.
function recordHolder(words: Uint32Array): void {
  const previous = Atomics.load(words, W_HOLDER_PID);
  if (previous !== 0) {
    Atomics.store(words, W_DEAD_START, Atomics.load(words, W_HOLDER_START));
    Atomics.store(words, W_DEAD_PID, previous);
  }
  Atomics.store(words, W_HOLDER_START, ownStartTime());
  Atomics.store(words, W_HOLDER_PID, process.pid);
}

// Clears the holder words; must run before the lock is released.
function clearHolder(words: Uint32Array): void {
  Atomics.store(words, W_HOLDER_PID, 0);
  Atomics.store(words, W_HOLDER_START, 0);
}

/** Reports, once, a holder that died holding the lock since the last report. */
export function takeDeadHolder(words: Uint32Array): LockInfo {
  const deadPid = Atomics.load(words, W_DEAD_PID);
  if (deadPid === 0) return { ownerDied: false };
  Atomics.store(words, W_DEAD_PID, 0);
  Atomics.store(words, W_DEAD_START, 0);
  return { ownerDied: true, deadPid };
}

/** Describes the current exclusive holder for an error message; read without the lock, so only a hint. */
export function describeHolder(words: Uint32Array): string {
  const pid = Atomics.load(words, W_HOLDER_PID);
  if (pid === 0) return 'held by a process that is just taking or releasing it';
  const state = isAlive(pid, Atomics.load(words, W_HOLDER_START)) ? 'running' : 'gone';
  return `held by pid ${pid} (${state})`;
}
