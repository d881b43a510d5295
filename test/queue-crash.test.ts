// SharedQueue's crash points (lib/crash.ts), each in turn: a process killed inside push() leaves its message whole in
// the queue or absent, one killed inside a take leaves it whole in the queue or taken, never torn, never twice; the
// totals agree with what is there; and the next writer takes the dead one's lock over at once and counts a repair.
import { spawnSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { SharedQueue } from '../dist/index.mjs';
import { closeSync, openSync, writeSync } from 'node:fs';
import { defer, fixture, tempDir } from './helpers.js';

const steps = [
  { step: 'queue.written', op: 'push', after: ['kept', 'more'] },
  { step: 'queue.committed', op: 'push', after: ['kept', 'more', 'new'] },
  { step: 'queue.read', op: 'shift', after: ['kept', 'more'] },
  { step: 'queue.taken', op: 'shift', after: ['more'] },
];

it.each(steps)('a process killed at $step inside $op() leaves $after', ({ step, op, after }) => {
  const queue = SharedQueue.create<string>({ capacity: 1024 });
  defer(() => queue.close());
  queue.push('kept');
  queue.push('more');
  const args = op === 'push' ? ['push', queue.handle, '"new"'] : ['shift', queue.handle];
  const killed = spawnSync(process.execPath, [fixture('queue-peer.mjs'), ...args], {
    env: { ...process.env, MMAP_SHARE_CRASH_AT: step },
  });
  expect(killed.signal).toBe('SIGKILL');
  // Its lock is taken over at once: the holder is proven gone.
  expect(queue.push('last')).toBe(true);
  const stats = queue.stats();
  expect(stats.pushed - stats.taken).toBe(after.length + 1);
  expect(stats.repairs).toBe(1);
  expect(queue.verify()).toStrictEqual({ ok: true, problems: [] });
  expect(queue.shiftMany()).toStrictEqual([...after, 'last']);
  expect(queue.stats()).toMatchObject({ messages: 0, bytes: 0, pushed: stats.pushed, taken: stats.pushed });
});

it('reports damage found after a dead writer instead of failing the repair, which would refuse every call for ever', () => {
  const path = `${tempDir()}/damaged`;
  const queue = SharedQueue.create<string>({ capacity: 1024, path });
  defer(() => queue.close());
  queue.push('kept');
  const killed = spawnSync(process.execPath, [fixture('queue-peer.mjs'), 'push', path, '"new"'], {
    env: { ...process.env, MMAP_SHARE_CRASH_AT: 'queue.written' },
  });
  expect(killed.signal).toBe('SIGKILL');
  // TAIL's offset past the ring, while the dead writer's repair is pending.
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from(new Uint32Array([1028]).buffer), 0, 4, 264);
  closeSync(fd);
  const found = queue.verify();
  expect(found.ok).toBe(false);
  expect(found.problems).toStrictEqual([expect.stringMatching(/head 0, tail 1028, 1 messages/)]);
  expect(() => queue.stats()).toThrow(expect.objectContaining({ code: 'ERR_BAD_HANDLE' }));
  expect(() => queue.push('more')).toThrow(expect.objectContaining({ code: 'ERR_BAD_HANDLE' }));
  // Mended, the queue goes on: the repair was made, not left pending.
  const mend = openSync(path, 'r+');
  writeSync(mend, Buffer.from(new Uint32Array([12]).buffer), 0, 4, 264);
  closeSync(mend);
  expect(queue.stats()).toMatchObject({ messages: 1, repairs: 1 });
  expect(queue.shiftMany()).toStrictEqual(['kept']);
});
