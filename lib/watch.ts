// Change notification by polling the commit word, as Test2's IPC driver polls its shared counter: while nothing
// changes, a poll is one 32-bit load, with no system call and no decoding.
import { setTimeout as sleep } from 'node:timers/promises';
import type { WatchOptions } from './api.js';
import { describe, shareError } from './errors.js';

/** What watching needs of a share whose get() gives `R`. */
interface Watched<R> {
  readonly version: number;
  readonly closed: boolean;
  get(): R;
}

const DEFAULT_INTERVAL_MS = 10;

export function checkInterval(options: WatchOptions): number {
  const { interval = DEFAULT_INTERVAL_MS } = options;
  if (typeof interval !== 'number' || !(interval >= 1) || !Number.isFinite(interval)) {
    throw shareError(
      'ERR_BAD_OPTION',
      `interval must be a finite number of milliseconds, at least 1, got ${describe(interval)}`,
    );
  }
  return interval;
}

/** Calls `listener` after each change of version; returns the function that stops it. Keeps no process alive. */
export function watch<R>(
  share: Watched<R>,
  listener: (value: R, version: number) => void,
  interval: number,
): () => void {
  let seen = share.version;
  const timer = setInterval(() => {
    if (share.closed) return clearInterval(timer);
    const version = share.version;
    if (version === seen) return;
    seen = version;
    listener(share.get(), version);
  }, interval);
  timer.unref();
  return () => clearInterval(timer);
}

/** The value after each change of version, the latest when several came between two pulls; ends on close. */
export async function* changes<R>(share: Watched<R>, interval: number, signal?: AbortSignal): AsyncGenerator<R> {
  let seen = share.version;
  for (;;) {
    while (!share.closed && share.version === seen) await sleep(interval, undefined, { signal, ref: false });
    if (share.closed) return;
    seen = share.version;
    yield share.get();
  }
}
