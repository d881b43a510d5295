// The queue section of `npm run bench`: SharedQueue against what a Node user would stream messages between processes
// with, in fresh processes for each contestant and workload, ratios within one run.
//   4->1: four producer processes stream 100-byte events to the primary, every one checked: exactly once, in order
//         per producer
//   1->4: the primary pushes jobs that four worker processes take (a work queue)
//   1MB: four producers stream 1 MB messages to the primary
//   latency: one producer sends an event every millisecond; the delay to the consumer's hands, median and p99
//   idle: the CPU of a consumer waiting 10 s for nothing
//   node bench/queue.mjs [--quick] [--workloads=4->1,latency] [--contestants=SharedQueue v8,process.send json]
//   (BENCH_REDIS_URL for the Redis list contestant)
// Prints a Markdown table (stdout) and writes JSON to bench/results/; progress goes to stderr.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'redis';
import { MmapShare, SharedMap, SharedQueue } from '../dist/index.mjs';
import { cpuTicks, pick, waitedTicks } from './flags.mjs';
import { saveResults } from './report.mjs';

const [role, name, workload, ref] = process.argv.slice(2);
const quick = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1';
const self = new URL(import.meta.url).pathname;
const now = () => performance.timeOrigin + performance.now();
const PAD = 'x'.repeat(60);
const COUNTS = { '4->1': quick ? 5000 : 50_000, '1->4': quick ? 10_000 : 100_000, '1MB': quick ? 10 : 50 };
const LATENCY_EVENTS = quick ? 100 : 1000;
const IDLE_MS = quick ? 2000 : 10_000;
const SETTLE_MS = quick ? 500 : 12_000;
const BIG = 'y'.repeat(1 << 20);

// Each contestant: make(workload) in the primary -> ref (plain data); producer(ref) -> { send(message), close() };
// consumer(ref) -> { take(): Promise<message[]>, close() }, taking what has come (at least one, waiting for it).
// process.send has no ref: its messages go to and from the primary through the fork's channel.
// The regions the primary made, open until the run ends.
const kept = [];

function sharedQueue(codec, many) {
  return {
    make: (workload) => {
      const queue = SharedQueue.create({ capacity: workload === '1MB' ? '16MB' : '4MB', codec });
      kept.push(queue);
      return queue.handle;
    },
    producer: (handle) => {
      const queue = SharedQueue.attach(handle);
      return { send: (message) => queue.push(message) || queue.pushAsync(message), close: () => queue.close() };
    },
    consumer: (handle) => {
      const queue = SharedQueue.attach(handle);
      return {
        take: async () => {
          if (many) {
            const batch = queue.shiftMany(256);
            return batch.length > 0 ? batch : [await queue.take()];
          }
          // The bench's messages are never undefined: shift() found none.
          const first = queue.shift();
          return [first === undefined ? await queue.take() : first];
        },
        close: () => queue.close(),
      };
    },
  };
}

function channel(serialization) {
  return { serialization, viaChannel: true };
}

const redisList = {
  isAsync: true,
  make: () => `bench-queue-${process.pid}-${Date.now()}`,
  producer: async (key) => {
    const client = await createClient({ url: process.env.BENCH_REDIS_URL }).connect();
    let pending = [];
    return {
      // Commands of one tick go out together: a batch of 64 is awaited, as a producer keeping a window would.
      send: (message) => {
        pending.push(client.rPush(key, JSON.stringify(message)));
        if (pending.length < 64) return undefined;
        const batch = pending;
        pending = [];
        return Promise.all(batch);
      },
      close: async () => (await Promise.all(pending), await client.quit()),
    };
  },
  consumer: async (key) => {
    const client = await createClient({ url: process.env.BENCH_REDIS_URL }).connect();
    return {
      take: async () => {
        const popped = await client.blPop(key, 0);
        return [JSON.parse(popped.element)];
      },
      close: () => client.quit(),
    };
  },
};

// What a user without a queue would do, each polling every millisecond for what came: a file per producer in
// /dev/shm that the consumer tails, a SharedMap holding each message under its producer and number, and one
// MmapShare object whose list of events producers append to and the consumer empties, each with update(). None of
// them hands one message to one of several consumers: they skip the work queue (1->4).
const ONE_CONSUMER = { '1->4': 'one consumer only' };
const POLL_MS = 1;

const tailedFiles = {
  skip: ONE_CONSUMER,
  make: () => {
    const dir = mkdtempSync('/dev/shm/bench-queue-');
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  },
  producer: (dir) => {
    const fd = openSync(`${dir}/${process.pid}`, 'a');
    return { send: (message) => void writeSync(fd, `${JSON.stringify(message)}\n`), close: () => closeSync(fd) };
  },
  consumer: (dir) => {
    const files = new Map();
    const chunk = Buffer.alloc(4 << 20);
    return {
      take: async () => {
        for (;;) {
          const taken = [];
          for (const name of readdirSync(dir)) {
            if (!files.has(name)) files.set(name, { fd: openSync(`${dir}/${name}`, 'r'), rest: '' });
            const file = files.get(name);
            for (let n; (n = readSync(file.fd, chunk)) > 0;) {
              const lines = (file.rest + chunk.toString('utf8', 0, n)).split('\n');
              file.rest = lines.pop();
              for (const line of lines) taken.push(JSON.parse(line));
            }
          }
          if (taken.length > 0) return taken;
          await sleep(POLL_MS);
        }
      },
      close: () => files.forEach(({ fd }) => closeSync(fd)),
    };
  },
};

const mapMailbox = {
  skip: ONE_CONSUMER,
  make: (workload) => {
    const big = workload === '1MB';
    const map = SharedMap.create({
      capacity: big ? '64MB' : '16MB',
      eviction: 'none',
      maxValueSize: big ? 2 << 20 : undefined,
    });
    kept.push(map);
    return map.handle;
  },
  producer: (handle) => {
    const map = SharedMap.attach(handle);
    let seq = 0;
    const producer = process.env.PRODUCER;
    return {
      // A full map refuses the set (eviction 'none'): the producer waits for the consumer to make room.
      send: function send(message) {
        try {
          map.set(`${producer}:${seq}`, message);
          seq++;
          return undefined;
        } catch (error) {
          if (error.code !== 'ERR_NO_SPACE') throw error;
          return sleep(POLL_MS).then(() => send(message));
        }
      },
      close: () => map.close(),
    };
  },
  consumer: (handle) => {
    const map = SharedMap.attach(handle);
    const next = [0, 0, 0, 0];
    return {
      take: async () => {
        for (;;) {
          const taken = [];
          for (let producer = 0; producer < next.length; producer++) {
            for (let key = `${producer}:${next[producer]}`, value; (value = map.get(key)) !== undefined;) {
              taken.push(value);
              map.delete(key);
              key = `${producer}:${++next[producer]}`;
            }
          }
          if (taken.length > 0) return taken;
          await sleep(POLL_MS);
        }
      },
      close: () => map.close(),
    };
  },
};

const sharedObject = {
  // Four 1 MB events pending overflow any region of a sensible size: each update() writes them all again.
  skip: { ...ONE_CONSUMER, '1MB': 'not run' },
  make: () => {
    const share = MmapShare.create(4 << 20, { value: { events: [] } });
    kept.push(share);
    return share.handle;
  },
  producer: (handle) => {
    const share = MmapShare.attach(handle);
    return {
      send: (message) => void share.update(({ events }) => ({ events: [...events, message] })),
      close: () => share.close(),
    };
  },
  consumer: (handle) => {
    const share = MmapShare.attach(handle);
    let version = share.version;
    return {
      take: async () => {
        for (;;) {
          if (share.version !== version) {
            let taken = [];
            share.update(({ events }) => ((taken = events), { events: [] }));
            version = share.version;
            if (taken.length > 0) return taken;
          }
          await sleep(POLL_MS);
        }
      },
      close: () => share.close(),
    };
  },
};

const contestants = {
  'SharedQueue v8': sharedQueue('v8', false),
  'SharedQueue v8 shiftMany': sharedQueue('v8', true),
  'SharedQueue msgpack': sharedQueue('msgpack', false),
  'process.send json': channel('json'),
  'process.send advanced': channel('advanced'),
  '/dev/shm files tailed': tailedFiles,
  'SharedMap mailbox': mapMailbox,
  'MmapShare object update()': sharedObject,
  ...(process.env.BENCH_REDIS_URL ? { 'Redis list': redisList } : {}),
};

// The end of a stream, after a producer's last message: consumers stop on one from every producer.
const END = 'end';

async function producing(contestant, sendOne, close, workload) {
  const n = COUNTS[workload];
  const producer = Number(process.env.PRODUCER);
  if (workload === 'latency') {
    for (let seq = 0; seq < LATENCY_EVENTS; seq++) {
      await sleep(1);
      await sendOne({ producer, seq, ts: now(), pad: PAD });
    }
  } else {
    const pad = workload === '1MB' ? BIG : PAD;
    for (let seq = 0; seq < n; seq++) {
      const sent = sendOne({ producer, seq, pad });
      if (sent !== undefined && sent !== true) await sent;
    }
  }
  await sendOne(END);
  await close?.();
}

async function child() {
  const contestant = contestants[name];
  process.send('ready');
  const [go] = await once(process, 'message');
  if (go.role === 'producer') {
    if (contestant.viaChannel) {
      // Awaiting the channel's callback now and then keeps its buffer from growing without bound, and at the END
      // keeps the process from exiting with messages unsent.
      let sent = 0;
      const send = (message) =>
        ++sent % 256 === 0 || message === END
          ? new Promise((resolve) => process.send(message, resolve))
          : process.send(message);
      await producing(contestant, send, undefined, workload);
    } else {
      const producer = await contestant.producer(ref);
      await producing(contestant, producer.send, producer.close, workload);
    }
  } else if (go.role === 'worker') {
    // 1->4: takes until an END comes, and says how many it took.
    let taken = 0;
    if (contestant.viaChannel) {
      await new Promise((resolve) => process.on('message', (message) => (message === END ? resolve() : taken++)));
    } else {
      const consumer = await contestant.consumer(ref);
      let ends = 0;
      while (ends === 0) {
        for (const message of await consumer.take()) {
          if (message === END) ends++;
          else taken++;
        }
      }
      // A batch that held another worker's END gives it back.
      if (ends > 1) {
        const producer = await contestant.producer(ref);
        for (let i = 1; i < ends; i++) await producer.send(END);
        await producer.close();
      }
      await consumer.close();
    }
    process.send({ taken });
  } else {
    // idle: a consumer waiting for a message that never comes.
    if (contestant.viaChannel) process.on('message', () => {});
    else {
      const consumer = await contestant.consumer(ref);
      consumer.take();
    }
    setInterval(() => {}, 1 << 30);
  }
  if (go.role !== 'idle') process.exit(0);
}

async function spawn(contestant, args, env = {}) {
  const child = fork(self, ['child', ...args], {
    serialization: contestant.serialization ?? 'json',
    env: { ...process.env, ...env },
  });
  await once(child, 'message');
  return child;
}

// Messages from the producers to the primary, through the contestant; resolves when every producer's END came.
async function collect(contestant, children, ref, onMessage) {
  let ends = 0;
  if (contestant.viaChannel) {
    await new Promise((resolve) => {
      for (const child of children) {
        child.on('message', (message) =>
          message === END ? ++ends === children.length && resolve() : onMessage(message),
        );
      }
    });
    return;
  }
  const consumer = await contestant.consumer(ref);
  while (ends < children.length) {
    for (const message of await consumer.take()) {
      if (message === END) ends++;
      else onMessage(message);
    }
  }
  await consumer.close();
}

async function scenario(contestantName, work) {
  const contestant = contestants[contestantName];
  const ref = contestant.viaChannel ? undefined : await contestant.make?.(work);
  const args = [contestantName, work, ref ?? '-'];
  if (work === 'idle') {
    const child = await spawn(contestant, args);
    child.send({ role: 'idle' });
    await sleep(SETTLE_MS);
    const before = cpuTicks([child]);
    await sleep(IDLE_MS);
    const used = cpuTicks([child]) - before;
    child.kill();
    return { figure: (used * 1000) / IDLE_MS };
  }
  if (work === '1->4') {
    const workers = await Promise.all(Array.from({ length: 4 }, () => spawn(contestant, args)));
    const cpu = cpuPerMessage(workers);
    workers.forEach((worker) => worker.send({ role: 'worker' }));
    const reports = workers.map((worker) => once(worker, 'message').then(([report]) => report.taken));
    const start = performance.now();
    const n = COUNTS[work];
    if (contestant.viaChannel) {
      for (let seq = 0; seq < n; seq++) {
        const worker = workers[seq % 4];
        if (seq % 256 === 255) await new Promise((resolve) => worker.send({ producer: 0, seq, pad: PAD }, resolve));
        else worker.send({ producer: 0, seq, pad: PAD });
      }
      workers.forEach((worker) => worker.send(END));
    } else {
      const producer = await contestant.producer(ref);
      for (let seq = 0; seq < n; seq++) {
        const sent = producer.send({ producer: 0, seq, pad: PAD });
        if (sent !== undefined && sent !== true) await sent;
      }
      for (let i = 0; i < 4; i++) await producer.send(END);
      await producer.close();
    }
    const taken = (await Promise.all(reports)).reduce((sum, count) => sum + count, 0);
    const seconds = (performance.now() - start) / 1000;
    return { figure: n / seconds, check: taken === n ? 'exact' : `${taken} of ${n}`, cpu: await cpu(n) };
  }
  const producers = work === 'latency' ? 1 : 4;
  const children = await Promise.all(
    Array.from({ length: producers }, (_, p) => spawn(contestant, args, { PRODUCER: String(p) })),
  );
  const next = new Array(producers).fill(0);
  const delays = [];
  let faults = 0;
  const onMessage = (message) => {
    if (message.seq !== next[message.producer]) faults++;
    next[message.producer] = message.seq + 1;
    if (message.ts !== undefined) delays.push(now() - message.ts);
  };
  const cpu = cpuPerMessage(children);
  const start = performance.now();
  children.forEach((child) => child.send({ role: 'producer' }));
  await collect(contestant, children, ref, onMessage);
  const seconds = (performance.now() - start) / 1000;
  const expected = work === 'latency' ? LATENCY_EVENTS : COUNTS[work];
  const check = faults === 0 && next.every((n) => n === expected) ? 'exact' : `${faults} out of order`;
  if (work === 'latency') {
    delays.sort((a, b) => a - b);
    return { figure: delays[delays.length >> 1], p99: delays[Math.floor(delays.length * 0.99)], check };
  }
  return { figure: (producers * expected) / seconds, check, cpu: await cpu(producers * expected) };
}

// From now: the CPU this process and `children` (started, counted from here) spend until the children have exited,
// in µs a message, for what bounds a throughput on 2 cores.
function cpuPerMessage(children) {
  const before = waitedTicks() + cpuTicks(children);
  return async (messages) => {
    await Promise.all(children.map((child) => child.exitCode ?? child.signalCode ?? once(child, 'exit')));
    return ((waitedTicks() - before) * 10_000) / messages;
  };
}

async function main() {
  const units = {
    '4->1': 'messages/s',
    '1->4': 'messages/s',
    '1MB': 'messages/s',
    latency: 'median ms',
    idle: '% of a core',
  };
  const rows = [];
  for (const work of pick('workloads', Object.keys(units))) {
    for (const contestantName of pick('contestants', Object.keys(contestants))) {
      const skipped = contestants[contestantName].skip?.[work];
      if (skipped !== undefined) {
        rows.push({ work, contestant: contestantName, figure: undefined, check: skipped });
        continue;
      }
      process.stderr.write(`queue ${work} ${contestantName} ... `);
      const child = fork(self, ['one', contestantName, work], {
        env: { ...process.env, BENCH_QUICK: quick ? '1' : '0' },
      });
      const [result] = await Promise.race([
        once(child, 'message'),
        sleep(180_000, undefined, { ref: false }).then(() => [{ figure: NaN }]),
      ]);
      child.kill('SIGKILL');
      rows.push({ work, contestant: contestantName, ...result });
      process.stderr.write('done\n');
    }
  }
  const format = (n) =>
    n === undefined
      ? '-'
      : Number.isNaN(n)
        ? 'failed'
        : n >= 100
          ? Math.round(n).toLocaleString('en-US')
          : n.toPrecision(3);
  const lines = [
    '#### queue',
    '',
    '| workload | contestant | figure | unit | x process.send json | p99 ms | CPU µs a message | check |',
    '| --- | --- | ---: | --- | ---: | ---: | ---: | --- |',
  ];
  for (const row of rows) {
    const base = rows.find((r) => r.work === row.work && r.contestant === 'process.send json')?.figure;
    const ratio = base && row.figure !== undefined ? (row.figure / base).toFixed(2) : '-';
    lines.push(
      `| ${row.work} | ${row.contestant} | ${format(row.figure)} | ${units[row.work]} | ${ratio} | ${format(row.p99)} | ${format(row.cpu)} | ${row.check ?? '-'} |`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n\n`);
  saveResults('queue', { rows });
}

if (role === 'child') await child();
else if (role === 'one') {
  // One scenario in a process of its own, so that no contestant's leftovers weigh on the next.
  const result = await scenario(name, workload);
  process.send(result, () => process.exit(0));
} else await main();
