// Every example runs with one command and does its job.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from './helpers.js';
import { RedisServer } from './redis/server.js';

const example = (name: string) => join(__dirname, '..', 'examples', name, 'index.mjs');

describe('examples', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterAll(() => redis.stop());

  it.each([
    ['shared memory', false],
    ['Redis', true],
  ])('multi-host: the same cluster code counts exactly and computes each page once on %s', async (_, overRedis) => {
    const args = ['--workers', '3', ...(overRedis ? ['--redis', redis.url] : [])];
    const { code, stdout, stderr } = await run(example('multi-host'), args);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain('requests: 150 from 3 workers');
    expect(stdout).toContain('pages cached: 10, computed: 10 times');
  });

  it('cluster-cache: workers share one SharedMap through fetch(), computing each missing key once', async () => {
    const { code, stdout, stderr } = await run(example('cluster-cache'), ['--demo', '--workers', '2']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const rows = [...stdout.matchAll(/^(\d+) +(\d+) +(\d+) +(\d+)%$/gm)].map((m) => m.slice(1).map(Number));
    expect(rows).toHaveLength(2);
    expect(rows.reduce((sum, [, requests]) => sum + (requests ?? 0), 0)).toBe(300);
    const computed = rows.reduce((sum, [, , count]) => sum + (count ?? 0), 0);
    const [, computations, evictions, entries] = /^computations: (\d+), evictions: (\d+), entries: (\d+)$/m
      .exec(stdout)!
      .map(Number);
    const [, hits, misses, coalesced] = /^cluster: (\d+) hits, (\d+) misses, (\d+) coalesced/m
      .exec(stdout)!
      .map(Number);
    expect(computations).toBe(computed);
    // Each request is one hit, one computation (a miss) or one wait for another's (coalesced); a key is computed
    // again only after it was evicted (40 keys, room for 30).
    expect([hits! + misses! + coalesced!, misses]).toStrictEqual([300, computed]);
    expect(computed).toBeLessThanOrEqual(40 + evictions!);
    expect(evictions).toBeGreaterThan(0);
    expect(entries).toBeLessThanOrEqual(30);
  });

  it('config-broadcast: every worker picks up every change', async () => {
    const { code, stdout, stderr } = await run(example('config-broadcast'), ['--workers', '2', '--changes', '3']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const pickups = [...stdout.matchAll(/^worker (\d+): version (\d+), logLevel=(\w+), [\d.]+ ms after publishing$/gm)];
    expect(new Set(pickups.map((m) => m[1])).size).toBe(2);
    expect(pickups.map((m) => `${m[2]} ${m[3]}`).sort()).toEqual([
      '2 debug',
      '2 debug',
      '3 warn',
      '3 warn',
      '4 error',
      '4 error',
    ]);
  });

  it('bench-harness: the primary prints one row per worker, merged from update()s', async () => {
    const { code, stdout, stderr } = await run(example('bench-harness'), ['--workers', '3']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout.match(/│ worker \d │/g)).toHaveLength(3);
    expect(stdout).toMatch(/'sha1'.*\n.*'sha256'.*\n.*'sha512'/);
  });
});
