// Waiting for what another process must release, without blocking the thread: polls with growing pauses, under a
// timeout and a signal. Loads no native addon, so the Redis backend waits with it too.
import { setTimeout as sleep } from 'node:timers/promises';
import { shareError } from './errors.js';

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

/** What iterating a queue gives: its messages taken as they come, ending quietly once the queue is closed. */
export async function* takeEach<T>(queue: { take(): Promise<T>; readonly closed: boolean }): AsyncGenerator<T> {
  for (;;) {
    try {
      yield await queue.take();
    } catch (error) {
      if (queue.closed) return;
      throw error;
    }
  }
}

// setTimeout fires at once past 2^31 - 1 ms, so a longer wait is armed again in steps.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Calls `fire` at `deadline` (a performance.now() time), however far away; returns what cancels it. */
export function armDeadline(deadline: number, fire: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const left = deadline - performance.now();
    timer = left > MAX_TIMER_MS ? setTimeout(arm, MAX_TIMER_MS) : setTimeout(fire, left);
  };
  if (deadline !== Infinity) arm();
  return () => clearTimeout(timer);
}
