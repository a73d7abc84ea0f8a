import { BudgetExhaustedError } from './enforcement/retry.js';
import { EnforcementError, OverloadedError } from './enforcement/enforcer.js';
import { DirectoryError } from './enforcement/ports.js';
import { UserBusyError } from './enforcement/user-lock.js';
import { ServiceError, type ErrorCode } from './errors.js';
import { PayloadError } from './payload.js';
import { PayloadRefusedError, PayloadTypeMismatchError, WebKeysUnavailableError } from './payload-type/failures.js';
import type { BodyForm, PayloadType } from './payload-type/form.js';
import { SignatureError, type SignatureFailure, type SignatureRefusal } from './signature/verify.js';

/**
 * The one place where failures meet the catalogue (src/errors.ts): the core, the adapters and the signature check
 * speak their own vocabulary (a signature verdict, an unavailable or refused directory call, a busy user, an
 * overload); the HTTP edge answers with what this maps them to. Nothing from the request is echoed.
 */

const SIGNATURE_CODES: Record<SignatureFailure, ErrorCode> = {
  missing: 'ERR_SIGNATURE_MISSING',
  malformed: 'ERR_SIGNATURE_MALFORMED',
  stale: 'ERR_SIGNATURE_STALE',
  future: 'ERR_SIGNATURE_FUTURE',
  mismatch: 'ERR_SIGNATURE_MISMATCH',
};

/** Fastify's and Node's own codes for requests refused before a route handled them. */
const FRAMEWORK_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'ERR_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'ERR_BODY_NOT_JSON',
  // A client that left (or was cut off at REQUEST_TIMEOUT_MS) before its whole body arrived.
  ECONNRESET: 'ERR_BAD_REQUEST',
  // Node's HTTP parser ('clientError'): a request that never reached a route.
  ERR_HTTP_REQUEST_TIMEOUT: 'ERR_REQUEST_TIMEOUT',
  HPE_HEADER_OVERFLOW: 'ERR_HEADERS_TOO_LARGE',
};

const FRAMEWORK_DETAILS: Partial<Record<string, string>> = {
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'Content-Length does not match the body',
  ECONNRESET: 'the connection closed before the whole body arrived',
};

/** The answer to a refused signature (cached per reason and detail: this is the path forged requests take). */
const refusals = new Map<string, ServiceError>();
export function signatureRefusal(refusal: SignatureRefusal): ServiceError {
  const key = `${refusal.reason}/${refusal.detail ?? ''}`;
  let error = refusals.get(key);
  if (!error) refusals.set(key, (error = new ServiceError(SIGNATURE_CODES[refusal.reason], refusal.detail)));
  return error;
}

const FORM_NAMES: Record<BodyForm, string> = { json: 'JSON', jwt: 'JWT', jwe: 'JWE', other: 'neither JSON nor a compact JWT/JWE' };

/** ERR_PAYLOAD_TYPE, naming what arrived, what is configured and what to change. */
export function payloadTypeRefusal(arrived: BodyForm, configured: PayloadType): ServiceError {
  const fix =
    arrived === 'other'
      ? `the body is ${FORM_NAMES.other}`
      : `the target sends ${FORM_NAMES[arrived]}; set ZITADEL_PAYLOAD_TYPE=${arrived} or change the target's payload type to ${FORM_NAMES[configured]}`;
  return new ServiceError('ERR_PAYLOAD_TYPE', `${fix}; ZITADEL_PAYLOAD_TYPE is ${configured}`);
}

/** Maps any failure to our stable codes; what it does not know is `fallback` (a bug of ours, unless said otherwise). */
export function toServiceError(error: unknown, fallback: ErrorCode = 'ERR_INTERNAL'): ServiceError {
  if (error instanceof EnforcementError) return toServiceError(error.cause);
  if (error instanceof ServiceError) return error;
  if (error instanceof SignatureError) return signatureRefusal({ valid: false, reason: error.reason, ...(error.detail ? { detail: error.detail } : {}) });
  if (error instanceof PayloadError) return new ServiceError('ERR_PAYLOAD_INVALID', error.detail);
  if (error instanceof PayloadTypeMismatchError) return payloadTypeRefusal(error.arrived, error.configured);
  if (error instanceof PayloadRefusedError) {
    return new ServiceError(error.reason === 'undecryptable' ? 'ERR_PAYLOAD_UNDECRYPTABLE' : 'ERR_PAYLOAD_SIGNATURE', error.detail);
  }
  if (error instanceof WebKeysUnavailableError) return new ServiceError('ERR_ZITADEL_UNAVAILABLE', error.detail);
  if (error instanceof OverloadedError) return new ServiceError('ERR_OVERLOADED');
  if (error instanceof UserBusyError) return new ServiceError('ERR_BUSY', error.message);
  if (error instanceof BudgetExhaustedError) {
    return new ServiceError('ERR_ZITADEL_UNAVAILABLE', `${error.what} kept failing until the enforcement budget ran out`);
  }
  if (error instanceof DirectoryError) {
    return new ServiceError(error.kind === 'unavailable' ? 'ERR_ZITADEL_UNAVAILABLE' : 'ERR_ZITADEL_REFUSED', `${error.method} failed`);
  }
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && code in FRAMEWORK_CODES) return new ServiceError(FRAMEWORK_CODES[code]!, FRAMEWORK_DETAILS[code]);
  return new ServiceError(fallback);
}

/** A failure that retrying cannot fix: the token, its permissions or the request are wrong (logged as such). */
export function isConfigurationError(error: unknown): boolean {
  const cause = error instanceof EnforcementError ? error.cause : error;
  return cause instanceof DirectoryError && cause.kind === 'misconfigured';
}
