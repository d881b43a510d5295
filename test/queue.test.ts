// SharedQueue: FIFO against a model through thousands of wraps of a small ring, the edges (full, empty, too large),
// waiting (take, pushAsync, for await) across processes, and exactly-once delivery from producer processes to
// consumer processes, in order per producer.
import { fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { MmapShare, MmapShareError, SharedMap, SharedQueue, type SharedQueueOptions } from '../dist/index.mjs';
import { defer, fixture, tempDir } from './helpers.js';

function queue<T = unknown>(options: SharedQueueOptions<T>): SharedQueue<T> {
  const created = SharedQueue.create<T>(options);
  defer(() => created.close());
  return created;
}

function peer(...args: string[]) {
  const child = fork(fixture('queue-peer.mjs'), args, { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  defer(() => child.kill('SIGKILL'));
  return child;
}

describe('SharedQueue', () => {
  it('gives messages back in the order pushed, through thousands of wraps of its ring, as a model does', () => {
    const q = queue<number[] | undefined>({ capacity: 1024, codec: 'msgpack' });
    const model: (number[] | undefined)[] = [];
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    for (let op = 0; op < 20_000; op++) {
      const roll = random(10);
      if (roll < 5) {
        // Sizes from nothing to most of the ring, so that records meet its end at every offset.
        const value =
          random(8) === 0 ? undefined : Array.from({ length: random(random(4) === 0 ? 200 : 20) }, () => op);
        if (q.push(value)) model.push(value);
        else expect(model.length).toBeGreaterThan(0);
      } else if (roll < 8) {
        expect(q.shift()).toStrictEqual(model.shift());
      } else {
        const max = 1 + random(4);
        expect(q.shiftMany(max)).toStrictEqual(model.splice(0, max));
      }
      expect(q.size).toBe(model.length);
      const stats = q.stats();
      expect(stats.pushed - stats.taken).toBe(model.length);
      if (op % 97 === 0) expect(q.verify()).toStrictEqual({ ok: true, problems: [] });
    }
    expect(q.shiftMany()).toStrictEqual(model);
    expect(q.stats()).toMatchObject({ messages: 0, bytes: 0, capacity: 1024 });
    // A ring of 1 KB holds a few of these at a time: thousands of pushes go round it hundreds of times.
    expect(q.stats().pushed).toBeGreaterThan(5000);
  });

  it('refuses a push with no room, and a message too large, changing nothing', () => {
    const q = queue<string>({ capacity: 1024, maxMessageSize: 300 });
    let pushed = 0;
    while (q.push(`message ${pushed}`)) pushed++;
    expect(pushed).toBeGreaterThan(10);
    const before = q.stats();
    expect(q.push('one more')).toBe(false);
    expect(() => q.push('x'.repeat(400))).toThrow(expect.objectContaining({ code: 'ERR_VALUE_TOO_LARGE' }));
    expect(() => q.push((() => 1) as never)).toThrow(expect.objectContaining({ code: 'ERR_NOT_SERIALIZABLE' }));
    expect(q.stats()).toStrictEqual(before);
    expect(q.shift()).toBe('message 0');
    expect(q.push('one more')).toBe(true);
  });

  it.each([
    ['ERR_BAD_SIZE', 'a capacity too small', () => SharedQueue.create({ capacity: 100 })],
    ['ERR_BAD_SIZE', "capacity 'lots'", () => SharedQueue.create({ capacity: 'lots' })],
    [
      'ERR_BAD_OPTION',
      'maxMessageSize beyond the ring',
      () => SharedQueue.create({ capacity: 1024, maxMessageSize: 1021 }),
    ],
    ['ERR_BAD_OPTION', 'a misspelt option', () => SharedQueue.create({ capacity: 1024, maxMessage: 10 } as never)],
    ['ERR_BAD_OPTION', 'a codec that is not one', () => SharedQueue.create({ capacity: 1024, codec: 'json' as never })],
    [
      'ERR_BAD_HANDLE',
      'attach() of a SharedMap',
      () => {
        const map = SharedMap.create({ capacity: '1MB' });
        defer(() => map.close());
        return SharedQueue.attach(map.handle);
      },
    ],
    [
      'ERR_BAD_HANDLE',
      'an MmapShare attached as a queue',
      () => {
        const share = MmapShare.create(64);
        defer(() => share.close());
        return SharedQueue.attach(share.handle);
      },
    ],
  ])('%s for %s', (code, _what, trigger) => {
    expect(trigger).toThrow(expect.objectContaining({ code }));
    expect(trigger).toThrow(MmapShareError);
  });

  it('is attached by another kind of region refused, and refuses calls after close()', async () => {
    const q = queue<number>({ capacity: '1KB' });
    const q2 = SharedQueue.attach<number>(q.handle);
    expect(() => MmapShare.attach(q.handle)).toThrow(expect.objectContaining({ code: 'ERR_BAD_HANDLE' }));
    q2.close();
    for (const call of [() => q2.push(1), () => q2.shift(), () => q2.shiftMany(), () => q2.size, () => q2.stats()]) {
      expect(call).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
    }
    await expect(q2.take()).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await expect(q2.pushAsync(1)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('take() waits for a push from another process; times out and aborts having taken nothing', async () => {
    const q = queue<{ n: number }>({ capacity: '4KB' });
    await expect(q.take({ timeout: 30 })).rejects.toMatchObject({ code: 'ERR_LOCK_TIMEOUT' });
    const controller = new AbortController();
    const aborted = q.take({ signal: controller.signal });
    controller.abort();
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    const taken = q.take();
    await sleep(20);
    const pusher = spawn(process.execPath, [fixture('queue-peer.mjs'), 'push', q.handle, '{"n":42}']);
    defer(() => pusher.kill('SIGKILL'));
    expect(await taken).toStrictEqual({ n: 42 });
    expect(q.stats()).toMatchObject({ pushed: 1, taken: 1 });
  });

  it('pushAsync() waits for room that a take in another process makes; for await ends on close()', async () => {
    const q = queue<string>({ capacity: 1024, maxMessageSize: 700 });
    expect(q.push('a'.repeat(600))).toBe(true);
    await expect(q.pushAsync('b'.repeat(600), { timeout: 30 })).rejects.toMatchObject({ code: 'ERR_LOCK_TIMEOUT' });
    expect(q.size).toBe(1);
    const pushed = q.pushAsync('c'.repeat(600));
    await sleep(20);
    const taker = peer('shift', q.handle);
    await once(taker, 'exit');
    await pushed;
    const seen: string[] = [];
    const iterating = (async () => {
      for await (const value of q) seen.push(value);
    })();
    await sleep(20);
    q.push('d');
    await sleep(20);
    q.close();
    await iterating;
    expect(seen).toStrictEqual(['c'.repeat(600), 'd']);
  });

  it('gives a taken message binary data of its own, not a view of the ring that later pushes overwrite', () => {
    const q = queue<{ b: Buffer }>({ capacity: 1024 });
    q.push({ b: Buffer.alloc(16, 1) });
    const taken = q.shift()!;
    for (let i = 0; i < 40; i++) {
      q.shift();
      q.push({ b: Buffer.alloc(16, 0x77) });
    }
    expect(taken.b).toStrictEqual(Buffer.alloc(16, 1));
    taken.b.fill(0);
    expect(q.shift()).toStrictEqual({ b: Buffer.alloc(16, 0x77) });
  });

  it('drops a message its codec cannot decode at the take that meets it; shiftMany() stops before it', () => {
    const picky = {
      name: 'picky',
      encode: (value: string) => Buffer.from(value),
      decode: (bytes: Uint8Array) => {
        const value = Buffer.from(bytes).toString();
        if (value === 'poison') throw new Error('not for me');
        return value;
      },
    };
    const q = queue<string>({ capacity: 1024, codec: picky });
    for (const value of ['a', 'b', 'poison', 'c']) q.push(value);
    expect(q.shiftMany()).toStrictEqual(['a', 'b']);
    expect(() => q.shift()).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_HANDLE', message: expect.stringMatching(/dropped/) }),
    );
    expect(q.shift()).toBe('c');
    expect(q.stats()).toMatchObject({ messages: 0, pushed: 4, taken: 4 });
    expect(q.shiftMany(0)).toStrictEqual([]);
  });

  it('refuses a codec that encodes to something else than bytes, storing nothing', () => {
    const q = queue<string>({ capacity: 1024, codec: { name: 'text', encode: (v) => v as never, decode: String } });
    expect(() => q.push('x')).toThrow(expect.objectContaining({ code: 'ERR_NOT_SERIALIZABLE' }));
    expect(q.size).toBe(0);
  });

  it('refuses damaged words with ERR_BAD_HANDLE: a message size, ends off the ring, a count no ring holds', () => {
    const path = `${tempDir()}/damaged`;
    const q = queue<string>({ capacity: 1024, path });
    q.push('kept');
    const poke = (at: number, bytes: Buffer) => {
      const fd = openSync(path, 'r+');
      writeSync(fd, bytes, 0, bytes.length, at);
      closeSync(fd);
    };
    const word = (n: number) => Buffer.from(new Uint32Array([n]).buffer);
    const good = readFileSync(path).subarray(256, 272);
    poke(288, word(0xffffffff));
    expect(() => SharedQueue.attach(path)).toThrow(expect.objectContaining({ code: 'ERR_BAD_HANDLE' }));
    poke(288, word(1020));
    poke(256, word(5000));
    expect(() => q.shift()).toThrow(expect.objectContaining({ code: 'ERR_BAD_HANDLE' }));
    expect(() => q.push('more')).toThrow(expect.objectContaining({ code: 'ERR_BAD_HANDLE' }));
    poke(256, good);
    poke(268, word(1_000_000));
    expect(() => q.size).toThrow(expect.objectContaining({ code: 'ERR_BAD_HANDLE' }));
    poke(256, good);
    expect(q.shift()).toBe('kept');
  });

  it('verify() finds each damage a writer never leaves: a record, padding, a total, an unused word', () => {
    const path = `${tempDir()}/verified`;
    const q = queue<string>({ capacity: 1024, path, maxMessageSize: 100 });
    // Ten records of 100 bytes fill the ring to offset 1000: two taken, 'c' pads the last 24 bytes and starts at 0.
    q.push('a'.repeat(90));
    while (q.stats().bytes < 1000) q.push('b'.repeat(90));
    q.shiftMany(2);
    q.push('c'.repeat(90));
    expect(q.verify()).toStrictEqual({ ok: true, problems: [] });
    const original = readFileSync(path);
    const damage = (at: number, n: number, problem: RegExp) => {
      const fd = openSync(path, 'r+');
      writeSync(fd, Buffer.from(new Uint32Array([n]).buffer), 0, 4, at);
      const found = q.verify();
      writeSync(fd, original, at, 4, at);
      closeSync(fd);
      expect(found.ok).toBe(false);
      expect(found.problems).toContainEqual(expect.stringMatching(problem));
    };
    const [head, tail] = [original.readUInt32LE(256), original.readUInt32LE(264)];
    damage(320 + head, 101, /record at offset \d+ has length 101/);
    damage(264, tail + 4, /end at offset \d+, but TAIL says/);
    // A total ahead of its commit word's count (the count + 1) lags it by 2^32 - 1.
    damage(272, original.readUInt32LE(268) + 1, /PUSHED is \d+, 4294967295 behind/);
    damage(280, original.readUInt32LE(260) + 1, /TAKEN is \d+, 4294967295 behind/);
    damage(300, 7, /unused header words/);
    damage(320 + head, 0xffffffff, /padding at offset/);
    expect(q.verify().ok).toBe(true);
    expect(q.shiftMany().length).toBe(q.stats().pushed - 2);
  });

  it('keeps its totals exact across the 2^32 wrap of the commit words, storing them there', () => {
    const path = `${tempDir()}/wrapping`;
    const q = queue<number>({ capacity: 1024, path });
    // An empty queue whose counts are 100 short of their wrap, with totals past 2^34.
    const start = 4 * 2 ** 32 - 100;
    const header = Buffer.alloc(32);
    for (const at of [0, 8]) header.writeUInt32LE(start % 2 ** 32, at + 4);
    for (const at of [16, 24]) header.writeBigUInt64LE(BigInt(start), at);
    const fd = openSync(path, 'r+');
    writeSync(fd, header, 0, 32, 256);
    closeSync(fd);
    const model: number[] = [];
    for (let n = 0; n < 250; n++) {
      expect(q.push(n)).toBe(true);
      model.push(n);
      if (n % 3 !== 0) expect(q.shift()).toBe(model.shift());
    }
    const stats = q.stats();
    expect({ pushed: stats.pushed - start, taken: stats.taken - start }).toStrictEqual({
      pushed: 250,
      taken: 250 - stats.messages,
    });
    expect(q.verify()).toStrictEqual({ ok: true, problems: [] });
    // Stored at the wrap: the totals on disk are past it.
    const stored = readFileSync(path).subarray(272, 288);
    expect(stored.readBigUInt64LE(0)).toBeGreaterThanOrEqual(BigInt(4 * 2 ** 32));
    expect(stored.readBigUInt64LE(8)).toBeGreaterThanOrEqual(BigInt(4 * 2 ** 32));
  });

  it('reports stats() as one moment saw them while another thread pushes and takes', async () => {
    const q = queue<number>({ capacity: 1024 });
    const worker = new Worker(
      `const { SharedQueue } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))});
      const q = SharedQueue.attach(${JSON.stringify(q.handle)});
      require('node:worker_threads').parentPort.postMessage('running');
      const end = Date.now() + 300;
      for (let i = 0; Date.now() < end; i++) q.push(i) && (i % 3 || q.shift(), q.shift());`,
      { eval: true },
    );
    await once(worker, 'message');
    let wrong = 0;
    let samples = 0;
    for (let running = true; running;) {
      for (let i = 0; i < 1000; i++, samples++) {
        const stats = q.stats();
        if (stats.messages < 0 || stats.pushed - stats.taken !== stats.messages) wrong++;
      }
      running = await Promise.race([once(worker, 'exit').then(() => false), sleep(0).then(() => true)]);
    }
    expect(samples).toBeGreaterThan(1000);
    expect(wrong).toBe(0);
  });

  it('takes every message of 4 producer processes exactly once, in 2 consumer processes, in order per producer', async () => {
    const q = queue({ capacity: '16KB' });
    const [producers, each] = [4, 3000];
    const consumers = [
      peer('consume', q.handle, String(producers * each)),
      peer('consume', q.handle, String(producers * each)),
    ];
    const reports = consumers.map((child) => once(child, 'message').then(([taken]) => taken as [number, number][]));
    const running = Array.from({ length: producers }, (_, p) => peer('produce', q.handle, String(p), String(each)));
    await Promise.all(running.map((child) => once(child, 'exit')));
    const taken = await Promise.all(reports);
    const seen = new Set<string>();
    for (const mine of taken) {
      const last = new Map<number, number>();
      for (const [producer, seq] of mine) {
        expect(seen.has(`${producer}:${seq}`)).toBe(false);
        seen.add(`${producer}:${seq}`);
        expect(seq).toBeGreaterThan(last.get(producer) ?? -1);
        last.set(producer, seq);
      }
    }
    expect(seen.size).toBe(producers * each);
    expect(q.stats()).toMatchObject({ messages: 0, pushed: producers * each, taken: producers * each });
  }, 60_000);
});
