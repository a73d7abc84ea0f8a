import { Code, ConnectError } from '@connectrpc/connect';
import { DirectoryError, type DirectoryMethod, type FailureKind } from '../enforcement/ports.js';

/**
 * The one place where gRPC status codes meet the core's failure vocabulary (see src/enforcement/ports.ts).
 * `Unknown` is what a broken connection surfaces as (it carries no answer from ZITADEL).
 */
export const UNAVAILABLE_CODES: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
  Code.Aborted,
  Code.Canceled,
  Code.Unknown,
]);

/** Worth another try within the budget: ZITADEL Cloud's 429 (ResourceExhausted), timeouts, resets. Not Canceled. */
const RETRYABLE_CODES: ReadonlySet<Code> = new Set([Code.Unavailable, Code.ResourceExhausted, Code.DeadlineExceeded, Code.Aborted, Code.Unknown]);

/** Codes that retrying cannot fix: the token, its permissions or the request are wrong. */
const MISCONFIGURED_CODES: ReadonlySet<Code> = new Set([Code.PermissionDenied, Code.Unauthenticated, Code.InvalidArgument]);

export function failureKindOf(code: Code): FailureKind {
  if (UNAVAILABLE_CODES.has(code)) return 'unavailable';
  if (MISCONFIGURED_CODES.has(code)) return 'misconfigured';
  return 'refused';
}

/** A failed ZITADEL call, in the core's vocabulary, with gRPC's verdict kept for logs. Carries no request data. */
export class ZitadelCallError extends DirectoryError {
  readonly grpcCode: Code;

  constructor(method: DirectoryMethod, cause: unknown) {
    const error = ConnectError.from(cause);
    super(method, failureKindOf(error.code), RETRYABLE_CODES.has(error.code), `ZITADEL ${method} failed: ${Code[error.code]}: ${error.rawMessage}`);
    this.name = 'ZitadelCallError';
    this.grpcCode = error.code;
  }

  /** True when ZITADEL could not be reached or was overloaded, rather than refusing the call. */
  get unavailable(): boolean {
    return this.kind === 'unavailable';
  }
}
