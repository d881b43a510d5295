// The size of each stress suite: the defaults run inside `npm test`; `npm run stress -- --kills 5000` and the other
// flags of test/stress/run.mjs make them bigger, through these environment variables.
import { expect } from 'vitest';
import { fixture, run } from '../helpers.js';

const number = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

export const stress = {
  kills: number('STRESS_KILLS', 200),
  // Each of the queue's kills restarts a process beside four busy ones: a quarter as many by default.
  queueKills: number('STRESS_QUEUE_KILLS', 50),
  processes: number('STRESS_PROCESSES', 8),
  updates: number('STRESS_UPDATES', 10_000),
  mixedMs: number('STRESS_MIXED_MS', 1500),
  cases: number('STRESS_CASES', 10_000),
  corruptions: number('STRESS_CORRUPTIONS', 2000),
  cycles: number('STRESS_CYCLES', 10_000),
  lockRounds: number('STRESS_LOCK_ROUNDS', 300),
  crashKills: number('STRESS_CRASH_KILLS', 3),
  bellSets: number('STRESS_BELL_SETS', 20_000),
  soakSeconds: number('STRESS_SOAK_SECONDS', 3),
};

/** Prints a suite's figure line, on its own line so that it reads the same under vitest and in a terminal. */
export function figure(line: string): void {
  process.stdout.write(`\n${line}\n`);
}

/**
 * Runs a corruption fixture (test/fixtures/*-corrupt.mjs) on `stress.corruptions` regions of `codec`, under a time
 * limit that turns a hang into a failure, and prints its figure line: `what` names the suite and the regions.
 */
export async function corruptionFuzz(script: string, codec: string, what: { suite: string; regions: string }) {
  const { code, signal, stdout, stderr } = await run(fixture(script), [String(stress.corruptions), codec], {
    timeout: 120_000,
  });
  expect(stderr).toBe('');
  expect({ code, signal }).toStrictEqual({ code: 0, signal: null });
  const counts = JSON.parse(stdout) as { cases: number; worked: number; refused: number; other: string[] };
  figure(
    `${what.suite} (${codec}): ${counts.cases} corrupted ${what.regions}, ${counts.worked} calls worked, ` +
      `${counts.refused} refused with ERR_BAD_HANDLE, ${counts.other.length} other errors, no crash, no hang`,
  );
  expect(counts.other).toStrictEqual([]);
}
