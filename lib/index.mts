// The ESM entry: the CommonJS build re-exported, so both module systems share one MmapShare and one error class.
export { MAX_CAPACITY, MAX_SIZE, MIN_CAPACITY, MmapShare, MmapShareError, SharedMap } from './index.js';
export type {
  AttachOptions,
  Awaitable,
  Cache,
  CacheStats,
  ChangesOptions,
  Codec,
  CodecOption,
  Compute,
  CreateOptions,
  ErrorCode,
  EvictionPolicy,
  FetchOptions,
  LockAsyncOptions,
  LockInfo,
  MapStats,
  SetOptions,
  Share,
  SharedMapOptions,
  Verification,
  WatchOptions,
} from './index.js';
