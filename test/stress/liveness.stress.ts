// Lock liveness: no contending writer waits past a stated bound, and lockAsync never blocks the event loop.
import { expect, it } from 'vitest';
import { attached, fixture, fresh, run } from '../helpers.js';
import { figure, stress } from './options.js';

// flock promises no fairness, so the bound is generous: it catches starvation, not slowness.
const WAIT_BOUND_MS = 2000;

it(`4 contending writers x ${stress.lockRounds} locks: no wait longer than ${WAIT_BOUND_MS} ms`, async () => {
  const share = fresh<number>(64, { value: 0 });
  const results = await Promise.all(
    Array.from({ length: 4 }, () => run(fixture('lock-rounds.mjs'), [share.handle, String(stress.lockRounds)])),
  );
  const longest = Math.max(...results.map((result) => (JSON.parse(result.stdout) as { longest: number }).longest));
  figure(
    `liveness: 4 writers x ${stress.lockRounds} locks, longest wait ${longest.toFixed(1)} ms (bound ${WAIT_BOUND_MS} ms)`,
  );
  expect(longest).toBeLessThan(WAIT_BOUND_MS);
});

it('lockAsync with a timeout keeps the event loop turning while it waits', async () => {
  const share = fresh();
  attached(share.handle).lock();
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 1);
  const waited = performance.now();
  await expect(share.lockAsync({ timeout: 300 })).rejects.toMatchObject({ code: 'ERR_LOCK_TIMEOUT' });
  clearInterval(ticker);
  const ms = performance.now() - waited;
  figure(
    `liveness: lockAsync waited ${ms.toFixed(0)} ms for a held lock, the event loop ticked ${ticks} times meanwhile`,
  );
  // A blocked loop would tick once at most; a turning one ticks every millisecond or so.
  expect(ticks).toBeGreaterThan(30);
});
