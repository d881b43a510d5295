// The ESM entry: the CommonJS build re-exported, so both module systems share one MmapShare and one error class.
export { MAX_SIZE, MmapShare, MmapShareError } from './index.js';
export type {
  AttachOptions,
  ChangesOptions,
  Codec,
  CodecOption,
  CreateOptions,
  ErrorCode,
  LockAsyncOptions,
  LockInfo,
  WatchOptions,
} from './index.js';
