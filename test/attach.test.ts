// Reaching one region from other instances, processes and threads: by handle, by name, by path.
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, readdirSync, readlinkSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { MmapShare } from '../dist/index.mjs';
import {
  attached,
  canMakeMountNamespace,
  canMakePidNamespace,
  fixture,
  fresh,
  inMountNamespace,
  Peer,
  run,
  tempDir,
} from './helpers.js';

describe('attach by handle', () => {
  it('reaches the same value from a second instance in this thread, through a descriptor of its own', () => {
    const share = fresh();
    share.set({ from: 'creator' });
    const peer = attached(share.handle);
    expect(peer.get()).toStrictEqual({ from: 'creator' });
    peer.set({ from: 'peer' });
    expect(share.get()).toStrictEqual({ from: 'peer' });
    expect(share.version).toBe(2);
    expect(peer.handle).not.toBe(share.handle);
    expect(peer.size).toBe(share.size);
  });

  it('reaches it from a forked child, which writes back', async () => {
    const share = fresh<unknown>();
    share.set(new Map([['config', { debug: true }]]));
    const child = new Peer();
    await child.call('attach', { ref: share.handle });
    expect(await child.call('get')).toStrictEqual(new Map([['config', { debug: true }]]));
    await child.call('set', { value: new Set([1, 2]) });
    expect(share.get()).toStrictEqual(new Set([1, 2]));
    expect(await child.call('version')).toBe(2);
  });

  it("passes on through a peer's own handle after the creator has closed", async () => {
    const share = fresh();
    share.set('still here');
    const child = new Peer();
    const childHandle = await child.call<string>('attach', { ref: share.handle });
    share.close();
    expect(childHandle).toContain(`:${child.pid}:`);
    expect(attached(childHandle).get()).toBe('still here');
  });

  it('refuses a handle whose descriptor now holds another region', () => {
    const first = MmapShare.create(64);
    const stale = first.handle;
    first.close();
    const second = fresh(64);
    // The lowest free descriptor is reused, so the stale handle now names the second region's descriptor.
    expect(second.handle.split(':')[2]).toBe(stale.split(':')[2]);
    expect(() => MmapShare.attach(stale)).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_HANDLE', message: expect.stringContaining('gone') }),
    );
  });
});

describe('a region with no name', () => {
  it('lives in /dev/shm as a file no directory lists', () => {
    const listed = readdirSync('/dev/shm');
    const share = fresh();
    const fd = share.handle.split(':')[2];
    expect(readlinkSync(`/proc/self/fd/${fd}`)).toMatch(/^\/dev\/shm\/#\d+ \(deleted\)$/);
    expect(readdirSync('/dev/shm')).toEqual(listed);
  });

  it.runIf(canMakeMountNamespace)('falls back to the OS temp dir where /dev/shm is missing', () => {
    expect(inMountNamespace('no-dev-shm.sh')).toStrictEqual({
      file: expect.stringMatching(/^\/tmp\/#\d+ \(deleted\)$/),
      value: 'fallback',
    });
  });
});

describe('attach by name', () => {
  it('exports the handle to process.env, which forked children inherit', async () => {
    const share = fresh(256, { name: 'attach_by_name', value: 'named' });
    expect(process.env.MMAP_SHARE_attach_by_name).toBe(share.handle);
    const child = new Peer();
    await child.call('attach', { ref: 'attach_by_name' });
    expect(await child.call('get')).toBe('named');
  });

  it('lets cluster workers attach with nothing else passed', async () => {
    const { code, stdout, stderr } = await run(fixture('cluster.mjs'), ['3', '200']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const state = JSON.parse(stdout) as { count: number; seen: number[] };
    expect(state.count).toBe(600);
    expect(state.seen).toHaveLength(3);
  });

  it('removes the name from process.env on close', () => {
    const share = MmapShare.create(64, { name: 'closing_name' });
    share.close();
    expect(process.env.MMAP_SHARE_closing_name).toBeUndefined();
  });
});

describe('attach by path', () => {
  it('reaches a named region from a process with no inherited environment', async () => {
    const path = join(tempDir(), 'region');
    const share = fresh(1024, { path, value: { via: 'path' } });
    expect(share.handle).toBe(path);
    const child = new Peer({ env: {} });
    expect(await child.call('env', { name: 'MMAP_SHARE_attach_by_name' })).toBeUndefined();
    await child.call('attach', { ref: path });
    expect(await child.call('get')).toStrictEqual({ via: 'path' });
  });

  it('creates the file with mode 0600', () => {
    const path = join(tempDir(), 'private');
    fresh(64, { path });
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('keeps the file until unlink(), and lets open instances go on after it', () => {
    const dir = tempDir();
    const path = join(dir, 'kept');
    const share = fresh(64, { path, value: 1 });
    share.close();
    const again = attached<number>(path);
    expect(again.get()).toBe(1);
    MmapShare.unlink(path);
    expect(readdirSync(dir)).toEqual([]);
    again.set(2);
    expect(again.get()).toBe(2);
  });

  it.runIf(process.getuid?.() === 0)('refuses a region file that belongs to another user', () => {
    const path = join(tempDir(), 'theirs');
    fresh(64, { path, value: 'private' });
    chownSync(path, 65534, 65534);
    expect(() => MmapShare.attach(path)).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_HANDLE', message: expect.stringContaining('belongs to uid 65534') }),
    );
  });

  it.runIf(canMakePidNamespace)('refuses a process in another pid namespace, whose pids the lock cannot check', () => {
    const path = join(tempDir(), 'elsewhere');
    fresh(64, { path, value: 'here' });
    const script = `try { require(process.argv[1]).MmapShare.attach(process.argv[2]) } catch (e) { console.log(e.code) }`;
    const inside = spawnSync('unshare', [
      '-rpf',
      process.execPath,
      '-e',
      script,
      require.resolve('../dist/index.js'),
      path,
    ]);
    expect(inside.stdout.toString().trim()).toBe('ERR_BAD_HANDLE');
    expect(attached(path).get()).toBe('here');
  });

  it('refuses a symbolic link to a region', () => {
    const dir = tempDir();
    const path = join(dir, 'real');
    fresh(64, { path });
    symlinkSync(path, join(dir, 'link'));
    expect(() => MmapShare.attach(join(dir, 'link'))).toThrow(expect.objectContaining({ code: 'ERR_BAD_HANDLE' }));
  });
});

describe('worker threads', () => {
  it('share a region with the main thread, by handle and by name', async () => {
    const share = fresh<number>(64, { name: 'threads_counter', value: 0 });
    const workers = [share.handle, 'threads_counter'].map(
      (ref) => new Worker(fixture('thread.mjs'), { workerData: { ref, increments: 500 } }),
    );
    for (let i = 0; i < 500; i++) share.update((n) => (n ?? 0) + 1);
    await Promise.all(workers.map((worker) => once(worker, 'message')));
    expect(share.get()).toBe(1500);
  });
});
