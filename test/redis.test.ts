// RedisShare and RedisMap with real processes and a real redis-server: exact counts, dead lock holders, one
// computation per cluster, and a server that stops and comes back.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisMap, RedisShare } from '../dist/redis/index.mjs';
import { Peer } from './helpers.js';
import { RedisServer } from './redis/server.js';

let server: RedisServer;
beforeAll(async () => {
  server = await RedisServer.start();
});
afterAll(() => server.stop());

const peers = (n: number) => Array.from({ length: n }, () => new Peer({}, 'redis-peer.mjs'));

describe('RedisShare across processes', () => {
  it('4 processes x 2,000 update() increments end exact', async () => {
    const share = await RedisShare.create('counter', { url: server.url, value: { count: 0 } });
    const workers = peers(4);
    await Promise.all(workers.map((peer) => peer.call('attachShare', { url: server.url, key: 'counter' })));
    await Promise.all(workers.map((peer) => peer.call('increments', { count: 2000 })));
    expect(await share.get()).toStrictEqual({ count: 8000 });
    await share.close();
  });

  it('replaces a lock holder SIGKILLed once its lease runs out, and reports it', async () => {
    const share = await RedisShare.create('leased', { url: server.url, value: 'intact', lease: 300 });
    const [holder] = peers(1);
    await holder!.call('attachShare', { url: server.url, key: 'leased', lease: 300 });
    await holder!.call('lock');
    expect(await share.tryLock()).toBeUndefined();
    await holder!.kill();
    expect(await share.lockAsync({ timeout: 5000 })).toStrictEqual({ ownerDied: true, deadPid: holder!.pid });
    expect(await share.get()).toBe('intact');
    await share.unlock();
    await share.close();
  });
});

describe('RedisMap across processes', () => {
  it('fetch() from 8 processes computes once', async () => {
    const map = await RedisMap.create<string>('fetched', { url: server.url });
    const workers = peers(8);
    await Promise.all(workers.map((peer) => peer.call('attachMap', { url: server.url, name: 'fetched' })));
    const results = await Promise.all(
      workers.map((peer) => peer.call<{ value: string; computed: boolean }>('fetch', { key: 'k' })),
    );
    expect(results.filter((result) => result.computed)).toHaveLength(1);
    expect(new Set(results.map((result) => result.value)).size).toBe(1);
    expect(await map.get('k')).toBe(results[0]!.value);
    await map.close();
  });
});

describe('a server that crashes', () => {
  it('gives coded errors at once, not a hang; started again, the same instances go on, and nothing acknowledged is lost', async () => {
    const durable = await RedisServer.start(true);
    try {
      const share = await RedisShare.create('through-restart', { url: durable.url, value: 1 });
      const map = await RedisMap.create<number>('through-restart-map', { url: durable.url });
      await map.set('acknowledged', 7);
      await durable.stop();
      await expect(share.get()).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
      await expect(share.set(2)).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
      await expect(map.get('acknowledged')).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
      await durable.start();
      // Each instance's client reconnects on its own schedule; until then its calls fail fast.
      expect(await eventually(() => map.get('acknowledged'))).toBe(7);
      expect(await eventually(() => share.get())).toBe(1);
      await share.set(3);
      expect(await share.get()).toBe(3);
      await share.close();
      await map.close();
    } finally {
      await durable.remove();
    }
  });
});

describe('grants given back while the server is down', () => {
  it('a lock released by close() while Redis is down is released once it is up, not held for its lease', async () => {
    const durable = await RedisServer.start(true);
    try {
      const share = await RedisShare.create('given-back', { url: durable.url, value: 0, lease: 60_000 });
      await share.lock();
      await durable.stop();
      await share.close();
      await durable.start();
      const other = await RedisShare.attach('given-back', { url: durable.url });
      expect(await other.lockAsync({ timeout: 5000 })).toStrictEqual({ ownerDied: false });
      await other.close();
    } finally {
      await durable.remove();
    }
  });

  it('a fetch() claim dropped while Redis is down is dropped once it is up, not held for its lease', async () => {
    const durable = await RedisServer.start(true);
    try {
      const map = await RedisMap.create<string>('claim-given-back', { url: durable.url, lease: 60_000 });
      const failing = async () => {
        await durable.stop();
        throw new Error('compute failed');
      };
      await expect(map.fetch('k', failing)).rejects.toThrow('compute failed');
      await durable.start();
      const other = await RedisMap.attach<string>('claim-given-back', { url: durable.url });
      expect(await eventually(() => other.fetch('k', () => 'computed', { timeout: 5000 }))).toBe('computed');
      await Promise.all([map.close(), other.close()]);
    } finally {
      await durable.remove();
    }
  });
});

async function eventually<R>(call: () => Promise<R>): Promise<R> {
  for (let waited = 0; ; waited += 50) {
    try {
      return await call();
    } catch (error) {
      if ((error as { code?: string }).code !== 'ERR_CONNECTION' || waited > 5000) throw error;
      await sleep(50);
    }
  }
}
