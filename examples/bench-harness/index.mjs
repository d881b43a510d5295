// A benchmark harness: the primary forks workers that each run a measurement and update() their results into one
// shared object; the primary prints the merged table. No messages are exchanged.
//   node examples/bench-harness/index.mjs [--workers 4]
import cluster from 'node:cluster';
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { MmapShare } from 'mmap-share';

const { values: args } = parseArgs({ options: { workers: { type: 'string', default: '4' } } });
const algorithms = ['sha1', 'sha256', 'sha512', 'md5'];

if (cluster.isPrimary) {
  const results = MmapShare.create(64 << 10, { name: 'bench_harness', value: {} });
  for (let i = 0; i < Number(args.workers); i++) cluster.fork({ ALGORITHM: algorithms[i % algorithms.length] });
  let exited = 0;
  cluster.on('exit', () => {
    if (++exited < Number(args.workers)) return;
    console.table(Object.fromEntries(Object.entries(results.get()).sort(([a], [b]) => a.localeCompare(b))));
  });
} else {
  const algorithm = process.env.ALGORITHM;
  const input = Buffer.alloc(16 << 10, 1);
  let hashes = 0;
  const start = performance.now();
  for (; performance.now() - start < 300; hashes++) createHash(algorithm).update(input).digest();
  const mbPerSecond = (hashes * input.length) / 2 ** 20 / ((performance.now() - start) / 1000);
  MmapShare.attach('bench_harness').update((all) => ({
    ...all,
    [`worker ${cluster.worker.id}`]: { pid: process.pid, algorithm, hashes, 'MB/s': Math.round(mbPerSecond) },
  }));
  process.exit(0);
}
