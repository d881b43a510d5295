// The ESM Redis entry: the CommonJS build re-exported, so both module systems share one class of each.
export { MmapShareError, RedisMap, RedisQueue, RedisShare } from './index.js';
export type {
  Awaitable,
  Cache,
  CacheStats,
  Compute,
  ErrorCode,
  LockAsyncOptions,
  Queue,
  QueueStats,
  RedisAttachOptions,
  RedisMapAttachOptions,
  RedisMapOptions,
  RedisOptions,
  RedisQueueAttachOptions,
  RedisQueueOptions,
  RedisShareOptions,
  Share,
} from './index.js';
