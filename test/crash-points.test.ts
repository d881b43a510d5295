// Every named crash point of every write path (lib/crash.ts), SQLite-style: a writer is killed at each step in turn,
// at several of its occurrences, and what it leaves is checked against what it acknowledged. Per run:
//   1. A writer (fixtures/crash-writer.mjs) runs a deterministic workload on a fresh region with MMAP_SHARE_CRASH_AT
//      set, logging each operation before it starts and once it is done, until it SIGKILLs itself at the step. A
//      writer that ends otherwise never reached the step: the workload missed it. For the steps that need a holder
//      that died (lock.tookOver, repair.*), the writer first runs victims that die holding the lock.
//   2. The region file is copied, and on the copy a second writer dies inside its own recovery (a repair, or taking
//      the lock over), so that the next one finishes a recovery cut short.
//   3. A checker (fixtures/crash-check.mjs) attaches to both: verify(), every key's value, size, a set() and a
//      fetch() of each key whose marker a dead writer may hold, each within a bound. It runs in a process of its own
//      because those calls block while a lock is held: a lock never freed must show as a check that timed out, not
//      as a suite that hangs.
//   4. The log is replayed against what each process read after each operation and what the checker read: each
//      acknowledged value must be there (unless deleted, expired, or evicted as the eviction counter shows), the
//      operation in flight may have had its effect or not, and nothing else may appear.
// `STRESS_CRASH_KILLS` (npm run stress -- --crash-kills N) sets how many occurrences of each step are killed;
// `CRASH_STEPS=put.linked@4,repair.moved` runs only those, to reproduce one.
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Step, STEPS } from '../dist/crash.js';
import { MmapShare, SharedMap } from '../dist/index.mjs';
import { fixture } from './helpers.js';
import { figure, stress } from './stress/options.js';

type Kind = 'map' | 'share';

// A small map, so that it fills by count (24 entries in 32 slots: long probe runs, so removals shift) and by bytes.
const MAP = { capacity: 64 * 1024, maxEntries: 24 };
const SHARE_SIZE = 1024;
// The bounds of the checks: a lock or a fetch that takes longer is stuck.
const LOCK_BOUND_MS = 2000;
const FETCH_BOUND_MS = 3000;
const WRITER_TIMEOUT_MS = 120_000;
const CHECK_TIMEOUT_MS = 30_000;
// Cycles of the workload before a writer gives up on reaching its step.
const CYCLES = 60;

// How many times, at least, each workload reaches a step: 17 unless the step needs a victim's death each time (about
// 0.3 s of a process apiece), or a renewal of a fetch's lease (one per fetch computing for 3.5 s). repair.moved comes
// only when a victim's cut-short backward shift left an entry that must move back: about every other victim.
const REACH: Partial<Record<Step, number>> = {
  'lock.tookOver': 8,
  'repair.dropped': 8,
  'repair.moved': 4,
  'repair.listed': 8,
  'repair.counted': 8,
  'marker.renewed': 8,
};
const NEEDS_VICTIMS = new Set<Step>([
  'lock.tookOver',
  'repair.dropped',
  'repair.moved',
  'repair.listed',
  'repair.counted',
]);
// Victims that die in a backward shift leave an entry in two slots, which a repair drops and then moves entries back.
const SHIFT_VICTIMS = new Set<Step>(['repair.dropped', 'repair.moved']);

function kindsOf(step: Step): Kind[] {
  // The bell's and the queue's steps have suites of their own: test/bell.test.ts, test/queue-crash.test.ts.
  if (step.startsWith('bell.') || step.startsWith('queue.')) return [];
  if (step.startsWith('commit.')) return ['share'];
  if (step.startsWith('lock.')) return ['map', 'share'];
  return ['map'];
}

/** `kills` occurrence counts from 1 to `reach`, spread geometrically (1, 4, 17), repeating once all are taken. */
function spread(reach: number, kills: number): number[] {
  if (kills <= 1) return [1].slice(0, kills);
  if (kills >= reach) return Array.from({ length: kills }, (_, i) => (i % reach) + 1);
  const counts: number[] = [];
  for (let i = 0; i < kills; i++) {
    const ideal = Math.round(reach ** (i / (kills - 1)));
    counts.push(Math.min(Math.max(ideal, (counts.at(-1) ?? 0) + 1), reach - (kills - 1 - i)));
  }
  return counts;
}

interface Run {
  readonly step: Step;
  readonly kind: Kind;
  readonly count: number;
  readonly index: number;
}

function plan(): Run[] {
  const only = process.env.CRASH_STEPS?.split(',').map((spec) => spec.trim().split('@'));
  const runs: Run[] = [];
  for (const step of STEPS) {
    const asked = only?.filter(([name]) => name === step);
    if (asked?.length === 0) continue;
    const given = asked?.filter(([, count]) => count !== undefined).map(([, count]) => Number(count));
    const counts = given?.length ? given : spread(REACH[step] ?? 17, stress.crashKills);
    for (const kind of kindsOf(step)) for (const count of counts) runs.push({ step, kind, count, index: runs.length });
  }
  return runs;
}

const runs = plan();
if (runs.length === 0) throw new Error(`CRASH_STEPS=${process.env.CRASH_STEPS} names no step of ${STEPS.join(', ')}`);
const root = mkdtempSync(join(tmpdir(), 'mmap-share-crash-'));
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

interface Exit {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

// Runs node `args` to its end; `crashAt` is its MMAP_SHARE_CRASH_AT, unset when undefined. One that outlives
// `timeout` gets SIGTERM, and `timedOut`, so that its end is not taken for a crash point's SIGKILL.
function launch(args: string[], crashAt: string | undefined, timeout: number): Promise<Exit> {
  const env = { ...process.env };
  delete env.MMAP_SHARE_CRASH_AT;
  if (crashAt !== undefined) env.MMAP_SHARE_CRASH_AT = crashAt;
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGTERM');
  }, timeout);
  return new Promise((resolve) =>
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ pid: child.pid ?? 0, code, signal, stdout, stderr, timedOut });
    }),
  );
}

const ended = (exit: Exit) =>
  exit.timedOut
    ? 'timed out'
    : `ended with ${exit.signal ?? `code ${exit.code}`}${exit.stderr ? `: ${exit.stderr.trim().slice(-600)}` : ''}`;

// The log, as the writer and its victims wrote it (fixtures/crash-writer.mjs).
interface Op {
  readonly op: string;
  readonly key?: string;
  readonly keys?: string[];
  readonly size?: number;
  readonly ttl?: number;
}
interface Begin {
  readonly pid: number;
  readonly i: number;
  readonly begin: Op;
  readonly tag: string;
  readonly t: number;
  /** For a map's puts: whether the map was full enough that this one may evict. */
  readonly mayEvict?: boolean;
}
/** What a process read from a map: each listed key's tag (those not whole in `bad`), between times s0 and s1. */
interface MapRead {
  readonly s0: number;
  readonly s1: number;
  readonly present: Record<string, string>;
  readonly bad: string[];
  /** The map's eviction counter. */
  readonly ev: number;
}
interface Done {
  readonly pid: number;
  readonly i: number;
  readonly done: unknown;
  readonly t: number;
}
type MapDone = Done & MapRead;
type ShareDone = Done & { readonly value: string | null; readonly bad: boolean };
type LogLine = Partial<Begin & Done> & { pid: number; attach?: string; end?: boolean };

/** What one run found: counts for the figure, and every problem, each a line. */
interface Tally {
  torn: number;
  lost: number;
  stuck: number;
  problems: string[];
  // What was judged: states read (after an operation, or by the checker), the keys' values in them, and fetches of
  // keys whose marker a dead writer may have held.
  reads: number;
  values: number;
  markers: number;
}

const ABSENT = '(absent)';
const PUTS = new Set(['set', 'update', 'fetch', 'fetchFail', 'fetchMany']);
const FETCHES = new Set(['fetch', 'fetchFail', 'fetchMany']);

// The keys an operation stores, each with the tag of its value.
function writes(line: Begin): [string, string][] {
  const { begin: op, tag } = line;
  if (op.op === 'fetchMany') return op.keys!.map((key, j) => [key, `${tag}.${j}`]);
  if (op.key !== undefined && PUTS.has(op.op) && op.op !== 'fetchFail') return [[op.key, tag]];
  return [];
}

const named = (line: Begin) =>
  `${line.tag} ${line.begin.op}${line.begin.key === undefined ? '' : ` ${line.begin.key}`}`;
const shown = (cands: Set<string>) => [...cands].join(' or ');

interface Written {
  readonly key: string;
  readonly ttl: number;
  readonly t0: number;
  t1: number;
}

/**
 * The log replayed: the state each process read after each operation, judged against the one read before, the
 * operations of processes that died meanwhile (which may have had their effect or not) and the operation just done
 * (which must have had it).
 */
class Replay {
  state = new Map<string, string>();
  shareValue = ABSENT;
  ev = 0;
  readonly written = new Map<string, Written>();
  readonly keys = new Set<string>();
  readonly pending = new Map<number, Begin>();
  /** Operations in flight in processes that died, all of them. */
  readonly dead: Begin[] = [];
  readonly deadPids = new Set<number>();

  constructor(
    readonly kind: Kind,
    readonly tally: Tally,
  ) {}

  line(line: LogLine): void {
    if (line.attach !== undefined || line.end) return;
    if (line.begin !== undefined) return this.#begin(line as Begin);
    const done = line as Done;
    const begin = this.pending.get(done.pid);
    if (begin?.i !== done.i) {
      this.tally.problems.push(`the log has ${done.pid}.${done.i} done but not begun`);
      return;
    }
    this.pending.delete(done.pid);
    for (const [, tag] of writes(begin)) this.written.get(tag)!.t1 = done.t;
    const uncertain = this.takeUncertain(done.pid);
    const where = `after ${named(begin)}`;
    if (this.kind === 'map') this.judgeMap(where, uncertain, { begin, done: done as MapDone }, done as MapDone);
    else this.judgeShare(where, uncertain, { begin, done: done as ShareDone }, done as ShareDone);
  }

  #begin(line: Begin): void {
    this.pending.set(line.pid, line);
    if (line.begin.key !== undefined) this.keys.add(line.begin.key);
    const ttl = line.begin.ttl ?? 0;
    for (const [key, tag] of writes(line)) {
      this.keys.add(key);
      this.written.set(tag, { key, ttl, t0: line.t, t1: Infinity });
    }
    if (this.kind === 'share' && line.begin.op !== 'victim') {
      this.written.set(line.tag, { key: '-', ttl: 0, t0: line.t, t1: Infinity });
    }
  }

  /** The operations in flight in processes that died: all but `alive`'s, and but a parent's wait for its victim. */
  takeUncertain(alive?: number): Begin[] {
    const uncertain: Begin[] = [];
    for (const [pid, line] of this.pending) {
      if (pid === alive || line.begin.op === 'victim') continue;
      uncertain.push(line);
      this.pending.delete(pid);
      this.deadPids.add(pid);
    }
    this.dead.push(...uncertain);
    return uncertain;
  }

  // Adds ABSENT to `cands` where an entry may have expired by `hi`, and removes those surely expired by `lo`.
  #expire(cands: Set<string>, lo: number, hi: number): void {
    for (const tag of [...cands]) {
      const written = this.written.get(tag);
      if (written === undefined || written.ttl === 0) continue;
      if (written.t0 + written.ttl <= hi) cands.add(ABSENT);
      if (written.t1 + written.ttl <= lo) cands.delete(tag);
    }
  }

  /** Judges what was read (`read`) after `current` (undefined: the checker's read) and the `uncertain` operations. */
  judgeMap(
    where: string,
    uncertain: Begin[],
    current: { begin: Begin; done: MapDone } | undefined,
    read: MapRead,
    adopt = true,
  ): void {
    const { tally } = this;
    const keys = new Set([...this.state.keys(), ...Object.keys(read.present), ...read.bad]);
    for (const line of [...uncertain, ...(current ? [current.begin] : [])]) {
      if (line.begin.key !== undefined) keys.add(line.begin.key);
      for (const [key] of writes(line)) keys.add(key);
    }
    // Entries evicted beyond those the counter shows: one for each put cut short between a removal and its count.
    let unexplained = read.ev - this.ev + uncertain.filter((line) => line.mayEvict).length;
    const op = current?.begin.begin;
    const result = current?.done.done as Record<string, unknown> | boolean | null | undefined;
    const computed = op?.op !== 'fetch' || (result as { computed: boolean }).computed;
    tally.reads++;
    for (const key of keys) {
      tally.values++;
      let cands = new Set([this.state.get(key) ?? ABSENT]);
      let evictable = false;
      for (const line of uncertain) {
        const stores = writes(line).filter(([k]) => k === key);
        for (const [, tag] of stores) cands.add(tag);
        if ((line.begin.op === 'delete' && line.begin.key === key) || line.begin.op === 'clear') cands.add(ABSENT);
        if (line.mayEvict && stores.length === 0) evictable = true;
      }
      if (current !== undefined && op !== undefined) {
        const { begin, done } = current;
        const before = new Set(cands);
        this.#expire(before, begin.t, done.t);
        const mayBeAbsent = before.has(ABSENT) || evictable;
        const saw = (found: string, what: string) => {
          if (found === ABSENT ? mayBeAbsent : before.has(found)) return;
          if (found !== ABSENT && this.written.get(found)?.key !== key) tally.torn++;
          else tally.lost++;
          tally.problems.push(`${where}: ${what} ${found}, not ${shown(before)}`);
        };
        const stores = writes(begin).filter(([k]) => k === key);
        if (op.key === key || stores.length > 0) {
          if (op.op === 'update') saw(((result as { current: string | null }).current ?? ABSENT) as string, 'it found');
          if (op.op === 'delete') {
            if (result === true) saw([...before].find((tag) => tag !== ABSENT) ?? 'a value', 'it deleted');
            else saw(ABSENT, 'it found');
          }
          if (op.op === 'fetch' && computed) saw(ABSENT, 'it computed in place of');
          if (op.op === 'fetch' && !computed) {
            const tag = (result as { tag: string }).tag;
            saw(tag, 'it returned');
            cands = new Set([tag]);
          } else if (stores.length > 0) cands = new Set(stores.map(([, tag]) => tag));
          if (op.op === 'delete') cands = new Set([ABSENT]);
          if (op.op === 'fetchFail') {
            if ((result as { threw: boolean }).threw) saw(ABSENT, 'its compute ran in place of');
            else {
              tally.torn++;
              tally.problems.push(`${where}: fetch() returned a value for ${key}, which is never stored`);
            }
            cands = new Set([ABSENT]);
          }
        }
        if (op.op === 'clear') cands = new Set([ABSENT]);
        if (PUTS.has(op.op) && computed && stores.length === 0) evictable = true;
      }
      this.#expire(cands, read.s0, read.s1);
      const actual = read.bad.includes(key) ? undefined : (read.present[key] ?? ABSENT);
      if (actual === undefined) {
        tally.torn++;
        tally.problems.push(`${where}: ${key} holds a value that is not whole`);
      } else if (cands.has(actual)) {
        // The one effect of a finished operation, or either of one cut short.
      } else if (actual === ABSENT && evictable && unexplained > 0) {
        unexplained--;
      } else if (actual !== ABSENT && this.written.get(actual)?.key !== key) {
        tally.torn++;
        tally.problems.push(`${where}: ${key} holds ${actual}, a value never stored for it`);
      } else {
        tally.lost++;
        tally.problems.push(`${where}: ${key} is ${actual === ABSENT ? 'missing' : actual}, not ${shown(cands)}`);
      }
    }
    if (adopt) {
      this.state = new Map(Object.entries(read.present));
      this.ev = read.ev;
    }
  }

  judgeShare(
    where: string,
    uncertain: Begin[],
    current: { begin: Begin; done: ShareDone } | undefined,
    read: { value: string | null; bad: boolean },
    adopt = true,
  ): void {
    const { tally } = this;
    tally.reads++;
    tally.values++;
    let cands = new Set([this.shareValue, ...uncertain.map((line) => line.tag)]);
    if (current !== undefined && current.begin.begin.op !== 'victim') {
      const result = current.done.done as { current?: string | null } | null;
      if (current.begin.begin.op === 'update') {
        const found = result?.current ?? ABSENT;
        if (!cands.has(found)) {
          if (found !== ABSENT && !this.written.has(found)) tally.torn++;
          else tally.lost++;
          tally.problems.push(`${where}: update() found ${found}, not ${shown(cands)}`);
        }
      }
      cands = new Set([current.begin.tag]);
    }
    const actual = read.value ?? ABSENT;
    if (read.bad) {
      tally.torn++;
      tally.problems.push(`${where}: the value is not whole`);
    } else if (!cands.has(actual)) {
      if (actual !== ABSENT && !this.written.has(actual)) tally.torn++;
      else tally.lost++;
      tally.problems.push(`${where}: the value is ${actual}, not ${shown(cands)}`);
    }
    if (adopt) this.shareValue = actual;
  }
}

interface MapReport extends MapRead {
  verification: { ok: boolean; problems: string[] };
  verifyMs: number;
  listed: string[];
  size: number;
  setMs: number;
  probe: boolean;
  fetches: { key: string; ms: number; computed: boolean; tag: string }[];
  purged: { size: number; listed: number };
  final: { ok: boolean; problems: string[] };
}
interface ShareReport {
  tryLock: boolean;
  lockMs: number;
  lockError?: string;
  info?: { ownerDied: boolean; deadPid?: number };
  value?: string | null;
  bad?: boolean;
  relockMs?: number;
  probe?: boolean;
}

// The checker's report on one file, judged: recovery, each value, size, the lock and fetch() within their bounds.
function judgeReport(replay: Replay, uncertain: Begin[], where: string, report: MapReport | ShareReport): void {
  const { tally } = replay;
  const stuck = (what: string) => {
    tally.stuck++;
    tally.problems.push(`${where}: ${what}`);
  };
  if (replay.kind === 'share') {
    const share = report as ShareReport;
    if (share.lockError !== undefined || share.lockMs > LOCK_BOUND_MS) {
      return stuck(`the lock took ${share.lockMs.toFixed(0)} ms (${share.lockError ?? 'no error'})`);
    }
    if (!share.tryLock) tally.problems.push(`${where}: tryLock() did not take the lock over from a holder that died`);
    if (!share.info?.ownerDied || !replay.deadPids.has(share.info.deadPid!)) {
      tally.problems.push(`${where}: lockAsync() reported ${JSON.stringify(share.info)}, not a writer that died`);
    }
    replay.judgeShare(where, uncertain, undefined, { value: share.value ?? null, bad: share.bad! }, false);
    if (share.relockMs! > LOCK_BOUND_MS) stuck(`lock() after unlock() took ${share.relockMs!.toFixed(0)} ms`);
    if (!share.probe) tally.problems.push(`${where}: the value set after recovery did not read back`);
    return;
  }
  const map = report as MapReport;
  if (!map.verification.ok) tally.problems.push(`${where}: verify(): ${map.verification.problems.join('; ')}`);
  if (map.verifyMs > LOCK_BOUND_MS) stuck(`verify() took ${map.verifyMs.toFixed(0)} ms to get the lock and repair`);
  replay.judgeMap(where, uncertain, undefined, map, false);
  const present = Object.keys(map.present);
  const unlisted = present.filter((key) => !map.listed.includes(key));
  if (unlisted.length > 0) {
    tally.lost += unlisted.length;
    tally.problems.push(`${where}: get() finds ${unlisted.join(', ')}, which keys() does not list`);
  }
  // Keys listed, then expired before get() read them, are still counted in size: only ttl'd keys may.
  const ttlKeys = new Set([...replay.written.values()].filter((w) => w.ttl > 0).map((w) => w.key));
  const gone = map.listed.filter((key) => map.present[key] === undefined && !map.bad.includes(key));
  for (const key of gone.filter((key) => !ttlKeys.has(key))) {
    tally.lost++;
    tally.problems.push(`${where}: keys() lists ${key}, which get() does not find`);
  }
  if (map.size < present.length || map.size > present.length + ttlKeys.size) {
    tally.problems.push(`${where}: size is ${map.size} with ${present.length} keys (${ttlKeys.size} may have expired)`);
  }
  if (map.purged.size !== map.purged.listed) {
    tally.problems.push(`${where}: after purgeStale(), size is ${map.purged.size} with ${map.purged.listed} keys`);
  }
  if (map.setMs > LOCK_BOUND_MS) stuck(`set() took ${map.setMs.toFixed(0)} ms`);
  if (!map.probe) tally.problems.push(`${where}: the key set after recovery did not read back`);
  for (const fetch of map.fetches) {
    if (fetch.key !== 'fetch-probe') tally.markers++;
    if (fetch.tag === 'timed out' || fetch.ms > FETCH_BOUND_MS) {
      stuck(`fetch(${fetch.key}) took ${fetch.ms.toFixed(0)} ms`);
    } else if (fetch.computed ? fetch.tag !== 'check' : fetch.tag !== map.present[fetch.key]) {
      // Not computing, it must return what the key held; computing, what its compute returned.
      tally.torn++;
      tally.problems.push(`${where}: fetch(${fetch.key}) ${fetch.computed ? 'computed' : 'returned'} ${fetch.tag}`);
    }
  }
  if (!map.final.ok) tally.problems.push(`${where}: the last verify(): ${map.final.problems.join('; ')}`);
}

interface Outcome extends Tally {
  readonly run: Run;
  killed: boolean;
  ms: number;
}

const label = (run: Run) => `${run.step}@${run.count} (${run.kind === 'map' ? 'SharedMap' : 'MmapShare'})`;

async function execute(run: Run): Promise<Outcome> {
  const outcome: Outcome = {
    run,
    killed: false,
    ms: 0,
    torn: 0,
    lost: 0,
    stuck: 0,
    problems: [],
    reads: 0,
    values: 0,
    markers: 0,
  };
  const started = performance.now();
  try {
    await attempt(run, outcome);
  } catch (error) {
    outcome.problems.push(`the run failed: ${(error as Error).stack}`);
  }
  outcome.ms = performance.now() - started;
  return outcome;
}

async function attempt(run: Run, outcome: Outcome): Promise<void> {
  const dir = join(root, String(run.index));
  mkdirSync(dir);
  const path = join(dir, 'region');
  const log = join(dir, 'log');
  if (run.kind === 'map') SharedMap.create({ ...MAP, path }).close();
  else MmapShare.create(SHARE_SIZE, { path }).close();
  const config = {
    kind: run.kind,
    path,
    log,
    role: 'writer',
    victims: NEEDS_VICTIMS.has(run.step),
    victimSteps: SHIFT_VICTIMS.has(run.step) ? ['remove.shifting'] : undefined,
    wrap: run.kind === 'map',
    slow: run.step === 'marker.renewed' ? run.count : 0,
    first: 0,
    cycles: CYCLES,
  };
  const at = `${run.step}@${run.count}`;
  const writer = await launch([fixture('crash-writer.mjs'), JSON.stringify(config)], at, WRITER_TIMEOUT_MS);
  if (writer.signal !== 'SIGKILL' || writer.timedOut) {
    outcome.problems.push(
      writer.code === 0
        ? `the workload never reached ${at} in ${CYCLES} cycles`
        : `the writer ${ended(writer)}, before it reached ${at}`,
    );
    return;
  }
  outcome.killed = true;
  const copy = `${path}.second`;
  copyFileSync(path, copy);
  const secondAt = run.kind === 'share' ? 'lock.tookOver' : run.index % 2 ? 'repair.counted' : 'repair.listed';
  const second = await launch([fixture('crash-check.mjs'), 'second', run.kind, copy], secondAt, CHECK_TIMEOUT_MS);
  if (second.signal !== 'SIGKILL' || second.timedOut) {
    outcome.problems.push(`a second writer, to die at ${secondAt} recovering from the first, ${ended(second)}`);
  }
  const replay = new Replay(run.kind, outcome);
  const lines = readFileSync(log, 'utf8').trimEnd().split('\n');
  for (const text of lines) replay.line(JSON.parse(text) as LogLine);
  const uncertain = replay.takeUncertain();
  replay.deadPids.add(writer.pid);
  replay.deadPids.add(second.pid);
  const markerKeys = new Set(
    replay.dead.filter((line) => FETCHES.has(line.begin.op)).flatMap((line) => line.begin.keys ?? [line.begin.key!]),
  );
  const request = { kind: run.kind, paths: [path, copy], keys: [...replay.keys], markerKeys: [...markerKeys] };
  const check = await launch(
    [
      fixture('crash-check.mjs'),
      'check',
      JSON.stringify({ ...request, lockBound: LOCK_BOUND_MS, fetchBound: FETCH_BOUND_MS }),
    ],
    undefined,
    CHECK_TIMEOUT_MS,
  );
  const said = check.stdout
    .split('\n')
    .filter((text) => text !== '')
    .map(
      (text) => JSON.parse(text) as { path: string; phase?: string; error?: string; report?: MapReport | ShareReport },
    );
  for (const file of request.paths) {
    const where = file === path ? 'after the writer died' : `after a second writer died at ${secondAt}`;
    const report = said.find((entry) => entry.path === file && entry.report)?.report;
    if (report !== undefined) {
      judgeReport(replay, uncertain, where, report);
      continue;
    }
    const last = said.filter((entry) => entry.path === file).at(-1);
    if (last?.error !== undefined) {
      outcome.problems.push(`${where}: the checker failed in ${last.phase ?? 'attach'}: ${last.error}`);
      continue;
    }
    if (check.timedOut) outcome.stuck++;
    outcome.problems.push(`${where}: the checker ${ended(check)} in ${last?.phase ?? 'attach'}`);
    break;
  }
}

// Launch-heavy runs share 2 cores well three at a time; the longest (a 3.5 s compute, victims) go first. Each run's
// outcome is a promise from the start, which its test awaits; a worker opens its gate when its turn comes.
const order = [...runs].sort((a, b) => weight(b) - weight(a));
function weight(run: Run): number {
  if (run.step === 'marker.renewed') return 1000;
  return NEEDS_VICTIMS.has(run.step) ? 100 + run.count : run.count;
}
const gates = new Map<Run, () => void>();
const outcomes = new Map(
  runs.map((run) => [run, new Promise<void>((open) => gates.set(run, open)).then(() => execute(run))]),
);
const outcomeOf = (run: Run) => outcomes.get(run)!;
beforeAll(() => {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < order.length) {
      const run = order[next++]!;
      gates.get(run)!();
      await outcomeOf(run);
    }
  };
  for (let i = 0; i < Math.min(4, availableParallelism() + 1); i++) void worker();
});

const ordinal = (n: number) =>
  `${n}${n % 10 === 1 && n !== 11 ? 'st' : n % 10 === 2 && n !== 12 ? 'nd' : n % 10 === 3 && n !== 13 ? 'rd' : 'th'}`;
const steps = [...new Set(runs.map((run) => run.step))];

for (const step of steps) {
  const mine = runs.filter((run) => run.step === step);
  const counts = [...new Set(mine.map((run) => run.count))].map(ordinal).join(', ');
  const kinds = kindsOf(step).length > 1 ? ' in a SharedMap and an MmapShare' : '';
  const why = step === 'marker.renewed' ? " (its fetches compute for 3.5 s, past their leases' first renewal)" : '';
  it(`${step}: writers killed at its ${counts} reach${kinds}${why} leave nothing torn, lost or stuck`, async () => {
    const done = await Promise.all(mine.map(outcomeOf));
    const failures = done.flatMap((outcome) =>
      outcome.problems.map(
        (problem) =>
          `${label(outcome.run)}: ${problem}\n  reproduce: CRASH_STEPS=${outcome.run.step}@${outcome.run.count} npx vitest run test/crash-points.test.ts`,
      ),
    );
    expect(failures).toStrictEqual([]);
  }, 600_000);
}

it('crash points: the figure', async () => {
  const done = await Promise.all(runs.map(outcomeOf));
  const sum = (field: 'torn' | 'lost' | 'stuck') => done.reduce((total, outcome) => total + outcome[field], 0);
  const kills = Math.min(
    ...steps.flatMap((step) =>
      kindsOf(step).map((kind) => done.filter((o) => o.run.step === step && o.run.kind === kind && o.killed).length),
    ),
  );
  const slowest = Math.max(...done.map((outcome) => outcome.ms));
  figure(
    `crash points: ${steps.length} steps, each killed ${kills} times, ${sum('torn')} torn, ${sum('lost')} lost, ${sum('stuck')} stuck`,
  );
  const total = (field: 'reads' | 'values' | 'markers') => done.reduce((sum, outcome) => sum + outcome[field], 0);
  process.stderr.write(
    `crash points: ${done.length} runs (the slowest ${(slowest / 1000).toFixed(1)} s), ${total('reads')} states ` +
      `judged against the log, ${total('values')} key values, ${total('markers')} fetches of dead writers' markers\n`,
  );
  expect({ torn: sum('torn'), lost: sum('lost'), stuck: sum('stuck') }).toStrictEqual({ torn: 0, lost: 0, stuck: 0 });
  // Each step's own test names the runs that did not reach it.
  const planned = Math.min(
    ...steps.flatMap((step) =>
      kindsOf(step).map((kind) => runs.filter((run) => run.step === step && run.kind === kind).length),
    ),
  );
  expect(kills).toBe(planned);
}, 600_000);
