// Hit and miss counting: each instance counts in a row of its own in the region, folded into the totals at close.
import { isGone, ownOwner } from '../lock.js';
import {
  COUNTER_ROW_BYTES,
  COUNTER_ROWS,
  COUNTERS_BYTES,
  type Exclusive,
  F_HITS,
  F_MISSES,
  type MapView,
} from './layout.js';

// The float64 index of a counter row's hits (misses follow), and the word index of its pid (its start follows).
interface Row {
  pid: number;
  hits: number;
}

/** One instance's counts, in its own row so that no cache line is shared with another process's counting. */
export class Counters {
  #view: MapView;
  #exclusive: Exclusive;
  // The row, taken at the first count; undefined before, or if none was free.
  #row: Row | undefined;
  #rowTaken = false;
  #hits = 0;
  #misses = 0;

  constructor(view: MapView, exclusive: Exclusive) {
    this.#view = view;
    this.#exclusive = exclusive;
  }

  count(hit: boolean): void {
    const { f64 } = this.#view;
    if (!this.#rowTaken) this.#claimRow();
    const row = this.#row;
    if (hit) {
      this.#hits++;
      if (row !== undefined) f64[row.hits] = this.#hits;
    } else {
      this.#misses++;
      if (row !== undefined) f64[row.hits + 1] = this.#misses;
    }
  }

  /** The cluster's hits and misses: the folded totals, every live row, and this instance's counts if it has no row. */
  totals(): { hits: number; misses: number } {
    const { words, f64 } = this.#view;
    let hits = f64[F_HITS]! + (this.#row === undefined ? this.#hits : 0);
    let misses = f64[F_MISSES]! + (this.#row === undefined ? this.#misses : 0);
    for (let row = 0; row < COUNTER_ROWS; row++) {
      const at = rowIndex(row);
      if (Atomics.load(words, at.pid) === 0) continue;
      hits += f64[at.hits]!;
      misses += f64[at.hits + 1]!;
    }
    return { hits, misses };
  }

  /** Whether there is anything for fold() to do. */
  get held(): boolean {
    return this.#row !== undefined || this.#hits + this.#misses > 0;
  }

  /** Adds this instance's counts to the totals and gives its row back. Under the lock. */
  fold(): void {
    const { f64, words } = this.#view;
    f64[F_HITS]! += this.#hits;
    f64[F_MISSES]! += this.#misses;
    this.#hits = 0;
    this.#misses = 0;
    const row = this.#row;
    if (row === undefined) return;
    f64[row.hits] = 0;
    f64[row.hits + 1] = 0;
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
      f64[F_HITS]! += f64[at.hits]!;
      f64[F_MISSES]! += f64[at.hits + 1]!;
      f64[at.hits] = 0;
      f64[at.hits + 1] = 0;
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

function rowIndex(row: number): Row {
  const byte = COUNTERS_BYTES + row * COUNTER_ROW_BYTES;
  return { pid: byte >>> 2, hits: (byte + 16) >>> 3 };
}
