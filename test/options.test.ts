// Options checked by name: every constructor and method that takes options, on both backends, refuses a name it does
// not know, naming the closest known one, before anything is written.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MmapShare, SharedMap, SharedQueue } from '../dist/index.mjs';
import { RedisMap, RedisShare } from '../dist/redis/index.mjs';
import { RedisServer } from './redis/server.js';

let server: RedisServer;
const opened: { close(): unknown }[] = [];
const keep = <C extends { close(): unknown }>(instance: C): C => (opened.push(instance), instance);
let next = 0;

beforeAll(async () => {
  server = await RedisServer.start();
});
afterAll(async () => {
  await Promise.all(opened.map((instance) => instance.close()));
  await server.stop();
});

// Each entry point, called with one misspelt option beside valid ones; the name the message should suggest.
type Row = [entry: string, call: (typo: Record<string, unknown>) => unknown, typo: string, meant: string];

const share = () => keep(MmapShare.create<string>(64, { value: 'kept' }));
const map = () => {
  const made = keep(SharedMap.create<string>({ capacity: '64KB' }));
  made.set('old', 'kept');
  return made;
};
const queue = () => keep(SharedQueue.create<string>({ capacity: '1KB' }));
const redisShare = async () =>
  keep(await RedisShare.create<string>(`options-${next++}`, { url: server.url, value: 'kept' }));
const redisMap = async () => {
  const made = keep(await RedisMap.create<string>(`options-${next++}`, { url: server.url }));
  await made.set('old', 'kept');
  return made;
};

const rows: Row[] = [
  ['MmapShare.create', (o) => MmapShare.create(64, { value: 1, ...o }), 'nmae', 'name'],
  ['new MmapShare', (o) => new MmapShare(64, { ...o }), 'Path', 'path'],
  ['MmapShare.attach', (o) => MmapShare.attach(share().handle, { ...o }), 'codek', 'codec'],
  ['MmapShare#lockAsync', (o) => share().lockAsync({ timeout: 10, ...o }), 'signl', 'signal'],
  ['MmapShare#watch', (o) => share().watch(() => {}, { ...o }), 'intervall', 'interval'],
  ['MmapShare#changes', (o) => share().changes({ interval: 5, ...o }), 'sginal', 'signal'],
  ['SharedMap.create', (o) => SharedMap.create({ capacity: '64KB', ...o }), 'tll', 'ttl'],
  ['new SharedMap', (o) => new SharedMap({ capacity: '64KB', ...o }), 'maxkeysize', 'maxKeySize'],
  ['SharedMap.attach', (o) => SharedMap.attach(map().handle, { ...o }), 'codex', 'codec'],
  ['SharedMap#set', (o) => map().set('old', 'lost', { ...o }), 'tll', 'ttl'],
  ['SharedMap#update', (o) => map().update('old', () => 'lost', { ...o }), 'ttL', 'ttl'],
  ['SharedMap#fetch', (o) => map().fetch('new', () => 'lost', { ...o }), 'timout', 'timeout'],
  ['SharedQueue.create', (o) => SharedQueue.create({ capacity: '1KB', ...o }), 'maxMessagesize', 'maxMessageSize'],
  ['new SharedQueue', (o) => new SharedQueue({ capacity: '1KB', ...o }), 'nam', 'name'],
  ['SharedQueue.attach', (o) => SharedQueue.attach(queue().handle, { ...o }), 'codek', 'codec'],
  ['SharedQueue#pushAsync', (o) => queue().pushAsync('lost', { ...o }), 'timeuot', 'timeout'],
  ['SharedQueue#take', (o) => queue().take({ timeout: 10, ...o }), 'signl', 'signal'],
  ['RedisShare.create', (o) => RedisShare.create(`typo-${next++}`, { url: server.url, ...o }), 'vlaue', 'value'],
  ['RedisShare.attach', async (o) => RedisShare.attach('k', { url: server.url, ...o }), 'leas', 'lease'],
  ['RedisShare.unlink', (o) => RedisShare.unlink('k', { url: server.url, ...o }), 'commandTimout', 'commandTimeout'],
  ['RedisShare#lockAsync', async (o) => (await redisShare()).lockAsync({ ...o }), 'timeot', 'timeout'],
  ['RedisShare#watch', async (o) => (await redisShare()).watch(() => {}, { ...o }), 'intervall', 'interval'],
  ['RedisShare#changes', async (o) => (await redisShare()).changes({ ...o }).next(), 'intreval', 'interval'],
  ['RedisMap.create', (o) => RedisMap.create(`typo-${next++}`, { url: server.url, ...o }), 'tll', 'ttl'],
  ['RedisMap.attach', (o) => RedisMap.attach('m', { url: server.url, ...o }), 'maxKeysize', 'maxKeySize'],
  ['RedisMap#set', async (o) => (await redisMap()).set('old', 'lost', { ...o }), 'tll', 'ttl'],
  ['RedisMap#update', async (o) => (await redisMap()).update('old', () => 'lost', { ...o }), 'ttls', 'ttl'],
  ['RedisMap#fetch', async (o) => (await redisMap()).fetch('new', () => 'lost', { ...o }), 'signa', 'signal'],
];

describe('an unknown option', () => {
  it.each(rows)('is refused by %s, naming the closest known one', async (_entry, call, typo, meant) => {
    const error = await (async () => call({ [typo]: 1 }))().then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toMatchObject({ code: 'ERR_BAD_OPTION', message: `unknown option ${typo}; did you mean ${meant}?` });
  });

  it('with no close name, lists the names there are', () => {
    expect(() => SharedMap.create({ capacity: '64KB', expiry: 5 } as never)).toThrow(
      'unknown option expiry; the options here are capacity, maxEntries, maxValueSize, maxKeySize, ttl, eviction, name, path, codec',
    );
  });

  it('changes nothing already stored, on either backend', async () => {
    const ours = map();
    expect(() => ours.set('old', 'lost', { tll: 5 } as never)).toThrow(/tll/);
    expect(() => ours.update('old', () => 'lost', { tll: 5 } as never)).toThrow(/tll/);
    await expect(ours.fetch('new', () => 'lost', { tll: 5 } as never)).rejects.toThrow(/tll/);
    expect([ours.get('old'), ours.has('new')]).toStrictEqual(['kept', false]);
    const theirs = await redisMap();
    await expect(theirs.set('old', 'lost', { tll: 5 } as never)).rejects.toThrow(/tll/);
    await expect(theirs.fetch('new', () => 'lost', { tll: 5 } as never)).rejects.toThrow(/tll/);
    expect([await theirs.get('old'), await theirs.has('new')]).toStrictEqual(['kept', false]);
  });

  it('is a name of the object itself: an inherited property is no option', () => {
    const inherited = Object.create({ tll: 5 }) as { ttl?: number };
    const ours = keep(SharedMap.create<number>({ capacity: '64KB' }));
    ours.set('k', 1, inherited);
    expect(ours.get('k')).toBe(1);
  });
});
