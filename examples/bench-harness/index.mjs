// A benchmark harness: the primary forks workers that each measure a hash in rounds and stream every round's sample
// through a SharedQueue; the primary prints each sample as it arrives with a progress line, then the table. Nothing
// is sent over IPC.
//   node examples/bench-harness/index.mjs [--workers 4] [--rounds 10]
import cluster from 'node:cluster';
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { SharedQueue } from 'mmap-share';

const { values: args } = parseArgs({
  options: { workers: { type: 'string', default: '4' }, rounds: { type: 'string', default: '10' } },
});
const [workers, rounds] = [Number(args.workers), Number(args.rounds)];
const algorithms = ['sha1', 'sha256', 'sha512', 'md5'];

if (cluster.isPrimary) {
  const samples = SharedQueue.create({ capacity: '64KB', name: 'bench_samples' });
  for (let i = 0; i < workers; i++) cluster.fork({ ALGORITHM: algorithms[i % algorithms.length] });
  const table = {};
  const totals = {};
  let [received, running] = [0, workers];
  for await (const { worker, algorithm, round, mbPerSecond, done } of samples) {
    const row = (table[`worker ${worker}`] ??= { algorithm, samples: 0, 'best MB/s': 0, 'mean MB/s': 0 });
    if (done) {
      // The last sample of the last worker: closing ends the loop.
      if (--running === 0) samples.close();
      continue;
    }
    totals[worker] = (totals[worker] ?? 0) + mbPerSecond;
    row.samples++;
    row['best MB/s'] = Math.max(row['best MB/s'], mbPerSecond);
    row['mean MB/s'] = Math.round(totals[worker] / row.samples);
    console.log(
      `worker ${worker} ${algorithm} round ${round}/${rounds}: ${mbPerSecond} MB/s` +
        `  [${++received}/${workers * rounds} samples, running: ${running}]`,
    );
  }
  console.table(Object.fromEntries(Object.entries(table).sort(([a], [b]) => a.localeCompare(b))));
} else {
  const samples = SharedQueue.attach('bench_samples');
  const [worker, algorithm] = [cluster.worker.id, process.env.ALGORITHM];
  const input = Buffer.alloc(16 << 10, 1);
  for (let round = 1; round <= rounds; round++) {
    let hashes = 0;
    const start = performance.now();
    for (; performance.now() - start < 30; hashes++) createHash(algorithm).update(input).digest();
    const mbPerSecond = Math.round((hashes * input.length) / 2 ** 20 / ((performance.now() - start) / 1000));
    // Waits for room when the primary falls behind, instead of failing or growing without bound.
    await samples.pushAsync({ worker, algorithm, round, mbPerSecond });
  }
  await samples.pushAsync({ worker, algorithm, done: true });
  samples.close();
  process.exit(0);
}
