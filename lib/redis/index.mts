// The ESM Redis entry: the CommonJS build re-exported, so both module systems share one class of each.
export { MmapShareError, RedisMap, RedisShare } from './index.js';
export type {
  Awaitable,
  Cache,
  CacheStats,
  Compute,
  ErrorCode,
  RedisAttachOptions,
  RedisMapAttachOptions,
  RedisMapOptions,
  RedisOptions,
  RedisShareOptions,
  Share,
} from './index.js';
