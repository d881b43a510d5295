// The mmap-share command: inspect a live region held by another process.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { closeSync, openSync, writeSync } from 'node:fs';
import { SharedMap } from '../dist/index.mjs';
import { defer, fresh, Peer } from './helpers.js';

const cli = join(__dirname, '..', 'dist', 'cli.js');

async function inspect(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [cli, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const { code, stdout, stderr } = error as { code: number; stdout: string; stderr: string };
    return { code, stdout, stderr };
  }
}

describe('mmap-share inspect', () => {
  it('prints the header, the lock holder and the value of a region another process holds locked', async () => {
    const share = fresh(4096, { value: { config: new Map([['mode', 'fast']]) } });
    share.set({ config: new Map([['mode', 'safe']]) });
    const child = new Peer();
    await child.call('attach', { ref: share.handle });
    await child.call('lock');
    const { code, stdout } = await inspect('inspect', share.handle);
    expect(code).toBe(0);
    expect(stdout).toContain('layout   3');
    expect(stdout).toContain('size     4096 bytes a slot');
    expect(stdout).toContain('version  2 (slot 0)');
    expect(stdout).toMatch(/slot 0 {3}\d+ bytes\nslot 1 {3}\d+ bytes/);
    expect(stdout).toContain(`lock     held by pid ${child.pid} (running)`);
    expect(stdout).toContain("value    { config: Map(1) { 'mode' => 'safe' } }");
  });

  it('prints JSON for scripts', async () => {
    const share = fresh(256, { codec: 'msgpack', value: { n: 1, list: ['a'] } });
    const { code, stdout } = await inspect('inspect', share.handle, '--json');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toStrictEqual({
      kind: 'share',
      handle: expect.stringMatching(/^mmap-share:\d+:\d+:[0-9a-f]{16}$/),
      layout: 3,
      size: 256,
      version: 1,
      slots: [0, expect.any(Number)],
      codec: 'msgpack',
      holder: null,
      value: { n: 1, list: ['a'] },
    });
  });

  it('says clearly when the reference is not a region, and how to call it', async () => {
    const notRegion = await inspect('inspect', __filename);
    expect(notRegion.code).toBe(1);
    expect(notRegion.stderr).toMatch(/^mmap-share: .* is not an mmap-share region \(ERR_BAD_HANDLE\)\n$/);
    const usage = await inspect('peek');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('usage: mmap-share inspect');
  });

  it('understands map regions: entries, bytes, load, counts; --check runs verify() and fails on damage', async () => {
    const map = SharedMap.create<number>({ capacity: '1MB', ttl: 5000 });
    defer(() => map.close());
    for (let i = 0; i < 100; i++) map.set(`k${i}`, i);
    map.get('k1');
    map.get('missing');
    const { code, stdout } = await inspect('inspect', map.handle, '--check');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^entries {2}100 of 8192 \(0 computing\), load 0\.9% of 10923 slots$/m);
    expect(stdout).toContain('eviction lru, ttl 5000 ms');
    expect(stdout).toContain('counts   1 hits, 1 misses, 100 sets, 0 deletes');
    expect(stdout).toContain('check    ok');
    const json = JSON.parse((await inspect('inspect', map.handle, '--json')).stdout);
    expect(json).toMatchObject({ kind: 'map', slots: 10923, stats: { entries: 100, bytes: 6400 } });
    expect(json.check).toBeUndefined();
    // ENTRIES (word 26) no longer counts the entries.
    const [, pid, fd] = map.handle.split(':');
    const file = openSync(`/proc/${pid}/fd/${fd}`, 'r+');
    writeSync(file, Buffer.from(new Uint32Array([99]).buffer), 0, 4, 26 * 4);
    closeSync(file);
    const damaged = await inspect('inspect', map.handle, '--check');
    expect(damaged.code).toBe(1);
    expect(damaged.stdout).toContain('check    1 problems\n  ENTRIES is 99, but 100 were counted');
  });
});
