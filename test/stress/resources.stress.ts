// Resources: many create/attach/close cycles leave no descriptor, no file and, after a GC, no mapping; mappings
// never pile up while the event loop turns.
import { expect, it } from 'vitest';
import { fixture, maxMapCount, run } from '../helpers.js';
import { figure, stress } from './options.js';

it(`${stress.cycles} create/attach/close cycles leave nothing behind`, async () => {
  const { code, stdout, stderr } = await run(fixture('cycles.mjs'), [String(stress.cycles)], {
    execArgv: ['--expose-gc'],
  });
  expect(stderr).toBe('');
  expect(code).toBe(0);
  const { before, afterClose, peakMappings, afterGc } = JSON.parse(stdout);
  figure(
    `resources: ${stress.cycles} cycles, descriptors ${before.fds} -> ${afterClose.fds}, /dev/shm entries ` +
      `${before.shmFiles} -> ${afterClose.shmFiles}, mappings ${before.mappings} -> at most ${peakMappings} -> ` +
      `${afterGc.mappings} after GC`,
  );
  expect(afterClose.fds).toBe(before.fds);
  expect(afterClose.shmFiles).toBe(before.shmFiles);
  expect(afterGc.mappings).toBe(before.mappings);
  // Closed regions' mappings are given back as the loop turns, so they stay far below the budget (half of
  // vm.max_map_count) past which create() refuses: a program that yields never meets that refusal.
  expect(peakMappings).toBeLessThan(maxMapCount / 4);
});
