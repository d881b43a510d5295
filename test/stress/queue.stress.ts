// SharedQueue under stress: producers and consumers killed at random instants, random sequences from three processes
// against a model of the ring, random bytes in the header and the ring, and a soak of 8 producers and 2 consumers
// through a small ring. Each ends with its figure line.
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { serialize } from 'node:v8';
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { SharedQueue } from '../../dist/index.mjs';
import { defer, fixture, Peer, tempDir } from '../helpers.js';
import { corruptionFuzz, figure, stress } from './options.js';

/** As test/fixtures/queue-churn.mjs fills message `s` of producer `p`. */
const fillOf = (p: number, s: number) => Buffer.alloc((s * 37) % 200, (p * 7 + s) % 251);

interface Churner {
  readonly child: ChildProcess;
  readonly role: 'produce' | 'consume';
}

/** The processes of a chaos or soak run, each with a file its messages are written to. */
class Churn {
  readonly dir = tempDir();
  readonly live = new Set<Churner>();
  #next = 0;
  readonly producers: number[] = [];
  readonly consumers: number[] = [];

  constructor(readonly ref: string) {}

  async start(role: Churner['role'], ms?: number): Promise<Churner> {
    const id = this.#next++;
    (role === 'produce' ? this.producers : this.consumers).push(id);
    const args = role === 'produce' ? [String(id), this.file(id)] : [this.file(id)];
    if (ms !== undefined) args.push(String(ms));
    const child = fork(fixture('queue-churn.mjs'), [role, this.ref, ...args], { stdio: 'inherit' });
    defer(() => child.kill('SIGKILL'));
    const churner = { child, role };
    this.live.add(churner);
    child.once('exit', () => this.live.delete(churner));
    await once(child, 'message');
    return churner;
  }

  file(id: number): string {
    return join(this.dir, String(id));
  }

  lines(id: number): string[] {
    return readFileSync(this.file(id), 'utf8').split('\n').slice(0, -1);
  }

  /** Ends the producers, then lets the consumers take what is left and exit. */
  async stop(kill: boolean): Promise<void> {
    const ended = [...this.live].map((churner) => once(churner.child, 'exit'));
    for (const { child, role } of this.live) if (role === 'produce' && kill) child.kill('SIGKILL');
    while ([...this.live].some(({ role }) => role === 'produce')) await sleep(10);
    for (const { child } of this.live) child.send('drain');
    await Promise.all(ended);
  }

  /**
   * What the files say: acknowledged pushes, takes, and what exactly-once, in-order delivery forbids: a message torn,
   * taken twice, taken before an earlier one of its producer by the same consumer, or one no producer pushed.
   */
  audit() {
    const acked = new Map(this.producers.map((p) => [p, this.lines(p).length]));
    // Per producer, a byte a message: taken or not. A producer killed between its push and its acknowledgement
    // pushed one message past its last acknowledged one, and no more.
    const seen = new Map([...acked].map(([p, n]) => [p, new Uint8Array(n + 1)]));
    const counts = { acked: [...acked.values()].reduce((a, b) => a + b, 0), logged: 0, torn: 0, twice: 0, disorder: 0 };
    let [unacked, forged] = [0, 0];
    for (const consumer of this.consumers) {
      const last = new Map<number, number>();
      for (const line of this.lines(consumer)) {
        counts.logged++;
        if (line.startsWith('torn')) counts.torn++;
        const [p, s] = line.replace('torn ', '').split(' ').map(Number) as [number, number];
        const taken = seen.get(p);
        if (taken === undefined || !(s < taken.length)) {
          forged++;
          continue;
        }
        if (taken[s]) counts.twice++;
        taken[s] = 1;
        if ((last.get(p) ?? -1) >= s) counts.disorder++;
        last.set(p, s);
        if (s === taken.length - 1) unacked++;
      }
    }
    let lost = 0;
    for (const [p, n] of acked)
      lost +=
        n -
        seen
          .get(p)!
          .subarray(0, n)
          .reduce((a, b) => a + b, 0);
    return { ...counts, forged, unacked, lost };
  }
}

it(`queue chaos: ${stress.queueKills} producers and consumers killed; every acknowledged message taken once, in order`, async () => {
  const queue = SharedQueue.create({ capacity: '16KB' });
  defer(() => queue.close());
  const churn = new Churn(queue.handle);
  for (let i = 0; i < 3; i++) await churn.start('produce');
  for (let i = 0; i < 2; i++) await churn.start('consume');
  const killed = { produce: 0, consume: 0 };
  let problems = 0;
  for (let kill = 1; kill <= stress.queueKills; kill++) {
    await sleep(Math.random() * 15);
    const victim = [...churn.live][Math.floor(Math.random() * churn.live.size)]!;
    victim.child.kill('SIGKILL');
    await once(victim.child, 'exit');
    killed[victim.role]++;
    // verify() takes the lock, repairing first after a death inside it, as every push and take would.
    const verification = queue.verify();
    problems += verification.problems.length;
    if (!verification.ok) process.stderr.write(`queue chaos: ${verification.problems.join('\n')}\n`);
    await churn.start(victim.role);
    if (kill % 100 === 0) process.stderr.write(`queue chaos: ${kill}/${stress.queueKills} kills\n`);
  }
  await churn.stop(true);
  const final = queue.verify();
  const stats = queue.stats();
  const audit = churn.audit();
  // Taken by a consumer killed before it wrote its line: at most one message for each consumer killed.
  const unlogged = stats.taken - audit.logged;
  figure(
    `queue chaos: ${stress.queueKills} kills (${killed.produce} producers, ${killed.consume} consumers; ` +
      `${stats.repairs} inside the lock, repaired), ${audit.acked} acknowledged, ${audit.logged} taken and checked, ` +
      `${audit.torn} torn, ${audit.twice} twice, ${audit.disorder} out of order, ${audit.lost} acknowledged and ` +
      `in no log (${unlogged} taken by consumers killed before their line), ${problems} verify() problems`,
  );
  expect(final).toStrictEqual({ ok: true, problems: [] });
  const { torn, twice, disorder, forged } = audit;
  expect({ torn, twice, disorder, forged, problems }).toStrictEqual({
    torn: 0,
    twice: 0,
    disorder: 0,
    forged: 0,
    problems: 0,
  });
  expect(stats.messages).toBe(0);
  expect(unlogged).toBeGreaterThanOrEqual(0);
  expect(unlogged).toBeLessThanOrEqual(killed.consume);
  expect(audit.lost).toBeLessThanOrEqual(unlogged);
  // Pushed but not acknowledged: at most one for each producer killed, at random or at the end (3 of them).
  expect(audit.unacked).toBeLessThanOrEqual(killed.produce + 3);
  expect(stats.pushed).toBe(audit.logged + unlogged);
  expect(stats.repairs).toBeGreaterThan(0);
});

it(`queue soak: 8 producers and 2 consumers for ${stress.soakSeconds} s through a 4 KB ring, counts exact`, async () => {
  const queue = SharedQueue.create({ capacity: '4KB' });
  defer(() => queue.close());
  const churn = new Churn(queue.handle);
  for (let i = 0; i < 2; i++) await churn.start('consume');
  await Promise.all(Array.from({ length: 8 }, () => churn.start('produce', stress.soakSeconds * 1000)));
  await churn.stop(false);
  const stats = queue.stats();
  const audit = churn.audit();
  // The records' bytes, as the fixture's messages encode (v8, the default codec): wraps of the ring they made.
  let bytes = 0;
  for (const p of churn.producers) {
    const sent = churn.lines(p).length;
    for (let s = 0; s < sent; s++) bytes += 4 + Math.ceil(serialize({ p, s, fill: fillOf(p, s) }).length / 4) * 4;
  }
  const wraps = Math.floor(bytes / 4096);
  figure(
    `queue soak: ${stats.pushed} messages from 8 producers to 2 consumers in ${stress.soakSeconds} s, ` +
      `${wraps} wraps of the ring, ${audit.acked} acknowledged, ${audit.logged} taken, ${audit.torn} torn, ` +
      `${audit.twice} twice, ${audit.disorder} out of order, ${audit.lost} lost`,
  );
  expect(audit).toStrictEqual({ ...audit, torn: 0, twice: 0, disorder: 0, forged: 0, lost: 0, unacked: 0 });
  expect(stats).toMatchObject({ messages: 0, taken: stats.pushed, pushed: audit.acked, repairs: 0 });
  expect(audit.logged).toBe(audit.acked);
  expect(queue.verify()).toStrictEqual({ ok: true, problems: [] });
  expect(wraps).toBeGreaterThan(100);
});

it.each(['v8', 'msgpack'])(`${stress.corruptions} queues with random bytes in header and ring (%s)`, (codec) =>
  corruptionFuzz('queue-corrupt.mjs', codec, { suite: 'queue fuzz', regions: 'queues' }),
);

// The ring as lib/queue/layout.ts describes it, in offsets alone: which pushes fit, and the bytes (records and
// padding) they leave in use. The head is the offset past the last message taken, which may be padding's.
class RingModel {
  readonly messages: Buffer[] = [];
  #ends: number[] = [];
  #head = 0;
  #tail = 0;

  constructor(readonly size: number) {}

  push(message: Buffer): boolean {
    const need = 4 + Math.ceil(message.length / 4) * 4;
    let at: number;
    if (this.messages.length === 0) [at, this.#head] = [0, 0];
    else {
      const [head, tail] = [this.#head, this.#tail];
      if (head < tail) at = this.size - tail >= need ? tail : need <= head ? 0 : -1;
      else at = head - tail >= need ? tail : -1;
      if (at < 0) return false;
    }
    this.#tail = (at + need) % this.size;
    this.messages.push(message);
    this.#ends.push(this.#tail);
    return true;
  }

  take(max = 1): Buffer[] {
    const ends = this.#ends.splice(0, max);
    if (ends.length > 0) this.#head = ends.at(-1)!;
    return this.messages.splice(0, max);
  }

  get bytes(): number {
    if (this.messages.length === 0) return 0;
    return (this.#tail - this.#head + this.size) % this.size || this.size;
  }
}

it(`queue model: ${Math.ceil(stress.cases / 100)} random sequences from three processes agree with a model`, async () => {
  const bytes = { name: 'bytes', encode: (value: Buffer) => value, decode: (view: Uint8Array) => Buffer.from(view) };
  const peers = [new Peer({}, 'queue-ops.mjs'), new Peer({}, 'queue-ops.mjs')];
  const by = fc.integer({ min: 0, max: 2 });
  // Sizes of every length up to the largest message, small ones most.
  const size = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 1020 }), fc.constant(1020));
  const op = fc.oneof(
    { arbitrary: fc.record({ op: fc.constant('push'), by, size }), weight: 4 },
    { arbitrary: fc.record({ op: fc.constant('shift'), by }), weight: 2 },
    { arbitrary: fc.record({ op: fc.constant('shiftMany'), by, max: fc.option(fc.nat(4)) }), weight: 1 },
    { arbitrary: fc.record({ op: fc.constant('take'), by }), weight: 1 },
  );
  let steps = 0;
  let fills = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 60, size: 'max' }), async (ops) => {
      const queue = SharedQueue.create<Buffer>({ capacity: 1024, codec: bytes });
      try {
        await Promise.all(peers.map((peer) => peer.call('attach', { ref: queue.handle })));
        const model = new RingModel(1024);
        for (const step of ops) {
          steps++;
          const call = async <R>(local: () => R | Promise<R>, args: Record<string, unknown> = {}) => {
            const result = step.by === 0 ? await local() : await peers[step.by - 1]!.call<R>(step.op, args);
            return result;
          };
          const asBuffers = (values: Uint8Array[]) => values.map((value) => Buffer.from(value));
          if (step.op === 'push') {
            const value = Buffer.alloc(step.size, steps % 251);
            const fits = model.push(value);
            if (!fits) fills++;
            expect(await call(() => queue.push(value), { value })).toBe(fits);
          } else if (step.op === 'shift') {
            const taken = await call<Uint8Array | undefined>(() => queue.shift());
            expect(taken && Buffer.from(taken)).toStrictEqual(model.take()[0]);
          } else if (step.op === 'shiftMany') {
            const max = step.max ?? undefined;
            const taken = await call<Uint8Array[]>(() => queue.shiftMany(max), { max });
            expect(asBuffers(taken)).toStrictEqual(model.take(max ?? Infinity));
          } else {
            const expected = model.take()[0];
            const taken = call<Uint8Array>(() => queue.take({ timeout: 5 }), { timeout: 5 });
            if (expected === undefined) await expect(taken).rejects.toMatchObject({ code: 'ERR_LOCK_TIMEOUT' });
            else expect(Buffer.from(await taken)).toStrictEqual(expected);
          }
          const stats = queue.stats();
          expect({ messages: stats.messages, bytes: stats.bytes }).toStrictEqual({
            messages: model.messages.length,
            bytes: model.bytes,
          });
          expect(stats.pushed - stats.taken).toBe(model.messages.length);
        }
        expect(queue.verify()).toStrictEqual({ ok: true, problems: [] });
        expect(queue.shiftMany()).toStrictEqual(model.take(Infinity));
      } finally {
        queue.close();
      }
    }),
    { numRuns: Math.ceil(stress.cases / 100) },
  );
  figure(
    `queue model: ${Math.ceil(stress.cases / 100)} sequences, ${steps} operations from three processes ` +
      `(${fills} pushes refused by a full ring), all agreed`,
  );
  expect(fills).toBeGreaterThan(0);
});
