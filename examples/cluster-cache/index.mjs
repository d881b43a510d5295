// A cache of computed results shared by the workers of an HTTP cluster.
//   node examples/cluster-cache/index.mjs [--workers 2] [--port 3000]   serve until Ctrl-C
//   node examples/cluster-cache/index.mjs --demo                        send itself requests, print, exit
// Each worker looks results up with snapshot() (one 32-bit load while the cache is unchanged) and inserts with
// update(), so a result computed by one worker is a hit for every other.
import cluster from 'node:cluster';
import { createServer, get } from 'node:http';
import { pbkdf2Sync } from 'node:crypto';
import { parseArgs } from 'node:util';
import { MmapShare } from 'mmap-share';

const { values: args } = parseArgs({
  options: {
    workers: { type: 'string', default: '2' },
    port: { type: 'string', default: '3000' },
    demo: { type: 'boolean' },
  },
});
const workers = Number(args.workers);

// The expensive work being cached: about 10 ms of key stretching.
const compute = (key) => pbkdf2Sync(key, 'mmap-share', 20_000, 16, 'sha256').toString('hex');

if (cluster.isPrimary) {
  const cache = MmapShare.create(1 << 20, { name: 'cluster_cache', value: {} });
  const stats = MmapShare.create(64 << 10, { name: 'cluster_cache_stats', value: {} });
  for (let i = 0; i < workers; i++) cluster.fork();
  let listening = 0;
  cluster.on('listening', async (_, address) => {
    if (++listening < workers) return;
    console.log(`cluster-cache: ${workers} workers on http://127.0.0.1:${address.port}/<key>`);
    if (!args.demo) return;
    // The demo: 300 requests over 40 keys, one connection each so that the workers take turns.
    for (let i = 0; i < 300; i++) await request(address.port, `/key-${(i * 7) % 40}`);
    for (const worker of Object.values(cluster.workers)) worker.send('report');
  });
  let exited = 0;
  cluster.on('exit', () => {
    if (++exited < workers) return;
    console.log('worker   requests  hits  hit rate');
    for (const [pid, { requests, hits }] of Object.entries(stats.get())) {
      console.log(
        `${pid.padEnd(8)} ${String(requests).padStart(8)} ${String(hits).padStart(5)} ${((100 * hits) / requests).toFixed(0).padStart(8)}%`,
      );
    }
    console.log(`entries in the shared cache: ${Object.keys(cache.get()).length}`);
  });
} else {
  const cache = MmapShare.attach('cluster_cache');
  let requests = 0;
  let hits = 0;
  createServer((req, res) => {
    const key = req.url.slice(1);
    requests++;
    let value = cache.snapshot()[key];
    if (value === undefined) {
      value = compute(key);
      cache.update((entries) => ({ ...entries, [key]: value }));
    } else {
      hits++;
    }
    res.end(`${key} = ${value}\n`);
  }).listen(Number(args.demo ? 0 : args.port), '127.0.0.1');
  process.on('message', (message) => {
    if (message !== 'report') return;
    MmapShare.attach('cluster_cache_stats').update((all) => ({ ...all, [process.pid]: { requests, hits } }));
    process.exit(0);
  });
}

function request(port, path) {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false }, (res) => res.resume().on('end', resolve)).on('error', reject);
  });
}
