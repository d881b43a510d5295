// The Redis entry, `mmap-share/redis`: the same API across machines. Only this entry loads the Redis client.
export { RedisShare, type RedisAttachOptions, type RedisShareOptions } from './share.js';
export { RedisMap, type RedisMapAttachOptions, type RedisMapOptions } from './map.js';
export { RedisQueue, type RedisQueueAttachOptions, type RedisQueueOptions } from './queue.js';
export type { RedisOptions } from './connection.js';
export type { Awaitable, Cache, CacheStats, Compute, LockAsyncOptions, Queue, QueueStats, Share } from '../api.js';
export { MmapShareError, type ErrorCode } from '../errors.js';
