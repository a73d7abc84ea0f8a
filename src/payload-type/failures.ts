import type { BodyForm, PayloadType } from './form.js';

/**
 * The failure vocabulary of opening a payload (the error map turns each into its catalogue code). Messages and
 * details never carry anything of the body: not a header value, not a kid, not a byte of the plaintext.
 */

/** The body's form is not the configured payload type (ERR_PAYLOAD_TYPE). */
export class PayloadTypeMismatchError extends Error {
  readonly arrived: BodyForm;
  readonly configured: PayloadType;
  constructor(arrived: BodyForm, configured: PayloadType) {
    super(`payload type mismatch: a ${arrived} body, ZITADEL_PAYLOAD_TYPE=${configured}`);
    this.name = 'PayloadTypeMismatchError';
    this.arrived = arrived;
    this.configured = configured;
  }
}

/**
 * Why an opened payload is refused: `undecryptable` (no configured key opens the JWE: ERR_PAYLOAD_UNDECRYPTABLE) or
 * `signature` (decrypted, or not encrypted, but the JWS is not signed by a current instance web key:
 * ERR_PAYLOAD_SIGNATURE). `rotate-key --finish` relies on the two staying distinct.
 */
export type PayloadRefusal = 'undecryptable' | 'signature';

export class PayloadRefusedError extends Error {
  readonly reason: PayloadRefusal;
  readonly detail: string;
  constructor(reason: PayloadRefusal, detail: string) {
    super(`payload refused (${reason}): ${detail}`);
    this.name = 'PayloadRefusedError';
    this.reason = reason;
    this.detail = detail;
  }
}

/** The instance's web keys could not be fetched, and none cached fits (ERR_ZITADEL_UNAVAILABLE). */
export class WebKeysUnavailableError extends Error {
  /** Safe to show the caller: what failed, without addresses. */
  readonly detail: string;
  constructor(detail: string, options?: { cause?: unknown }) {
    super(`instance web keys unavailable: ${detail}`, options);
    this.name = 'WebKeysUnavailableError';
    this.detail = detail;
  }
}
