// What the web examples share: their command line, and the primary's part: fork the workers, say where the cluster
// listens once every worker does, and stop them all on SIGTERM or SIGINT, or when one dies.
import cluster from 'node:cluster';
import { once } from 'node:events';
import { parseArgs } from 'node:util';

/** The command line of a web example: --workers (default 4) and --port (default 3000), and its own `options`. */
export function clusterArgs(options = {}) {
  const common = { workers: { type: 'string', default: '4' }, port: { type: 'string', default: '3000' } };
  return parseArgs({ options: { ...common, ...options } }).values;
}

/** Forks `workers` workers, which each listen on `port` (0: one free port for all), and prints the cluster's URL. */
export async function startCluster({ workers, port }) {
  const forked = Array.from({ length: Number(workers) }, () => cluster.fork({ PORT: port }));
  let stopping = false;
  const stop = () => {
    stopping = true;
    for (const worker of forked) worker.kill();
  };
  process.once('SIGTERM', stop).once('SIGINT', stop);
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    console.error(`worker ${worker.id} died (${signal ?? `exit code ${code}`}): stopping the cluster`);
    process.exitCode = 1;
    stop();
  });
  const exited = Promise.all(forked.map((worker) => once(worker, 'exit')));
  const listening = await Promise.race([
    Promise.all(forked.map(async (worker) => (await once(worker, 'listening'))[0].port)),
    exited,
  ]);
  if (!stopping) console.log(`listening on http://127.0.0.1:${listening[0]} (${workers} workers)`);
  await exited;
}
