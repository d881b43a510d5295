// The SharedMap workloads of `npm run bench`: keyed gets, sets and inserts, 4 processes mixing gets and sets, the cost
// of a get as the map grows, LRU's hit rate on a Zipf trace, and bytes per entry; each scenario in a fresh process.
//   node bench/map.mjs [--quick] [--workloads=get-uniform,mixed] [--contestants=lmdb,SharedMap msgpack]
// Prints a Markdown table (stdout) and writes JSON to bench/results/; progress goes to stderr.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { LRUCache } from 'lru-cache';
import { SharedMap } from '../dist/index.mjs';
import { keyOf, mapContestants } from './map-contestants.mjs';
import { makeValue } from './values.mjs';
import { flags, pick } from './flags.mjs';
import { machine, opsTables, saveResults, scenarioInChild } from './report.mjs';

const [role, ...rest] = process.argv.slice(2);
const quick = 'quick' in flags || process.env.BENCH_QUICK === '1';
const KEYS = quick ? 10_000 : 100_000;
const ROUNDS = 5;
const ROUND_MS = quick ? 30 : 150;
const MIXED_MS = quick ? 200 : 1500;
const TRACE = quick ? 100_000 : 1_000_000;
const value = makeValue(100);

const shared = ['SharedMap msgpack', 'SharedMap v8', 'SharedMap snapshot()'];
const viaPrimary = 'process.send (primary)';
const redis = process.env.BENCH_REDIS_URL ? ['RedisMap msgpack'] : [];
// Each workload: its contestants, the one its ratios are taken against, its unit, and whether higher is better.
const WORKLOADS = {
  'get-uniform': {
    names: [...shared, 'lmdb', 'lru-cache (per process)', 'MmapShare whole object', viaPrimary, ...redis],
    unit: 'gets/s',
  },
  'get-zipf': { names: [...shared, 'lmdb', 'lru-cache (per process)', viaPrimary], unit: 'gets/s' },
  'set-existing': {
    names: ['SharedMap msgpack', 'SharedMap v8', 'lmdb', 'lru-cache (per process)', viaPrimary, ...redis],
    unit: 'sets/s',
  },
  'insert-new': { names: ['SharedMap msgpack', 'SharedMap v8', 'lmdb', 'lru-cache (per process)'], unit: 'inserts/s' },
  'insert-at-10k': {
    names: ['SharedMap msgpack', 'SharedMap v8', 'MmapShare whole object'],
    base: 'MmapShare whole object',
    unit: 'inserts/s at 10,000 keys',
  },
  mixed: { names: [...shared, 'lmdb', viaPrimary, ...redis], unit: 'ops/s, 4 processes, 90% get / 10% set' },
  'get-1k': { names: ['SharedMap msgpack', 'SharedMap snapshot()', 'lmdb'], unit: 'gets/s at 1,000 keys', keys: 1000 },
  'get-1m': {
    names: ['SharedMap msgpack', 'SharedMap snapshot()', 'lmdb'],
    unit: 'gets/s at 1,000,000 keys',
    keys: quick ? 100_000 : 1_000_000,
  },
};

// A deterministic random source, so that every contestant sees the same keys in the same order.
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** `length` key indexes below `keys`: uniform, or Zipf-distributed (s = 0.99, YCSB's) over a shuffled key order. */
function trace(keys, length, zipf, seed = 1) {
  const next = random(seed);
  if (!zipf) return Array.from({ length }, () => Math.floor(next() * keys));
  const cumulative = new Float64Array(keys);
  for (let rank = 0, sum = 0; rank < keys; rank++) cumulative[rank] = sum += 1 / (rank + 1) ** 0.99;
  const order = Array.from({ length: keys }, (_, i) => i);
  for (let i = keys - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const total = cumulative[keys - 1];
  return Array.from({ length }, () => {
    const target = next() * total;
    let [low, high] = [0, keys - 1];
    while (low < high) {
      const mid = (low + high) >> 1;
      if (cumulative[mid] < target) low = mid + 1;
      else high = mid;
    }
    return order[low];
  });
}

// ops/s of `op(i)` over rounds of ROUND_MS, in batches that grow until a batch takes a millisecond; the median round.
// `awaited` awaits each call, for the contestants that answer asynchronously: an await per call would slow the others.
async function throughput(op, awaited) {
  const rounds = [];
  let i = 0;
  for (let round = -1; round < ROUNDS; round++) {
    let ops = 0;
    let batch = 1;
    const start = performance.now();
    for (let at = start; at - start < ROUND_MS; at = performance.now()) {
      if (awaited) for (let n = 0; n < batch; n++) await op(i++);
      else for (let n = 0; n < batch; n++) op(i++);
      ops += batch;
      if (performance.now() - at < 1) batch *= 2;
    }
    // Round -1 warms up.
    if (round >= 0) rounds.push((ops * 1000) / (performance.now() - start));
  }
  return rounds.sort((a, b) => a - b)[ROUNDS >> 1];
}

// ops/s of one workload (but mixed) through `client`.
async function measure(workload, name, client, keys) {
  const awaited = mapContestants[name].isAsync === true;
  const names = trace(keys, TRACE, workload === 'get-zipf').map(keyOf);
  const at = (i) => names[i % names.length];
  if (workload.startsWith('get')) return throughput((i) => client.get(at(i)), awaited);
  if (workload === 'set-existing') return throughput((i) => client.set(at(i), value), awaited);
  // New keys, a fixed number of them, so that no store has to evict or grow past what it was sized for.
  const count = workload === 'insert-at-10k' ? (name.startsWith('MmapShare') ? 200 : 10_000) : keys / 2;
  const start = performance.now();
  for (let i = 0; i < count; i++) client.set(keyOf(keys + i), value);
  return (count * 1000) / (performance.now() - start);
}

async function scenario(workload, name) {
  const contestant = mapContestants[name];
  const keys = WORKLOADS[workload].keys ?? (workload === 'insert-at-10k' ? 10_000 : KEYS);
  const ref = await contestant.create(keys, value);
  try {
    if (workload === 'mixed' || contestant.isAsync) return await inWorkers(workload, name, ref, keys);
    const client = await contestant.attach(ref);
    const result = await measure(workload, name, client, keys);
    await client.close();
    return result;
  } finally {
    await contestant.destroy(ref);
  }
}

// Runs the workload in forked workers (4 for mixed, else 1), which attach to `ref` or ask this process through
// process.send; ops/s, summed over the workers.
async function inWorkers(workload, name, ref, keys) {
  const contestant = mapContestants[name];
  const workers = Array.from({ length: workload === 'mixed' ? 4 : 1 }, (_, seed) =>
    fork(
      new URL(import.meta.url).pathname,
      ['worker', workload, name, JSON.stringify(contestant.serve ? {} : ref), String(keys), String(seed)],
      { serialization: 'advanced' },
    ),
  );
  workers.forEach((worker) => contestant.serve?.(ref, worker));
  const results = await Promise.all(
    workers.map(
      (worker) => new Promise((resolve) => worker.on('message', (m) => m.result !== undefined && resolve(m.result))),
    ),
  );
  return results.reduce((sum, result) => sum + result, 0);
}

async function worker(workload, name, ref, keys, seed) {
  const contestant = mapContestants[name];
  const client = await contestant.attach(JSON.parse(ref));
  const result =
    workload === 'mixed'
      ? await mixedOps(client, contestant.isAsync === true, Number(keys), Number(seed))
      : await measure(workload, name, client, Number(keys));
  await client.close();
  process.send({ result }, () => process.exit(0));
}

// ops/s of 90% gets and 10% sets of uniformly drawn keys, for MIXED_MS.
async function mixedOps(client, awaited, keys, seed) {
  const names = trace(keys, TRACE / 4, false, seed + 7).map(keyOf);
  let ops = 0;
  const start = performance.now();
  while (performance.now() - start < MIXED_MS) {
    for (let n = 0; n < 64; n++, ops++) {
      const key = names[ops % names.length];
      const call = ops % 10 === 9 ? client.set(key, value) : client.get(key);
      if (awaited) await call;
    }
  }
  return (ops * 1000) / (performance.now() - start);
}

// The hit rate of SharedMap's sampled LRU on a Zipf trace, beside exact LRU (lru-cache) holding as many entries: a
// miss sets the key, as a cache does.
function hitRates() {
  const keys = KEYS;
  const entries = keys / 10;
  const requests = trace(keys, TRACE, true, 3).map(keyOf);
  const map = SharedMap.create({ capacity: 64 << 20, maxEntries: entries, codec: 'msgpack' });
  const lru = new LRUCache({ max: entries });
  const rate = (cache) => {
    let hits = 0;
    for (const key of requests) {
      if (cache.get(key) !== undefined) hits++;
      else cache.set(key, 1);
    }
    return hits / requests.length;
  };
  const result = { sampled: rate(map), exact: rate(lru), entries, keys };
  map.close();
  return result;
}

// Bytes of the region each entry takes when the map is full of 10-byte keys and 100-byte values.
function bytesPerEntry() {
  const capacity = 16 << 20;
  const map = SharedMap.create({ capacity, codec: 'msgpack' });
  let count = 0;
  while (map.stats().evictions === 0) map.set(keyOf(count++), value);
  const result = { capacity, entries: count - 1, bytesPerEntry: capacity / (count - 1) };
  map.close();
  return result;
}

async function primary() {
  const workloads = pick('workloads', [...Object.keys(WORKLOADS), 'hit-rate', 'bytes']);
  const only = pick('contestants', undefined);
  const started = performance.now();
  const rows = [];
  for (const workload of workloads.filter((w) => WORKLOADS[w])) {
    for (const name of WORKLOADS[workload].names.filter((n) => !only || only.includes(n))) {
      const env = { ...process.env, BENCH_QUICK: quick ? '1' : '0' };
      const ops = scenarioInChild(new URL(import.meta.url).pathname, 'map', workload, name, env, 300_000);
      rows.push({ workload, name, ops });
    }
  }
  const extra = {};
  if (workloads.includes('hit-rate')) extra.hitRate = await inChild('hit-rate');
  if (workloads.includes('bytes')) extra.bytes = await inChild('bytes');

  const lines = opsTables(
    Object.fromEntries(Object.entries(WORKLOADS).map(([name, w]) => [name, { base: 'lmdb', ...w }])),
    rows,
  );
  if (extra.hitRate) {
    const { sampled, exact, entries, keys } = extra.hitRate;
    lines.push(
      `\n#### hit rate on a Zipf trace (s = 0.99, ${keys.toLocaleString('en')} keys, room for ${entries.toLocaleString('en')})\n`,
      '| eviction | hit rate |',
      '| --- | ---: |',
      `| SharedMap (sampled LRU) | ${(sampled * 100).toFixed(1)}% |`,
      `| exact LRU (lru-cache) | ${(exact * 100).toFixed(1)}% |`,
      `| difference | ${((exact - sampled) * 100).toFixed(1)} points |`,
    );
  }
  if (extra.bytes) {
    const { capacity, entries, bytesPerEntry: per } = extra.bytes;
    lines.push(
      `\nBytes per entry (10-byte keys, 100-byte values): a ${capacity >> 20} MiB map held ${entries.toLocaleString('en')} before its first eviction: ${per.toFixed(1)} bytes each.`,
    );
  }
  console.log(
    `SharedMap workloads. Machine: ${machine()}. Run time ${Math.round((performance.now() - started) / 1000)} s.${lines.join('\n')}`,
  );
  saveResults('map', { machine: machine(), rows, ...extra });
}

async function inChild(what) {
  process.stderr.write(`map ${what} ... `);
  const child = fork(new URL(import.meta.url).pathname, [what], {
    env: { ...process.env, BENCH_QUICK: quick ? '1' : '0' },
  });
  const [result] = await once(child, 'message');
  process.stderr.write('done\n');
  return result;
}

if (role === 'scenario') process.stdout.write(JSON.stringify(await scenario(rest[0], rest[1])));
else if (role === 'worker') await worker(...rest);
else if (role === 'hit-rate') process.send(hitRates());
else if (role === 'bytes') process.send(bytesPerEntry());
else await primary();
