// The public surface of mmap-share; nothing else is part of the API.
export { MmapShare, type AttachOptions, type CreateOptions } from './share/share.js';
export type { Codec, CodecOption } from './codec.js';
export { MmapShareError, type ErrorCode } from './errors.js';
export { MAX_SIZE } from './layout.js';
export type {
  Awaitable,
  Cache,
  CacheStats,
  ChangesOptions,
  Compute,
  FetchOptions,
  LockAsyncOptions,
  LockInfo,
  Queue,
  QueueStats,
  SetOptions,
  UpdateOptions,
  Share,
  Verification,
  WatchOptions,
} from './api.js';
export { SharedMap, MAX_CAPACITY, MIN_CAPACITY, type MapStats, type SharedMapOptions } from './map/map.js';
export { SharedQueue, type SharedQueueOptions } from './queue/queue.js';
export type { EvictionPolicy } from './map/layout.js';
