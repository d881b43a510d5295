// Codecs: msgpack and codecs of your own, found again by attach() from the header, refused when mismatched.
import { describe, expect, it } from 'vitest';
import { type Codec, MmapShare } from '../dist/index.mjs';
import { attached, fresh, Peer } from './helpers.js';

const circular: Record<string, unknown> = { name: 'loop' };
circular.self = circular;

const json: Codec<unknown> = {
  name: 'json',
  encode: (value) => Buffer.from(JSON.stringify(value)),
  decode: (bytes) => JSON.parse(Buffer.from(bytes).toString()),
};

describe("the 'msgpack' codecs", () => {
  const plain = [
    ['nested objects', { a: [1, 'two', { three: null }], b: true }],
    ['a Map', new Map<unknown, unknown>([['k', { v: 1 }]])],
    ['a Set', new Set([1, 'x'])],
    ['a Date', new Date('2026-11-22T10:00:00Z')],
    ['a RegExp', /x+y/g],
    ['a BigInt', 2n ** 90n],
    ['undefined', undefined],
    ['typed arrays', { u8: new Uint8Array([1, 2]), f64: new Float64Array([0.5]), big: new BigInt64Array([-3n]) }],
  ] as const;
  it.each(plain)("'msgpack' round-trips %s", (_, value) => {
    const share = fresh(4096, { codec: 'msgpack' });
    share.set(value);
    expect(share.get()).toStrictEqual(value);
  });

  it.each([...plain, ['a circular reference', circular]] as const)("'msgpack-refs' round-trips %s", (_, value) => {
    const share = fresh(4096, { codec: 'msgpack-refs' });
    share.set(value);
    expect(share.get()).toStrictEqual(value);
  });

  it("'msgpack-refs' keeps a shared reference shared; 'msgpack' copies it and refuses a cycle, keeping the value", () => {
    const part = { n: 1 };
    const refs = fresh<{ a: object; b: object }>(4096, { codec: 'msgpack-refs', value: { a: part, b: part } });
    const back = refs.get()!;
    expect(back.a).toBe(back.b);
    const plainShare = fresh<unknown>(4096, { codec: 'msgpack', value: { a: part, b: part } });
    const copied = plainShare.get() as { a: object; b: object };
    expect(copied).toStrictEqual({ a: part, b: part });
    expect(copied.a).not.toBe(copied.b);
    expect(() => plainShare.set(circular)).toThrow(expect.objectContaining({ code: 'ERR_NOT_SERIALIZABLE' }));
    expect(plainShare.get()).toStrictEqual(copied);
    expect(plainShare.version).toBe(1);
  });

  it.each(['v8', 'msgpack', 'msgpack-refs'] as const)(
    '%s decodes binary data into copies that later writes do not touch',
    (codec) => {
      const binary = (n: number) => ({
        bytes: new Uint8Array([n, n, n]),
        floats: new Float64Array([n + 0.5]),
        buffer: Buffer.from([n]),
        ...(codec === 'v8' ? { view: new DataView(new Uint8Array([n, n]).buffer) } : {}),
      });
      const share = fresh(4096, { codec });
      share.set(binary(7));
      const before = share.get();
      share.set(binary(1));
      share.set(binary(2));
      expect(before).toStrictEqual(binary(7));
      expect(Buffer.isBuffer((before as { buffer: unknown }).buffer)).toBe(true);
    },
  );

  it.each(['msgpack', 'msgpack-refs'] as const)(
    '%s is found again from the region by attach() in another process',
    async (codec) => {
      const share = fresh(1024, { codec, value: new Map([['from', 'creator']]) });
      const child = new Peer();
      await child.call('attach', { ref: share.handle });
      expect(await child.call('get')).toStrictEqual(new Map([['from', 'creator']]));
    },
  );
});

describe('a codec of your own', () => {
  it('stores values, and attach() needs it given, under the same name', () => {
    const share = fresh(1024, { codec: json, value: { n: 1 } });
    expect(attached(share.handle, { codec: json }).get()).toStrictEqual({ n: 1 });
    expect(() => MmapShare.attach(share.handle)).toThrow(expect.objectContaining({ code: 'ERR_CODEC_MISMATCH' }));
    expect(() => MmapShare.attach(share.handle, { codec: 'v8' })).toThrow(
      expect.objectContaining({ code: 'ERR_CODEC_MISMATCH' }),
    );
  });

  it('turns an encode failure into ERR_NOT_SERIALIZABLE with nothing written', () => {
    const share = fresh(1024, { codec: json, value: 'kept' });
    expect(() => share.set(10n)).toThrow(expect.objectContaining({ code: 'ERR_NOT_SERIALIZABLE' }));
    expect(share.get()).toBe('kept');
  });
});

describe('snapshot()', () => {
  it('returns one frozen value while the version is unchanged, and a new one after a set anywhere', async () => {
    const share = fresh<{ list: number[]; map: Map<string, { n: number }> }>(1024, {
      value: { list: [1], map: new Map([['a', { n: 1 }]]) },
    });
    const first = share.snapshot();
    expect(share.snapshot()).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(Object.isFrozen(first?.list)).toBe(true);
    expect(Object.isFrozen(first?.map.get('a'))).toBe(true);
    const child = new Peer();
    await child.call('attach', { ref: share.handle });
    await child.call('set', { value: { list: [2], map: new Map() } });
    expect(share.snapshot()).not.toBe(first);
    expect(share.snapshot()?.list).toStrictEqual([2]);
  });

  it('is undefined before the first set', () => {
    expect(fresh().snapshot()).toBeUndefined();
  });
});

describe('copyFirst', () => {
  it('gives a codec of its own a private copy that later writes do not touch', () => {
    const kept: Uint8Array[] = [];
    const raw = {
      name: 'raw',
      copyFirst: true,
      encode: (value: Uint8Array) => value,
      decode: (bytes: Uint8Array) => (kept.push(bytes), bytes),
    };
    const share = fresh(16, { codec: raw, value: new Uint8Array([5, 5]) });
    share.get();
    share.set(new Uint8Array([1, 1]));
    share.set(new Uint8Array([2, 2]));
    expect(kept[0]).toStrictEqual(new Uint8Array([5, 5]));
  });
});
