// RedisMap.fetch() against a real redis-server: its claim is dropped on every way out of compute, and the calls of one
// instance that join one computation each wait under their own timeout and signal.
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisMap } from '../dist/redis/index.mjs';
import { Peer } from './helpers.js';
import { RedisServer } from './redis/server.js';

let server: RedisServer;
let admin: ReturnType<typeof createClient>;
let opened: RedisMap<string>[] = [];
let next = 0;

beforeAll(async () => {
  server = await RedisServer.start();
  admin = createClient({ url: server.url });
  await admin.connect();
});
afterAll(async () => {
  admin.destroy();
  await server.stop();
});
afterEach(async () => {
  await Promise.all(opened.map((map) => map.close()));
  opened = [];
});

// A new map and a second instance attached to it, closed after the test; `claim` is the key of fetch('k')'s claim.
async function maps(options: { lease?: number } = {}) {
  const name = `fetch-${next++}`;
  const map = await RedisMap.create<string>(name, { url: server.url, ...options });
  const other = await RedisMap.attach<string>(name, { url: server.url });
  opened.push(map, other);
  return { map, other, name, claim: `{${name}}:f:k` };
}

// A compute that runs until finish() is called, rejecting when its signal aborts; started resolves when it runs.
function controlled() {
  let finish: (value: string) => void = () => {};
  let started: () => void = () => {};
  const running = new Promise<void>((resolve) => (started = resolve));
  const compute = (_key: string, { signal }: { signal?: AbortSignal }) =>
    new Promise<string>((resolve, reject) => {
      finish = resolve;
      signal?.addEventListener('abort', () => reject(signal.reason as Error));
      started();
    });
  return { compute, running, finish: (value: string) => finish(value) };
}

const scriptCalls = async () => Number(/cmdstat_eval:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0);

describe('fetch() drops its claim on every way out of compute', () => {
  it.each([
    { way: 'the value is stored', compute: () => 'computed', outcome: { value: 'computed' } },
    {
      way: 'compute throws',
      compute: () => {
        throw new Error('compute failed');
      },
      outcome: { error: 'compute failed' },
    },
    { way: 'compute returns undefined', compute: () => undefined, outcome: { value: undefined } },
    {
      way: 'the value cannot be encoded',
      compute: () => ({ callback: () => 1 }),
      outcome: { error: 'ERR_NOT_SERIALIZABLE' },
    },
  ])('when $way, and stops renewing it', async ({ compute, outcome }) => {
    // A lease of 30 ms is renewed every 10 ms: a renewal left running would show in the server's counts.
    const { map, other, claim } = await maps({ lease: 30 });
    const settled = await map.fetch('k', compute as () => string).then(
      (value) => ({ value }),
      (error: { code?: string; message: string }) => ({ error: error.code ?? error.message }),
    );
    expect(settled).toStrictEqual(outcome);
    expect(await admin.exists(claim)).toBe(0);
    const calls = await scriptCalls();
    await sleep(100);
    expect(await scriptCalls()).toBe(calls);
    // Another instance computes at once, rather than after a lease of the default 10 s.
    const value = 'value' in outcome && outcome.value !== undefined ? outcome.value : 'other';
    expect(await other.fetch('k', () => 'other', { timeout: 1000 })).toBe(value);
  });

  it('close() while compute runs drops the claim at once: another process computes in its place', async () => {
    const { map, other, claim } = await maps();
    const { compute, running, finish } = controlled();
    const fetching = map.fetch('k', compute);
    await running;
    await map.close();
    expect(await admin.exists(claim)).toBe(0);
    expect(await other.fetch('k', () => 'other', { timeout: 1000 })).toBe('other');
    finish('late');
    await expect(fetching).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    expect(await other.get('k')).toBe('other');
  });

  it('close() while compute runs stops the claim renewing: the process lives on', async () => {
    const { name } = await maps();
    const peer = new Peer({}, 'redis-peer.mjs');
    await peer.call('attachMap', { url: server.url, name, lease: 30 });
    const ended = await Promise.race([
      peer.call('closeWhileComputing', { key: 'k', ms: 200 }),
      peer.exited.then(({ code }) => `exited with code ${code}`),
    ]);
    expect(ended).toBe('ERR_CLOSED');
  });
});

describe('calls of one instance that join one computation', () => {
  it('time out on their own timeout, while the call computing goes on', async () => {
    const { map } = await maps();
    const { compute, running, finish } = controlled();
    const computing = map.fetch('k', compute);
    await running;
    const done = setTimeout(() => finish('computed'), 1500);
    const started = performance.now();
    await expect(map.fetch('k', () => 'joined', { timeout: 200 })).rejects.toMatchObject({ code: 'ERR_LOCK_TIMEOUT' });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await computing).toBe('computed');
    clearTimeout(done);
  });

  it('wait for another process under their own timeout, not that of the call they joined', async () => {
    const { map, claim } = await maps();
    // Another process's claim, as it would hold it while it computes.
    await admin.set(claim, 'another process', { PX: 1500 });
    const patient = map.fetch('k', () => 'mine', { timeout: 5000 });
    const started = performance.now();
    await expect(map.fetch('k', () => 'mine', { timeout: 200 })).rejects.toMatchObject({ code: 'ERR_LOCK_TIMEOUT' });
    expect(performance.now() - started).toBeLessThan(1000);
    // The claim lapsed: this instance computes.
    expect(await patient).toBe('mine');
  });

  it("are not aborted by another call's signal; compute is aborted once every call gave up", async () => {
    const { map, claim } = await maps();
    const first = controlled();
    const aborted = new AbortController();
    const leaving = map.fetch('k', first.compute, { signal: aborted.signal });
    const staying = map.fetch('k', first.compute);
    await first.running;
    // Both calls' get() round trips have ended, so both have joined.
    await sleep(50);
    aborted.abort();
    await expect(leaving).rejects.toMatchObject({ name: 'AbortError' });
    first.finish('computed');
    expect(await staying).toBe('computed');

    const second = controlled();
    const signals = [new AbortController(), new AbortController()];
    const calls = signals.map((controller) => map.fetch('j', second.compute, { signal: controller.signal }));
    await second.running;
    await sleep(50);
    for (const controller of signals) controller.abort();
    for (const call of calls) await expect(call).rejects.toMatchObject({ name: 'AbortError' });
    // compute saw its signal abort and threw: its claim is dropped.
    await expect.poll(() => admin.exists(claim.replace(':f:k', ':f:j'))).toBe(0);
  });
});
