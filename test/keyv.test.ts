// mmap-share/keyv: Keyv's own published suite, run over a SharedMap with keyv 5 and keyv 6 and over a RedisMap;
// then what that suite does not look at: the map's own expiry, raw values, a store shared across processes.
import keyvTestSuite, { keyvIteratorTests } from '@keyv/test-suite';
import Keyv from 'keyv';
import Keyv6 from 'keyv6';
import * as vitest from 'vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cache, SharedMap } from '../dist/index.mjs';
import { KeyvStore } from '../dist/adapters/keyv.mjs';
import { RedisMap } from '../dist/redis/index.mjs';
import { defer, Peer } from './helpers.js';
import { RedisServer } from './redis/server.js';

const map = SharedMap.create({ capacity: '4MB' });
afterAll(() => map.close());

describe("Keyv's test suite over a SharedMap, keyv 5", () => {
  const store = () => new KeyvStore(map);
  keyvTestSuite(vitest, Keyv, store);
  keyvIteratorTests(vitest, Keyv, store);
});

// The suite is keyv 5's; keyv 6 changed one answer for every store: delete([keys]) gives a boolean a key. That test
// is run on keyv 6's terms, after the rest of the suite.
const KEYV_5_ONLY = '.deleteMany([keys]) with nonexistent keys resolves to false';
describe("Keyv's test suite over a SharedMap, keyv 6", () => {
  const store = () => new KeyvStore(map);
  const it = (name: string, test: vitest.TestFunction) =>
    (name === KEYV_5_ONLY ? vitest.it.skip : vitest.it)(name, test);
  const suite = { ...vitest, it } as typeof vitest;
  keyvTestSuite(suite, Keyv6 as unknown as typeof Keyv, store);
  keyvIteratorTests(suite, Keyv6 as unknown as typeof Keyv, store);
  vitest.it('.deleteMany([keys]) with nonexistent keys resolves to false for each', async () => {
    const keyv = new Keyv6({ store: store() });
    await keyv.set('foo1', 'bar1');
    expect(await keyv.delete(['foo', 'foo1', 'foo2'])).toStrictEqual([false, true, false]);
  });
});

describe("Keyv's test suite over a RedisMap", () => {
  let server: RedisServer;
  let redis: RedisMap;
  beforeAll(async () => {
    server = await RedisServer.start();
    redis = await RedisMap.create('keyv', { url: server.url });
  });
  afterAll(async () => {
    await redis.close();
    server.stop();
  });
  const store = () => new KeyvStore(redis);
  keyvTestSuite(vitest, Keyv, store);
  keyvIteratorTests(vitest, Keyv, store);
});

describe('KeyvStore', () => {
  const fresh = (options = {}) => {
    const own = SharedMap.create({ capacity: '1MB', ...options });
    defer(() => own.close());
    return own;
  };

  it.each([
    ['keyv 5', Keyv],
    ['keyv 6', Keyv6 as unknown as typeof Keyv],
  ])("expires an entry by the map's own TTL, %s: Keyv's ttl, else the map's default", async (_, Class) => {
    const own = fresh({ ttl: 60 });
    const keyv = new Class({ store: new KeyvStore(own) });
    await keyv.set('short', 'a', 20);
    await keyv.set('default', 'b');
    const [byDefault, short] = [...own.keys()].sort();
    expect([byDefault, short]).toStrictEqual([expect.stringMatching(/default$/), expect.stringMatching(/short$/)]);
    await vitest.vi.waitFor(() => expect(own.peek(short!)).toBeUndefined(), { interval: 5 });
    expect(own.peek(byDefault!)).toBeDefined();
    await vitest.vi.waitFor(() => expect(own.peek(byDefault!)).toBeUndefined(), { interval: 5 });
  });

  it('stores raw values when Keyv serializes nothing, and the map keeps what v8 keeps', async () => {
    const own = fresh();
    const keyv = new Keyv({ store: new KeyvStore(own), serialize: undefined, deserialize: undefined });
    const value = { when: new Date(0), tags: new Set(['a']), big: 2n ** 70n };
    await keyv.set('raw', value);
    expect(await keyv.get('raw')).toStrictEqual(value);
    expect(own.peek('keyv:raw')).toStrictEqual({ value, expires: undefined });
  });

  it('gives two namespaces one map: each clear() and iterator() keeps to its own', async () => {
    const own = fresh();
    const [a, b] = ['a', 'b'].map((namespace) => new Keyv({ store: new KeyvStore(own), namespace }));
    await Promise.all([a!.set('k', 1), b!.set('k', 2), own.set('other', 'kept')]);
    await a!.clear();
    expect([await a!.get('k'), await b!.get('k'), own.get('other')]).toStrictEqual([undefined, 2, 'kept']);
    const seen = [];
    for await (const entry of b!.iterator!(undefined)) seen.push(entry);
    expect(seen).toStrictEqual([['k', 2]]);
  });

  it('reports a value the map refuses as Keyv reports a store error, and keeps what was stored', async () => {
    const own = fresh({ maxValueSize: 100 });
    const keyv = new Keyv({ store: new KeyvStore(own) });
    const errors: { code?: string }[] = [];
    keyv.on('error', (error) => errors.push(error));
    await keyv.set('k', 'small');
    expect(await keyv.set('k', 'x'.repeat(200))).toBe(false);
    expect(
      await keyv.setMany([
        { key: 'm', value: 'fits' },
        { key: 'n', value: 'y'.repeat(200) },
      ]),
    ).toStrictEqual([true, false]);
    expect(errors.map((error) => error.code)).toStrictEqual(['ERR_VALUE_TOO_LARGE', 'ERR_VALUE_TOO_LARGE']);
    expect([await keyv.get('k'), await keyv.get('m'), await keyv.get('n')]).toStrictEqual(['small', 'fits', undefined]);
  });

  it('setMany() called with no error listener still sets every entry that fits', async () => {
    const own = fresh({ maxValueSize: 100 });
    const store = new KeyvStore(own);
    const entries = [
      { key: 'a', value: 1 },
      { key: 'b', value: 'y'.repeat(200) },
      { key: 'c', value: 3 },
    ];
    expect(await store.setMany(entries)).toStrictEqual([true, false, true]);
    expect([own.get('a'), own.get('b'), own.get('c')]).toStrictEqual([1, undefined, 3]);
  });

  it('refuses what is not a map with ERR_BAD_OPTION', () => {
    for (const bad of [undefined, {}, new Map()]) {
      expect(() => new KeyvStore(bad as unknown as Cache<unknown>)).toThrow(
        expect.objectContaining({ code: 'ERR_BAD_OPTION', message: expect.stringContaining('KeyvStore takes') }),
      );
    }
  });

  it('disconnect() closes the map', async () => {
    const own = SharedMap.create({ capacity: '1MB' });
    const keyv = new Keyv({ store: new KeyvStore(own) });
    await keyv.disconnect();
    expect(own.closed).toBe(true);
  });

  it("a value set through Keyv in one process is a hit through another process's Keyv", async () => {
    const own = fresh({ name: 'keyv-shared' });
    const keyv = new Keyv({ store: new KeyvStore(own) });
    await keyv.set('greeting', { text: 'hello' });
    const peer = new Peer({}, 'adapter-peer.mjs');
    defer(() => void peer.kill());
    expect(await peer.call('get', { name: 'keyv-shared', key: 'greeting' })).toStrictEqual({ text: 'hello' });
    await peer.call('set', { name: 'keyv-shared', key: 'reply', value: [1, 2] });
    expect(await keyv.get('reply')).toStrictEqual([1, 2]);
  });
});
