// Lost wake-ups: a writer's sets race watchers in other processes that register, sleep and leave in every order, some
// of them killed at random; each watcher looks besides only once a minute, so a lost wake-up would stall it past the
// suite's bound. Every watcher must reach the last version, and the rows of the killed ones must be reclaimed (by the
// watchers registering after them) so that none is left, nor any count of them.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { D_WAITER_ROWS, W_WAITERS, WAITER_ROWS } from '../../dist/layout.js';
import { fixture, fresh, tempDir } from '../helpers.js';
import { figure, stress } from './options.js';

const WATCHERS = 6;
const env = { ...process.env, MMAP_SHARE_BELL_LOOK_MS: '60000' };

function rowsInUse(path: string): number {
  const file = readFileSync(path);
  let rows = 0;
  for (let row = 0; row < WAITER_ROWS; row++) if (file.readBigUInt64LE((D_WAITER_ROWS + row) * 8) !== 0n) rows++;
  return rows;
}

it(
  `${stress.bellSets} sets racing ${WATCHERS} watchers that come, go and are killed: no wake-up lost`,
  async () => {
    const path = `${tempDir()}/bell`;
    const share = fresh<number>(64, { path, value: 0 });
    const last = stress.bellSets + 1;
    const reports: Promise<{ seen: number; version: number } | undefined>[] = [];
    const live = new Set<ReturnType<typeof fork>>();
    const spawn = async () => {
      const child = fork(fixture('bell-watcher.mjs'), [path, String(last)], { stdio: 'pipe', env });
      live.add(child);
      await new Promise((resolve) => child.once('message', resolve));
      reports.push(
        new Promise((resolve) => {
          child.once('message', resolve);
          child.once('exit', () => resolve(undefined));
        }),
      );
    };
    await Promise.all(Array.from({ length: WATCHERS }, spawn));
    let killed = 0;
    for (let version = 2; version <= last; version++) {
      share.set(version);
      if (version % 997 === 0) await sleep(1);
      else if (version % 13 === 0) await new Promise(setImmediate);
      if (version % Math.ceil(stress.bellSets / 8) === 0) {
        const victim = [...live][killed % live.size]!;
        live.delete(victim);
        victim.kill('SIGKILL');
        killed++;
        await spawn();
      }
    }
    const done = (await Promise.all(reports)).filter((report) => report !== undefined);
    // The watchers exit without giving their rows back: the next to register reclaims them, once they are gone.
    await Promise.all([...live].map((child) => (child.exitCode ?? child.signalCode) === null && once(child, 'exit')));
    share.watch(() => {})();
    await new Promise(setImmediate);
    const left = { rows: rowsInUse(path), waiters: readFileSync(path).readUInt32LE(W_WAITERS * 4) };
    const waits = done.reduce((sum, report) => sum + report.seen, 0);
    const lost = WATCHERS - done.filter((report) => report.version === last).length;
    figure(
      `bell: ${stress.bellSets} sets, ${done.length} watchers through, ${waits} wake-ups, ${lost} lost; ${killed} killed, ${left.rows} rows and ${left.waiters} waiters left`,
    );
    expect(lost).toBe(0);
    expect(left).toStrictEqual({ rows: 0, waiters: 0 });
  },
  Math.max(120_000, stress.bellSets / 5),
);

it(
  `${stress.bellSets} updates by writers killed at random, beside lock waiters killed at random: no ring lost for the others`,
  async () => {
    const path = `${tempDir()}/peers`;
    const share = fresh<number>(64, { path, value: 0 });
    const cap = stress.bellSets;
    const watchers = await Promise.all(
      Array.from({ length: 3 }, async () => {
        const child = fork(fixture('bell-watcher.mjs'), [path, String(cap + 3)], { stdio: 'pipe', env });
        await once(child, 'message');
        return {
          child,
          report: once(child, 'message').then(([report]) => report as { seen: number; version: number }),
        };
      }),
    );
    const peer = (mode: string) => {
      const child = fork(fixture('bell-peer.mjs'), [mode, path, String(cap)], { stdio: 'pipe', env });
      return { child, started: once(child, 'message') };
    };
    const exited = (child: ReturnType<typeof fork>) =>
      (child.exitCode ?? child.signalCode) === null && once(child, 'exit');
    const lockers = Array.from({ length: 2 }, () => peer('locker').child);
    let writers = 0;
    const killed = { writers: 0, lockers: 0 };
    // Until the writers reach the cap: two writers at a time, each killed 0 to 10 ms into its updates unless done.
    while ((share.get() ?? 0) < cap) {
      const pair = [peer('writer'), peer('writer')];
      writers += 2;
      await Promise.all(pair.map(({ started }) => started));
      await sleep(Math.random() * 10);
      for (const { child } of pair) if (child.exitCode === null && child.kill('SIGKILL')) killed.writers++;
      const locker = Math.floor(Math.random() * lockers.length);
      lockers[locker]!.kill('SIGKILL');
      killed.lockers++;
      lockers[locker] = peer('locker').child;
      await Promise.all(pair.map(({ child }) => exited(child)));
    }
    lockers.forEach((child) => child.kill('SIGKILL'));
    await Promise.all(lockers.map(exited));
    // The last changes are this process's, after every killed writer: each watcher must hear them (the version is the
    // value + 1).
    share.update((value) => value! + 1);
    share.update((value) => value! + 1);
    const reports = await Promise.all(watchers.map(({ report }) => report));
    // The watchers exit without giving their rows back: the next to register reclaims them, once they are gone.
    await Promise.all(watchers.map(({ child }) => exited(child)));
    share.watch(() => {})();
    await new Promise(setImmediate);
    const left = { rows: rowsInUse(path), waiters: readFileSync(path).readUInt32LE(W_WAITERS * 4) };
    const lost = reports.filter((report) => report.version !== cap + 3).length;
    figure(
      `bell, peers killed: ${cap} updates by ${writers} writers (${killed.writers} killed), ${killed.lockers} lock waiters killed; ${reports.length} watchers, ${lost} lost; ${left.rows} rows and ${left.waiters} waiters left`,
    );
    expect(lost).toBe(0);
    expect(left).toStrictEqual({ rows: 0, waiters: 0 });
  },
  Math.max(120_000, stress.bellSets / 5),
);
