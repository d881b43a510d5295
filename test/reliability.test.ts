// The promises, each tested where it broke: a live holder never robbed (a /proc lookup failing or misleading, a lock
// released and retaken between two loads, a reused pid), a dead one never blocking (a terminated worker thread),
// nothing stored lost or returned wrong (a full map with expired keys, versions at their wrap, the largest regions),
// nothing stuck (fetch markers on every way out of compute, joined fetches under their own timeout and signal).
// Every write path killed at each of its named steps: test/crash-points.test.ts.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { MAX_CAPACITY, MAX_SIZE, MmapShare, SharedMap, type SharedMapOptions } from '../dist/index.mjs';
import { W_CHUNKS, W_SEQ, W_SLOTS } from '../dist/map/layout.js';
import { defer, fixture, fresh, Peer, run, tempDir } from './helpers.js';

function map<V = unknown>(options: Partial<SharedMapOptions<V>> = {}): SharedMap<V> {
  const created = SharedMap.create<V>({ capacity: '1MB', ...options });
  defer(() => created.close());
  return created;
}

async function hostile(op: string, args: Record<string, unknown>): Promise<Peer> {
  const peer = new Peer({}, 'hostile.mjs');
  await peer.call(op, args);
  return peer;
}

// Writes the 32-bit word `word` of the region file at `path`, as a damaged or aged region would hold it.
function pokeWord(path: string, word: number, value: number): void {
  const fd = openSync(path, 'r+');
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(value >>> 0);
  writeSync(fd, bytes, 0, 4, word * 4);
  closeSync(fd);
}

// Damages the key length of the record the first live slot points to, as random damage would (lib/map/layout.ts).
function damageARecord(path: string): void {
  const file = readFileSync(path);
  const words = new Uint32Array(file.buffer, file.byteOffset, file.length / 4);
  const [slots, chunks] = [words[W_SLOTS]!, words[W_CHUNKS]!];
  const chunkBase = Math.ceil((4096 + slots * 16 + chunks * 4) / 64) * 64;
  for (let slot = 1024; ; slot += 4) {
    if (words[slot] !== 0) return pokeWord(path, chunkBase / 4 + words[slot + 2]! * 16 + 2, 0xffff);
  }
}

// A child that dies holding the lock of the map `ref`, killed at the crash point `lock.taken` of its first write.
async function dieHoldingLock(ref: string): Promise<void> {
  const peer = new Peer({ env: { ...process.env, MMAP_SHARE_CRASH_AT: 'lock.taken' } }, 'hostile.mjs');
  await peer.call('attachMap', { ref });
  void peer.call('slowUpdate', { key: 'x', ms: 0 });
  expect((await peer.exited).signal).toBe('SIGKILL');
}

describe('a live holder is never robbed', () => {
  it('a waiter out of file descriptors, whose /proc lookups fail with EMFILE, waits for a live holder', async () => {
    const share = fresh<number>(64, { value: 0 });
    const holder = await hostile('attachShare', { ref: share.handle });
    const waiter = await hostile('attachShare', { ref: share.handle });
    expect(await waiter.call<number>('exhaust')).toBeGreaterThan(0);
    const slow = holder.call('slowUpdate', { ms: 600 });
    await sleep(50);
    await Promise.all([slow, waiter.call('slowUpdate', { ms: 0 })]);
    expect(share.get()).toBe(2);
  });

  it('a fetch() waiting out of file descriptors leaves a live computation alone', async () => {
    const m = map();
    const computer = await hostile('attachMap', { ref: m.handle });
    const waiter = await hostile('attachMap', { ref: m.handle });
    await waiter.call('exhaust');
    const first = computer.call('fetch', { key: 'k', ms: 600, value: 'one' });
    await sleep(100);
    const second = waiter.call('fetch', { key: 'k', ms: 0, value: 'two' });
    expect(await Promise.all([first, second])).toEqual(['one', 'one']);
    expect(m.get('computes')).toBe(1);
  });

  it.each(['tryLocks', 'lockAsyncs'])('%s beside a busy writer never call it dead nor take its lock', async (taker) => {
    const share = fresh<number>(64, { value: 0 });
    const writer = await hostile('attachShare', { ref: share.handle });
    const other = await hostile('attachShare', { ref: share.handle });
    const [updates, taken] = await Promise.all([
      writer.call<number>('updates', { ms: 2500 }),
      other.call<{ taken: number; died: number }>(taker, { ms: 2500 }),
    ]);
    expect(share.get()).toBe(updates);
    expect(taken.taken).toBeGreaterThan(0);
    expect(taken.died).toBe(0);
  });

  it('a { path } region in a btrfs subvolume, whose device /proc/<pid>/maps names otherwise, keeps its lock', async (ctx) => {
    const dir = tempDir();
    const image = join(dir, 'btrfs.img');
    const mnt = join(dir, 'mnt');
    mkdirSync(mnt);
    writeFileSync(image, '');
    truncateSync(image, 256 * 2 ** 20);
    for (const [command, ...args] of [
      ['mkfs.btrfs', '-q', image],
      ['mount', '-o', 'loop', image, mnt],
      ['btrfs', 'subvolume', 'create', join(mnt, 'sub')],
    ] as [string, ...string[]][]) {
      const done = spawnSync(command, args, { encoding: 'utf8' });
      if (done.status !== 0) {
        if (command !== 'mkfs.btrfs') spawnSync('umount', [mnt]);
        return ctx.skip(
          `this machine cannot mount btrfs here: ${command} ${done.error?.message ?? done.stderr.trim()}`,
        );
      }
    }
    defer(() => spawnSync('umount', ['-l', mnt]));
    const path = join(mnt, 'sub', 'share');
    const share = MmapShare.create<number>(64, { path, value: 0 });
    defer(() => share.close());
    const first = await hostile('attachShare', { ref: path });
    const second = await hostile('attachShare', { ref: path });
    const slow = first.call('slowUpdate', { ms: 600 });
    await sleep(50);
    await Promise.all([slow, second.call('slowUpdate', { ms: 0 })]);
    expect(share.get()).toBe(2);
  });

  it(
    'a dead holder whose pid a new process reuses is taken over, by that process too',
    { timeout: 30_000 },
    async (ctx) => {
      const share = fresh<number>(64, { value: 0 });
      for (let attempt = 0; ; attempt++) {
        const holder = new Peer();
        await holder.call('attach', { ref: share.handle });
        await holder.call('lock');
        const pid = holder.pid;
        await holder.kill();
        try {
          writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
        } catch (error) {
          return ctx.skip(
            `pids cannot be steered here: ns_last_pid is not writable (${(error as { code?: string }).code})`,
          );
        }
        const heir = new Peer({}, 'hostile.mjs');
        await heir.call('attachShare', { ref: share.handle });
        await heir.call('slowUpdate', { ms: 0 });
        expect(share.get()).toBe(attempt + 1);
        // Another process may have taken the pid first: the holder was dead all the same, so try again.
        if (heir.pid === pid) return;
        expect(attempt).toBeLessThan(5);
      }
    },
  );
});

describe('a holder that is gone never blocks', () => {
  it('a region is refused to a process in another time namespace, whose start times its lock cannot compare', (ctx) => {
    const path = join(tempDir(), 'share');
    const share = MmapShare.create(64, { path });
    defer(() => share.close());
    const script = `try { require(${JSON.stringify(join(__dirname, '../dist/index.js'))}).MmapShare.attach(${JSON.stringify(path)}); console.log('attached') } catch (e) { console.log(e.code, e.message) }`;
    const inside = spawnSync('unshare', ['--time', '--boottime', '1000', process.execPath, '-e', script], {
      encoding: 'utf8',
    });
    if (inside.status !== 0) return ctx.skip(`this machine makes no time namespace here: ${inside.stderr.trim()}`);
    expect(inside.stdout).toMatch(/^ERR_BAD_HANDLE .*another time namespace/);
  });

  it.each([true, false])(
    'a worker thread terminated holding lock() is taken over by the other threads of its process (trackUnmanagedFds %s)',
    { timeout: 20_000 },
    async (trackUnmanagedFds) => {
      const share = fresh<string>(64, { value: 'before' });
      const peer = await hostile('attachShare', { ref: share.handle });
      const { info } = await peer.call<{ info: { ownerDied: boolean } }>('terminatedHolder', {
        ref: share.handle,
        how: 'lock',
        trackUnmanagedFds,
      });
      expect(info.ownerDied).toBe(true);
      expect(share.get()).toBe('after');
    },
  );

  it('a worker thread terminated inside a fetch() compute leaves the key to another thread at once', async () => {
    const m = map();
    const peer = await hostile('attachMap', { ref: m.handle });
    const { ms, value } = await peer.call<{ ms: number; value: string }>('terminatedHolder', {
      ref: m.handle,
      how: 'fetch',
      key: 'k',
    });
    expect(value).toBe('computed here');
    // Well inside the marker's 10 s lease: the thread was proven gone, not timed out.
    expect(ms).toBeLessThan(5000);
    expect(m.stats().pending).toBe(0);
  });
});

describe('nothing stored is lost or returned wrong', () => {
  it("eviction 'none': a set of an expired key in a map out of room stores it and leaves every other entry whole", async () => {
    const m = map<string>({ capacity: '64KB', maxEntries: 100, eviction: 'none' });
    // Eight values of 95 chunks fill 760 of the 870; one of 112 then fits only once the expired ones are gone.
    const big = (tag: string, length = 6000) => tag.padEnd(length, '.');
    m.set('kept', big('kept'));
    for (let i = 0; i < 7; i++) m.set(`k${i}`, big(`k${i}`), { ttl: 30 });
    expect(() => m.set('k0', big('too many', 7100))).toThrow(expect.objectContaining({ code: 'ERR_NO_SPACE' }));
    await sleep(60);
    m.set('k3', big('new', 7100));
    expect(m.get('k3')).toBe(big('new', 7100));
    expect(m.get('kept')).toBe(big('kept'));
    expect(m.verify()).toEqual({ ok: true, problems: [] });
    expect(new Map(m.entries())).toEqual(
      new Map([
        ['k3', big('new', 7100)],
        ['kept', big('kept')],
      ]),
    );
  });

  it('record versions at their wrap: no live record shares one, and verify() stays clean', () => {
    const path = join(tempDir(), 'map');
    const m = map<number>({ capacity: '256KB', path });
    for (let i = 0; i < 50; i++) m.set(`k${i}`, i);
    pokeWord(path, W_SEQ, 0xffffffff - 5);
    for (let i = 0; i < 30; i++) m.set(`n${i}`, i);
    m.set('k7', 700);
    expect(m.verify()).toEqual({ ok: true, problems: [] });
    for (let i = 0; i < 50; i++) expect(m.get(`k${i}`)).toBe(i === 7 ? 700 : i);
    for (let i = 0; i < 30; i++) expect(m.get(`n${i}`)).toBe(i);
    expect(m.size).toBe(80);
  });

  it('snapshot() after the versions wrapped never returns a value deleted or replaced before the wrap', () => {
    const path = join(tempDir(), 'map');
    const m = map<string>({ capacity: '64KB', path });
    m.set('a', 'old');
    expect(m.snapshot('a')).toBe('old');
    m.delete('a');
    pokeWord(path, W_SEQ, 0xffffffff);
    m.set('a', 'new');
    expect(m.get('a')).toBe('new');
    expect(m.snapshot('a')).toBe('new');
  });

  it('keys(), values() and entries() never throw on a healthy map under concurrent writers', async () => {
    const m = map<string>({ capacity: '128KB', maxEntries: 200 });
    const writers = await Promise.all([1, 2].map(() => hostile('attachMap', { ref: m.handle })));
    const churn = writers.map((writer, i) =>
      writer.call('churn', { ms: 2500, prefix: `w${i}-` }).catch((error: unknown) => error),
    );
    let scans = 0;
    for (const end = performance.now() + 2500; performance.now() < end; scans++) {
      for (const [key, value] of m.entries()) expect(value.startsWith(key)).toBe(true);
      await sleep(0);
    }
    expect(await Promise.all(churn)).toEqual([expect.any(Number), expect.any(Number)]);
    expect(scans).toBeGreaterThan(10);
    expect(m.verify().ok).toBe(true);
  });

  it('the largest regions the documentation allows are made and used; one byte more is refused at once', () => {
    const share = MmapShare.create<string>(MAX_SIZE);
    share.set('at the end');
    expect(share.get()).toBe('at the end');
    share.close();
    const m = SharedMap.create<string>({ capacity: MAX_CAPACITY });
    m.set('k', 'v');
    expect(m.get('k')).toBe('v');
    m.close();
    expect(() => MmapShare.create(MAX_SIZE + 1)).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_SIZE', message: expect.stringContaining(String(MAX_SIZE)) }),
    );
    expect(() => SharedMap.create({ capacity: MAX_CAPACITY + 1 })).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_SIZE', message: expect.stringContaining(String(MAX_CAPACITY)) }),
    );
  });
});

describe('nothing stays stuck', () => {
  it('fetch() of a key whose marker spans two chunks, on a fragmented map, stores its value and drops its marker', async () => {
    const m = map<string>({ capacity: '64KB' });
    for (let i = 0; i < 40; i++) m.set(`k${i}`, 'x'.repeat(i * 7));
    for (let i = 0; i < 40; i += 3) m.delete(`k${i}`);
    const key = 'a key of forty-one bytes, past one chunk.';
    expect(await m.fetch(key, () => 'computed')).toBe('computed');
    expect(m.get(key)).toBe('computed');
    await expect(m.fetch(`${key}!`, () => Promise.reject(new Error('no')))).rejects.toThrow('no');
    expect(m.stats().pending).toBe(0);
    expect(m.verify().ok).toBe(true);
  });

  it('fetch() of a long key whose short value expired computes it again', async () => {
    const m = map<number>({ capacity: '64KB' });
    // 24 + 35 + 3 bytes: one chunk, whose value a marker's 12 bytes would read past.
    const key = 'thirty-five bytes long, as keys go.';
    m.set(key, 1, { ttl: 20 });
    await sleep(40);
    expect(await m.fetch(key, () => 2)).toBe(2);
  });

  it('a fetch() waiter where every read takes the lock (off x86-64) gets the value computed', async () => {
    const { stdout, stderr } = await run(fixture('locked-reads.mjs'));
    expect(stderr).toBe('');
    expect(JSON.parse(stdout)).toEqual({ first: 'computed', second: 'computed', ms: expect.any(Number) });
  });

  it('a run aborted but still computing leaves the marker of the run after it to be renewed and dropped', async () => {
    const m = map<string>();
    const other = SharedMap.attach(m.handle);
    defer(() => other.close());
    const controller = new AbortController();
    const first = m.fetch('k', async () => (await sleep(200), 'old'), { signal: controller.signal });
    await sleep(10);
    controller.abort();
    await expect(first).rejects.toMatchObject({ name: 'AbortError' });
    m.set('k', 'set');
    m.delete('k');
    void m.fetch('k', () => new Promise(() => {})).catch(() => undefined);
    await sleep(300);
    expect(other.stats().pending).toBe(1);
    m.close();
    expect(other.stats().pending).toBe(0);
  });

  it('fetch() on a map whose values are smaller than a marker works', async () => {
    const m = map<number>({ capacity: '64KB', maxValueSize: 4 });
    expect(await m.fetch('k', () => 7)).toBe(7);
    expect(m.get('k')).toBe(7);
    expect(m.verify().ok).toBe(true);
  });

  it('a fetch() that joins a run every earlier caller abandoned gets a value, not their abort', async () => {
    const m = map<string>();
    const controller = new AbortController();
    const first = m.fetch('k', async () => (await sleep(200), 'computed'), { signal: controller.signal });
    controller.abort();
    await expect(first).rejects.toMatchObject({ name: 'AbortError' });
    expect(await m.fetch('k', () => 'unused')).toBe('computed');
  });

  it('a repair meeting a damaged record drops that entry and finishes: the map is whole and lock-free reads work', async () => {
    const path = join(tempDir(), 'map');
    const m = map<number>({ capacity: '64KB', path });
    for (let i = 0; i < 20; i++) m.set(`k${i}`, i);
    damageARecord(path);
    await dieHoldingLock(m.handle);
    m.set('after', 1);
    expect(m.stats().repairs).toBe(1);
    expect(m.verify()).toEqual({ ok: true, problems: [] });
    expect(m.size).toBe(20);
    expect([...m.keys()]).toHaveLength(20);
  });

  it.each([
    ['cannot be serialized', () => () => undefined, 'ERR_NOT_SERIALIZABLE'],
    ['is too large', () => 'x'.repeat(5000), 'ERR_VALUE_TOO_LARGE'],
  ])('a fetch() whose value %s drops its marker: the next fetch() of the key computes', async (_, value, code) => {
    const m = map({ capacity: '64KB', maxValueSize: 4000 });
    await expect(m.fetch('k', value as () => unknown)).rejects.toMatchObject({ code });
    expect(m.stats().pending).toBe(0);
    const other = SharedMap.attach(m.handle);
    defer(() => other.close());
    expect(await other.fetch('k', () => 'computed', { timeout: 1000 })).toBe('computed');
  });

  it('close() during a compute drops the marker it holds', async () => {
    const m = map();
    const other = SharedMap.attach(m.handle);
    void other.fetch('k', () => new Promise(() => {}));
    await sleep(10);
    expect(m.stats().pending).toBe(1);
    other.close();
    expect(m.stats().pending).toBe(0);
    expect(await m.fetch('k', () => 'computed', { timeout: 1000 })).toBe('computed');
  });

  it('a fetch() whose value finds no room (ERR_NO_SPACE) drops its marker', async () => {
    const m = map<string>({ capacity: '64KB', maxEntries: 100, eviction: 'none' });
    for (let i = 0; m.stats().bytes < m.stats().capacity - 1024; i++) m.set(`fill${i}`, 'x'.repeat(900));
    await expect(m.fetch('k', () => 'y'.repeat(3000))).rejects.toMatchObject({ code: 'ERR_NO_SPACE' });
    expect(m.stats().pending).toBe(0);
    m.delete('fill0');
    m.delete('fill1');
    m.delete('fill2');
    m.delete('fill3');
    expect(await m.fetch('k', () => 'y'.repeat(3000), { timeout: 1000 })).toHaveLength(3000);
  });

  it('a fetch() joining one in flight on the same instance times out on its own timeout', async () => {
    const m = map<string>();
    const first = m.fetch('k', async () => (await sleep(1500), 'slow'));
    const started = performance.now();
    await expect(m.fetch('k', () => 'unused', { timeout: 200 })).rejects.toMatchObject({ code: 'ERR_LOCK_TIMEOUT' });
    expect(performance.now() - started).toBeLessThan(1200);
    expect(await first).toBe('slow');
  });

  it('a fetch() joining one in flight is not aborted by the first caller’s signal; compute is, once all have gone', async () => {
    const m = map<string>();
    const controller = new AbortController();
    let computeSignal: AbortSignal | undefined;
    const first = m.fetch(
      'k',
      async (_, { signal }) => {
        computeSignal = signal;
        await sleep(300);
        return 'value';
      },
      { signal: controller.signal },
    );
    const second = m.fetch('k', () => 'unused');
    await sleep(20);
    controller.abort();
    await expect(first).rejects.toMatchObject({ name: 'AbortError' });
    expect(computeSignal?.aborted).toBe(false);
    expect(await second).toBe('value');

    const alone = new AbortController();
    const lone = m.fetch('j', async (_, { signal }) => ((computeSignal = signal), await sleep(300), 'j'), {
      signal: alone.signal,
    });
    await sleep(20);
    alone.abort();
    await expect(lone).rejects.toMatchObject({ name: 'AbortError' });
    expect(computeSignal?.aborted).toBe(true);
  });
});
