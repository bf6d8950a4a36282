/**
 * The one error type of tslora. Every failure that reaches a user carries a stable `code`; the server maps codes
 * to HTTP statuses (httpStatusForCode) and the CLI maps them to exit codes (exitCodeForCode), each in one place.
 * Messages say what was expected, what was given and what to do (the `hint`).
 */
export type TsloraErrorCode =
  // configuration and command line
  | 'usage' // bad flag, env var or config file value (exit 2)
  // adapter lifecycle (spec b.4); the strings are the wire `error_code`
  | 'lora_disabled'
  | 'invalid_request'
  | 'already_loaded'
  | 'not_loaded'
  | 'not_found'
  | 'unsupported_adapter'
  | 'incompatible'
  | 'pinned_limit'
  | 'capacity'
  // model loading
  | 'model_not_found'
  | 'unsupported_model'
  | 'corrupt_file'
  // serving
  | 'unauthorized'
  | 'forbidden_path' // an adapter path outside --lora-allowed-dirs (403)
  | 'unsupported_media_type' // a JSON route called without Content-Type: application/json (415)
  | 'route_not_found'
  | 'queue_full'
  | 'shutting_down'
  | 'aborted'
  // client side
  | 'unreachable'
  | 'server_error'
  // native code and everything unexpected
  | 'native'
  | 'internal';

export interface TsloraErrorOptions {
  /** What the user should do about it; appended to the message when printed. */
  hint?: string;
  cause?: unknown;
  /** The request field or flag the error is about (OpenAI `param`). */
  param?: string;
}

export class TsloraError extends Error {
  readonly code: TsloraErrorCode;
  readonly hint?: string;
  readonly param?: string;

  constructor(code: TsloraErrorCode, message: string, options: TsloraErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TsloraError';
    this.code = code;
    this.hint = options.hint;
    this.param = options.param;
  }

  /** Message plus hint, as shown to a user. */
  describe(): string {
    return this.hint ? `${this.message} ${this.hint}` : this.message;
  }
}

export function isTsloraError(value: unknown): value is TsloraError {
  return value instanceof TsloraError;
}

/** HTTP status for each code (spec b.3/b.5: every adapter failure is a 400, like SGLang). */
export function httpStatusForCode(code: TsloraErrorCode): number {
  switch (code) {
    case 'unauthorized':
      return 401;
    case 'forbidden_path':
      return 403;
    case 'unsupported_media_type':
      return 415;
    case 'route_not_found':
      return 404;
    case 'queue_full':
    case 'shutting_down':
      return 503;
    case 'native':
    case 'internal':
    case 'server_error':
    case 'unreachable':
      return 500;
    default:
      return 400;
  }
}

/** Process exit codes of the CLI: 2 usage, then one per failure family so scripts can tell them apart. */
export const EXIT_CODES = {
  ok: 0,
  failure: 1,
  usage: 2,
  unreachable: 3,
  notLoaded: 4,
  rejected: 5,
  unauthorized: 6,
  checkFailed: 7,
} as const;

export function exitCodeForCode(code: TsloraErrorCode): number {
  switch (code) {
    case 'usage':
      return EXIT_CODES.usage;
    case 'unreachable':
      return EXIT_CODES.unreachable;
    case 'not_loaded':
      return EXIT_CODES.notLoaded;
    case 'unauthorized':
      return EXIT_CODES.unauthorized;
    case 'internal':
    case 'native':
      return EXIT_CODES.failure;
    default:
      return EXIT_CODES.rejected;
  }
}

/** Wraps anything thrown into a TsloraError (native errors carry a `code` property starting with "native"). */
export function toTsloraError(value: unknown): TsloraError {
  if (value instanceof TsloraError) return value;
  if (value instanceof Error) {
    const nativeCode = (value as Error & { code?: string }).code;
    if (typeof nativeCode === 'string' && nativeCode.startsWith('corrupt')) {
      return new TsloraError('corrupt_file', value.message, { cause: value });
    }
    return new TsloraError(nativeCode ? 'native' : 'internal', value.message, { cause: value });
  }
  return new TsloraError('internal', String(value));
}
