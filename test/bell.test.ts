// The doorbell with real processes: a watcher that only a ring can wake in time hears every change it waits for,
// however its registering races the writer; a killed watcher's registration is reclaimed; where the header has no
// free row, watchers poll instead and say so once.
import { fork, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, copyFileSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep, setImmediate as turn } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { D_WAITER_ROWS, W_LOOKS, W_WAITERS, WAITER_ROWS } from '../dist/layout.js';
import { attached, fixture, fresh, tempDir } from './helpers.js';

const children: ReturnType<typeof fork>[] = [];
afterEach(() => void children.splice(0).forEach((child) => child.kill('SIGKILL')));

// A watcher process; resolves with it once it watches.
async function watcher(handle: string, last: number, mode = '') {
  // Their only looks besides the rings are a minute apart: a lost wake-up would have to wait that long.
  const env = { ...process.env, MMAP_SHARE_BELL_LOOK_MS: '60000' };
  const child = fork(fixture('bell-watcher.mjs'), [handle, String(last), mode], { stdio: 'pipe', env });
  children.push(child);
  await new Promise((resolve) => child.once('message', resolve));
  const done = new Promise<unknown>((resolve) => child.once('message', resolve));
  return { child, done };
}

const dist = join(__dirname, '..', 'dist', 'index.js');
const word = (path: string, index: number) => readFileSync(path).readUInt32LE(index * 4);

describe('the doorbell', () => {
  // LOOKS starting near its wrap: the writers' test is equality, which the wrap does not fool.
  it.each([
    ['0', 0],
    ['2^32 - 5', 2 ** 32 - 5],
  ])(
    'wakes watchers in other processes for every change, however registering races the rings (LOOKS from %s)',
    async (_, looks) => {
      const last = 600;
      const path = `${tempDir()}/race`;
      const share = fresh<number>(64, { path, value: 0 });
      const fd = openSync(path, 'r+');
      writeSync(fd, Buffer.from(new Uint32Array([looks]).buffer), 0, 4, W_LOOKS * 4);
      closeSync(fd);
      const watchers = await Promise.all(Array.from({ length: 3 }, () => watcher(share.handle, last + 1)));
      for (let version = 2; version <= last + 1; version++) {
        share.set(version);
        if (version % 50 === 0) await sleep(1);
        else if (version % 7 === 0) await new Promise(setImmediate);
      }
      const reports = (await Promise.all(watchers.map(({ done }) => done))) as { seen: number; version: number }[];
      for (const report of reports) expect(report).toMatchObject({ version: last + 1, seen: expect.any(Number) });
      // A lost wake-up would leave a watcher asleep for a minute, past this test's timeout.
      if (looks !== 0) expect(word(path, W_LOOKS)).toBeLessThan(looks);
    },
    30_000,
  );

  it('still rings for the others after a writer is killed as it rings', async () => {
    const share = fresh<number>(64, { value: 0 });
    const { done } = await watcher(share.handle, 3);
    const killed = spawnSync(
      process.execPath,
      ['-e', `require(${JSON.stringify(dist)}).MmapShare.attach('${share.handle}').set(2)`],
      { env: { ...process.env, MMAP_SHARE_CRASH_AT: 'bell.ringing' } },
    );
    expect(killed.signal).toBe('SIGKILL');
    expect(share.get()).toBe(2);
    // The watcher's only other look is a minute away: this set must ring.
    share.set(3);
    expect(await done).toMatchObject({ version: 3 });
  }, 10_000);

  it('reclaims the registration of a watcher killed while it waits', async () => {
    const path = `${tempDir()}/bell`;
    const share = fresh<number>(64, { path, value: 0 });
    const { child } = await watcher(path, 0, 'kill');
    expect(word(path, W_WAITERS)).toBe(1);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(word(path, W_WAITERS)).toBe(1);
    const stop = share.watch(() => {});
    expect(word(path, W_WAITERS)).toBe(1);
    stop();
    // An ear lingers until the event loop turns, for a waiter that comes next.
    await turn();
    expect(word(path, W_WAITERS)).toBe(0);
  });

  it('reclaims every row of a thread that is gone, not only those before the first free one', async () => {
    const path = `${tempDir()}/rows`;
    const share = fresh<number>(64, { path, value: 0 });
    const stop = share.watch(() => {});
    const { child } = await watcher(path, 0, 'kill');
    stop();
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(word(path, W_WAITERS)).toBe(1);
    share.watch(() => {})();
    await turn();
    expect(word(path, W_WAITERS)).toBe(0);
  });

  it('gives back the row of a changes() iterator nobody pulls any more when its share closes', async () => {
    const path = `${tempDir()}/unpulled`;
    const share = fresh<number>(64, { path, value: 0 });
    const changes = share.changes();
    const first = changes.next();
    share.set(1);
    expect((await first).value).toBe(1);
    // Suspended at its yield: only close() can end what it listens to.
    expect(word(path, W_WAITERS)).toBe(1);
    share.close();
    expect(word(path, W_WAITERS)).toBe(0);
    expect(await changes.next()).toStrictEqual({ done: true, value: undefined });
  });

  it("registers in a copy of a region's file apart from the original, though their ids are the same", async () => {
    const dir = tempDir();
    const original = fresh<number>(64, { path: `${dir}/original`, value: 0 });
    copyFileSync(`${dir}/original`, `${dir}/copy`);
    const copy = attached<number>(`${dir}/copy`);
    const stops = [original.watch(() => {}), copy.watch(() => {})];
    expect([word(`${dir}/original`, W_WAITERS), word(`${dir}/copy`, W_WAITERS)]).toStrictEqual([1, 1]);
    stops.forEach((stop) => stop());
    await turn();
    expect([word(`${dir}/original`, W_WAITERS), word(`${dir}/copy`, W_WAITERS)]).toStrictEqual([0, 0]);
  });

  it('lets a listener stop its watcher from its first call, while another thread commits without pause', async () => {
    const path = `${tempDir()}/first`;
    const share = fresh<number>(64, { path, value: 0 });
    const writer = new Worker(
      `const share = require(${JSON.stringify(dist)}).MmapShare.attach(${JSON.stringify(path)});
      require('node:worker_threads').parentPort.postMessage('writing');
      const end = Date.now() + 500;
      for (let i = 0; Date.now() < end; i++) share.set(i);`,
      { eval: true },
    );
    await new Promise((resolve) => writer.once('message', resolve));
    const exited = new Promise((resolve) => writer.once('exit', resolve));
    let writing = true;
    void exited.then(() => (writing = false));
    let calls = 0;
    // 300 watchers at least; more while none was called and the writer writes (a loaded machine may deschedule it).
    for (let i = 0; i < 300 || (calls === 0 && writing); i++) {
      const stop = share.watch(() => (calls++, stop()));
      await new Promise(setImmediate);
      stop();
    }
    await exited;
    expect(calls).toBeGreaterThan(0);
    expect(word(path, W_WAITERS)).toBe(0);
  });

  it('reclaims the row of a worker thread gone while it watched, even at a registration of a thread with a row', async () => {
    const path = `${tempDir()}/thread`;
    const share = fresh<number>(64, { path, value: 0 });
    const stopFirst = share.watch(() => {});
    const worker = new Worker(
      `require(${JSON.stringify(dist)}).MmapShare.attach(${JSON.stringify(path)}).watch(() => {});
      const thread = require('node:fs').readlinkSync('/proc/thread-self').split('/').pop();
      require('node:worker_threads').parentPort.postMessage(thread);`,
      { eval: true },
    );
    const thread = await new Promise<string>((resolve) => worker.once('message', resolve));
    expect(word(path, W_WAITERS)).toBe(2);
    await worker.terminate();
    // terminate() resolves once the thread has stopped running, a moment before the kernel lets it go from /proc.
    while (existsSync(`/proc/self/task/${thread}`)) await sleep(1);
    // Another instance: the watchers of one instance share its registration, and make none of their own.
    const stopSecond = attached<number>(path).watch(() => {});
    expect(word(path, W_WAITERS)).toBe(1);
    stopFirst();
    stopSecond();
    await turn();
    expect(word(path, W_WAITERS)).toBe(0);
  });

  it('keeps a process alive while its lockAsync() waits, with no timeout', async () => {
    const share = fresh<number>(64, { value: 0 });
    share.lock();
    const script = `require(${JSON.stringify(dist)}).MmapShare.attach('${share.handle}').lockAsync().then(() => console.log('locked'))`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk));
    await sleep(300);
    expect(child.exitCode).toBeNull();
    share.unlock();
    const [code] = await once(child, 'exit');
    expect({ code, out }).toStrictEqual({ code: 0, out: 'locked\n' });
  });

  it('polls, warning once with MMAP_SHARE_POLLING, while every waiter row is taken by a live thread', async () => {
    const path = `${tempDir()}/full`;
    const share = fresh<number>(64, { path, value: 0 });
    takeEveryRow(path);
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    const heard: number[] = [];
    const stop = share.watch((value) => heard.push(value ?? -1), { interval: 5 });
    share.set(7);
    for (let waited = 0; heard.length === 0 && waited < 2000; waited += 5) await sleep(5);
    process.off('warning', onWarning);
    expect(heard).toStrictEqual([7]);
    expect(warnings).toMatchObject([{ code: 'MMAP_SHARE_POLLING', message: expect.stringContaining('22') }]);
    // Once a row is free again, the polling watcher takes it, within a second, and sleeps on the bell.
    freeRow(path);
    for (let waited = 0; word(path, W_WAITERS) === 0 && waited < 3000; waited += 20) await sleep(20);
    expect(word(path, W_WAITERS)).toBe(1);
    stop();
    await turn();
    expect(word(path, W_WAITERS)).toBe(0);
  });

  it('leaves no row behind a lockAsync() that outlives its close(), though a row came free meanwhile', async () => {
    const path = `${tempDir()}/closed`;
    const holder = fresh<number>(64, { path, value: 0 });
    holder.lock();
    // The wait tries for a row every 16 ms, at its looks: some of these closes come before such a look.
    for (let delay = 1; delay <= 20; delay++) {
      takeEveryRow(path);
      const waiter = attached<number>(path);
      const pending = waiter.lockAsync().catch((error: { code: string }) => error.code);
      await sleep(delay);
      freeRow(path);
      waiter.close();
      expect(await pending).toBe('ERR_CLOSED');
      await turn();
      expect(word(path, W_WAITERS)).toBe(0);
    }
    holder.unlock();
  });
});

// Fills every waiter row with pid 1 as it runs: alive, so never reclaimed.
function takeEveryRow(path: string): void {
  const start = BigInt(readFileSync('/proc/1/stat', 'latin1').split(') ')[1]!.split(' ')[19]!) & 0xffffffffn;
  const row = Buffer.alloc(8);
  row.writeBigUInt64LE(1n | (start << 32n));
  const fd = openSync(path, 'r+');
  for (let i = 0; i < WAITER_ROWS; i++) writeSync(fd, row, 0, 8, (D_WAITER_ROWS + i) * 8);
  closeSync(fd);
}

function freeRow(path: string): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.alloc(8), 0, 8, D_WAITER_ROWS * 8);
  closeSync(fd);
}
