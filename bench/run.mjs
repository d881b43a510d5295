// `npm run bench`: every contestant, workload and size in one run, each scenario in fresh processes, then the
// SharedMap workloads (bench/map.mjs), the wake-ups (bench/wakeups.mjs), the queue (bench/queue.mjs) and the
// adapters (bench/adapters.mjs). Prints Markdown tables (stdout) and writes JSON to bench/results/; progress goes to
// stderr. Flags: --quick (shorter runs), --workloads=get,set,map,wakeups,queue,adapters  --sizes=100B,10KB
// --contestants=lmdb,floor
import { execFileSync, fork } from 'node:child_process';
import { once } from 'node:events';
import { MmapShare } from '../dist/index.mjs';
import { flags, pick } from './flags.mjs';
import { startRedis } from './redis.mjs';
import { machine, saveResults } from './report.mjs';
import { SIZES } from './values.mjs';

// The Redis contestants need a server: one of the bench's own, for every scenario, where redis-server is installed.
const redis = await startRedis();
if (redis) process.env.BENCH_REDIS_URL = redis.url;
else process.stderr.write('redis-server is not installed: the Redis contestants sit out\n');
const { contestants } = await import('./contestants.mjs');

// The workloads run here; the others are scripts of their own, run after.
const SCRIPTS = { map: 'map.mjs', wakeups: 'wakeups.mjs', queue: 'queue.mjs', adapters: 'adapters.mjs' };
const WORKLOADS = pick('workloads', ['get', 'set', 'update', 'broadcast', ...Object.keys(SCRIPTS)]).filter(
  (w) => !(w in SCRIPTS),
);
const SIZE_NAMES = pick('sizes', Object.keys(SIZES));
const NAMES = pick('contestants', Object.keys(contestants));
const BASELINE = 'mmap-share v8';
const SCENARIO_TIMEOUT_MS = 120_000;
// snapshot() is a way to read: it has nothing different to show when writing.
const applies = (name, workload) =>
  !(name.includes('snapshot') && (workload === 'set' || workload === 'update')) &&
  (contestants[name].only ?? workload) === workload;

const results = MmapShare.create(16 << 20, { name: 'bench_results', value: {} });
const plan = WORKLOADS.flatMap((workload) =>
  SIZE_NAMES.flatMap((size) =>
    NAMES.filter((name) => applies(name, workload)).map((name) => ({ workload, size, name })),
  ),
);

const started = performance.now();
for (const [index, { workload, size, name }] of plan.entries()) {
  process.stderr.write(`[${index + 1}/${plan.length}] ${workload} ${size} ${name} ... `);
  const child = fork(new URL('scenario.mjs', import.meta.url).pathname, ['primary', name, workload, size], {
    env: { ...process.env, BENCH_QUICK: 'quick' in flags ? '1' : '0' },
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), SCENARIO_TIMEOUT_MS);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  process.stderr.write(code === 0 ? 'done\n' : `failed (exit ${code})\n`);
}

const raw = results.get();
const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
function score(workload, entries) {
  if (!entries?.length) return undefined;
  if (workload === 'get' || workload === 'set') return entries[0].opsPerSecond;
  if (workload === 'update') {
    const runs = entries.filter((entry) => entry.increments !== undefined);
    return (runs.reduce((sum, run) => sum + run.increments, 0) * 1000) / Math.max(...runs.map((run) => run.ms));
  }
  return median(entries.flatMap((entry) => entry.delays));
}
const p99 = (entries) => {
  const delays = entries?.flatMap((entry) => entry.delays).sort((a, b) => a - b);
  return delays?.length ? delays[Math.floor(delays.length * 0.99)] : undefined;
};

const rows = plan.map(({ workload, size, name }) => {
  const entries = raw[`${workload}|${size}|${name}`];
  const value = score(workload, entries);
  const base = score(workload, raw[`${workload}|${size}|${BASELINE}`]);
  const check = workload === 'update' ? entries?.find((entry) => entry.expected !== undefined) : undefined;
  const tail = workload === 'broadcast' ? p99(entries) : undefined;
  return { workload, size, name, value, ratio: value && base ? value / base : undefined, check, tail };
});

const units = { get: 'gets/s', set: 'sets/s', update: 'updates/s (4 processes)', broadcast: 'median delay, ms' };
const format = (n) => (n === undefined ? 'failed' : n >= 100 ? Math.round(n).toLocaleString('en') : n.toPrecision(3));
const lines = [];
// update's table says whether the count came out exact, broadcast's how late the slowest 1% of deliveries were.
const extra = {
  update: {
    head: 'count',
    cell: ({ check }) =>
      check ? (check.count === check.expected ? 'exact' : `${check.count} of ${check.expected}`) : '-',
  },
  broadcast: { head: 'p99 delay, ms', cell: ({ tail }) => format(tail) },
};
for (const workload of WORKLOADS) {
  const ratioNote = workload === 'broadcast' ? 'x mmap-share v8 (lower is better)' : 'x mmap-share v8';
  const more = extra[workload];
  lines.push(
    `\n#### ${workload}: ${units[workload]}\n`,
    `| size | contestant | ${units[workload]} | ${ratioNote} |${more ? ` ${more.head} |` : ''}`,
    `| --- | --- | ---: | ---: |${more ? ' ---: |' : ''}`,
  );
  for (const row of rows.filter((r) => r.workload === workload)) {
    const ratio = row.ratio === undefined ? '-' : row.ratio.toFixed(2);
    lines.push(`| ${row.size} | ${row.name} | ${format(row.value)} | ${ratio} |${more ? ` ${more.cell(row)} |` : ''}`);
  }
}
console.log(
  `Machine: ${machine()}. Run time ${Math.round((performance.now() - started) / 1000)} s.${lines.join('\n')}`,
);

saveResults('', { machine: machine(), rows, raw });
results.close();
for (const [workload, script] of Object.entries(SCRIPTS)) {
  if (flags.workloads && !flags.workloads.split(',').includes(workload)) continue;
  execFileSync(
    process.execPath,
    [new URL(script, import.meta.url).pathname, ...('quick' in flags ? ['--quick'] : [])],
    {
      stdio: 'inherit',
    },
  );
}
redis?.stop();
