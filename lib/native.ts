// The only module that loads native addons, so a broken native build surfaces as one clear error. They load when the
// first region is made or attached: a process that only imports the package, or only its Redis entry, loads neither.
import { dirname, join } from 'node:path';
import { getSystemErrorName } from 'node:util';
import { shareError } from './errors.js';

type MmapIo = typeof import('@riaskov/mmap-io').default;
type FsExt = typeof import('fs-ext-extra-prebuilt');

function load<T>(name: string): T {
  try {
    return require(name) as T;
  } catch (error) {
    throw shareError(
      'ERR_NATIVE_ADDON',
      `the native addon ${name} failed to load; rebuild it with \`npm rebuild ${name}\` (needs python3, make and a C++ compiler)`,
      error,
    );
  }
}

// The mapping addon's own loader pulls in node-pre-gyp (npmlog, semver, ...) only to find its binary, about 80 ms of
// every process's start; the binary is loaded from where its build puts it, and that loader is only the fallback. Its
// JavaScript adds nothing that is used here.
function loadMmapIo(): MmapIo {
  const root = dirname(require.resolve('@riaskov/mmap-io/package.json'));
  const abi = `node-v${process.versions.modules}-${process.platform}-${process.arch}`;
  for (const binary of [`build/binding/Release/${abi}/mmap_io.node`, 'build/Release/mmap_io.node']) {
    try {
      return require(join(root, binary)) as MmapIo;
    } catch {
      // Not built there: the next place, then the loader, which explains a failure.
    }
  }
  return load<MmapIo>('@riaskov/mmap-io');
}

let addons: { readonly mmapIo: MmapIo; readonly fsExt: FsExt } | undefined;

/** Loads both addons, once; ERR_NATIVE_ADDON when one cannot be. Called before a region is made or attached. */
export function loadAddons(): void {
  addons ??= { mmapIo: loadMmapIo(), fsExt: load<FsExt>('fs-ext-extra-prebuilt') };
}

/** flock(2) on `fd`; a region exists, so the addons are loaded. */
export function flock(fd: number, how: 'ex' | 'sh' | 'un'): void {
  addons!.fsExt.flockSync(fd, how);
}

/** The most bytes one mapping can take: the addon reads the length as a C int. */
export const MAX_REGION_BYTES = 2 ** 31 - 1;

/** Maps `bytes` of `fd` shared, read and write. A failure is a system error with its errno code, as fs's are. */
export function mapShared(fd: number, bytes: number): Buffer {
  try {
    const { mmapIo } = addons!;
    return mmapIo.map(bytes, (mmapIo.PROT_READ | mmapIo.PROT_WRITE) as 3, mmapIo.MAP_SHARED, fd);
  } catch (error) {
    // The addon reports only the errno number, in its message.
    const errno = /^mmap failed, (\d+)$/.exec((error as Error).message)?.[1];
    if (errno === undefined) throw error;
    const code = getSystemErrorName(-Number(errno));
    throw Object.assign(new Error(`mmap: ${code}`, { cause: error }), { code, errno: -Number(errno), syscall: 'mmap' });
  }
}
