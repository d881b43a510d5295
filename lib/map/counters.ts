// Hit and miss counting: each instance counts in a row of its own in the region, folded into the totals at close.
import { isGone, ownOwner } from '../lock.js';
import {
  COUNTER_ROW_BYTES,
  COUNTER_ROWS,
  COUNTERS_BYTES,
  type Exclusive,
  F_COALESCED,
  F_HITS,
  F_MISSES,
  type MapView,
  OVERFLOW_BYTE,
} from './layout.js';

/** What a counted read found: the value, no value, or (fetch() only) the value another computation made. */
export type Outcome = 'hits' | 'misses' | 'coalesced';
const OUTCOMES = ['hits', 'misses', 'coalesced'] as const;
// Per outcome: its float64 in a counter row, from the row's first, and its float64 of the folded totals.
const IN_ROW = { coalesced: 1, hits: 2, misses: 3 } as const;
const TOTAL = { hits: F_HITS, misses: F_MISSES, coalesced: F_COALESCED } as const;
// Per outcome: its counter of the instances that found no free row, which add to it atomically.
const OVERFLOW = { hits: 0, misses: 1, coalesced: 2 } as const;

// A counter row: the word index of its pid (its start follows) and the float64 index of its first float64.
interface Row {
  pid: number;
  f64: number;
}

/** One instance's counts, in its own row so that no cache line is shared with another process's counting. */
export class Counters {
  #view: MapView;
  #exclusive: Exclusive;
  // The row, taken at the first count; undefined before, or if none was free: then `#overflow` is counted in.
  #row: Row | undefined;
  #rowTaken = false;
  #overflow: BigUint64Array | undefined;
  readonly #counts: Record<Outcome, number> = { hits: 0, misses: 0, coalesced: 0 };

  constructor(view: MapView, exclusive: Exclusive) {
    this.#view = view;
    this.#exclusive = exclusive;
  }

  count(outcome: Outcome): void {
    if (!this.#rowTaken) this.#claimRow();
    if (this.#row === undefined) {
      Atomics.add((this.#overflow ??= overflowOf(this.#view)), OVERFLOW[outcome], 1n);
      return;
    }
    this.#view.f64[this.#row.f64 + IN_ROW[outcome]] = ++this.#counts[outcome];
  }

  /** The cluster's counts: the folded totals, every live row, and what instances without a row counted. */
  totals(): Record<Outcome, number> {
    const { words, f64 } = this.#view;
    const overflow = (this.#overflow ??= overflowOf(this.#view));
    const totals = { hits: 0, misses: 0, coalesced: 0 };
    for (const outcome of OUTCOMES) {
      totals[outcome] = f64[TOTAL[outcome]]! + Number(Atomics.load(overflow, OVERFLOW[outcome]));
    }
    for (let row = 0; row < COUNTER_ROWS; row++) {
      const at = rowIndex(row);
      if (Atomics.load(words, at.pid) === 0) continue;
      for (const outcome of OUTCOMES) totals[outcome] += f64[at.f64 + IN_ROW[outcome]]!;
    }
    return totals;
  }

  /** Whether there is anything for fold() to do. */
  get held(): boolean {
    return this.#row !== undefined;
  }

  /** Adds this instance's counts to the totals and gives its row back. Under the lock. */
  fold(): void {
    const row = this.#row;
    if (row === undefined) return;
    const { f64, words } = this.#view;
    for (const outcome of OUTCOMES) {
      f64[TOTAL[outcome]]! += this.#counts[outcome];
      this.#counts[outcome] = 0;
    }
    foldRow(f64, row, false);
    freeRow(words, row);
    this.#row = undefined;
  }

  #claimRow(): void {
    this.#rowTaken = true;
    const { words } = this.#view;
    for (let pass = 0; pass < 2; pass++) {
      for (let row = 0; row < COUNTER_ROWS; row++) {
        const at = rowIndex(row);
        const owner = ownOwner();
        if (Atomics.compareExchange(words, at.pid, 0, owner.id) !== 0) continue;
        Atomics.store(words, at.pid + 1, owner.start);
        this.#row = at;
        return;
      }
      // Every row is taken: fold the rows of processes that are gone, then look once more.
      if (pass === 0) this.#exclusive(() => this.#foldDeadRows());
    }
  }

  #foldDeadRows(): void {
    const { words, f64 } = this.#view;
    for (let row = 0; row < COUNTER_ROWS; row++) {
      const at = rowIndex(row);
      const pid = Atomics.load(words, at.pid);
      const start = Atomics.load(words, at.pid + 1);
      if (pid === 0 || start === 0 || !isGone({ id: pid, start })) continue;
      foldRow(f64, at, true);
      freeRow(words, at);
    }
  }
}

// Gives a counter row back. Its start goes first, so that a row just claimed, whose start is not yet stored, reads
// as one being claimed (start 0), which no one folds, not as the thread that had it before.
function freeRow(words: Uint32Array, at: Row): void {
  Atomics.store(words, at.pid + 1, 0);
  Atomics.store(words, at.pid, 0);
}

function overflowOf(view: MapView): BigUint64Array {
  return new BigUint64Array(view.bytes.buffer, view.bytes.byteOffset + OVERFLOW_BYTE, OUTCOMES.length);
}

function rowIndex(row: number): Row {
  const byte = COUNTERS_BYTES + row * COUNTER_ROW_BYTES;
  return { pid: byte >>> 2, f64: byte >>> 3 };
}

// Empties a row's counts, adding them to the totals when `add` (a row of a thread that is gone).
function foldRow(f64: Float64Array, at: Row, add: boolean): void {
  for (const outcome of OUTCOMES) {
    if (add) f64[TOTAL[outcome]]! += f64[at.f64 + IN_ROW[outcome]]!;
    f64[at.f64 + IN_ROW[outcome]] = 0;
  }
}
