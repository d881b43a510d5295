// RedisQueue with real processes and a real redis-server: producers and consumers in processes of their own, the
// record Redis keeps (codec, capacity), a waiter that died holding the wake-up token, and a queue Redis lost.
import { serialize } from 'node:v8';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisQueue } from '../dist/redis/index.mjs';
import { Peer } from './helpers.js';
import { RedisServer } from './redis/server.js';

let server: RedisServer;
let admin: ReturnType<typeof createClient>;
beforeAll(async () => {
  server = await RedisServer.start();
  admin = createClient({ url: server.url });
  await admin.connect();
});
afterAll(async () => {
  await admin.quit();
  await server.stop();
});

describe('RedisQueue', () => {
  it('takes every message of 3 producer processes once, in order per producer, in 2 consumer processes', async () => {
    const queue = await RedisQueue.create<[number, number]>('work', { url: server.url, capacity: '4KB' });
    const peers = Array.from({ length: 5 }, () => new Peer({}, 'redis-peer.mjs'));
    await Promise.all(peers.map((peer) => peer.call('attachQueue', { url: server.url, name: 'work' })));
    const [producers, consumers] = [peers.slice(0, 3), peers.slice(3)];
    const taking = consumers.map((peer) => peer.call<[number, number][]>('consume', { count: 1500 }));
    await Promise.all(producers.map((peer) => peer.call('produce', { count: 500 })));
    const taken = await Promise.all(taking);
    const all = taken.flat().map(([pid, seq]) => `${pid} ${seq}`);
    expect(new Set(all).size).toBe(1500);
    for (const mine of taken) {
      for (const { pid } of producers) {
        const seqs = mine.filter(([from]) => from === pid).map(([, seq]) => seq);
        expect(seqs).toStrictEqual([...seqs].sort((a, b) => a - b));
      }
    }
    expect(await queue.stats()).toMatchObject({ messages: 0, bytes: 0, pushed: 1500, taken: 1500 });
    await queue.close();
  });

  it('keeps its codec and capacity in Redis for attach(); refuses a second create and a missing name', async () => {
    const queue = await RedisQueue.create<{ n: number }>('recorded', {
      url: server.url,
      capacity: 2048,
      maxMessageSize: 100,
      codec: 'msgpack',
    });
    await expect(RedisQueue.create('recorded', { url: server.url, capacity: 10 })).rejects.toMatchObject({
      code: 'ERR_EXISTS',
    });
    await expect(RedisQueue.attach('missing', { url: server.url })).rejects.toMatchObject({ code: 'ERR_BAD_HANDLE' });
    const other = await RedisQueue.attach<{ n: number }>('recorded', { url: server.url });
    expect(other.maxMessageSize).toBe(100);
    await queue.push({ n: 1 });
    expect(await other.shift()).toStrictEqual({ n: 1 });
    expect(await other.stats()).toMatchObject({ capacity: 2048 });
    await expect(RedisQueue.attach('recorded', { url: server.url, codec: 'v8' })).rejects.toMatchObject({
      code: 'ERR_CODEC_MISMATCH',
    });
    await expect(RedisQueue.create('bad', { url: server.url, capacity: 0 })).rejects.toMatchObject({
      code: 'ERR_BAD_SIZE',
    });
    await expect(
      RedisQueue.create('bad', { url: server.url, capacity: 100, maxMessageSize: 200 }),
    ).rejects.toMatchObject({ code: 'ERR_BAD_OPTION' });
    await Promise.all([queue.close(), other.close()]);
  });

  it('wakes a waiter whose wake-up token a dead waiter took, by its look a second later', async () => {
    const queue = await RedisQueue.create<string>('tokens', { url: server.url, capacity: 1024 });
    const waiter = await RedisQueue.attach<string>('tokens', { url: server.url });
    const waiting = waiter.take({ timeout: 5000 });
    // A message queued with no token: what a second waiter that popped the token and died before its take leaves.
    const message = serialize('later');
    await admin.rPush('{tokens}:q:list', message);
    await admin.hIncrBy('{tokens}:q', 'pushed', 1);
    await admin.hIncrBy('{tokens}:q', 'bytes', message.length);
    expect(await waiting).toBe('later');
    expect(await queue.stats()).toMatchObject({ messages: 0, bytes: 0, pushed: 1, taken: 1 });
    await Promise.all([queue.close(), waiter.close()]);
  });

  it('loses no message to a close() while a take() or a push() is in flight: each either was done or was not', async () => {
    const queue = await RedisQueue.create<number>('closing', { url: server.url, capacity: 4096 });
    let [resolved, unresolved] = [0, 0];
    for (let n = 0; n < 20; n++) {
      const other = await RedisQueue.attach<number>('closing', { url: server.url });
      await queue.push(n);
      const taking = other.take();
      const pushing = other.push(1000 + n);
      // Every other round, the close comes after Redis may have run the take's script.
      if (n % 2) await new Promise(setImmediate);
      await other.close();
      const [taken, pushed] = await Promise.allSettled([taking, pushing]);
      if (taken.status === 'fulfilled') expect(taken.value).toBe(n);
      else expect(await queue.shift()).toBe(n);
      const left = await queue.shiftMany();
      expect(left).toStrictEqual(pushed.status === 'fulfilled' ? [1000 + n] : []);
      if (taken.status === 'fulfilled') resolved++;
      else unresolved++;
    }
    expect(resolved + unresolved).toBe(20);
    expect(resolved).toBeGreaterThan(0);
    await queue.close();
  });

  it('puts back a token that came after every waiter gave up, and survives a close() meanwhile', async () => {
    const queue = await RedisQueue.create<string>('putback', { url: server.url, capacity: 4096 });
    const controller = new AbortController();
    const aborted = queue.take({ signal: controller.signal });
    controller.abort();
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    // The aborted take's BLPOP still runs, and pops this push's token: it goes back for the next waiter.
    await queue.push('after the abort');
    const other = await RedisQueue.attach<string>('putback', { url: server.url });
    expect(await other.take({ timeout: 5000 })).toBe('after the abort');
    await queue.push('again');
    const again = queue.take({ signal: AbortSignal.abort() });
    await queue.close();
    await expect(again).rejects.toMatchObject({ name: 'AbortError' });
    expect(await other.shift()).toBe('again');
    await other.close();
  });

  it('fails with ERR_BAD_HANDLE once Redis lost the queue, in every call', async () => {
    const queue = await RedisQueue.create<string>('lost', { url: server.url, capacity: 1024 });
    await queue.push('gone with it');
    await admin.del('{lost}:q');
    for (const call of [() => queue.push('x'), () => queue.shift(), () => queue.stats(), () => queue.take()]) {
      await expect(call()).rejects.toMatchObject({ code: 'ERR_BAD_HANDLE' });
    }
    await queue.close();
  });
});
