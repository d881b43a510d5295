// cache-manager in cluster mode over one SharedMap: a page rendered by one worker is a hit in every other.
//   node examples/cache-manager/index.mjs [--workers 4] [--port 3000]
//   curl http://127.0.0.1:3000/pages/7     renderedBy: the worker that rendered it; x-worker: the one that answered
// wrap() renders a missing page in each worker that misses it at once; SharedMap's own fetch() renders it in one
// worker for the whole cluster (see the README).
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import { createCache } from 'cache-manager';
import Keyv from 'keyv';
import { SharedMap } from 'mmap-share';
import { KeyvStore } from 'mmap-share/keyv';
import { clusterArgs, startCluster } from '../cluster-server.mjs';

const args = clusterArgs();

if (cluster.isPrimary) {
  SharedMap.create({ name: 'pages', capacity: '16MB' });
  await startCluster(args);
} else {
  const worker = cluster.worker.id;
  const cache = createCache({ stores: [new Keyv({ store: new KeyvStore(SharedMap.attach('pages')) })], ttl: 60_000 });
  const render = async (id) => ({ id, html: `<h1>page ${id}</h1>`, renderedBy: worker });
  createServer(async (req, res) => {
    const id = /^\/pages\/(\w+)$/.exec(req.url)?.[1];
    if (id === undefined) return res.writeHead(404).end();
    const page = await cache.wrap(`page:${id}`, () => render(id));
    res.writeHead(200, { 'content-type': 'application/json', 'x-worker': String(worker) }).end(JSON.stringify(page));
  }).listen(Number(process.env.PORT), '127.0.0.1');
}
