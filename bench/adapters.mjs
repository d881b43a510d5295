// The adapters of `npm run bench`, each contestant in a fresh process, one call awaited after another:
//   keyv-get, keyv-set: Keyv through KeyvStore over a SharedMap of each codec (Keyv hands its store strings, which
//         msgpack encodes fastest), against Keyv over its in-memory Map (one process, not shared) and over
//         @keyv/redis; and KeyvStore alone against the bare SharedMap it adds to
//   erl-increment: express-rate-limit's increment() through RateLimitStore, over a SharedMap of each codec (a count
//         is plain data: msgpack's), against its MemoryStore (per process) and rate-limit-redis
//   node bench/adapters.mjs [--quick] [--workloads=keyv-get,erl-increment] [--contestants=a,b]
// Prints a Markdown table (stdout) and writes JSON to bench/results/; progress goes to stderr.
import KeyvRedis from '@keyv/redis';
import { MemoryStore } from 'express-rate-limit';
import Keyv from 'keyv';
import RedisStore from 'rate-limit-redis';
import { createClient } from 'redis';
import { SharedMap } from '../dist/index.mjs';
import { KeyvStore } from '../dist/adapters/keyv.mjs';
import { RateLimitStore } from '../dist/adapters/rate-limit.mjs';
import { RedisMap } from '../dist/redis/index.mjs';
import { flags, pick } from './flags.mjs';
import { startRedis } from './redis.mjs';
import { machine, opsTables, saveResults, scenarioInChild } from './report.mjs';
import { makeValue } from './values.mjs';

const [role, ...rest] = process.argv.slice(2);
const quick = 'quick' in flags || process.env.BENCH_QUICK === '1';
const ROUNDS = 5;
const ROUND_MS = quick ? 50 : 300;
const KEYS = 1000;
const WINDOW_MS = 10 * 60 * 1000;
const value = makeValue(100);
// What Keyv hands its store for `value`: the envelope, as JSON.
const stored = JSON.stringify({ value, expires: undefined });
const url = process.env.BENCH_REDIS_URL;
const self = new URL(import.meta.url).pathname;

// Each workload: its contestants (the Redis ones where a server runs), the one its ratios are taken against, its unit.
function workloads(redis) {
  const keyv = {
    names: [
      'Keyv + KeyvStore (SharedMap v8)',
      'Keyv + KeyvStore (SharedMap msgpack)',
      'Keyv + Map (one process)',
      ...(redis ? ['Keyv + @keyv/redis', 'Keyv + KeyvStore (RedisMap)'] : []),
      'KeyvStore alone (SharedMap)',
      'SharedMap bare',
    ],
    base: 'SharedMap bare',
  };
  return {
    'keyv-get': { ...keyv, unit: 'gets/s' },
    'keyv-set': { ...keyv, unit: 'sets/s' },
    'erl-increment': {
      names: [
        'RateLimitStore (SharedMap v8)',
        'RateLimitStore (SharedMap msgpack)',
        'MemoryStore (per process)',
        ...(redis ? ['rate-limit-redis', 'RateLimitStore (RedisMap)'] : []),
      ],
      base: redis ? 'rate-limit-redis' : 'MemoryStore (per process)',
      unit: 'increments/s',
    },
  };
}

// Each contestant: what it opens, and one operation of each workload on key number i.
const contestants = {
  'Keyv + KeyvStore (SharedMap v8)': async () => keyvOver(SharedMap.create({ capacity: '16MB' })),
  'Keyv + KeyvStore (SharedMap msgpack)': async () =>
    keyvOver(SharedMap.create({ capacity: '16MB', codec: 'msgpack' })),
  'Keyv + Map (one process)': async () => {
    const keyv = new Keyv();
    return { get: (i) => keyv.get(`k${i}`), set: (i) => keyv.set(`k${i}`, value) };
  },
  'Keyv + @keyv/redis': async () => {
    const keyv = new Keyv({ store: new KeyvRedis(url), useKeyPrefix: false });
    return { get: (i) => keyv.get(`k${i}`), set: (i) => keyv.set(`k${i}`, value), close: () => keyv.disconnect() };
  },
  'Keyv + KeyvStore (RedisMap)': async () => keyvOver(await RedisMap.create(`bench-keyv-${process.pid}`, { url })),
  'KeyvStore alone (SharedMap)': async () => {
    const store = new KeyvStore(SharedMap.create({ capacity: '16MB' }));
    return { get: (i) => store.get(`keyv:k${i}`), set: (i) => store.set(`keyv:k${i}`, stored), stored };
  },
  'SharedMap bare': async () => {
    const map = SharedMap.create({ capacity: '16MB' });
    return { get: (i) => map.get(`keyv:k${i}`), set: (i) => map.set(`keyv:k${i}`, stored), stored, sync: true };
  },
  'RateLimitStore (SharedMap v8)': async () => limiter(new RateLimitStore(SharedMap.create({ capacity: '16MB' }))),
  'RateLimitStore (SharedMap msgpack)': async () =>
    limiter(new RateLimitStore(SharedMap.create({ capacity: '16MB', codec: 'msgpack' }))),
  'MemoryStore (per process)': async () => limiter(new MemoryStore()),
  'RateLimitStore (RedisMap)': async () =>
    limiter(new RateLimitStore(await RedisMap.create(`bench-rl-${process.pid}`, { url }))),
  'rate-limit-redis': async () => {
    const client = await createClient({ url }).connect();
    const store = new RedisStore({ sendCommand: (...args) => client.sendCommand(args), prefix: `rl-${process.pid}:` });
    return { ...limiter(store), close: () => client.destroy() };
  },
};

function keyvOver(map) {
  const keyv = new Keyv({ store: new KeyvStore(map) });
  return { get: (i) => keyv.get(`k${i}`), set: (i) => keyv.set(`k${i}`, value), close: () => keyv.disconnect() };
}

function limiter(store) {
  store.init({ windowMs: WINDOW_MS });
  return { increment: async (i) => store.increment(`client-${i}`), close: () => store.shutdown?.() };
}

// The best of ROUNDS rounds of ROUND_MS, each one op awaited after another over KEYS keys; then a check that the ops
// did their work: a get gives what was set, an increment counts every earlier one.
async function scenario(workload, name) {
  const contestant = await contestants[name]();
  const op = contestant[workload.split('-')[1]];
  if (workload === 'keyv-get') for (let i = 0; i < KEYS; i++) await contestant.set(i);
  let best = 0;
  let firstKeyOps = 0;
  for (let round = 0; round <= ROUNDS; round++) {
    let count = 0;
    const start = performance.now();
    const until = start + ROUND_MS;
    if (contestant.sync) while (performance.now() < until) for (let j = 0; j < 100; j++) op(count++ % KEYS);
    else while (performance.now() < until) for (let j = 0; j < 100; j++) await op(count++ % KEYS);
    firstKeyOps += Math.ceil(count / KEYS);
    // Round 0 warms up.
    if (round > 0) best = Math.max(best, (count * 1000) / (performance.now() - start));
  }
  const check = {
    'keyv-get': async () => JSON.stringify(await contestant.get(0)) === JSON.stringify(contestant.stored ?? value),
    'keyv-set': async () => JSON.stringify(await contestant.get(0)) === JSON.stringify(contestant.stored ?? value),
    'erl-increment': async () => (await contestant.increment(0)).totalHits === firstKeyOps + 1,
  };
  if (!(await check[workload]())) throw new Error(`${name} did not do its ${workload}`);
  await contestant.close?.();
  return best;
}

async function primary() {
  const server = url ? undefined : await startRedis();
  const redisUrl = url ?? server?.url;
  if (!redisUrl) process.stderr.write('redis-server is not installed: the Redis contestants sit out\n');
  const env = { ...process.env, BENCH_QUICK: quick ? '1' : '0', BENCH_REDIS_URL: redisUrl ?? '' };
  const plan = workloads(redisUrl !== undefined);
  const only = pick('contestants', undefined);
  const started = performance.now();
  const rows = [];
  for (const workload of pick('workloads', Object.keys(plan))) {
    for (const name of plan[workload].names.filter((n) => !only || only.includes(n))) {
      const ops = scenarioInChild(self, 'adapters', workload, name, env, 120_000);
      rows.push({ workload, name, ops });
    }
  }
  server?.stop();
  const lines = opsTables(plan, rows);
  console.log(
    `Adapters. Machine: ${machine()}. Run time ${Math.round((performance.now() - started) / 1000)} s.${lines.join('\n')}`,
  );
  saveResults('adapters', { machine: machine(), rows });
}

if (role === 'scenario') {
  console.log(JSON.stringify(await scenario(...rest)));
  process.exit(0);
} else {
  await primary();
}
