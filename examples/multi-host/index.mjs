// One piece of cluster code, two backends: shared memory on one machine, Redis across machines.
//   node examples/multi-host/index.mjs [--workers 4]                        shared memory (MmapShare, SharedMap)
//   node examples/multi-host/index.mjs --redis redis://127.0.0.1:6379      Redis (RedisShare, RedisMap)
// `work()` is written once against the Share and Cache interfaces, awaiting every call: each worker counts requests
// in a shared counter and answers them from a shared cache whose missing entries one worker computes for all.
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { MmapShare, SharedMap } from 'mmap-share';
import { RedisMap, RedisShare } from 'mmap-share/redis';

const { values: args } = parseArgs({
  options: { workers: { type: 'string', default: '4' }, redis: { type: 'string' } },
});
const REQUESTS = 50;
const KEYS = 10;

/** The cluster's code: the same for both backends. */
async function work(counter, cache, computations) {
  for (let i = 0; i < REQUESTS; i++) {
    await counter.update((state) => ({ requests: state.requests + 1 }));
    await cache.fetch(`page-${i % KEYS}`, async (key) => {
      await computations.update((n) => n + 1);
      return `<h1>${key}</h1>`;
    });
  }
}

// Each backend: how the primary creates the three shared things, and how a worker attaches to them.
const backends = {
  memory: {
    create: async () => {
      const made = [
        MmapShare.create(256, { value: { requests: 0 } }),
        SharedMap.create({ capacity: '1MB' }),
        MmapShare.create(64, { value: 0 }),
      ];
      return { made, refs: made.map((thing) => thing.handle) };
    },
    attach: async ([counter, cache, computations]) => [
      MmapShare.attach(counter),
      SharedMap.attach(cache),
      MmapShare.attach(computations),
    ],
  },
  redis: {
    create: async () => {
      const url = args.redis;
      const run = randomBytes(4).toString('hex');
      const names = [`example-${run}-counter`, `example-${run}-cache`, `example-${run}-computations`];
      const made = [
        await RedisShare.create(names[0], { url, value: { requests: 0 } }),
        await RedisMap.create(names[1], { url }),
        await RedisShare.create(names[2], { url, value: 0 }),
      ];
      return { made, refs: names };
    },
    // Shared memory goes with its last process; what Redis holds stays until it is removed.
    remove: async ([counter, , computations], cache) => {
      await cache.clear();
      await Promise.all([counter, computations].map((name) => RedisShare.unlink(name, { url: args.redis })));
    },
    attach: async ([counter, cache, computations]) => [
      await RedisShare.attach(counter, { url: args.redis }),
      await RedisMap.attach(cache, { url: args.redis }),
      await RedisShare.attach(computations, { url: args.redis }),
    ],
  },
};
const backend = backends[args.redis ? 'redis' : 'memory'];

if (cluster.isPrimary) {
  const { made, refs } = await backend.create();
  const [counter, cache, computations] = made;
  cluster.setupPrimary({ serialization: 'advanced' });
  const workers = Array.from({ length: Number(args.workers) }, () =>
    cluster.fork({ SHARED_REFS: JSON.stringify(refs) }),
  );
  await Promise.all(workers.map((worker) => new Promise((resolve) => worker.on('exit', resolve))));
  console.log(`backend: ${args.redis ? 'Redis' : 'shared memory'}`);
  console.log(`requests: ${(await counter.get()).requests} from ${workers.length} workers`);
  console.log(`pages cached: ${await cache.size}, computed: ${await computations.get()} times`);
  await backend.remove?.(refs, cache);
  await Promise.all(made.map((thing) => thing.close()));
} else {
  const things = await backend.attach(JSON.parse(process.env.SHARED_REFS));
  await work(...things);
  await Promise.all(things.map((thing) => thing.close()));
  process.exit(0);
}
