// Change notification: a watcher looks at the version word whenever the region's doorbell rings (lib/bell.ts), so a
// look is one 32-bit load, and reads the value only when the version moved.
import type { WatchOptions } from './api.js';
import { describe, shareError } from './errors.js';

/** What watching needs of a share whose get() gives `R`: `listen` calls `look` on every ring until stopped. */
export interface Watched<R> {
  version(): number;
  closed(): boolean;
  get(): R;
  listen(look: () => void, interval: number): () => void;
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
export function watch<R>(share: Watched<R>, listener: (value: R, version: number) => void, interval: number) {
  let seen = share.version();
  const stop = share.listen(() => {
    if (share.closed()) return stop();
    const version = share.version();
    if (version === seen) return;
    seen = version;
    listener(share.get(), version);
  }, interval);
  return stop;
}

/** The value after each change of version, the latest when several came between two pulls; ends on close. */
export async function* changes<R>(share: Watched<R>, interval: number, signal?: AbortSignal): AsyncGenerator<R> {
  let seen = share.version();
  let wake: (() => void) | undefined;
  const stop = share.listen(() => wake?.(), interval);
  try {
    for (;;) {
      while (!share.closed() && share.version() === seen) {
        signal?.throwIfAborted();
        await new Promise<void>((resolve, reject) => {
          const onAbort = () => reject(signal!.reason);
          signal?.addEventListener('abort', onAbort, { once: true });
          wake = () => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
          };
        });
      }
      if (share.closed()) return;
      seen = share.version();
      yield share.get();
    }
  } finally {
    stop();
  }
}
