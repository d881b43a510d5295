// Named crash points in every write path, for the crash-point suite: MMAP_SHARE_CRASH_AT=<step> (or <step>@<n>) makes
// the process SIGKILL itself the first (or n-th) time it reaches that step. Read once at load; unset, a step is a call
// of an empty function.

/** Every step a writer can die at, in the order a write reaches them. */
export const STEPS = [
  'lock.taken',
  'lock.tookOver',
  'lock.releasing',
  'commit.payload',
  'commit.length',
  'put.evicted',
  'put.allocated',
  'put.written',
  'put.relinking',
  'put.linked',
  'put.freed',
  'remove.shifting',
  'remove.unlinked',
  'remove.freed',
  'sweep.removed',
  'clear.slots',
  'repair.dropped',
  'repair.moved',
  'repair.listed',
  'repair.counted',
  'renumber.record',
  'marker.claimed',
  'marker.renewed',
  'marker.dropped',
  'bell.ringing',
  'queue.written',
  'queue.committed',
  'queue.read',
  'queue.taken',
] as const;

export type Step = (typeof STEPS)[number];

const spec = /^([\w.]+)(?:@(\d+))?$/.exec(process.env.MMAP_SHARE_CRASH_AT ?? '');
let left = Number(spec?.[2] ?? 1);

/** Dies here when MMAP_SHARE_CRASH_AT names this step (and its count is reached). */
export const step: (name: Step) => void =
  spec === null
    ? () => {}
    : (name) => {
        if (name === spec[1] && --left === 0) process.kill(process.pid, 'SIGKILL');
      };
