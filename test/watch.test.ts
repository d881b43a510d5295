// Change notification: watch() and changes() see every version change, from any process, by polling one word.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { fixture, fresh, Peer, run } from './helpers.js';

describe('watch()', () => {
  it('calls the listener with the value and version after a set in another process, and only then', async () => {
    const share = fresh<{ mode: string }>(256, { value: { mode: 'a' } });
    const calls: [unknown, number][] = [];
    const stop = share.watch((value, version) => calls.push([value, version]), { interval: 2 });
    await sleep(30);
    expect(calls).toEqual([]);
    const child = new Peer();
    await child.call('attach', { ref: share.handle });
    await child.call('set', { value: { mode: 'b' } });
    await expect.poll(() => calls, { timeout: 5000, interval: 5 }).toEqual([[{ mode: 'b' }, 2]]);
    stop();
    await child.call('set', { value: { mode: 'c' } });
    await sleep(30);
    expect(calls).toHaveLength(1);
  });

  it('stops by itself when the share is closed', async () => {
    const share = fresh<number>(64);
    let calls = 0;
    share.watch(() => calls++, { interval: 1 });
    share.close();
    await sleep(20);
    expect(calls).toBe(0);
  });

  it('keeps no process alive', async () => {
    const { code, stderr } = await run(fixture('idle-watcher.mjs'));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  it('refuses a bad interval or listener with ERR_BAD_OPTION', () => {
    const share = fresh();
    expect(() => share.watch(() => {}, { interval: 0 })).toThrow(expect.objectContaining({ code: 'ERR_BAD_OPTION' }));
    expect(() => share.watch('no' as unknown as () => void)).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_OPTION' }),
    );
  });
});

describe('changes()', () => {
  it('yields the value after each change, and ends when the share closes', async () => {
    const share = fresh<number>(64, { value: 0 });
    const seen: (number | undefined)[] = [];
    const done = (async () => {
      for await (const value of share.changes({ interval: 1 })) {
        seen.push(value);
        if (value === 3) share.close();
      }
    })();
    for (let n = 1; n <= 3; n++) {
      await expect.poll(() => seen.length, { timeout: 5000, interval: 2 }).toBe(n - 1);
      share.set(n);
    }
    await done;
    expect(seen).toEqual([1, 2, 3]);
  });

  it('stops waiting when its signal aborts', async () => {
    const share = fresh();
    const controller = new AbortController();
    const iterator = share.changes({ signal: controller.signal });
    const next = iterator.next();
    controller.abort();
    await expect(next).rejects.toMatchObject({ name: 'AbortError' });
  });
});
