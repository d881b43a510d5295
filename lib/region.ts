// Creating, attaching and mapping regions: the file behind the memory and the handles that lead other processes to it.
import { randomBytes } from 'node:crypto';
import { closeSync, constants, existsSync, fstatSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { describe, errnoOf, shareError } from './errors.js';
import { type Codec, codecFor } from './codec.js';
import {
  checkHeader,
  expectKind,
  HEADER_BYTES,
  headerWords,
  initHeader,
  type Mapping,
  regionBytes,
  type RegionKind,
  regionId,
  W_CODEC,
  W_PID_NS,
  W_TIME_NS,
} from './layout.js';
import { namespaceOf } from './lock.js';
import { loadAddons, mapShared, MAX_REGION_BYTES } from './native.js';

/** An open region: its own descriptor (so its own flock) and its mapping. */
export interface Region extends Mapping {
  readonly kind: RegionKind;
  readonly fd: number;
  /** The random id in the header: the same for every instance of the region. */
  readonly id: string;
  /** Its file's device and inode: the same for every instance of the region, another for a copy of its file. */
  readonly file: string;
  /** What another process passes to attach(): a path for named regions, a /proc reference otherwise. */
  readonly handle: string;
}

// Linux's O_TMPFILE: __O_TMPFILE (the same on every architecture Node runs on) with O_DIRECTORY, which is not.
const O_TMPFILE = 0o20000000 | constants.O_DIRECTORY;
const HANDLE_PREFIX = 'mmap-share:';
const ENV_PREFIX = 'MMAP_SHARE_';
const NAME_PATTERN = /^[A-Za-z0-9_-]{1,100}$/;
const HANDLE_PATTERN = /^mmap-share:(\d+):(\d+):([0-9a-f]{16})$/;
const ZERO_CHUNK = 1 << 20;

/**
 * Creates a region of `kind` with SIZE word `size`, for values written by the codec `codec` (its header id): a file
 * with no name in /dev/shm, or the named file `path`. `init` writes what the kind keeps past the common header,
 * before the magic word makes the region ready.
 */
export function createRegion(
  kind: RegionKind,
  size: number,
  codec: number,
  path?: string,
  init?: (bytes: Buffer) => void,
): Region {
  const absolute = path === undefined ? undefined : resolve(path);
  loadAddons();
  const bytes = regionBytes(kind, size);
  // Refused before a file is made or a page written: the kinds' own limits keep within this one.
  if (bytes > MAX_REGION_BYTES) {
    throw shareError('ERR_BAD_SIZE', `a region may take ${MAX_REGION_BYTES} bytes, and this one needs ${bytes}`);
  }
  const fd = absolute === undefined ? openNameless() : openNew(absolute);
  try {
    allocate(fd, bytes);
    const map = mapRegion(fd, bytes);
    const id = randomBytes(8);
    init?.(map.bytes);
    initHeader(map.words, kind, size, [id.readUInt32LE(0), id.readUInt32LE(4)], codec, {
      pid: namespaceOf('pid'),
      time: namespaceOf('time'),
    });
    return opened(map, kind, size, fd, fstatSync(fd), absolute);
  } catch (error) {
    closeSync(fd);
    if (absolute !== undefined) unlinkSync(absolute);
    throw error;
  }
}

/** Whether `ref` is a region name (which create() exports to the environment), rather than a handle or path. */
export function isName(ref: string): boolean {
  return NAME_PATTERN.test(ref);
}

/** Checks the `name` and `path` options of create(). */
export function checkPlacement(name: unknown, path: unknown): void {
  if (name !== undefined && (typeof name !== 'string' || !isName(name))) {
    throw shareError('ERR_BAD_OPTION', `name must be 1 to 100 letters, digits, _ or -, got ${describe(name)}`);
  }
  if (path !== undefined && (typeof path !== 'string' || path === '')) {
    throw shareError('ERR_BAD_OPTION', `path must be a non-empty string, got ${describe(path)}`);
  }
}

/** The environment variable that carries the handle of the region named `name`. */
export function envKey(name: string): string {
  return ENV_PREFIX + name;
}

/** Attaches to a region by name, handle or path, through a descriptor of its own. */
export function attachRegion(refOrName: string): Region {
  loadAddons();
  const ref = isName(refOrName) ? process.env[envKey(refOrName)] : refOrName;
  if (ref === undefined) {
    throw shareError('ERR_BAD_HANDLE', `no region named ${refOrName}: ${envKey(refOrName)} is not in the environment`);
  }
  const match = HANDLE_PATTERN.exec(ref);
  if (ref.startsWith(HANDLE_PREFIX) && match === null) throw shareError('ERR_BAD_HANDLE', `malformed handle ${ref}`);
  const [, pid, fd, id] = match ?? [];
  // Opening /proc/<pid>/fd/<fd> makes a new open file description, so this instance's flock excludes the others.
  const file = match === null ? resolve(ref) : `/proc/${pid}/fd/${fd}`;
  const own = openExisting(file, match === null ? constants.O_NOFOLLOW : 0, ref);
  try {
    const stat = fstatSync(own);
    if (!stat.isFile()) throw shareError('ERR_BAD_HANDLE', `${ref} is not a regular file`);
    if (match === null && stat.uid !== process.geteuid?.()) {
      throw shareError('ERR_BAD_HANDLE', `${ref} belongs to uid ${stat.uid}, not to this process's user`);
    }
    if (stat.size <= HEADER_BYTES) throw shareError('ERR_BAD_HANDLE', `${ref} is not an mmap-share region`);
    const map = mapRegion(own, stat.size);
    const { kind, size } = checkHeader(map.words, stat.size, ref);
    for (const [kind, word] of [
      ['pid', W_PID_NS],
      ['time', W_TIME_NS],
    ] as const) {
      if (Atomics.load(map.words, word) !== namespaceOf(kind)) {
        throw shareError(
          'ERR_BAD_HANDLE',
          `${ref} was created in another ${kind} namespace, in which its lock cannot check its holder`,
        );
      }
    }
    if (id !== undefined && regionId(map.words) !== id) {
      throw shareError('ERR_BAD_HANDLE', `${ref} is gone: its process now holds another region at that descriptor`);
    }
    return opened(map, kind, size, own, stat, match === null ? file : undefined);
  } catch (error) {
    closeSync(own);
    throw error;
  }
}

/**
 * Attaches to a region of `kind` by name, handle or path, with the codec its header names (or `given`, which must be
 * that one); what is not such a region is refused with ERR_BAD_HANDLE.
 */
export function attachKind(ref: unknown, kind: RegionKind, given: unknown): { region: Region; codec: Codec } {
  if (typeof ref !== 'string' || ref === '') {
    throw shareError('ERR_BAD_HANDLE', `ref must be a handle, a name or a path, got ${describe(ref)}`);
  }
  const region = attachRegion(ref);
  try {
    expectKind(region, kind, ref);
    return { region, codec: codecFor(Atomics.load(region.words, W_CODEC), given) };
  } catch (error) {
    closeRegion(region);
    throw error;
  }
}

/** Removes a named region's file, after checking that it is one. */
export function unlinkRegion(path: string): void {
  closeSync(attachRegion(path).fd);
  unlinkSync(resolve(path));
}

/**
 * Releases the descriptor, and with it any flock this region holds. The mapping itself stays until its Buffer is
 * garbage-collected: the addon has no munmap.
 */
export function closeRegion(region: Region): void {
  closeSync(region.fd);
}

function opened(
  map: Omit<Mapping, 'size'>,
  kind: RegionKind,
  size: number,
  fd: number,
  stat: { dev: number; ino: number },
  path: string | undefined,
): Region {
  const id = regionId(map.words);
  return {
    ...map,
    kind,
    size,
    fd,
    id,
    file: `${stat.dev}:${stat.ino}`,
    handle: path ?? `${HANDLE_PREFIX}${process.pid}:${fd}:${id}`,
  };
}

function openNameless(): number {
  const dir = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  return openSync(dir, O_TMPFILE | constants.O_RDWR, 0o600);
}

function openNew(path: string): number {
  try {
    return openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (error) {
    if (errnoOf(error) === 'EEXIST') throw shareError('ERR_EXISTS', `${path} already exists`, error);
    throw error;
  }
}

function openExisting(file: string, flags: number, ref: string): number {
  try {
    return openSync(file, constants.O_RDWR | flags);
  } catch (error) {
    const reason = errnoOf(error) === 'ELOOP' ? 'is a symbolic link' : `cannot be opened (${errnoOf(error) ?? error})`;
    throw shareError('ERR_BAD_HANDLE', `${ref} ${reason}`, error);
  }
}

// tmpfs allocates pages on first touch, and a touch that finds no room raises SIGBUS, which kills the process.
// Writing every page now turns that into ENOSPC here, while it can still be reported.
function allocate(fd: number, bytes: number): void {
  const zeros = Buffer.alloc(Math.min(bytes, ZERO_CHUNK));
  try {
    for (let offset = 0; offset < bytes;) {
      offset += writeSync(fd, zeros, 0, Math.min(zeros.length, bytes - offset), offset);
    }
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') {
      throw shareError('ERR_NO_SPACE', `no room for a region of ${bytes} bytes (${code})`, error);
    }
    throw error;
  }
}

// A closed region's mapping is given back only once its buffer is garbage collected and the event loop turns, so a
// loop that opens regions without yielding piles mappings up. At the kernel's limit (vm.max_map_count) any allocation
// of the process can fail and abort it: staying under half of it turns that into ERR_NO_SPACE.
const MAPPING_BUDGET = Math.floor(maxMapCount() / 2);
let mappings = 0;
const unmapped = new FinalizationRegistry<undefined>(() => mappings--);

function mapRegion(fd: number, bytes: number): Omit<Mapping, 'size'> {
  if (mappings >= MAPPING_BUDGET) {
    throw shareError(
      'ERR_NO_SPACE',
      `${mappings} region mappings are open or not yet given back; closed regions give theirs back once the event ` +
        'loop turns, so yield (await) now and then in a loop that opens many',
    );
  }
  let mapped: Buffer;
  try {
    mapped = mapShared(fd, bytes);
  } catch (error) {
    if (errnoOf(error) === 'ENOMEM') throw shareError('ERR_NO_SPACE', `cannot map ${bytes} bytes (ENOMEM)`, error);
    throw error;
  }
  mappings++;
  unmapped.register(mapped, undefined);
  return { bytes: mapped, ...headerWords(mapped) };
}

function maxMapCount(): number {
  try {
    return Number(readFileSync('/proc/sys/vm/max_map_count', 'utf8'));
  } catch {
    return 65_530; // the kernel's default
  }
}
