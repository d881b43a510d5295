// The ESM express-rate-limit entry: the CommonJS build re-exported, so both module systems share one class.
export { MmapShareError, RateLimitStore } from './rate-limit.js';
export type { ErrorCode, RateLimitStoreOptions } from './rate-limit.js';
