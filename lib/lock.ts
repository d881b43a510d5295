// flock on a region's descriptor, and the holder words that tell the next holder whether its predecessor died.
import { readFileSync } from 'node:fs';
import { errnoOf } from './errors.js';
import { W_DEAD_PID, W_DEAD_START, W_HOLDER_PID, W_HOLDER_START } from './layout.js';
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

let ownStart: number | undefined;

/** Whether the process that recorded (pid, start) still runs: a reused pid has another start time. */
export function isAlive(pid: number, start: number): boolean {
  return startTimeOf(pid) === start;
}

export function lockExclusive(fd: number): void {
  fsExt.flockSync(fd, 'ex');
}

export function lockShared(fd: number): void {
  fsExt.flockSync(fd, 'sh');
}

export function unlock(fd: number): void {
  fsExt.flockSync(fd, 'un');
}

/** Takes the exclusive lock if no one holds it; false when someone does. */
export function tryLockExclusive(fd: number): boolean {
  try {
    fsExt.flockSync(fd, 'exnb');
    return true;
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return false;
    throw error;
  }
}

/** Records this process as the holder, right after it took the exclusive flock; keeps note of a dead predecessor. */
export function recordHolder(words: Uint32Array): void {
  const previous = Atomics.load(words, W_HOLDER_PID);
  if (previous !== 0) {
    Atomics.store(words, W_DEAD_START, Atomics.load(words, W_HOLDER_START));
    Atomics.store(words, W_DEAD_PID, previous);
  }
  ownStart ??= startTimeOf(process.pid) ?? 0;
  Atomics.store(words, W_HOLDER_START, ownStart);
  Atomics.store(words, W_HOLDER_PID, process.pid);
}

/** Clears the holder words; must run before the flock is released. */
export function clearHolder(words: Uint32Array): void {
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
  if (pid === 0) return 'held by readers or by a holder that is just releasing it';
  const state = isAlive(pid, Atomics.load(words, W_HOLDER_START)) ? 'running' : 'gone';
  return `held by pid ${pid} (${state})`;
}
