// The exclusive lock: explicit sections, exclusion between instances, waiting without blocking, dead holders.
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { attached, fresh, Peer } from './helpers.js';

describe('lock() and unlock()', () => {
  it('lets the holder get, set and update without taking the lock again', () => {
    const share = fresh<number>(64, { value: 1 });
    expect(share.lock()).toStrictEqual({ ownerDied: false });
    share.set((share.get() ?? 0) + 1);
    expect(share.update((n) => (n ?? 0) * 10)).toBe(20);
    share.unlock();
    expect(share.get()).toBe(20);
    expect(share.version).toBe(3);
  });

  it('excludes another instance until unlock', () => {
    const share = fresh();
    const peer = attached(share.handle);
    share.lock();
    expect(peer.tryLock()).toBeUndefined();
    share.unlock();
    expect(peer.tryLock()).toStrictEqual({ ownerDied: false });
    expect(share.tryLock()).toBeUndefined();
    peer.unlock();
  });

  it('excludes another process: a child blocked in set() commits only after unlock', async () => {
    const share = fresh<string>(64, { value: 'before' });
    const child = new Peer();
    await child.call('attach', { ref: share.handle });
    share.lock();
    const childSet = child.call('set', { value: 'child' });
    await sleep(100);
    expect(share.get()).toBe('before');
    share.set('holder');
    share.unlock();
    await childSet;
    expect(share.get()).toBe('child');
    expect(share.version).toBe(3);
  });

  it('lets a process waiting for a lock() holder sleep in the kernel instead of polling', async () => {
    const share = fresh<string>(64, { value: 'before' });
    const child = new Peer();
    await child.call('attach', { ref: share.handle });
    const switches = async () =>
      Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(await readFile(`/proc/${child.pid}/status`, 'utf8'))![1]);
    share.lock();
    const childSet = child.call('set', { value: 'child' });
    await sleep(50);
    const before = await switches();
    await sleep(300);
    // A waiter polling at its longest sleep, 0.1 ms, would have woken about 3,000 times.
    expect((await switches()) - before).toBeLessThan(30);
    share.unlock();
    await childSet;
    expect(share.get()).toBe('child');
  });

  it('lets readers read while another instance holds the lock', () => {
    const share = fresh<string>(64, { value: 'readable' });
    attached(share.handle).lock();
    expect(share.get()).toBe('readable');
    expect(share.snapshot()).toBe('readable');
  });

  it('lets an update function read its own share without deadlock', () => {
    const share = fresh<number>(64, { value: 2 });
    expect(share.update((n) => (n ?? 0) + (share.get() ?? 0))).toBe(4);
  });

  it('leaves the lock free when the update function throws, and nothing written', () => {
    const share = fresh<number>(64, { value: 7 });
    expect(() =>
      share.update(() => {
        throw new Error('no');
      }),
    ).toThrow('no');
    expect(share.get()).toBe(7);
    expect(share.version).toBe(1);
    expect(share.tryLock()).toStrictEqual({ ownerDied: false });
    share.unlock();
  });

  it('releases the lock on close()', () => {
    const share = fresh();
    const peer = attached(share.handle);
    share.lock();
    share.close();
    expect(peer.tryLock()).toStrictEqual({ ownerDied: false });
    peer.unlock();
  });
});

describe('a holder that dies', () => {
  it('leaves the lock free, and the next lock() learns it died and who it was, once', async () => {
    const share = fresh<string>(64, { value: 'intact' });
    const child = new Peer();
    await child.call('attach', { ref: share.handle });
    await child.call('lock');
    expect(share.tryLock()).toBeUndefined();
    await child.kill();
    expect(share.lock()).toStrictEqual({ ownerDied: true, deadPid: child.pid });
    expect(share.get()).toBe('intact');
    share.unlock();
    expect(share.lock()).toStrictEqual({ ownerDied: false });
    share.unlock();
  });

  it('wakes a process waiting in set() at once, which takes the lock over', async () => {
    const share = fresh<string>(64, { value: 'intact' });
    const [holder, waiter] = [new Peer(), new Peer()];
    await holder.call('attach', { ref: share.handle });
    await waiter.call('attach', { ref: share.handle });
    await holder.call('lock');
    const waiterSet = waiter.call('set', { value: 'waiter' });
    await sleep(50);
    await holder.kill();
    await waiterSet;
    expect(share.get()).toBe('waiter');
    expect(share.lock()).toStrictEqual({ ownerDied: true, deadPid: holder.pid });
    share.unlock();
  });

  it('is still reported to the next lock() when set() took the lock in between', async () => {
    const share = fresh<string>(64);
    const child = new Peer();
    await child.call('attach', { ref: share.handle });
    await child.call('lock');
    await child.kill();
    share.set('after');
    expect(share.lock()).toStrictEqual({ ownerDied: true, deadPid: child.pid });
    share.unlock();
  });
});

describe('lockAsync()', () => {
  it('waits for the holder without blocking the event loop or the libuv pool', async () => {
    const share = fresh<number>(64, { value: 0 });
    const child = new Peer();
    await child.call('attach', { ref: share.handle });
    await child.call('lock');
    // Eight waiters: twice the libuv pool. Waiters that parked pool threads would keep readFile from running.
    const waiters = Array.from({ length: 8 }, () => attached<number>(share.handle));
    const acquired = waiters.map(async (waiter) => {
      await waiter.lockAsync();
      waiter.set((waiter.get() ?? 0) + 1);
      waiter.unlock();
    });
    await sleep(50);
    const read = await Promise.race([readFile(__filename, 'utf8'), sleep(10_000).then(() => 'starved')]);
    expect(read).toContain('libuv pool');
    expect(share.version).toBe(1);
    await child.call('unlock');
    await Promise.all(acquired);
    expect(share.get()).toBe(8);
  });

  it('fails with ERR_LOCK_TIMEOUT naming the holder pid', async () => {
    const share = fresh();
    const child = new Peer();
    await child.call('attach', { ref: share.handle });
    await child.call('lock');
    await expect(share.lockAsync({ timeout: 50 })).rejects.toMatchObject({
      code: 'ERR_LOCK_TIMEOUT',
      message: expect.stringMatching(new RegExp(`pid ${child.pid} \\(running\\)`)),
    });
    await child.call('unlock');
    expect(await share.lockAsync({ timeout: 1000 })).toStrictEqual({ ownerDied: false });
    share.unlock();
  });

  it('stops waiting when its signal aborts, with the signal reason, and leaves the lock as it was', async () => {
    const share = fresh();
    const peer = attached(share.handle);
    peer.lock();
    const controller = new AbortController();
    const waiting = share.lockAsync({ signal: controller.signal });
    setTimeout(() => controller.abort(new Error('shutting down')), 20);
    await expect(waiting).rejects.toThrow('shutting down');
    await expect(share.lockAsync({ signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    expect(share.tryLock()).toBeUndefined();
    peer.unlock();
    expect(share.tryLock()).toStrictEqual({ ownerDied: false });
    share.unlock();
  });

  it('queues two waits on one instance: the second takes the lock after the first unlocks', async () => {
    const share = fresh<string[]>(256, { value: [] });
    const first = share.lockAsync();
    const second = share.lockAsync();
    await first;
    share.update((log) => [...(log ?? []), 'first']);
    setTimeout(() => share.unlock(), 20);
    await second;
    share.update((log) => [...(log ?? []), 'second']);
    share.unlock();
    expect(share.get()).toStrictEqual(['first', 'second']);
  });
});
