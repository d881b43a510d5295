// A work queue across processes: the primary pushes jobs onto one SharedQueue, each worker takes the next job as soon
// as it is free, and results come back on a second queue. Each job is done exactly once, by whichever worker was free.
//   node examples/work-queue/index.mjs [--workers 3] [--jobs 200]
import cluster from 'node:cluster';
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { SharedQueue } from 'mmap-share';

const { values: args } = parseArgs({
  options: { workers: { type: 'string', default: '3' }, jobs: { type: 'string', default: '200' } },
});
const [workers, jobs] = [Number(args.workers), Number(args.jobs)];

if (cluster.isPrimary) {
  const todo = SharedQueue.create({ capacity: '64KB', name: 'jobs' });
  const done = SharedQueue.create({ capacity: '64KB', name: 'results' });
  for (let i = 0; i < workers; i++) cluster.fork();
  // Jobs of uneven cost: a free worker takes the next, so the fast ones do more. Fed while results are taken, so that
  // neither queue's backpressure waits on the other.
  const feeding = (async () => {
    for (let id = 0; id < jobs; id++) await todo.pushAsync({ id, rounds: 1 + ((id * 7919) % 50) * 40 });
    // One stop a worker, behind every job.
    for (let i = 0; i < workers; i++) await todo.pushAsync(null);
  })();
  const byWorker = {};
  const seen = new Set();
  while (seen.size < jobs) {
    const { id, worker, digest } = await done.take();
    if (seen.has(id)) throw new Error(`job ${id} came back twice`);
    seen.add(id);
    byWorker[`worker ${worker}`] = (byWorker[`worker ${worker}`] ?? 0) + 1;
    if (id % 50 === 0) console.log(`job ${id}: ${digest.slice(0, 16)}... by worker ${worker}`);
  }
  await feeding;
  const shares = Object.entries(byWorker).sort(([a], [b]) => a.localeCompare(b));
  console.log(
    `jobs: ${seen.size} done once each by ${shares.length} workers (${shares.map(([w, n]) => `${w}: ${n}`).join(', ')})`,
  );
  todo.close();
  done.close();
} else {
  const todo = SharedQueue.attach('jobs');
  const done = SharedQueue.attach('results');
  for await (const job of todo) {
    if (job === null) break;
    let digest = String(job.id);
    for (let i = 0; i < job.rounds; i++) digest = createHash('sha256').update(digest).digest('hex');
    await done.pushAsync({ id: job.id, worker: cluster.worker.id, digest });
  }
  process.exit(0);
}
