// SharedMap across real processes: attach by handle and name, exact per-key updates, fetch() computing once per
// cluster and taken over when its process dies or throws, and repair after writers killed inside the lock.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { SharedMap } from '../dist/index.mjs';
import { defer, fixture, Peer } from './helpers.js';

function map<V = unknown>(capacity: number | string = '1MB', name?: string): SharedMap<V> {
  const created = SharedMap.create<V>({ capacity, name });
  defer(() => created.close());
  return created;
}

async function peers(count: number, ref: string): Promise<Peer[]> {
  const all = Array.from({ length: count }, () => new Peer({}, 'map-peer.mjs'));
  await Promise.all(all.map((peer) => peer.call('attach', { ref })));
  return all;
}

describe('SharedMap across processes', () => {
  it('a child attaches by name and by handle; writes by either are seen by both', async () => {
    const m = map<string>('1MB', 'map_by_name');
    const [byName] = await peers(1, 'map_by_name');
    const [byHandle] = await peers(1, m.handle);
    await byName!.call('set', { key: 'from-child', value: 'hello' });
    expect(m.get('from-child')).toBe('hello');
    m.set('from-parent', 'world');
    expect(await byHandle!.call('get', { key: 'from-parent' })).toBe('world');
    expect(await byHandle!.call('get', { key: 'from-child' })).toBe('hello');
  });

  it('4 processes x 2,000 update() increments of one key end exact', async () => {
    const m = map<number>();
    const all = await peers(4, m.handle);
    await Promise.all(all.map((peer) => peer.call('count', { key: 'n', times: 2000 })));
    expect(m.get('n')).toBe(8000);
    expect(m.verify().ok).toBe(true);
  });

  it('fetch() from 8 processes of one missing key runs compute exactly once', async () => {
    const m = map();
    const all = await peers(8, m.handle);
    const results = await Promise.all(all.map((peer) => peer.call('fetch', { key: 'k', value: `computed`, ms: 300 })));
    expect(results).toEqual(Array(8).fill('computed'));
    expect(m.get('computes')).toBe(1);
    expect(m.stats().pending).toBe(0);
  });

  it('when the computing process is SIGKILLed, a waiting process computes instead', async () => {
    const m = map();
    const [first, second] = await peers(2, m.handle);
    const computing = first!.notice<{ pid: number }>();
    void first!.call('fetch', { key: 'k', value: 'never' }).catch(() => undefined);
    expect((await computing).pid).toBe(first!.pid);
    const waiting = second!.call('fetch', { key: 'k', value: 'from the second', ms: 10 });
    await sleep(50);
    await first!.kill();
    expect(await waiting).toBe('from the second');
    expect(m.get('computes')).toBe(2);
    expect(m.get('k')).toBe('from the second');
    expect(m.verify().ok).toBe(true);
  });

  it('a compute that throws is rethrown to its own caller only; a waiter computes instead', async () => {
    const m = map();
    const [first, second] = await peers(2, m.handle);
    const computing = first!.notice();
    const failing = first!.call('fetch', { key: 'k', value: 'unused', ms: 100, fail: true });
    await computing;
    const waiting = second!.call('fetch', { key: 'k', value: 'second', ms: 10 });
    await expect(failing).rejects.toMatchObject({ message: `compute failed in ${first!.pid}` });
    expect(await waiting).toBe('second');
    expect(m.get('computes')).toBe(2);
  });

  it('a waiter gives up with ERR_LOCK_TIMEOUT after its timeout; the computation goes on', async () => {
    const m = map<string>();
    const [first] = await peers(1, m.handle);
    const computing = first!.notice();
    const done = first!.call('fetch', { key: 'k', value: 'late', ms: 300 });
    await computing;
    await expect(m.fetch('k', () => 'mine', { timeout: 50 })).rejects.toMatchObject({ code: 'ERR_LOCK_TIMEOUT' });
    expect(await done).toBe('late');
    expect(m.get('k')).toBe('late');
  });

  it('writers SIGKILLed at random instants leave every entry whole, verify() clean and no space lost', async () => {
    const m = map<{ key: string; seq: number; fill: Uint8Array }>(256 * 1024);
    let repaired = 0;
    for (let kill = 0; kill < 30; kill++) {
      const child = fork(fixture('map-churn.mjs'), [m.handle, '200'], { stdio: 'inherit' });
      defer(() => child.kill('SIGKILL'));
      await once(child, 'message');
      await sleep(Math.random() * 10);
      child.kill('SIGKILL');
      await once(child, 'exit');
      const before = m.stats().repairs;
      expect(m.verify()).toEqual({ ok: true, problems: [] });
      repaired += m.stats().repairs - before;
      for (const [key, value] of m) {
        expect(value.key).toBe(key);
        expect(value.fill.every((byte) => byte === value.seq % 251)).toBe(true);
      }
    }
    // Most kills land inside the lock, and each of those is repaired by the next holder.
    expect(repaired).toBeGreaterThan(0);
  });
});
