// Many processes writing one region at once: nothing lost, nothing torn. Writers killed at random instants are the
// chaos stress suite's (test/stress/chaos.stress.ts).
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { defer, fixture, fresh, run } from './helpers.js';

describe('contention', () => {
  it.each(['update', 'explicit'])('4 processes x 2000 increments with %s end at exactly 8000', async (mode) => {
    const share = fresh<number>(64, { value: 0 });
    const results = await Promise.all(
      Array.from({ length: 4 }, () => run(fixture('counter.mjs'), [share.handle, '2000', mode])),
    );
    expect(results.map((r) => [r.code, r.stderr])).toStrictEqual(Array(4).fill([0, '']));
    expect(share.get()).toBe(8000);
    expect(share.version).toBe(8001);
  });
});

describe('readers without a lock', () => {
  it.each(['v8', 'msgpack'] as const)(
    'see only whole committed values while a writer commits non-stop (%s)',
    async (codec) => {
      const share = fresh<{ seq: number; fill: Uint8Array; length: number }>(32 * 1024, { codec });
      const writer = fork(fixture('churn.mjs'), [share.handle], { stdio: 'inherit' });
      defer(() => writer.kill('SIGKILL'));
      await once(writer, 'message');
      const start = share.version;
      let reads = 0;
      for (const until = Date.now() + 1000; Date.now() < until; reads++) {
        const value = share.get();
        expect(value?.fill.length).toBe(value?.length);
        expect(value?.fill.every((byte) => byte === value.seq % 251)).toBe(true);
      }
      writer.kill('SIGKILL');
      await once(writer, 'exit');
      expect(share.version - start, 'the writer committed while we read').toBeGreaterThan(100);
      expect(reads).toBeGreaterThan(100);
    },
  );
});
