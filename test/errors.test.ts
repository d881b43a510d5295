// Every error code, from one table: each is thrown with its code and class, and leaves the stored value intact.
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, cpSync, openSync, readFileSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ErrorCode, MAX_SIZE, MmapShare, MmapShareError } from '../dist/index.mjs';
import { HEADER_BYTES, W_MAGIC } from '../dist/layout.js';
import { W_LENGTH_0 } from '../dist/share/layout.js';
import { figure } from './stress/options.js';
import { attached, canMakeMountNamespace, fixture, fresh, inMountNamespace, maxMapCount, tempDir } from './helpers.js';

const canCapAddressSpace = spawnSync('prlimit', ['--version']).status === 0;

type Builtin = typeof Error | typeof RangeError | typeof TypeError;
type Share = MmapShare<unknown>;

const kept = { kept: ['this', 'value'] };

// [code, built-in class, what triggers it given a share that holds `kept` at version 1 and a second instance of it]
const table: [ErrorCode, Builtin, string, (share: Share, other: Share) => unknown][] = [
  ['ERR_BAD_SIZE', RangeError, 'size 0', () => MmapShare.create(0)],
  ['ERR_BAD_SIZE', RangeError, 'size 1.5', () => new MmapShare(1.5)],
  ['ERR_BAD_SIZE', RangeError, 'negative size', () => MmapShare.create(-4)],
  ['ERR_BAD_SIZE', RangeError, 'size over MAX_SIZE', () => MmapShare.create(MAX_SIZE + 1)],
  ['ERR_BAD_SIZE', RangeError, 'size as a string', () => MmapShare.create('64' as unknown as number)],
  ['ERR_BAD_OPTION', TypeError, 'a name with a space', () => MmapShare.create(64, { name: 'a b' })],
  ['ERR_BAD_OPTION', TypeError, 'an empty path', () => MmapShare.create(64, { path: '' })],
  ['ERR_BAD_OPTION', TypeError, 'a negative timeout', (s) => s.lockAsync({ timeout: -1 })],
  ['ERR_BAD_OPTION', TypeError, 'a signal that is not one', (s) => s.lockAsync({ signal: 5 as never })],
  ['ERR_BAD_OPTION', TypeError, 'changes() with a signal that is not one', (s) => s.changes({ signal: 5 as never })],
  ['ERR_BAD_OPTION', TypeError, 'a codec that is not one', () => MmapShare.create(64, { codec: 'json' as 'v8' })],
  ['ERR_CODEC_MISMATCH', Error, 'attach() with another codec', (s) => MmapShare.attach(s.handle, { codec: 'msgpack' })],
  ['ERR_BAD_OPTION', TypeError, 'update without a function', (s) => s.update(42 as unknown as () => unknown)],
  ['ERR_VALUE_TOO_LARGE', RangeError, 'set() of a value too large', (s) => s.set('x'.repeat(300))],
  ['ERR_VALUE_TOO_LARGE', RangeError, 'update() to a value too large', (s) => s.update(() => new Uint8Array(300))],
  [
    'ERR_VALUE_TOO_LARGE',
    RangeError,
    'create() with a value too large',
    () => MmapShare.create(8, { value: 'x'.repeat(9) }),
  ],
  ['ERR_NOT_SERIALIZABLE', TypeError, 'set() of a function', (s) => s.set(() => 1)],
  ['ERR_NOT_SERIALIZABLE', TypeError, 'set() of a symbol', (s) => s.set(Symbol('no'))],
  ['ERR_NOT_SERIALIZABLE', TypeError, 'update() to a promise', (s) => s.update(() => Promise.resolve(1))],
  ['ERR_BAD_HANDLE', Error, 'an unknown name', () => MmapShare.attach('no_such_region')],
  ['ERR_BAD_HANDLE', Error, 'a missing file', () => MmapShare.attach('/nonexistent/region')],
  ['ERR_BAD_HANDLE', Error, 'a malformed handle', () => MmapShare.attach('mmap-share:x')],
  [
    'ERR_BAD_HANDLE',
    Error,
    'a handle of a gone process',
    () => MmapShare.attach('mmap-share:999999999:3:0011223344556677'),
  ],
  ['ERR_BAD_HANDLE', Error, 'a ref that is not a string', () => MmapShare.attach(3 as unknown as string)],
  ['ERR_BAD_HANDLE', Error, 'a file that is not a region', () => MmapShare.attach(__filename)],
  ['ERR_BAD_HANDLE', Error, 'unlink() of a file that is not a region', () => MmapShare.unlink(__filename)],
  ['ERR_EXISTS', Error, 'create() on an existing path', () => MmapShare.create(64, { path: __filename })],
  ['ERR_NOT_LOCKED', Error, 'unlock() without lock()', (s) => s.unlock()],
  ['ERR_NOT_LOCKED', Error, 'unlock() inside update()', (s) => s.update(() => (s.unlock(), 1))],
  [
    'ERR_NOT_LOCKED',
    Error,
    'unlock() inside update() inside lock()',
    (s) => (s.lock(), s.update(() => (s.unlock(), 1))),
  ],
  ['ERR_ALREADY_LOCKED', Error, 'lock() twice', (s) => (s.lock(), s.lock())],
  ['ERR_ALREADY_LOCKED', Error, 'tryLock() while holding', (s) => (s.lock(), s.tryLock())],
  ['ERR_ALREADY_LOCKED', Error, 'set() that would wait on this thread', (s, other) => (other.lock(), s.set(1))],
  [
    'ERR_LOCK_TIMEOUT',
    Error,
    'lockAsync() past its timeout',
    (s, other) => (other.lock(), s.lockAsync({ timeout: 10 })),
  ],
  ['ERR_CLOSED', Error, 'get() after close()', (s) => (s.close(), s.get())],
  ['ERR_CLOSED', Error, 'set() after close()', (s) => (s.close(), s.set(1))],
  ['ERR_CLOSED', Error, 'update() after close()', (s) => (s.close(), s.update(() => 1))],
  ['ERR_CLOSED', Error, 'update() whose function closes the share', (s) => s.update(() => (s.close(), 1))],
  ['ERR_CLOSED', Error, 'lock() after close()', (s) => (s.close(), s.lock())],
  ['ERR_CLOSED', Error, 'lockAsync() after close()', (s) => (s.close(), s.lockAsync())],
  ['ERR_CLOSED', Error, 'version after close()', (s) => (s.close(), s.version)],
];

describe('error codes', () => {
  const cases = table.map(([code, builtin, what, trigger]) => ({ code, builtin, what, trigger, kind: builtin.name }));

  let intact = 0;
  afterAll(() => {
    // The figure line of the bad-input stress suite (npm run stress runs this file with the suites).
    figure(`bad input: ${cases.length} documented bad inputs, ${intact} with their code and the value intact`);
  });

  it.each(cases)('$code ($kind) for $what, value intact', async ({ code, builtin, trigger }) => {
    const share = fresh(256, { value: kept });
    const other = attached(share.handle);
    const witness = attached(share.handle);
    let thrown: unknown;
    try {
      await trigger(share, other);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(MmapShareError);
    expect(thrown).toBeInstanceOf(builtin);
    expect(thrown).toMatchObject({ code, name: 'MmapShareError' });
    share.close();
    other.close();
    expect(witness.get()).toStrictEqual(kept);
    expect(witness.version).toBe(1);
    expect(witness.tryLock()).toStrictEqual({ ownerDied: false });
    intact++;
  });

  it('ERR_VALUE_TOO_LARGE says both sizes', () => {
    const share = fresh(16);
    expect(() => share.set('x'.repeat(40))).toThrow(/serializes to \d+ bytes; the region holds 16$/);
  });

  it('ERR_NOT_SERIALIZABLE passes the serializer error on as cause', () => {
    const share = fresh();
    expect(() => share.set({ f() {} })).toThrow(expect.objectContaining({ cause: expect.any(Error) }));
  });

  it('ERR_EXISTS leaves the existing file untouched', () => {
    const path = join(tempDir(), 'taken');
    writeFileSync(path, 'mine');
    expect(() => MmapShare.create(64, { path })).toThrow(expect.objectContaining({ code: 'ERR_EXISTS' }));
    expect(readFileSync(path, 'utf8')).toBe('mine');
  });

  it('ERR_BAD_HANDLE for a region whose header or slot lengths were overwritten', () => {
    const dir = tempDir();
    const path = join(dir, 'damaged');
    const share = fresh(64, { path, value: 'v' });
    const fd = openSync(path, 'r+');
    const word = Buffer.alloc(4);
    word.writeUInt32LE(1_000_000);
    writeSync(fd, word, 0, 4, W_LENGTH_0 * 4 + 4);
    expect(() => share.get()).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_HANDLE', message: expect.stringContaining('corrupt') }),
    );
    writeSync(fd, word, 0, 4, W_MAGIC * 4);
    closeSync(fd);
    expect(() => MmapShare.attach(path)).toThrow(expect.objectContaining({ code: 'ERR_BAD_HANDLE' }));
    expect(HEADER_BYTES).toBe(256);
  });

  it('ERR_NO_SPACE, not an abort, for a loop that opens regions without ever yielding; they come back at once after', () => {
    const out = execFileSync(process.execPath, [fixture('map-exhaustion.mjs')], { encoding: 'utf8' });
    const { code, message, opened, fdsBefore, fdsAfter, ticks, kept, again } = JSON.parse(out);
    expect(code).toBe('ERR_NO_SPACE');
    expect(message).toContain('yield');
    // Below half of vm.max_map_count, with room left for everything else the process maps.
    expect(opened).toBeGreaterThan(maxMapCount / 4);
    expect(opened).toBeLessThan(maxMapCount / 2);
    expect({ fdsAfter, kept, again }).toStrictEqual({ fdsAfter: fdsBefore, kept: 'kept', again: 'again' });
    expect(ticks).toBeLessThanOrEqual(3);
  });

  it.runIf(canCapAddressSpace)('ERR_NO_SPACE when the mapping itself fails, with the system error as cause', () => {
    const out = execFileSync(process.execPath, [fixture('no-address-space.mjs')], { encoding: 'utf8' });
    expect(JSON.parse(out)).toStrictEqual({
      code: 'ERR_NO_SPACE',
      cause: ['ENOMEM', 'mmap'],
      fdsKept: true,
      shmKept: true,
      kept: 'kept',
    });
  });

  it.runIf(canMakeMountNamespace)(
    'ERR_NO_SPACE at create() for a region larger than /dev/shm can hold, which is left free',
    () => {
      expect(inMountNamespace('no-space.sh')).toStrictEqual({ code: 'ERR_NO_SPACE', freedAgain: true, small: 'fits' });
    },
  );

  it('is an MmapShareError to a second installed copy of the package too', () => {
    const copy = tempDir();
    cpSync(join(__dirname, '..', 'dist'), join(copy, 'dist'), { recursive: true });
    symlinkSync(join(__dirname, '..', 'node_modules'), join(copy, 'node_modules'));
    const other = createRequire(__filename)(join(copy, 'dist', 'index.js')) as typeof import('../dist/index.js');
    expect(other.MmapShareError).not.toBe(MmapShareError);
    expect(() => other.MmapShare.create(0)).toThrow(MmapShareError);
    expect(() => MmapShare.create(0)).toThrow(other.MmapShareError);
  });

  it('ERR_NATIVE_ADDON at the first create() when an addon fails to load, with the loader error as cause', () => {
    const script = `const { MmapShare } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))}); try { MmapShare.create(64) } catch (e) { console.log(JSON.stringify([e.code, e.cause.message, e.message])) }`;
    const out = execFileSync(process.execPath, ['-r', fixture('break-addon.cjs'), '-e', script], { encoding: 'utf8' });
    const [code, cause, message] = JSON.parse(out) as string[];
    expect(code).toBe('ERR_NATIVE_ADDON');
    expect(cause).toBe('invalid ELF header');
    expect(message).toContain('npm rebuild fs-ext-extra-prebuilt');
  });
});
