// An Express app in cluster mode whose workers share one rate limit and one session store, each a SharedMap:
//   node examples/express/index.mjs [--workers 4] [--port 3000] [--limit 50]
//   curl -i http://127.0.0.1:3000/api/hello            limited: `limit` requests a minute for the whole cluster
//   curl -b jar -c jar http://127.0.0.1:3000/visits    a session, found by whichever worker answers
// With express-rate-limit's and express-session's MemoryStores, each worker would allow `limit` on its own and
// lose the session of every request another worker answers.
import cluster from 'node:cluster';
import express from 'express';
import { rateLimit } from 'express-rate-limit';
import session from 'express-session';
import { SharedMap } from 'mmap-share';
import { RateLimitStore } from 'mmap-share/rate-limit';
import { SessionStore } from 'mmap-share/session';
import { clusterArgs, startCluster } from '../cluster-server.mjs';

const args = clusterArgs({ limit: { type: 'string', default: '50' } });

if (cluster.isPrimary) {
  // Made by the primary, and named, so that every worker attaches to them; they go with the last process.
  // A count is plain data, which msgpack encodes several times faster than v8 does.
  SharedMap.create({ name: 'rate_limits', capacity: '4MB', codec: 'msgpack' });
  // A map that evicts would log users out when full: this one refuses a new session instead (ERR_NO_SPACE).
  SharedMap.create({ name: 'sessions', capacity: '16MB', eviction: 'none' });
  await startCluster(args);
} else {
  const worker = cluster.worker.id;
  const app = express();
  app.use((req, res, next) => (res.set('x-worker', String(worker)), next()));
  app.use(
    session({
      store: new SessionStore(SharedMap.attach('sessions')),
      secret: 'an example secret',
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: 60 * 60 * 1000 },
    }),
  );
  app.use(
    '/api',
    rateLimit({
      windowMs: 60 * 1000,
      limit: Number(args.limit),
      standardHeaders: 'draft-8',
      legacyHeaders: false,
      store: new RateLimitStore(SharedMap.attach('rate_limits')),
    }),
  );
  app.get('/api/hello', (req, res) => res.json({ hello: 'world', worker }));
  app.get('/visits', (req, res) => {
    req.session.visits = (req.session.visits ?? 0) + 1;
    res.json({ visits: req.session.visits, worker });
  });
  app.listen(Number(process.env.PORT), '127.0.0.1');
}
