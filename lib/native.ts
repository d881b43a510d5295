// The only module that loads native addons, so a broken native build surfaces as one clear error.
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

export const mmapIo: MmapIo = load<MmapIo>('@riaskov/mmap-io');
export const fsExt: FsExt = load<FsExt>('fs-ext-extra-prebuilt');
