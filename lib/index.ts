// The public surface of mmap-share; nothing else is part of the API.
export { MmapShare, type AttachOptions, type CreateOptions, type LockAsyncOptions } from './share.js';
export type { ChangesOptions, WatchOptions } from './watch.js';
export type { Codec, CodecOption } from './codec.js';
export type { LockInfo } from './lock.js';
export { MmapShareError, type ErrorCode } from './errors.js';
export { MAX_SIZE } from './layout.js';
export type { Awaitable, Cache, CacheStats, Share } from './api.js';
export {
  SharedMap,
  MAX_CAPACITY,
  MIN_CAPACITY,
  type FetchOptions,
  type MapStats,
  type SetOptions,
  type SharedMapOptions,
} from './map/map.js';
export type { Verification } from './map/repair.js';
export type { EvictionPolicy } from './map/layout.js';
