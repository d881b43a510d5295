// The wake-ups of `npm run bench`: what the doorbell costs and gives, each against what it replaced, in one run.
//   idle: the CPU of 16 processes watching a region that does not change, against 16 that poll it every 10 ms (what
//         watch() did by default before the doorbell) and 16 that only attach
//   writers: set() in a tight loop beside 8 watcher processes, against none
//   handoff: from unlock() to the resolve of a lockAsync() pending in another process, against a tryLock() loop
//         every 1 ms; and from the end of a fetch() computation to a waiter's fetch() in another process
//   node bench/wakeups.mjs [--quick]
// Prints a Markdown table (stdout) and writes JSON to bench/results/; progress goes to stderr.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { MmapShare, SharedMap } from '../dist/index.mjs';
import { cpuTicks } from './flags.mjs';
import { saveResults } from './report.mjs';

const [role, ...rest] = process.argv.slice(2);
const quick = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1';
const IDLE_MS = quick ? 2000 : 10_000;
const SETTLE_MS = quick ? 500 : 12_000;
const WRITE_MS = quick ? 300 : 1000;
const HANDOFFS = quick ? 20 : 60;
const self = new URL(import.meta.url).pathname;
const now = () => performance.timeOrigin + performance.now();
const median = (values) => values.sort((a, b) => a - b)[values.length >> 1];

// The child processes: a watcher (how it waits), a lock waiter, a fetch waiter.
async function child() {
  const [kind, handle, mode] = rest;
  if (kind === 'watch') {
    const share = MmapShare.attach(handle);
    if (mode === 'push') share.watch(() => {});
    if (mode === 'poll') {
      let seen = share.version;
      setInterval(() => share.version !== seen && ([seen] = [share.version, share.get()]), 10);
    }
    setInterval(() => {}, 1 << 30);
  } else if (kind === 'lock') {
    const share = MmapShare.attach(handle);
    process.on('message', async () => {
      if (mode === 'async') await share.lockAsync();
      else while (!share.tryLock()) await sleep(1);
      const got = now();
      share.unlock();
      process.send(got);
    });
  } else {
    const map = SharedMap.attach(handle);
    process.on('message', async (key) => {
      await map.fetch(key, () => 'computed here');
      process.send(now());
    });
  }
  process.send('ready');
}

async function spawn(args) {
  const child = fork(self, ['child', ...args]);
  await once(child, 'message');
  return child;
}

async function idle(mode) {
  const share = MmapShare.create(256, { value: { ready: true } });
  const children = await Promise.all(Array.from({ length: 16 }, () => spawn(['watch', share.handle, mode])));
  // What a process spends finishing its start is no cost of waiting, and is left out: compiling, and V8's memory
  // reducer, which collects about 8 s after start.
  await sleep(SETTLE_MS);
  const before = cpuTicks(children);
  await sleep(IDLE_MS);
  const used = cpuTicks(children) - before;
  children.forEach((child) => child.kill());
  share.close();
  // Percent of one core, for all 16 together.
  return (used * 1000) / IDLE_MS;
}

async function writes(watchers) {
  const share = MmapShare.create(4096, { codec: 'msgpack', value: {} });
  const children = await Promise.all(Array.from({ length: watchers }, () => spawn(['watch', share.handle, 'push'])));
  const value = { a: 1, list: [1, 2, 3], text: 'x'.repeat(60) };
  const rate = () => {
    const end = performance.now() + WRITE_MS;
    let sets = 0;
    for (; performance.now() < end; sets++) share.set(value);
    return (sets * 1000) / WRITE_MS;
  };
  rate();
  const sets = rate();
  children.forEach((child) => child.kill());
  share.close();
  return sets;
}

async function lockHandoff(mode) {
  const share = MmapShare.create(256, { value: 0 });
  const waiter = await spawn(['lock', share.handle, mode]);
  const delays = [];
  for (let i = 0; i < HANDOFFS; i++) {
    share.lock();
    waiter.send('go');
    await sleep(8);
    const released = now();
    share.unlock();
    const [got] = await once(waiter, 'message');
    delays.push(got - released);
    await sleep(2);
  }
  waiter.kill();
  share.close();
  return median(delays);
}

async function fetchHandoff() {
  const map = SharedMap.create({ capacity: '1MB' });
  const waiter = await spawn(['fetch', map.handle]);
  const delays = [];
  for (let i = 0; i < HANDOFFS; i++) {
    let computed = 0;
    const fetched = map.fetch(`k${i}`, async () => {
      waiter.send(`k${i}`);
      await sleep(8);
      computed = now();
      return 'computed';
    });
    const [got] = await once(waiter, 'message');
    await fetched;
    delays.push(got - computed);
  }
  waiter.kill();
  map.close();
  return median(delays);
}

async function main() {
  const rows = [];
  const row = (measure, contestant, figure, unit, against) => {
    rows.push({ measure, contestant, figure, unit, ratio: against === undefined ? undefined : figure / against });
    process.stderr.write(`wake-ups ${measure} ${contestant} ... done\n`);
  };
  const [push, poll, none] = [await idle('push'), await idle('poll'), await idle('none')];
  row('idle, 16 processes', 'watch() on the doorbell', push, '% of a core', poll);
  row('idle, 16 processes', 'polling every 10 ms', poll, '% of a core', poll);
  row('idle, 16 processes', 'attached, not watching', none, '% of a core', poll);
  const [alone, beside] = [await writes(0), await writes(8)];
  row('set() rate', 'no watchers', alone, 'sets/s', alone);
  row('set() rate', '8 watchers', beside, 'sets/s', alone);
  const [async, loop] = [await lockHandoff('async'), await lockHandoff('try')];
  row('lock handoff, median', 'lockAsync() on the doorbell', async, 'ms', loop);
  row('lock handoff, median', 'tryLock() every 1 ms', loop, 'ms', loop);
  row('fetch() handoff, median', 'waiter on the doorbell', await fetchHandoff(), 'ms');
  const format = (n) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toPrecision(3));
  const lines = [
    '#### wake-ups',
    '',
    '| measure | contestant | figure | unit | ratio |',
    '| --- | --- | ---: | --- | ---: |',
    ...rows.map(
      (r) => `| ${r.measure} | ${r.contestant} | ${format(r.figure)} | ${r.unit} | ${r.ratio?.toFixed(2) ?? '-'} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n\n`);
  saveResults('wakeups', { rows });
}

await (role === 'child' ? child() : main());
