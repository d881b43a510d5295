// Test2-style event forwarding: the parent forks child processes that each run a test file and emit its events (a
// pass, a fail, a diagnostic) into one SharedQueue; the parent reads them as they come, in order for each child, and
// prints them. The queue is small and the parent slow on purpose: children wait with pushAsync() when it is full
// instead of losing events or piling them up in memory.
//   node examples/test-events/index.mjs [--children 3] [--tests 20]
import { fork } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { SharedQueue } from 'mmap-share';

const { values: args } = parseArgs({
  options: {
    child: { type: 'string' },
    children: { type: 'string', default: '3' },
    tests: { type: 'string', default: '20' },
  },
});
const tests = Number(args.tests);

if (args.child === undefined) {
  const events = SharedQueue.create({ capacity: '1KB', name: 'test_events' });
  const children = Number(args.children);
  for (let i = 1; i <= children; i++) fork(import.meta.filename, ['--child', String(i), '--tests', args.tests]);
  const next = {};
  const totals = { pass: 0, fail: 0, diag: 0, waits: 0 };
  for (let ended = 0; ended < children;) {
    const event = await events.take();
    // Events of one child come in the order it emitted them.
    if (event.seq !== (next[event.child] ?? 0))
      throw new Error(`child ${event.child}: event ${event.seq} out of order`);
    next[event.child] = event.seq + 1;
    if (event.type === 'end') {
      ended++;
      totals.waits += event.waits;
      console.log(`# child ${event.child}: ${event.passed} passed, ${event.failed} failed`);
    } else {
      totals[event.type]++;
      const line = { pass: 'ok', fail: 'not ok', diag: '#' }[event.type];
      console.log(`[child ${event.child}] ${line} ${event.name}`);
    }
    // A slow reporter: the children outrun it and wait for room.
    await sleep(1);
  }
  console.log(
    `events: ${totals.pass} pass, ${totals.fail} fail, ${totals.diag} diagnostics from ${children} children, ` +
      `in order per child; children waited for room ${totals.waits} times`,
  );
  events.close();
} else {
  const events = SharedQueue.attach('test_events');
  const child = Number(args.child);
  let [seq, waits, passed, failed] = [0, 0, 0, 0];
  const emit = async (event) => {
    const message = { ...event, child, seq: seq++ };
    if (events.push(message)) return;
    waits++;
    await events.pushAsync(message);
  };
  for (let n = 1; n <= tests; n++) {
    // Every seventh test of child 2 fails, with a diagnostic after it.
    const ok = !(child === 2 && n % 7 === 0);
    if (ok) passed++;
    else failed++;
    await emit({ type: ok ? 'pass' : 'fail', name: `test ${n} of child ${child}` });
    if (!ok) await emit({ type: 'diag', name: `  expected ${n}, got ${n + 1}` });
  }
  await emit({ type: 'end', passed, failed, waits });
  events.close();
}
