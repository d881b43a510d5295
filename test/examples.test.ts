// Every example runs with one command and does its job.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, run, serve } from './helpers.js';
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

  it('bench-harness: every sample of every worker streams through a SharedQueue, in order, then the table', async () => {
    const { code, stdout, stderr } = await run(example('bench-harness'), ['--workers', '3', '--rounds', '5']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const samples = [...stdout.matchAll(/^worker (\d) \w+ round (\d)\/5: \d+ MB\/s {2}\[(\d+)\/15 samples/gm)];
    expect(samples.map((m) => Number(m[3]))).toStrictEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    for (const worker of ['1', '2', '3']) {
      expect(samples.filter((m) => m[1] === worker).map((m) => m[2])).toStrictEqual(['1', '2', '3', '4', '5']);
    }
    expect(stdout.match(/│ worker \d │ '\w+' +│ 5 /g)).toHaveLength(3);
    expect(stdout).toMatch(/'sha1'.*\n.*'sha256'.*\n.*'sha512'/);
  });

  it('work-queue: each job is taken by one worker, done once, and its result comes back', async () => {
    const { code, stdout, stderr } = await run(example('work-queue'), ['--workers', '3', '--jobs', '1000']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const [, done, shares] = /^jobs: (\d+) done once each by 3 workers \((.*)\)$/m.exec(stdout)!;
    expect(done).toBe('1000');
    const counts = [...shares!.matchAll(/worker \d: (\d+)/g)].map((m) => Number(m[1]));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(1000);
  });

  it('test-events: children forward their events, read in order per child, waiting for room in a small queue', async () => {
    const { code, stdout, stderr } = await run(example('test-events'), ['--children', '3', '--tests', '30']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    for (const child of [1, 2, 3]) {
      const names = [...stdout.matchAll(new RegExp(`^\\[child ${child}\\] (?:not )?ok test (\\d+)`, 'gm'))];
      expect(names.map((m) => Number(m[1]))).toStrictEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    }
    const second = stdout.split('\n').filter((line) => line.startsWith('[child 2]'));
    expect(second.join('\n')).toContain('[child 2] not ok test 7 of child 2\n[child 2] #   expected 7, got 8');
    expect(stdout).toContain('# child 2: 26 passed, 4 failed');
    const [, waits] =
      /^events: 86 pass, 4 fail, 4 diagnostics from 3 children, in order per child; children waited for room (\d+) times$/m.exec(
        stdout,
      )!;
    expect(Number(waits)).toBeGreaterThan(0);
  });
});

describe('web examples, each a 4-worker cluster', () => {
  const cluster = async (name: string, args: string[] = []) => serve(example(name), ['--port', '0', ...args]);
  const served = async (stop: () => Promise<{ code: number | null; stderr: string }>) =>
    expect(await stop()).toMatchObject({ code: 0, stderr: '' });

  it('express: 200 concurrent requests through the rate limit of 50 get exactly 150 429s, from every worker', async () => {
    const { url, stop } = await cluster('express', ['--limit', '50']);
    const answers = await Promise.all(Array.from({ length: 200 }, () => request(`${url}/api/hello`)));
    const statuses = answers.map(({ status }) => status);
    expect([statuses.filter((s) => s === 200).length, statuses.filter((s) => s === 429).length]).toStrictEqual([
      50, 150,
    ]);
    expect(new Set(answers.map(({ headers }) => headers['x-worker'])).size).toBe(4);
    // express-rate-limit's validations (a positive integer count, one count a request, a store used by one limiter,
    // a reset time for the standard headers) log to stderr, which stays empty.
    await served(stop);
  });

  it('express: a session made by one worker is found by every other, each visit counted once', async () => {
    const { url, stop } = await cluster('express');
    const first = await request(`${url}/visits`);
    const cookie = first.headers['set-cookie']![0]!.split(';')[0]!;
    const answers = [first];
    for (let i = 0; i < 11; i++) answers.push(await request(`${url}/visits`, { cookie }));
    const visits = answers.map(({ body }) => JSON.parse(body) as { visits: number; worker: number });
    expect(visits.map(({ visits }) => visits)).toStrictEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(new Set(visits.map(({ worker }) => worker)).size).toBe(4);
    await served(stop);
  });

  it.each(['cache-manager', 'nestjs'])('%s: a page cached by one worker is a hit in every other', async (name) => {
    const { url, stop } = await cluster(name);
    const answers = [];
    for (let i = 0; i < 8; i++) answers.push(await request(`${url}/pages/7`));
    const pages = answers.map(({ status, body, headers }) => ({
      status,
      renderedBy: (JSON.parse(body) as { renderedBy: number }).renderedBy,
      servedBy: Number(headers['x-worker']),
    }));
    const renderer = pages[0]!.servedBy;
    expect(pages.every(({ status, renderedBy }) => status === 200 && renderedBy === renderer)).toBe(true);
    expect(new Set(pages.map(({ servedBy }) => servedBy)).size).toBe(4);
    await served(stop);
  });
});
