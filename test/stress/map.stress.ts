// SharedMap under stress: writers killed at random instants, random bytes in every part of the region, random
// operation sequences from two processes checked against a model Map, and the lock word's liveness. Each ends with
// its figure line.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { SharedMap } from '../../dist/index.mjs';
import { defer, fixture, Peer, run } from '../helpers.js';
import { corruptionFuzz, figure, stress } from './options.js';

type Checked = { key: string; seq: number; fill: Uint8Array };

it(`map chaos: ${stress.kills} writers killed leave every entry whole, verify() clean and no space lost`, async () => {
  const map = SharedMap.create<Checked>({ capacity: 256 * 1024 });
  defer(() => map.close());
  let torn = 0;
  let problems = 0;
  let entries = 0;
  for (let kill = 1; kill <= stress.kills; kill++) {
    const child = fork(fixture('map-churn.mjs'), [map.handle, '200'], { stdio: 'inherit' });
    defer(() => child.kill('SIGKILL'));
    await once(child, 'message');
    await sleep(Math.random() * 10);
    child.kill('SIGKILL');
    await once(child, 'exit');
    // verify() takes the lock: after a death inside it, it repairs first, as every writer would.
    const verification = map.verify();
    problems += verification.problems.length;
    if (!verification.ok) process.stderr.write(`map chaos: ${verification.problems.join('\n')}\n`);
    for (const [key, value] of map) {
      entries++;
      if (value.key !== key || !value.fill.every((byte) => byte === value.seq % 251)) torn++;
    }
    if (kill % 100 === 0) process.stderr.write(`map chaos: ${kill}/${stress.kills} kills\n`);
  }
  const { repairs } = map.stats();
  figure(
    `map chaos: ${stress.kills} kills (${repairs} inside the lock, repaired), ${entries} entries checked, ` +
      `${torn} torn, ${problems} verify() problems`,
  );
  expect({ torn, problems }).toStrictEqual({ torn: 0, problems: 0 });
  expect(repairs).toBeGreaterThan(0);
});

it.each(['v8', 'msgpack'])(
  `${stress.corruptions} maps with random bytes in header, index, chunk table and chunks (%s)`,
  (codec) => corruptionFuzz('map-corrupt.mjs', codec, { suite: 'map fuzz', regions: 'maps' }),
);

it(`map model: ${Math.ceil(stress.cases / 100)} random sequences from two processes agree with a Map`, async () => {
  const map = SharedMap.create<number>({ capacity: '1MB' });
  defer(() => map.close());
  const peer = new Peer({}, 'map-peer.mjs');
  await peer.call('attach', { ref: map.handle });
  const key = fc.constantFrom('a', 'b', 'c', 'ключ', '🔑', '');
  const op = fc.oneof(
    fc.record({ op: fc.constant('set'), key, value: fc.integer(), remote: fc.boolean() }),
    fc.record({ op: fc.constant('delete'), key, remote: fc.boolean() }),
    fc.record({ op: fc.constant('count'), key, remote: fc.boolean() }),
    fc.record({ op: fc.constant('get'), key, remote: fc.boolean() }),
    fc.record({ op: fc.constant('has'), key, remote: fc.boolean() }),
    fc.record({ op: fc.constant('clear'), remote: fc.constant(false) }),
  );
  let steps = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
      map.clear();
      const model = new Map<string, number>();
      for (const step of ops) {
        steps++;
        const { key: name = '', remote } = step as { key?: string; remote: boolean };
        const call = <R>(local: () => R, args: Record<string, unknown> = {}) =>
          remote ? peer.call<R>(step.op, { key: name, ...args }) : Promise.resolve(local());
        if (step.op === 'set') {
          const { value } = step as { value: number };
          await call(() => map.set(name, value), { value });
          model.set(name, value);
        } else if (step.op === 'delete') {
          expect(await call(() => map.delete(name))).toBe(model.delete(name));
        } else if (step.op === 'count') {
          await call(() => map.update(name, (n = 0) => n + 1), { times: 1 });
          model.set(name, (model.get(name) ?? 0) + 1);
        } else if (step.op === 'get') {
          expect(await call(() => map.get(name))).toBe(model.get(name));
        } else if (step.op === 'has') {
          expect(await call(() => map.has(name))).toBe(model.has(name));
        } else {
          map.clear();
          model.clear();
        }
        expect(map.size).toBe(model.size);
      }
      expect(new Map(map)).toStrictEqual(model);
    }),
    { numRuns: Math.ceil(stress.cases / 100) },
  );
  expect(map.verify().ok).toBe(true);
  figure(`map model: ${Math.ceil(stress.cases / 100)} sequences, ${steps} operations from two processes, all agreed`);
});

// The lock word promises no fairness either, so the bound catches starvation, not slowness, as for flock.
const WAIT_BOUND_MS = 2000;

it(`map liveness: 4 writers x ${stress.lockRounds} updates, no wait longer than ${WAIT_BOUND_MS} ms`, async () => {
  const map = SharedMap.create<number>({ capacity: '1MB' });
  defer(() => map.close());
  const results = await Promise.all(
    Array.from({ length: 4 }, () => run(fixture('map-lock-rounds.mjs'), [map.handle, String(stress.lockRounds)])),
  );
  const longest = Math.max(...results.map((result) => (JSON.parse(result.stdout) as { longest: number }).longest));
  figure(
    `map liveness: 4 writers x ${stress.lockRounds} updates, longest wait ${longest.toFixed(1)} ms ` +
      `(bound ${WAIT_BOUND_MS} ms), count ${map.get('count')} of ${4 * stress.lockRounds}`,
  );
  expect(longest).toBeLessThan(WAIT_BOUND_MS);
  expect(map.get('count')).toBe(4 * stress.lockRounds);
});
