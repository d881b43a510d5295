// SharedMap across real processes: attach by handle and name, exact per-key updates, fetch() computing once per
// cluster and taken over when its process dies or throws. Writers killed inside the lock: test/stress/map.stress.ts.
import { closeSync, openSync, readSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { SharedMap } from '../dist/index.mjs';
import { defer, Peer } from './helpers.js';

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

  it('a writer SIGKILLed inside update() holds no one up: the next writer takes the lock over and repairs', async () => {
    const m = map<number>();
    m.set('k', 1);
    const [holder] = await peers(1, m.handle);
    void holder!.call('hold', { key: 'k' }).catch(() => undefined);
    // The holder words (word 6) name the child once it is inside.
    const [, pid, fd] = m.handle.split(':');
    const file = openSync(`/proc/${pid}/fd/${fd}`, 'r');
    defer(() => closeSync(file));
    const word = Buffer.alloc(4);
    while ((readSync(file, word, 0, 4, 6 * 4), word.readUInt32LE(0)) !== holder!.pid) await sleep(5);
    await holder!.kill();
    m.set('k', 2);
    expect(m.get('k')).toBe(2);
    expect(m.stats().repairs).toBe(1);
    expect(m.verify().ok).toBe(true);
  });

  it('a set() or update() that waited for the lock counts its ttl from its write, not from its call', async () => {
    const m = map<number>();
    const [holder] = await peers(1, m.handle);
    const writes = [(ttl: number) => m.set('k', 1, { ttl }), (ttl: number) => m.update('k', () => 2, { ttl })];
    for (const write of writes) {
      const holding = holder!.notice();
      const held = holder!.call('holdFor', { key: 'held', ms: 300 });
      await holding;
      const called = Date.now();
      write(200);
      // It waited for the lock longer than its ttl: counted from the call, the entry would be born expired.
      expect(Date.now() - called).toBeGreaterThan(250);
      expect(m.has('k')).toBe(true);
      await held;
      m.delete('k');
    }
    // Nor from the lock: a new entry's ttl counts once `fn` has run.
    m.update(
      'slow',
      () => {
        for (const until = Date.now() + 60; Date.now() < until;);
        return 1;
      },
      { ttl: 40 },
    );
    expect(m.has('slow')).toBe(true);
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
});
