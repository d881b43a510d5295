// Every error a SharedMap throws, from one table: each comes with its code and class, and leaves every entry intact.
import { describe, expect, it } from 'vitest';
import { type ErrorCode, MAX_CAPACITY, MmapShare, MmapShareError, SharedMap } from '../dist/index.mjs';
import { defer } from './helpers.js';

type Builtin = typeof Error | typeof RangeError | typeof TypeError;
type Map = SharedMap<unknown>;

const create = (options: object) => SharedMap.create(options as never);

// [code, built-in class, what triggers it given a map holding `kept` and a second instance of it]
const table: [ErrorCode, Builtin, string, (map: Map, other: Map) => unknown][] = [
  ['ERR_BAD_SIZE', RangeError, 'capacity 0', () => create({ capacity: 0 })],
  ['ERR_BAD_SIZE', RangeError, 'capacity 1.5', () => create({ capacity: 65536.5 })],
  ['ERR_BAD_SIZE', RangeError, 'capacity over MAX_CAPACITY', () => create({ capacity: MAX_CAPACITY + 1 })],
  ['ERR_BAD_SIZE', RangeError, "capacity '8TB'", () => create({ capacity: '8TB' })],
  ['ERR_BAD_SIZE', RangeError, "capacity 'lots'", () => create({ capacity: 'lots' })],
  ['ERR_BAD_SIZE', RangeError, 'no capacity', () => create({})],
  ['ERR_BAD_OPTION', TypeError, 'options that are not an object', () => create(null as never)],
  ['ERR_BAD_OPTION', TypeError, "eviction 'fifo'", () => create({ capacity: '1MB', eviction: 'fifo' })],
  ['ERR_BAD_OPTION', TypeError, 'a negative ttl', () => create({ capacity: '1MB', ttl: -1 })],
  ['ERR_BAD_OPTION', TypeError, 'maxEntries 0', () => create({ capacity: '1MB', maxEntries: 0 })],
  ['ERR_BAD_OPTION', TypeError, 'maxEntries beyond capacity', () => create({ capacity: '1MB', maxEntries: 1e6 })],
  ['ERR_BAD_OPTION', TypeError, 'maxKeySize 65536', () => create({ capacity: '1MB', maxKeySize: 65536 })],
  ['ERR_BAD_OPTION', TypeError, 'maxValueSize beyond room', () => create({ capacity: '1MB', maxValueSize: 2 ** 21 })],
  ['ERR_BAD_OPTION', TypeError, 'a name with a space', () => create({ capacity: '1MB', name: 'a b' })],
  ['ERR_BAD_OPTION', TypeError, 'a codec that is not one', () => create({ capacity: '1MB', codec: 'json' })],
  ['ERR_BAD_OPTION', TypeError, 'set() with a ttl of NaN', (m) => m.set('k', 1, { ttl: NaN })],
  ['ERR_BAD_OPTION', TypeError, 'update() without a function', (m) => m.update('k', 42 as never)],
  ['ERR_BAD_OPTION', TypeError, 'fetch() without a function', (m) => m.fetch('k', 'no' as never)],
  ['ERR_BAD_OPTION', TypeError, 'fetch() with a negative timeout', (m) => m.fetch('k', () => 1, { timeout: -1 })],
  [
    'ERR_BAD_OPTION',
    TypeError,
    'fetch() with a signal that is not one',
    (m) => m.fetch('k', () => 1, { signal: {} as never }),
  ],
  ['ERR_BAD_KEY', TypeError, 'a key that is a number', (m) => m.set(42 as never, 1)],
  ['ERR_BAD_KEY', TypeError, 'get() of a key that is an object', (m) => m.get({} as never)],
  ['ERR_BAD_KEY', TypeError, 'a key of 1025 bytes', (m) => m.set('k'.repeat(1025), 1)],
  ['ERR_BAD_KEY', TypeError, 'a key of 257 four-byte characters', (m) => m.update('🔑'.repeat(257), () => 1)],
  ['ERR_BAD_KEY', TypeError, 'a key with a lone surrogate', (m) => m.delete('\ud800')],
  ['ERR_VALUE_TOO_LARGE', RangeError, 'set() of a value too large', (m) => m.set('k', 'x'.repeat(300_000))],
  ['ERR_VALUE_TOO_LARGE', RangeError, 'update() to a value too large', (m) => m.update('kept', () => 'x'.repeat(3e5))],
  ['ERR_NOT_SERIALIZABLE', TypeError, 'set() of a function', (m) => m.set('k', () => 1)],
  ['ERR_NOT_SERIALIZABLE', TypeError, 'update() to a symbol', (m) => m.update('kept', () => Symbol('no'))],
  ['ERR_BAD_HANDLE', Error, 'attach() of an unknown name', () => SharedMap.attach('no_such_map')],
  ['ERR_BAD_HANDLE', Error, 'attach() of a ref that is not a string', () => SharedMap.attach(3 as never)],
  ['ERR_BAD_HANDLE', Error, 'attach() of a file that is not a region', () => SharedMap.attach(__filename)],
  [
    'ERR_BAD_HANDLE',
    Error,
    'attach() of an MmapShare region',
    () => {
      const share = MmapShare.create(64);
      defer(() => share.close());
      return SharedMap.attach(share.handle);
    },
  ],
  ['ERR_CODEC_MISMATCH', Error, 'attach() with another codec', (m) => SharedMap.attach(m.handle, { codec: 'msgpack' })],
  [
    'ERR_ALREADY_LOCKED',
    Error,
    'a write on a second instance from inside update()',
    (m, other) => m.update('kept', () => other.set('k', 1)),
  ],
  [
    'ERR_CLOSED',
    Error,
    'update() whose function closes the map',
    (_m, other) => other.update('kept', () => (other.close(), 'lost')),
  ],
  ['ERR_CLOSED', Error, 'get() after close()', () => closed().get('k')],
  ['ERR_CLOSED', Error, 'stats() after close()', () => closed().stats()],
];

function closed(): Map {
  const map = create({ capacity: '1MB' });
  map.close();
  return map;
}

describe('SharedMap errors', () => {
  it.each(table)('%s (%s): %s', async (code, builtin, _what, trigger) => {
    const map = create({ capacity: '1MB' });
    const other = SharedMap.attach(map.handle);
    defer(() => (other.close(), map.close()));
    map.set('kept', { kept: ['this', 'value'] });
    for (let i = 0; i < 50; i++) map.set(`entry-${i}`, i);
    const version = map.version;
    let error: unknown;
    try {
      await trigger(map, other);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(MmapShareError);
    expect(error).toBeInstanceOf(builtin);
    expect(error).toMatchObject({ code, name: 'MmapShareError' });
    expect(map.get('kept')).toEqual({ kept: ['this', 'value'] });
    expect(map.size).toBe(51);
    expect(map.version).toBe(version);
    expect(map.verify()).toEqual({ ok: true, problems: [] });
  });

  it("eviction 'none': a set that does not fit is ERR_NO_SPACE, and every entry stays", () => {
    const map = create({ capacity: '64KB', maxEntries: 20, eviction: 'none' });
    defer(() => map.close());
    for (let i = 0; i < 20; i++) map.set(`k${i}`, i);
    const version = map.version;
    expect(() => map.set('k20', 20)).toThrow(expect.objectContaining({ code: 'ERR_NO_SPACE' }));
    expect(() => map.update('k21', () => 21)).toThrow(expect.objectContaining({ code: 'ERR_NO_SPACE' }));
    expect(map.version).toBe(version);
    expect([...map.values()].sort((a, b) => (a as number) - (b as number))).toEqual(
      Array.from({ length: 20 }, (_, i) => i),
    );
  });
});
