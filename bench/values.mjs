// The values every contestant stores: plain records, about 100 B, 10 KB and 1 MB once v8-serialized.
import { serialize } from 'node:v8';

export const SIZES = { '100B': 100, '10KB': 10_000, '1MB': 1_000_000 };

/** A value of about `bytes` serialized bytes, with the fields the workloads use: count, seq, ts. */
export function makeValue(bytes) {
  const value = { count: 0, seq: 0, ts: 0, items: [] };
  for (let id = 0; serialize(value).length < bytes - 60; id++) {
    value.items.push({ id, name: `item-${id}`, score: id * 1.5, tags: ['a', 'b'] });
  }
  value.note = 'x'.repeat(Math.max(0, bytes - serialize(value).length - 4));
  return value;
}

/** Room for one such value in any codec, with slack. */
export function roomFor(bytes) {
  return Math.ceil(bytes * 1.5) + 4096;
}
