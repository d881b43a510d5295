// Round trips of every kind of value v8 serialization supports, and the shape of what get() returns.
import { serialize } from 'node:v8';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { type LockInfo, MmapShare } from '../dist/index.mjs';
import { fresh } from './helpers.js';

const circular: Record<string, unknown> = { name: 'loop' };
circular.self = circular;

const values: [string, unknown][] = [
  ['undefined', undefined],
  ['null', null],
  ['a number', 3.25],
  ['NaN', NaN],
  ['-0', -0],
  ['a string', 'héllo wörld ✓'],
  ['a boolean', false],
  ['a BigInt', 2n ** 100n],
  ['a Date', new Date('2026-11-22T10:00:00Z')],
  ['a RegExp', /ab+c/gi],
  [
    'a Map',
    new Map<unknown, unknown>([
      ['a', 1],
      [2, { b: [3] }],
    ]),
  ],
  ['a Set', new Set([1, 'two', 3n])],
  // eslint-disable-next-line no-sparse-arrays -- the hole is what is tested
  ['an array with holes', [1, , 3]],
  ['a Uint8Array', new Uint8Array([1, 2, 255])],
  ['a Float64Array', new Float64Array([1.5, -2.25])],
  ['a BigInt64Array', new BigInt64Array([-(2n ** 63n), 7n])],
  ['a Buffer', Buffer.from('bytes')],
  ['an ArrayBuffer', new Uint16Array([513, 1027]).buffer],
  ['an Error', new RangeError('out of range')],
  ['nested objects', { a: { b: { c: [1, 'x', { d: null }] } } }],
  ['a circular reference', circular],
];

describe('set() and get()', () => {
  it.each(values)('round-trips %s', (_, value) => {
    const share = fresh(1 << 16);
    share.set(value);
    expect(share.get()).toStrictEqual(value);
  });

  it('round-trips an invalid Date', () => {
    const share = fresh();
    share.set({ when: new Date(NaN) });
    const copy = share.get() as { when: Date };
    expect(copy.when).toBeInstanceOf(Date);
    expect(copy.when.getTime()).toBeNaN();
  });

  it('keeps the identity of shared references within a value', () => {
    const share = fresh();
    const inner = { n: 1 };
    share.set({ left: inner, right: inner });
    const copy = share.get() as { left: object; right: object };
    expect(copy.left).toBe(copy.right);
  });

  it('returns a fresh copy on every call', () => {
    const share = fresh<{ list: number[] }>();
    share.set({ list: [1] });
    const first = share.get();
    first?.list.push(2);
    expect(share.get()).toStrictEqual({ list: [1] });
    expect(share.get()).not.toBe(share.get());
  });

  it('returns undefined before the first set, and tells it from a stored undefined by version', () => {
    const share = fresh();
    expect(share.get()).toBeUndefined();
    expect(share.version).toBe(0);
    share.set(undefined);
    expect(share.get()).toBeUndefined();
    expect(share.version).toBe(1);
  });

  it('stores a value that fills the region exactly', () => {
    const value = { text: 'x'.repeat(1000) };
    const share = fresh(serialize(value).length);
    share.set(value);
    expect(share.get()).toStrictEqual(value);
  });

  it('commits the value given to create() as version 1', () => {
    const share = fresh(256, { value: { ready: true } });
    expect(share.version).toBe(1);
    expect(share.get()).toStrictEqual({ ready: true });
  });

  it('counts every set and update in version', () => {
    const share = fresh<number>();
    share.set(1);
    share.update((n) => (n ?? 0) + 1);
    share.set(5);
    expect(share.version).toBe(3);
    expect(share.get()).toBe(5);
  });
});

describe('types', () => {
  it('carries the value type through the API', () => {
    const share = fresh<{ hits: number }>();
    expectTypeOf(share.get()).toEqualTypeOf<{ hits: number } | undefined>();
    expectTypeOf(share.update)
      .parameter(0)
      .toEqualTypeOf<(current: { hits: number } | undefined) => { hits: number }>();
    expectTypeOf(share.lock()).toEqualTypeOf<LockInfo>();
    share.unlock();
    expectTypeOf(share.tryLock()).toEqualTypeOf<LockInfo | undefined>();
    share.unlock();
    expectTypeOf(MmapShare.attach<string[]>(share.handle).get()).toEqualTypeOf<string[] | undefined>();
    expectTypeOf(share.version).toBeNumber();
  });
});

describe('close()', () => {
  it('is idempotent, and runs at the end of a `using` block', () => {
    const share = MmapShare.create(64);
    let scopedOne: MmapShare | undefined;
    {
      using scoped = MmapShare.attach(share.handle);
      scoped.set('inside');
      scopedOne = scoped;
    }
    expect(scopedOne?.closed).toBe(true);
    expect(share.get()).toBe('inside');
    share.close();
    share.close();
    expect(share.closed).toBe(true);
  });
});
