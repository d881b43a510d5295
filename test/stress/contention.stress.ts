// Contention: many processes updating one counter lose nothing; readers racing writers see only committed values.
import { describe, expect, it } from 'vitest';
import { fixture, fresh, run } from '../helpers.js';
import { figure, stress } from './options.js';

describe('contention', () => {
  it(`${stress.processes} processes x ${stress.updates} updates end exact`, async () => {
    const share = fresh<number>(64, { value: 0 });
    const runs = Array.from({ length: stress.processes }, () =>
      run(fixture('counter.mjs'), [share.handle, String(stress.updates), 'update']),
    );
    const results = await Promise.all(runs);
    expect(results.every((result) => result.code === 0)).toBe(true);
    const expected = stress.processes * stress.updates;
    figure(
      `contention: ${stress.processes} processes x ${stress.updates} updates, ${share.get()} of ${expected} counted`,
    );
    expect(share.get()).toBe(expected);
  });

  it('2 writers and 2 readers: every value read is one a writer committed', async () => {
    const share = fresh(8192);
    const ms = String(stress.mixedMs);
    const roles = ['writer', 'writer', 'reader', 'reader'];
    const results = await Promise.all(
      roles.map((role, id) => run(fixture('mixed.mjs'), [role, share.handle, String(id), ms])),
    );
    const counts = results.map((result) => JSON.parse(result.stdout) as { ops: number; torn: number; phantom: number });
    const [writes, reads] = [counts.slice(0, 2), counts.slice(2)].map((part) =>
      part.reduce((sum, c) => sum + c.ops, 0),
    );
    const torn = counts.reduce((sum, c) => sum + c.torn, 0);
    const phantom = counts.reduce((sum, c) => sum + c.phantom, 0);
    figure(
      `contention: 2 writers (${writes} sets), 2 readers (${reads} gets), ${torn} torn, ${phantom} phantom values`,
    );
    expect({ torn, phantom }).toStrictEqual({ torn: 0, phantom: 0 });
    expect(Math.min(writes ?? 0, reads ?? 0)).toBeGreaterThan(100);
  });
});
