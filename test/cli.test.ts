// The mmap-share command: inspect a live region held by another process, look inside a map, explain its own usage.
import { type ExecFileOptions, execFile } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { MmapShare, SharedMap, SharedQueue } from '../dist/index.mjs';
import { W_ENTRIES } from '../dist/map/layout.js';
import { defer, fresh, Peer, tempDir } from './helpers.js';

const cli = join(__dirname, '..', 'dist', 'cli.js');

async function mmapShare(
  args: string[],
  options: ExecFileOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [cli, ...args], {
      encoding: 'utf8',
      ...options,
    });
    return { code: 0, stdout: String(stdout), stderr: String(stderr) };
  } catch (error) {
    const { code, stdout, stderr } = error as { code: number; stdout: string; stderr: string };
    return { code, stdout, stderr };
  }
}

function inspect(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return mmapShare(args);
}

/** A map closed after the test. */
function freshMap<V>(options: Parameters<typeof SharedMap.create<V>>[0] = { capacity: '1MB' }): SharedMap<V> {
  const map = SharedMap.create<V>(options);
  defer(() => map.close());
  return map;
}

/** Every byte of the region behind `handle`, read through its holder's descriptor. */
function regionBytes(handle: string): Buffer {
  const [, pid, fd] = handle.split(':');
  return readFileSync(`/proc/${pid}/fd/${fd}`);
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
    // The handle it was given, not the short-lived one of its own descriptor.
    expect(stdout).toMatch(new RegExp(`^region {3}${share.handle}$`, 'm'));
    expect(stdout).toContain('layout   4');
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
      handle: share.handle,
      layout: 4,
      size: 256,
      version: 1,
      slots: [0, expect.any(Number)],
      codec: 'msgpack',
      holder: null,
      waiters: 0,
      value: { n: 1, list: ['a'] },
    });
  });

  it('counts the threads waiting on the doorbell, one a thread however many watchers it has', async () => {
    const share = fresh(256, { value: 1 });
    const stops = [share.watch(() => {}), share.watch(() => {})];
    const watched = await inspect('inspect', share.handle, '--json');
    expect(JSON.parse(watched.stdout)).toMatchObject({ waiters: 1 });
    for (const stop of stops) stop();
    // The last watcher's row is given back on the next turn of the event loop (a watch() stopped and started again
    // within one turn keeps it): a child could read the header before that turn on a loaded machine.
    await new Promise(setImmediate);
    const unwatched = await inspect('inspect', share.handle);
    expect(unwatched.stdout).toContain('waiters  0');
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
    expect(stdout).toMatch(new RegExp(`^map {6}${map.handle}$`, 'm'));
    expect(stdout).toMatch(/^entries {2}100 of 8192 \(0 computing\), load 0\.9% of 10923 slots$/m);
    expect(stdout).toContain('eviction lru, ttl 5000 ms');
    expect(stdout).toContain('counts   1 hits, 1 misses, 0 coalesced, 100 sets, 0 deletes');
    expect(stdout).toContain('check    ok');
    const json = JSON.parse((await inspect('inspect', map.handle, '--json')).stdout);
    expect(json).toMatchObject({ kind: 'map', handle: map.handle, slots: 10923, stats: { entries: 100, bytes: 6400 } });
    expect(json.check).toBeUndefined();
    // ENTRIES no longer counts the entries.
    const [, pid, fd] = map.handle.split(':');
    const file = openSync(`/proc/${pid}/fd/${fd}`, 'r+');
    writeSync(file, Buffer.from(new Uint32Array([99]).buffer), 0, 4, W_ENTRIES * 4);
    closeSync(file);
    const damaged = await inspect('inspect', map.handle, '--check');
    expect(damaged.code).toBe(1);
    expect(damaged.stdout).toContain('check    1 problems\n  ENTRIES is 99, but 100 were counted');
  });

  it('understands queue regions: messages, bytes, waiters and totals; --check runs verify()', async () => {
    const queue = SharedQueue.create<string>({ capacity: '1KB', maxMessageSize: 100 });
    defer(() => queue.close());
    for (const word of ['one', 'two', 'three']) queue.push(word);
    queue.shift();
    const { code, stdout } = await inspect('inspect', queue.handle);
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^queue {4}${queue.handle}$`, 'm'));
    expect(stdout).toContain('messages 2\nbytes    28 of 1024 in use, 100 a message at most');
    expect(stdout).toContain('counts   3 pushed, 1 taken, 0 repairs');
    const json = JSON.parse((await inspect('inspect', queue.handle, '--json')).stdout);
    expect(json).toMatchObject({ kind: 'queue', maxMessage: 100, waiters: 0, stats: { messages: 2, pushed: 3 } });
    expect((await inspect('inspect', queue.handle, '--check')).stdout).toContain('check    ok');
    // PUSHED no longer agrees with TAIL.
    const [, pid, fd] = queue.handle.split(':');
    const file = openSync(`/proc/${pid}/fd/${fd}`, 'r+');
    writeSync(file, Buffer.from(new Uint32Array([9]).buffer), 0, 4, 272);
    closeSync(file);
    const damaged = await inspect('inspect', queue.handle, '--check');
    expect(damaged.code).toBe(1);
    expect(damaged.stdout).toContain("check    2 problems\n  PUSHED is 9, 4294967290 behind its commit word's count");
  });

  it('prints the path or the handle it was given, for a region attached by path and by name', async () => {
    const dir = tempDir();
    const share = MmapShare.create(256, { path: join(dir, 'config.share'), value: 'by path' });
    defer(() => share.close());
    const byPath = await mmapShare(['inspect', 'config.share'], { cwd: dir });
    expect(byPath.code).toBe(0);
    expect(byPath.stdout).toMatch(new RegExp(`^region {3}${join(dir, 'config.share')}$`, 'm'));
    expect(byPath.stdout).toContain("value    'by path'");
    const other = fresh(256, { value: 'by name' });
    const byName = await mmapShare(['inspect', 'cfg', '--json'], {
      env: { ...process.env, MMAP_SHARE_cfg: other.handle },
    });
    expect(byName.code).toBe(0);
    expect(JSON.parse(byName.stdout)).toMatchObject({ handle: other.handle, value: 'by name' });
  });

  it('says how to get a handle when a name is not in its environment, keeping ERR_BAD_HANDLE', async () => {
    const dir = tempDir();
    const env = { ...process.env };
    delete env.MMAP_SHARE_cache;
    const { code, stdout, stderr } = await mmapShare(['inspect', 'cache'], { cwd: dir, env });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    const [first, hint, rest] = stderr.split('\n');
    expect(first).toBe(
      'mmap-share: no region named cache: MMAP_SHARE_cache is not in the environment (ERR_BAD_HANDLE)',
    );
    expect(hint).toContain('print share.handle (map.handle for a map) in a process that holds the region and pass');
    expect(hint).toContain('create the region with { path } and pass the path.');
    expect(hint).not.toContain('./cache');
    expect(rest).toBe('');
    // A file of that name is taken for a name, not a path: the hint says how to pass it.
    writeFileSync(join(dir, 'cache'), 'x');
    const file = await mmapShare(['inspect', 'cache'], { cwd: dir, env });
    expect(file.code).toBe(1);
    expect(file.stderr).toContain('To inspect the file cache in this directory, pass ./cache.\n');
    // A name that is there leads nowhere now: that error is not the name's, and has no hint.
    const gone = await mmapShare(['inspect', 'cache'], {
      env: { ...env, MMAP_SHARE_cache: `mmap-share:${process.pid}:999:0123456789abcdef` },
    });
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^mmap-share: .*cannot be opened \(ENOENT\) \(ERR_BAD_HANDLE\)\n$/);
  });
});

describe('mmap-share usage', () => {
  it('--help and -h print the whole usage on stdout with status 0, whatever else is on the line', async () => {
    const runs = await Promise.all(
      [['--help'], ['-h'], ['inspect', 'x', '--help'], ['--bogus', '-h'], ['inspect', '--get', '--help']].map((args) =>
        mmapShare(args),
      ),
    );
    for (const { code, stdout, stderr } of runs) {
      expect(code).toBe(0);
      expect(stderr).toBe('');
      expect(stdout).toMatch(/^usage: mmap-share inspect <handle\|path\|name> \[--json\] \[--check\]\n/);
      for (const flag of ['--json', '--check', '--keys', '--limit N', '--get KEY', '-h, --help', 'Exit status: ']) {
        expect(stdout).toContain(flag);
      }
    }
  });

  it('a mistake on the command line prints its reason and the usage on stderr, with status 2', async () => {
    const usage = (await mmapShare(['--help'])).stdout.split('\n\n')[0]!;
    const share = fresh(64, { value: 1 });
    const cases: [string[], string | undefined][] = [
      [[], undefined],
      [['--bogus'], "unknown option '--bogus'"],
      [['inspect', share.handle, '-x'], "unknown option '-x'"],
      [['--json'], 'no command given'],
      [['peek', share.handle], 'unknown command peek'],
      [['inspect'], 'inspect needs a handle, a path or a name'],
      [['inspect', share.handle, 'extra'], 'unexpected argument extra'],
      [['inspect', share.handle, '--json=yes'], "option '--json' does not take an argument"],
      [['inspect', share.handle, '--get'], "option '--get <value>' argument missing"],
      [['inspect', share.handle, '--keys', '--limit', '0'], '--limit must be a positive integer, got 0'],
      [['inspect', share.handle, '--keys', '--limit', '2.5'], '--limit must be a positive integer, got 2.5'],
      [['inspect', share.handle, '--keys', '--limit', 'ten'], '--limit must be a positive integer, got ten'],
      [['inspect', share.handle, '--keys', '--limit='], '--limit must be a positive integer, got nothing'],
      [['inspect', share.handle, '--limit', '5'], '--limit goes with --keys'],
      [['inspect', share.handle, '--keys', '--get', 'k'], '--keys and --get cannot go together'],
      [['inspect', share.handle, '--check', '--keys'], '--check cannot go with --keys or --get'],
    ];
    const runs = await Promise.all(cases.map(([args]) => mmapShare(args)));
    runs.forEach(({ code, stdout, stderr }, i) => {
      const reason = cases[i]![1];
      expect({ args: cases[i]![0], code, stdout, stderr }).toStrictEqual({
        args: cases[i]![0],
        code: 2,
        stdout: '',
        stderr: `${reason === undefined ? '' : `mmap-share: ${reason}\n`}${usage}\nrun mmap-share --help for more\n`,
      });
    });
  });
});

describe('mmap-share inspect --keys, --get', () => {
  it("--keys lists a map's keys in order, 100 at most or --limit, and says how many more there are", async () => {
    const map = freshMap<number>();
    for (let i = 0; i < 150; i++) map.set(`k${i}`, i);
    const sorted = [...map.keys()].sort();
    const all = await inspect('inspect', map.handle, '--keys');
    expect(all.code).toBe(0);
    expect(all.stdout).toBe(`${sorted.slice(0, 100).join('\n')}\n(50 more, 150 in all: --limit 150 lists them all)\n`);
    const three = await inspect('inspect', map.handle, '--keys', '--limit', '3');
    expect(three).toStrictEqual({
      code: 0,
      stdout: 'k0\nk1\nk10\n(147 more, 150 in all: --limit 150 lists them all)\n',
      stderr: '',
    });
    const every = await inspect('inspect', map.handle, '--keys', '--limit', '150');
    expect(every.stdout).toBe(`${sorted.join('\n')}\n`);
    const json = await inspect('inspect', map.handle, '--keys', '--limit', '2', '--json');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toStrictEqual({ handle: map.handle, keys: ['k0', 'k1'], total: 150 });
  });

  it('--keys quotes the keys a line would not show as themselves, and says when there are none', async () => {
    const map = freshMap<number>();
    expect((await inspect('inspect', map.handle, '--keys')).stdout).toBe('(no keys)\n');
    for (const key of ['plain', '', ' pad', 'a\nb', '"q"', '(note)', 'é ü']) map.set(key, 1);
    const { code, stdout } = await inspect('inspect', map.handle, '--keys');
    expect(code).toBe(0);
    expect(stdout).toBe(['""', '" pad"', '"\\"q\\""', '"(note)"', '"a\\nb"', 'plain', 'é ü', ''].join('\n'));
    const json = JSON.parse((await inspect('inspect', map.handle, '--keys', '--json')).stdout);
    expect(json.keys).toStrictEqual(['', ' pad', '"q"', '(note)', 'a\nb', 'plain', 'é ü']);
  });

  it('--get prints one value, as text or JSON; an absent key exits with status 1', async () => {
    const map = freshMap<unknown>();
    map.set('user:1', { name: 'Ada', roles: new Set(['admin']) });
    map.set('plain', { n: 1, list: ['a'] });
    map.set('big', 2n ** 70n);
    const text = await inspect('inspect', map.handle, '--get', 'user:1');
    expect(text).toStrictEqual({ code: 0, stdout: "{ name: 'Ada', roles: Set(1) { 'admin' } }\n", stderr: '' });
    const json = await inspect('inspect', map.handle, '--get', 'plain', '--json');
    expect(JSON.parse(json.stdout)).toStrictEqual({ handle: map.handle, key: 'plain', value: { n: 1, list: ['a'] } });
    const big = await inspect('inspect', map.handle, '--json', '--get=big');
    expect(JSON.parse(big.stdout)).toStrictEqual({
      handle: map.handle,
      key: 'big',
      valueText: '1180591620717411303424n',
    });
    for (const args of [[], ['--json']]) {
      const absent = await inspect('inspect', map.handle, '--get', 'user:2', ...args);
      expect(absent).toStrictEqual({
        code: 1,
        stdout: '',
        stderr: `mmap-share: the map ${map.handle} holds no key "user:2"\n`,
      });
    }
  });

  it('on a one-value region, --keys and --get are a usage error saying they apply to maps', async () => {
    const share = fresh(64, { value: 1 });
    for (const flags of [['--keys'], ['--get', 'k'], ['--keys', '--json']]) {
      const { code, stdout, stderr } = await inspect('inspect', share.handle, ...flags);
      expect(code).toBe(2);
      expect(stdout).toBe('');
      expect(stderr).toMatch(
        new RegExp(
          `^mmap-share: --keys and --get apply to maps \\(SharedMap\\), and ${share.handle} is no map\nusage: mmap-share inspect`,
        ),
      );
    }
  });

  it('leaves the map byte for byte as it was: no use counted for LRU, no hit or miss, no counter row', async () => {
    const map = freshMap<number>();
    for (let i = 0; i < 10; i++) map.set(`k${i}`, i);
    const before = regionBytes(map.handle);
    const stats = map.stats();
    for (const args of [['--keys'], ['--get', 'k0'], ['--get', 'k1', '--json'], ['--get', 'none'], []]) {
      await inspect('inspect', map.handle, ...args);
    }
    expect(map.stats()).toStrictEqual(stats);
    // get() would have stamped k0 and k1 with the clock and counted in a row of the region's counter table.
    expect(regionBytes(map.handle).equals(before)).toBe(true);
  });

  it("reads keys and values while another process holds the map's lock", async () => {
    const map = freshMap<string>();
    map.set('k', 'v');
    const holder = new Peer({}, 'map-peer.mjs');
    await holder.call('attach', { ref: map.handle });
    void holder.call('hold', { key: 'k' }).catch(() => undefined);
    // The holder words (word 6) name the child once it is inside.
    const [, pid, fd] = map.handle.split(':');
    const file = openSync(`/proc/${pid}/fd/${fd}`, 'r');
    defer(() => closeSync(file));
    const word = Buffer.alloc(4);
    while ((readSync(file, word, 0, 4, 6 * 4), word.readUInt32LE(0)) !== holder.pid) await sleep(5);
    // One that waited for the lock would wait for ever: killed at the timeout, it has no exit status.
    const bounded = { timeout: 10_000 };
    const keys = await mmapShare(['inspect', map.handle, '--keys'], bounded);
    expect(keys).toStrictEqual({ code: 0, stdout: 'k\n', stderr: '' });
    const value = await mmapShare(['inspect', map.handle, '--get', 'k'], bounded);
    expect(value).toStrictEqual({ code: 0, stdout: "'v'\n", stderr: '' });
    await holder.kill();
  });
});
