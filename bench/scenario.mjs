// One scenario in fresh processes: `node scenario.mjs <contestant> <workload> <size>` sets up the contestant's
// shared value, forks its workers (this same file with the role "worker"), and cleans up. Workers report into the
// run's results region (attached by name, inherited through the environment) with update(), not with messages.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { MmapShare } from '../dist/index.mjs';
import { contestants } from './contestants.mjs';
import { makeValue, roomFor, SIZES } from './values.mjs';

const [role, name, workload, size] = process.argv.slice(2);
const contestant = contestants[name];
const bytes = SIZES[size];
const quick = process.env.BENCH_QUICK === '1';
const ROUNDS = 5;
const ROUND_MS = quick ? 30 : 120;
const WARMUP_MS = quick ? 50 : 150;
const INCREMENTS = quick ? { '100B': 2000, '10KB': 300, '1MB': 4 } : { '100B': 20_000, '10KB': 2000, '1MB': 20 };
const PUBLISHES = quick ? 10 : 30;
const PUBLISH_EVERY_MS = 20;
const POLL_EVERY_MS = 1;
const WORKERS = { get: 1, set: 1, update: 4, broadcast: 4 };
const now = () => performance.timeOrigin + performance.now();

function report(entry) {
  const results = MmapShare.attach('bench_results');
  results.update((all) => ({
    ...all,
    [`${workload}|${size}|${name}`]: [...(all[`${workload}|${size}|${name}`] ?? []), entry],
  }));
  results.close();
}

// Runs op n times, awaiting each call only for the contestants that answer asynchronously: an await per call would
// slow the synchronous ones.
const repeat = contestant?.isAsync
  ? async (op, n) => {
      for (let i = 0; i < n; i++) await op();
    }
  : (op, n) => {
      for (let i = 0; i < n; i++) op();
    };

// Runs op for a fixed time in batches that grow until a batch takes a millisecond, so reading the clock does not
// weigh on the fastest contestants; returns ops/s.
async function throughput(op, ms) {
  let ops = 0;
  let batch = 1;
  const start = performance.now();
  for (let at = start; at - start < ms; at = performance.now()) {
    await repeat(op, batch);
    ops += batch;
    if (performance.now() - at < 1) batch *= 2;
  }
  return (ops * 1000) / (performance.now() - start);
}

async function primary() {
  const value = makeValue(bytes);
  const ref = await contestant.create(value, roomFor(bytes));
  const workers = Array.from({ length: WORKERS[workload] }, () =>
    fork(new URL(import.meta.url).pathname, ['worker', name, workload, size], { serialization: 'advanced' }),
  );
  workers.forEach((worker) => contestant.serve?.(ref, worker));
  await Promise.all(workers.map((worker) => once(worker, 'message')));
  workers.forEach((worker) => worker.send({ op: 'start', ref: contestant.serve ? undefined : ref }));

  if (workload === 'broadcast') {
    const own = contestant.serve ? undefined : await contestant.attach(ref);
    for (let seq = 1; seq <= PUBLISHES; seq++) {
      await new Promise((resolve) => setTimeout(resolve, PUBLISH_EVERY_MS));
      const next = { ...value, seq, ts: now() };
      if (own) await own.set(next);
      else workers.forEach((worker) => worker.send({ op: 'publish', value: next }));
    }
    await new Promise((resolve) => setTimeout(resolve, PUBLISH_EVERY_MS));
    await own?.close();
    workers.forEach((worker) => worker.send({ op: 'stop' }));
  }
  await Promise.all(workers.map((worker) => once(worker, 'exit')));

  if (workload === 'update') {
    const expected = WORKERS.update * INCREMENTS[size];
    const count = contestant.serve ? ref.value.count : await finalCount(ref);
    report({ expected, count });
  }
  await contestant.destroy(ref);
}

async function finalCount(ref) {
  const client = await contestant.attach(ref);
  const { count } = await client.get();
  await client.close();
  return count;
}

async function worker() {
  process.send('ready');
  const [{ ref }] = await once(process, 'message');
  const client = await contestant.attach(ref);
  const value = makeValue(bytes);
  if (workload === 'get' || workload === 'set') {
    const op = workload === 'get' ? () => client.get() : () => client.set(value);
    await throughput(op, WARMUP_MS);
    // The median of several short rounds: a burst of noise from the machine spoils one round, not the result.
    const rounds = [];
    for (let round = 0; round < ROUNDS; round++) rounds.push(await throughput(op, ROUND_MS));
    report({ opsPerSecond: rounds.sort((a, b) => a - b)[ROUNDS >> 1] });
  } else if (workload === 'update') {
    const start = performance.now();
    await repeat(client.increment, INCREMENTS[size]);
    report({ increments: INCREMENTS[size], ms: performance.now() - start });
  } else {
    const delays = [];
    let seen = 0;
    const notice = (current) => {
      if (!current || current.seq === seen) return;
      seen = current.seq;
      delays.push(now() - current.ts);
    };
    const poller = client.onPublish
      ? client.onPublish(notice)
      : setInterval(() => notice(client.peek()), contestant.pollEveryMs ?? POLL_EVERY_MS);
    await new Promise((resolve) => process.on('message', (message) => message.op === 'stop' && resolve()));
    clearInterval(poller);
    report({ delays });
  }
  await client.close();
  process.exit(0);
}

await (role === 'worker' ? worker() : primary());
