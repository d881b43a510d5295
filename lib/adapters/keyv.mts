// The ESM Keyv entry: the CommonJS build re-exported, so both module systems share one class.
export { KeyvStore, MmapShareError } from './keyv.js';
export type { ErrorCode, KeyvStoreEntry } from './keyv.js';
