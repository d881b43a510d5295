// The primary changes configuration at run time; every worker picks it up through watch() and says how long it took.
//   node examples/config-broadcast/index.mjs [--workers 3] [--changes 3]
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { MmapShare } from 'mmap-share';

const { values: args } = parseArgs({
  options: { workers: { type: 'string', default: '3' }, changes: { type: 'string', default: '3' } },
});
const now = () => performance.timeOrigin + performance.now();

if (cluster.isPrimary) {
  const config = MmapShare.create(4096, { name: 'app_config', value: { logLevel: 'info', publishedAt: now() } });
  for (let i = 0; i < Number(args.workers); i++) cluster.fork();
  let ready = 0;
  cluster.on('message', async () => {
    if (++ready < Number(args.workers)) return;
    const levels = ['debug', 'warn', 'error', 'info'];
    for (let change = 0; change < Number(args.changes); change++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const logLevel = levels[change % levels.length];
      config.set({ logLevel, publishedAt: now() });
      console.log(`primary: published version ${config.version}, logLevel=${logLevel}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (const worker of Object.values(cluster.workers)) worker.kill();
  });
} else {
  const config = MmapShare.attach('app_config');
  config.watch(
    ({ logLevel, publishedAt }, version) => {
      console.log(
        `worker ${process.pid}: version ${version}, logLevel=${logLevel}, ${(now() - publishedAt).toFixed(2)} ms after publishing`,
      );
    },
    { interval: 1 },
  );
  process.send('ready');
}
