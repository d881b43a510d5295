// A cache of computed results shared by the workers of an HTTP cluster, on a SharedMap.
//   node examples/cluster-cache/index.mjs [--workers 2] [--port 3000]   serve until Ctrl-C
//   node examples/cluster-cache/index.mjs --demo                        send itself requests, print, exit
// Each worker answers with cache.fetch(): a result computed by one worker is a hit for every other, a key requested by
// several workers at once is computed by one of them while the others wait, the least recently used results make
// room for new ones, and every result expires after a minute.
import cluster from 'node:cluster';
import { createServer, get } from 'node:http';
import { pbkdf2Sync } from 'node:crypto';
import { parseArgs } from 'node:util';
import { SharedMap } from 'mmap-share';

const { values: args } = parseArgs({
  options: {
    workers: { type: 'string', default: '2' },
    port: { type: 'string', default: '3000' },
    demo: { type: 'boolean' },
  },
});
const workers = Number(args.workers);
const REQUESTS = 300;
const KEYS = 40;

// The expensive work being cached: about 10 ms of key stretching.
const compute = (key) => pbkdf2Sync(key, 'mmap-share', 20_000, 16, 'sha256').toString('hex');

if (cluster.isPrimary) {
  // Room for 30 results: the demo asks for 40 keys, so the least recently used ones are evicted.
  const cache = SharedMap.create({ capacity: '1MB', maxEntries: 30, ttl: 60_000, name: 'cluster_cache' });
  const reports = SharedMap.create({ capacity: '64KB', name: 'cluster_cache_reports' });
  for (let i = 0; i < workers; i++) cluster.fork();
  let listening = 0;
  cluster.on('listening', async (_, address) => {
    if (++listening < workers) return;
    console.log(`cluster-cache: ${workers} workers on http://127.0.0.1:${address.port}/<key>`);
    if (!args.demo) return;
    // The demo: requests over KEYS keys, the low ones asked for most, 8 at a time so that workers meet on a key.
    const keys = Array.from({ length: REQUESTS }, (_, i) => `key-${Math.floor(KEYS * ((i * 0.618034) % 1) ** 2)}`);
    for (let i = 0; i < REQUESTS; i += 8) {
      await Promise.all(keys.slice(i, i + 8).map((key) => request(address.port, `/${key}`)));
    }
    for (const worker of Object.values(cluster.workers)) worker.send('report');
  });
  let exited = 0;
  cluster.on('exit', () => {
    if (++exited < workers) return;
    console.log('worker   requests  computed  hit rate');
    let computed = 0;
    for (const [pid, report] of reports.entries()) {
      computed += report.computed;
      const rate = (100 * (report.requests - report.computed)) / report.requests;
      console.log(
        `${pid.padEnd(8)} ${String(report.requests).padStart(8)} ${String(report.computed).padStart(9)} ${rate.toFixed(0).padStart(8)}%`,
      );
    }
    const stats = cache.stats();
    console.log(`computations: ${computed}, evictions: ${stats.evictions}, entries: ${stats.entries}`);
    console.log(
      `cluster: ${stats.hits} hits, ${stats.misses} misses, ${stats.coalesced} coalesced, ${stats.sets} sets`,
    );
  });
} else {
  const cache = SharedMap.attach('cluster_cache');
  let requests = 0;
  let computed = 0;
  createServer(async (req, res) => {
    const key = req.url.slice(1);
    requests++;
    const value = await cache.fetch(key, (name) => {
      computed++;
      return compute(name);
    });
    res.end(`${key} = ${value}\n`);
  }).listen(Number(args.demo ? 0 : args.port), '127.0.0.1');
  process.on('message', (message) => {
    if (message !== 'report') return;
    SharedMap.attach('cluster_cache_reports').set(String(process.pid), { requests, computed });
    process.exit(0);
  });
}

function request(port, path) {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false }, (res) => res.resume().on('end', resolve)).on('error', reject);
  });
}
