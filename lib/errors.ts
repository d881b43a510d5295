// The one error type of mmap-share: every failure carries a stable `code`; match on it, never on the message.

/** The stable codes of MmapShareError; the README's error table says when each is thrown. */
export type ErrorCode =
  | 'ERR_BAD_SIZE'
  | 'ERR_BAD_OPTION'
  | 'ERR_VALUE_TOO_LARGE'
  | 'ERR_BAD_KEY'
  | 'ERR_NOT_SERIALIZABLE'
  | 'ERR_BAD_HANDLE'
  | 'ERR_EXISTS'
  | 'ERR_NOT_LOCKED'
  | 'ERR_ALREADY_LOCKED'
  | 'ERR_LOCK_TIMEOUT'
  | 'ERR_NO_SPACE'
  | 'ERR_CLOSED'
  | 'ERR_CODEC_MISMATCH'
  | 'ERR_NATIVE_ADDON'
  | 'ERR_CONNECTION'
  | 'ERR_MISSING_PEER';

// Codes whose errors are also the matching built-in, so `instanceof RangeError` works as it does for Node's own errors.
const rangeCodes: ReadonlySet<ErrorCode> = new Set(['ERR_BAD_SIZE', 'ERR_VALUE_TOO_LARGE']);
const typeCodes: ReadonlySet<ErrorCode> = new Set(['ERR_BAD_OPTION', 'ERR_NOT_SERIALIZABLE', 'ERR_BAD_KEY']);

// In the global registry, so that an error from a second installed copy of the package is one of these too.
const brand = Symbol.for('mmap-share.error');

/**
 * Every error mmap-share throws. `instanceof MmapShareError` holds for all of them; those about a bad number are
 * also `RangeError`s, those about a bad argument or value also `TypeError`s.
 */
export class MmapShareError extends Error {
  /** What went wrong, stable across versions: match on it, not on the message. */
  declare readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    brandError(this, code);
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && brand in value;
  }
}

/** An `MmapShareError` that is also a `RangeError`. */
export class MmapShareRangeError extends RangeError {
  declare readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    brandError(this, code);
  }
}

/** An `MmapShareError` that is also a `TypeError`. */
export class MmapShareTypeError extends TypeError {
  declare readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    brandError(this, code);
  }
}

function brandError(error: Error, code: ErrorCode): void {
  Object.defineProperties(error, {
    code: { value: code, enumerable: true },
    name: { value: 'MmapShareError' },
    [brand]: { value: true },
  });
}

/** Builds the error for `code`, of the built-in class that fits it. */
export function shareError(code: ErrorCode, message: string, cause?: unknown): MmapShareError {
  const options = cause === undefined ? undefined : { cause };
  if (rangeCodes.has(code)) return new MmapShareRangeError(code, message, options) as MmapShareError;
  if (typeCodes.has(code)) return new MmapShareTypeError(code, message, options) as MmapShareError;
  return new MmapShareError(code, message, options);
}

/** The errno code of a system error, if it is one. */
export function errnoOf(error: unknown): string | undefined {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string'
    ? (error as NodeJS.ErrnoException).code
    : undefined;
}

/** A value as an error message shows it: strings quoted, objects and functions named, not dumped. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  return typeof value === 'object' && value !== null
    ? 'an object'
    : typeof value === 'function'
      ? 'a function'
      : String(value);
}
