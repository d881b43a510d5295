// The doorbell: how a writer wakes the threads that wait for a region to change, with no polling and, while nobody
// waits, at no cost. A waiter watches the region's file with inotify (fs.watch on /proc/self/fd/<fd>, in its own
// event loop) and registers in a row of the header; a writer, after its commit, rings with one pwrite(2) of the BELL
// word, which inotify reports (a store through the mapping it does not), when someone is registered and some waiter
// has looked since this writer last rang: a burst of commits rings once a look.
//
// Why no wake-up is lost. A waiter W: (1) starts watching, (2) registers (WAITERS + 1), then every time it looks,
// once at the start, after every event and every LOOK_MS: (3) adds 1 to LOOKS, (4) reads what it waits for. A writer:
// (a) commits, (b) loads WAITERS and, when it is not 0, loads LOOKS and, when it differs from what it loaded at its
// own last ring, keeps it and writes BELL. Every access is a sequentially consistent Atomics operation (the write is
// a system call after them), so take any commit C made after W's (2) and the writer's (b) after it:
// - (b) found WAITERS 0: impossible, since W's (2) came before C.
// - (b) found WAITERS 1 and its own thread registered: that one registration is W's, so the writer, of W's thread,
//   calls W's look itself, after C.
// - (b) rang: W was watching since (1), so it gets the event, and its (4) after it reads C.
// - (b) found LOOKS as its last ring R kept it: no look's (3) came between R's load and (b) (LOOKS would have moved;
//   to come back to the same value it would take 2^32 looks), so each look of W is before R's load or after (b). If
//   W watched before R's write, R's event reaches it and the look it makes for it is after that write, so after (b);
//   if not, W's first look is after R's write, so after (b). Either way W looks after (b), and reads C.
// A waiter may put the look for an event off until a gap after its last look: the look it puts off still comes
// after the event, which is all the argument asks of it. So every waiter looks after every commit made once it was
// registered. The waiters of one region instance in a thread share one watch and one registration (an ear), which
// outlives the last of them until the event loop turns: W's (1) and (2) may be those of an ear it joins, earlier
// than W. Nothing a writer keeps is shared: one killed as it rings leaves no word set that would silence the
// others, and a ring whose write failed (a file size limit, say) is forgotten, so the next commit rings again.
// WAITERS goes up before a row is claimed and down after one is given back, so a thread killed in between leaves it
// too high (a needless ring), never too low (a deaf one).
import { type FSWatcher, watch as watchFile, writeSync } from 'node:fs';
import { D_WAITER_ROWS, type Mapping, W_BELL, W_LOOKS, W_WAITERS, WAITER_ROWS } from './layout.js';
import { shareError } from './errors.js';
import { isGone, ownerOf, ownerWord, ownOwner } from './lock.js';
import { step } from './crash.js';
import { armDeadline } from './wait.js';

/** What the bell needs of a region: its header, a descriptor of its file to ring and watch through, the file's id. */
interface Belled extends Mapping {
  readonly fd: number;
  readonly file: string;
}

// A waiter looks this often besides, in case a ring was lost with its writer; MMAP_SHARE_BELL_LOOK_MS sets it, for
// the tests that prove no ring is needed to be lost for a waiter to wait that long.
export const LOOK_MS = Number(process.env.MMAP_SHARE_BELL_LOOK_MS) || 1000;
// After a look, a watcher lets this long pass before it looks for a ring again, and a lock or fetch waiter this long:
// every ring wakes every waiter of the region, so while a writer commits without pause each waiter's looks (and the
// rings they re-arm) cost the writer; a watcher wants the latest value, a lock waiter its lock at once. A queue's
// waiter most often ends its wait with the look a ring brings, and a message a millisecond must not wait a gap.
const WATCH_GAP_MS = 8;
const WAIT_GAP_MS = 1;
export const QUEUE_GAP_MS = 0.5;
const ZERO = Buffer.alloc(4);

// This thread's registrations, by file (a copy of a region's file has its id, not its header): one row a file,
// however many of its waiters wait on it here.
const registrations = new Map<string, { row: number; waiters: number }>();

// LOOKS as each region instance last rang it: a writer rings again only once some waiter has looked since.
const rang = new WeakMap<Belled, number>();

/** After a commit: wakes the region's waiters, with a system call only when another thread waits and has looked since. */
export function ring(region: Belled): void {
  const { words } = region;
  const waiters = Atomics.load(words, W_WAITERS);
  if (waiters === 0) return;
  // Waiters of this thread alone hear of its commits with no system call: a consumer whose ear lingers between its
  // takes would otherwise ring itself after each one. In a microtask, since a look may commit in its turn.
  if (waiters === 1 && registrations.has(region.file)) return queueMicrotask(() => hear(region.file));
  const looks = Atomics.load(words, W_LOOKS);
  if (rang.get(region) === looks) return;
  rang.set(region, looks);
  step('bell.ringing');
  try {
    writeSync(region.fd, ZERO, 0, 4, W_BELL * 4);
  } catch {
    rang.delete(region);
  }
}

function register(region: Belled): boolean {
  const { wide, words } = region;
  // Rows of threads that are gone are reclaimed at every registration, every one: their WAITERS counts go with them.
  for (let at = D_WAITER_ROWS; at < D_WAITER_ROWS + WAITER_ROWS; at++) {
    const word = Atomics.load(wide, at);
    if (word !== 0n && isGone(ownerOf(word)) && Atomics.compareExchange(wide, at, word, 0n) === word) {
      Atomics.sub(words, W_WAITERS, 1);
    }
  }
  const held = registrations.get(region.file);
  if (held !== undefined) return (held.waiters++, true);
  const mine = ownerWord(ownOwner());
  Atomics.add(words, W_WAITERS, 1);
  for (let at = D_WAITER_ROWS; at < D_WAITER_ROWS + WAITER_ROWS; at++) {
    if (Atomics.compareExchange(wide, at, 0n, mine) === 0n) {
      registrations.set(region.file, { row: at, waiters: 1 });
      return true;
    }
  }
  Atomics.sub(words, W_WAITERS, 1);
  return false;
}

function unregister(region: Belled): void {
  const held = registrations.get(region.file)!;
  if (--held.waiters > 0) return;
  registrations.delete(region.file);
  Atomics.store(region.wide, held.row, 0n);
  Atomics.sub(region.words, W_WAITERS, 1);
}

/** The rows in use: the threads that wait on the region, for inspect. */
export function waitersOf(region: Mapping): number {
  let waiters = 0;
  for (let row = 0; row < WAITER_ROWS; row++) if (Atomics.load(region.wide, D_WAITER_ROWS + row) !== 0n) waiters++;
  return waiters;
}

let warned = false;

// A region instance's ear in this thread: the watcher and the row that all its listeners share. It stays open until
// the event loop turns after the last one stops, so that a consumer taking message after message, each with a wait
// of its own, watches and registers once, not once a message.
interface Ear {
  readonly watcher: FSWatcher | undefined;
  readonly listeners: Set<() => void>;
  registered: boolean;
  tried: number;
  linger: NodeJS.Immediate | undefined;
  // Set by deafen(): a listener that outlives its region's close() (a lock wait, until its next look) registers no
  // more, since nothing would give its row back.
  deaf: boolean;
}
const ears = new Map<Belled, Ear>();

function earOf(region: Belled, interval: number): Ear {
  let ear = ears.get(region);
  if (ear !== undefined) {
    clearImmediate(ear.linger);
    ear.linger = undefined;
    return ear;
  }
  let watcher: FSWatcher | undefined;
  let why: string | undefined;
  const listeners = new Set<() => void>();
  try {
    watcher = watchFile(`/proc/self/fd/${region.fd}`, { persistent: false }, () => listeners.forEach((rung) => rung()));
    watcher.on('error', () => {});
  } catch (error) {
    why = `inotify refused to watch it (${(error as Error).message})`;
  }
  const registered = watcher !== undefined && register(region);
  if (watcher !== undefined && !registered) why = `all ${WAITER_ROWS} of its waiter rows are taken`;
  if (why !== undefined && !warned) {
    warned = true;
    process.emitWarning(`mmap-share: a region's waiters poll every ${interval} ms: ${why}`, {
      code: 'MMAP_SHARE_POLLING',
    });
  }
  ear = { watcher, listeners, registered, tried: performance.now(), linger: undefined, deaf: false };
  ears.set(region, ear);
  return ear;
}

function hear(file: string): void {
  for (const [region, ear] of ears) if (region.file === file) ear.listeners.forEach((rung) => rung());
}

/** Closes the region's ear, if it has one: before its descriptor is closed. */
export function deafen(region: Belled): void {
  const ear = ears.get(region);
  if (ear === undefined) return;
  ears.delete(region);
  ear.deaf = true;
  clearImmediate(ear.linger);
  ear.watcher?.close();
  if (ear.registered) unregister(region);
}

/**
 * Calls `look()` once the caller has what stops it, then whenever the region may have changed: on each ring (at most
 * once a `gapMs`), and every `lookMs` ms besides; or, where the kernel refuses to watch the file (inotify's limits)
 * or the header has no free row, every `interval` ms, said once with a process warning. Keeps no process alive.
 * Returns what stops it.
 */
export function listen(
  region: Belled,
  look: () => void,
  interval: number,
  gapMs = WATCH_GAP_MS,
  lookMs = LOOK_MS,
): () => void {
  const ear = earOf(region, interval);
  // A waiter that found every row taken polls, and tries again for a row every lookMs: once it has one, it sleeps.
  let polling = !ear.registered;
  let timer = setInterval(looked, polling ? interval : lookMs);
  let last = -Infinity;
  let deferred: NodeJS.Timeout | undefined;
  // A ring within gapMs of the last look is looked at when that gap ends: meanwhile LOOKS stays put, so a burst of
  // commits rings this waiter once a gap, not once a commit, and the look at the gap's end reads them all.
  function rung() {
    if (deferred !== undefined) return;
    const wait = last + gapMs - performance.now();
    if (wait <= 0) return looked();
    deferred = setTimeout(looked, wait);
    deferred.unref();
  }
  function looked() {
    clearTimeout(deferred);
    deferred = undefined;
    last = performance.now();
    if (ear.watcher !== undefined && !ear.registered && !ear.deaf && last - ear.tried >= lookMs) {
      ear.tried = last;
      ear.registered = register(region);
    }
    if (polling && ear.registered) {
      polling = false;
      clearInterval(timer);
      timer = setInterval(looked, lookMs);
      timer.unref();
    }
    Atomics.add(region.words, W_LOOKS, 1);
    look();
  }
  timer.unref();
  ear.listeners.add(rung);
  let stopped = false;
  // The first look comes once the caller has what stops this (a listener may stop or close at once).
  queueMicrotask(() => stopped || looked());
  return () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    clearTimeout(deferred);
    ear.listeners.delete(rung);
    if (ear.listeners.size === 0 && ears.get(region) === ear) {
      ear.linger = setImmediate(deafen, region).unref();
    }
  };
}

// A lock's holder that dies, a fetch marker whose lease runs out: no one rings for them, so their waiters look this
// often besides.
const UNRUNG_MS = 16;

/** How waitOn() waits: `explain` gives ERR_LOCK_TIMEOUT's message; `lookMs` and `gapMs` are listen()'s. */
interface WaitOptions {
  readonly timeout: number;
  readonly signal: AbortSignal | undefined;
  readonly explain: () => string;
  readonly lookMs?: number;
  readonly gapMs?: number;
}

/**
 * Resolves with what `attempt()` returns once it is not undefined, trying it now and then on every ring of `region`
 * (sleeping on the bell only when the first try fails). Rejects with ERR_LOCK_TIMEOUT after `timeout` ms, with the
 * reason of `signal` when it aborts, and with what `attempt` throws. Keeps the process alive while it waits. It also
 * tries every `lookMs`: by default often, for what no one rings (a lock holder that dies, a lease that runs out).
 */
export function waitOn<R>(
  region: Belled,
  attempt: () => R | undefined,
  { timeout, signal, explain, lookMs = UNRUNG_MS, gapMs = WAIT_GAP_MS }: WaitOptions,
): Promise<R> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  try {
    const result = attempt();
    if (result !== undefined) return Promise.resolve(result);
  } catch (error) {
    return Promise.reject(error);
  }
  return new Promise<R>((resolve, reject) => {
    let done = false;
    // A pending wait keeps the process alive, as pending I/O does: the rest of the bell keeps none.
    const alive = setInterval(() => {}, 2 ** 30);
    const finish = (settle: () => void) => {
      if (done) return;
      done = true;
      stop();
      clearInterval(alive);
      cancel();
      signal?.removeEventListener('abort', onAbort);
      settle();
    };
    const onAbort = () => finish(() => reject(signal!.reason));
    signal?.addEventListener('abort', onAbort, { once: true });
    const cancel = armDeadline(performance.now() + timeout, () =>
      finish(() => reject(shareError('ERR_LOCK_TIMEOUT', explain()))),
    );
    const look = () => {
      if (done) return;
      try {
        const result = attempt();
        if (result !== undefined) finish(() => resolve(result));
      } catch (error) {
        finish(() => reject(error));
      }
    };
    const stop = listen(region, look, UNRUNG_MS, gapMs, lookMs);
  });
}
