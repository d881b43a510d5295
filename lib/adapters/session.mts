// The ESM express-session entry: the CommonJS build re-exported, so both module systems share one class.
export { MmapShareError, SessionStore } from './session.js';
export type { ErrorCode, SessionStoreOptions } from './session.js';
