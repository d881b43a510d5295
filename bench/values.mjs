// The values every contestant stores: plain records, about 100 B, 10 KB and 1 MB once v8-serialized.
import { serialize } from 'node:v8';

export const SIZES = { '100B': 100, '10KB': 10_000, '1MB': 1_000_000 };

const item = (id) => ({ id, name: `item-${id}`, score: id * 1.5, tags: ['a', 'b'] });

/** A value of about `bytes` serialized bytes, with the fields the workloads use: count, seq, ts. */
export function makeValue(bytes) {
  const value = { count: 0, seq: 0, ts: 0, items: [], note: '' };
  const perItem = serialize({ items: [item(100_000)] }).length - serialize({ items: [] }).length;
  const count = Math.max(0, Math.floor((bytes - serialize(value).length - 16) / perItem));
  value.items = Array.from({ length: count }, (_, id) => item(id));
  value.note = 'x'.repeat(Math.max(0, bytes - serialize(value).length));
  return value;
}

/** Room for one such value in any codec, with slack. */
export function roomFor(bytes) {
  return Math.ceil(bytes * 1.5) + 4096;
}
