// What a new user meets when the Redis backend fails: a connection refused, the redis peer not installed, and stores
// never closed, which must let the process end as shared memory's do. Against a real redis-server and a real refused
// port, never a mock.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MmapShareError, RedisMap, RedisShare } from '../dist/redis/index.mjs';
import { fixture, run } from './helpers.js';
import { RedisServer } from './redis/server.js';

let server: RedisServer;
beforeAll(async () => void (server = await RedisServer.start()));
afterAll(() => server.stop());

// Nothing listens on port 1: connecting to it is refused at once.
const refused = 'redis://127.0.0.1:1';
const COMMAND_TIMEOUT_MS = 5000;

async function failure(open: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now();
  try {
    await open();
  } catch (error) {
    return { error, ms: performance.now() - started };
  }
  throw new Error('it connected');
}

describe('a connection refused', () => {
  it.each([
    ['RedisShare.create()', () => RedisShare.create('refused', { url: refused, value: 1 })],
    ['RedisShare.attach()', () => RedisShare.attach('refused', { url: refused })],
    ['RedisMap.create()', () => RedisMap.create('refused', { url: refused })],
    ['RedisMap.attach()', () => RedisMap.attach('refused', { url: refused })],
    [
      "RedisMap.create() through a client of the user's own",
      () => RedisMap.create('refused', { client: createClient({ socket: { host: '127.0.0.1', port: 1 } }) }),
    ],
  ])('%s fails at once with ERR_CONNECTION, the ECONNREFUSED as its cause', async (_, open) => {
    const { error, ms } = await failure(open);
    expect(error).toBeInstanceOf(MmapShareError);
    expect(error).toMatchObject({ code: 'ERR_CONNECTION', cause: { code: 'ECONNREFUSED' } });
    expect(ms).toBeLessThan(COMMAND_TIMEOUT_MS / 2);
  });

  it('RedisShare.unlink() fails at once too', async () => {
    const { error, ms } = await failure(() => RedisShare.unlink('refused', { url: refused }));
    expect(error).toMatchObject({ code: 'ERR_CONNECTION', cause: { code: 'ECONNREFUSED' } });
    expect(ms).toBeLessThan(COMMAND_TIMEOUT_MS / 2);
  });

  it("a client of the user's own given by socket options, not a url, is reached where they say", async () => {
    const client = createClient({ socket: { host: '127.0.0.1', port: server.port } });
    const map = await RedisMap.create<number>('own-socket', { client });
    await map.set('k', 1);
    const admin = await createClient({ url: server.url }).connect();
    try {
      expect(await admin.exists('{own-socket}')).toBe(1);
    } finally {
      admin.destroy();
      await map.close();
    }
  });
});

describe('without the redis peer installed', () => {
  const root = join(__dirname, '..');
  // Each of the four ways to connect, after the entry has loaded: what it rejected with.
  const body = `
    const opened = [RedisShare.create('k', { value: 1 }), RedisShare.attach('k'), RedisMap.create('m'), RedisMap.attach('m')];
    Promise.allSettled(opened).then((results) => console.log(JSON.stringify({
      classes: typeof RedisShare + ' ' + typeof RedisMap,
      errors: results.map(({ reason: e }) => ({ coded: e instanceof MmapShareError, code: e.code, message: e.message, cause: e.cause.code })),
    })));`;
  const expected = {
    classes: 'function function',
    errors: Array(4).fill({
      coded: true,
      code: 'ERR_MISSING_PEER',
      message: expect.stringContaining('npm install redis'),
      cause: 'MODULE_NOT_FOUND',
    }),
  };
  const node = (args: string[]) =>
    JSON.parse(
      execFileSync(process.execPath, ['-r', fixture('no-peer.cjs'), ...args], { cwd: root, encoding: 'utf8' }),
    );

  it('require("mmap-share/redis") works; create() and attach() reject with ERR_MISSING_PEER', () => {
    const script = `const { MmapShareError, RedisMap, RedisShare } = require('mmap-share/redis');${body}`;
    expect(node(['-e', script])).toStrictEqual(expected);
  });

  it('import "mmap-share/redis" works; create() and attach() reject with ERR_MISSING_PEER', () => {
    const script = `import { MmapShareError, RedisMap, RedisShare } from 'mmap-share/redis';${body}`;
    expect(node(['--input-type=module', '-e', script])).toStrictEqual(expected);
  });
});

describe('stores never closed', () => {
  // A script that does not end by itself is killed after this long, and its signal shows.
  const ending = { timeout: 10_000 };

  it('a RedisMap and a RedisShare, its lock held and watched, let the process end, as a SharedMap does', async () => {
    const [redis, shared] = await Promise.all([
      run(fixture('redis-unclosed.mjs'), ['redis', server.url], ending),
      run(fixture('redis-unclosed.mjs'), ['shared'], ending),
    ]);
    expect(shared).toMatchObject({ code: 0, signal: null, stdout: '["v"]\n' });
    expect(redis).toMatchObject({ code: 0, signal: null, stdout: '["v",2]\n' });
  });

  it('a call still waiting for its answer when the script ends gets it, then the process ends', async () => {
    const pending = await run(fixture('redis-unclosed.mjs'), ['pending', server.url], ending);
    expect(pending).toMatchObject({ code: 0, signal: null });
    const [value, waited] = JSON.parse(pending.stdout) as [string, number];
    expect(value).toBe('v');
    expect(waited).toBeGreaterThan(500);
  });

  it('a RedisMap whose server was shut down under it lets the process end, its call failed with ERR_CONNECTION and a cause', async () => {
    const doomed = await RedisServer.start();
    try {
      const lost = await run(fixture('redis-unclosed.mjs'), ['lost', doomed.url], ending);
      expect(lost).toMatchObject({ code: 0, signal: null, stdout: '["ERR_CONNECTION",true]\n' });
    } finally {
      await doomed.stop();
    }
  });
});

describe('a connection lost and made again', () => {
  it('a watcher hears the changes made after the server is back', async () => {
    const durable = await RedisServer.start(true);
    try {
      const share = await RedisShare.create('rewatched', { url: durable.url, value: 0 });
      const heard: unknown[] = [];
      share.watch((value) => heard.push(value));
      // The watcher subscribes, and later makes its connection again, on its own schedule: set until it hears.
      const hears = (value: number) =>
        expect.poll(() => share.set(value).then(() => heard), { timeout: 5000, interval: 100 }).toContain(value);
      await hears(1);
      await durable.stop();
      await durable.start();
      await hears(2);
      await share.close();
    } finally {
      await durable.remove();
    }
  });
});
