import { z } from 'zod';
import type { CredentialFactor } from './enforcement/decision.js';

export const CREATE_SESSION = '/zitadel.session.v2.SessionService/CreateSession';
export const SET_SESSION = '/zitadel.session.v2.SessionService/SetSession';

/** The `request.checks` entries that verify a credential; `user` alone (the login-name step) does not. */
export const CREDENTIAL_CHECKS = ['password', 'webAuthN', 'idpIntent', 'totp', 'otpSms', 'otpEmail'] as const;

/** The session factor each credential check verifies (`idpIntent` is the `intent` factor). */
const FACTOR_OF: Record<(typeof CREDENTIAL_CHECKS)[number], CredentialFactor> = {
  password: 'password',
  webAuthN: 'webAuthN',
  idpIntent: 'intent',
  totp: 'totp',
  otpSms: 'otpSms',
  otpEmail: 'otpEmail',
};

/** What the service does with one webhook. */
export type WebhookAction =
  /** A method this service does not handle: answer 204, do nothing. */
  | { kind: 'ignore'; method: string }
  /** A session call that verified no credential (login name, challenge request): no session became active. */
  | { kind: 'skip'; method: string; sessionId: string }
  /** A credential was verified on this session: enforce the limit for its user. `checked`: the factors this call verified. */
  | { kind: 'enforce'; method: string; sessionId: string; checked: CredentialFactor[] };

// Only the fields we read are kept (zod strips the rest), so the password and session tokens never leave
// this function inside the returned value.
const checksSchema = z.record(z.string(), z.unknown()).optional();
const envelopeSchema = z.object({
  fullMethod: z.string().min(1),
  request: z.object({ sessionId: z.string().optional(), checks: checksSchema }).optional(),
  response: z.object({ sessionId: z.string().optional() }).optional(),
});

const RESPONSE_NEEDED =
  'no response object: the target seems bound to the request of this method; bind it to the response, where the ' +
  'checks have been verified';

/** The body is not an execution payload this service understands; `detail` names the field, never its value. */
export class PayloadError extends Error {
  readonly detail: string;
  constructor(detail: string) {
    super(`not a session execution payload: ${detail}`);
    this.name = 'PayloadError';
    this.detail = detail;
  }
}

function invalid(detail: string): PayloadError {
  return new PayloadError(detail);
}

/**
 * Reads an Actions v2 execution payload (already JSON-parsed) and decides what to do with it. Pure: no I/O.
 * Throws `PayloadError` (answered ERR_PAYLOAD_INVALID) for a payload that is not one this service understands; the
 * error names the offending field, never its value.
 */
export function interpretPayload(payload: unknown): WebhookAction {
  const parsed = envelopeSchema.safeParse(payload);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first && first.path.length > 0 ? first.path.join('.') : 'body';
    throw invalid(`${where}: ${first?.message ?? 'not an execution payload'}`);
  }
  const { fullMethod, request, response } = parsed.data;

  let sessionId: string | undefined;
  if ((fullMethod === CREATE_SESSION || fullMethod === SET_SESSION) && response === undefined) throw invalid(RESPONSE_NEEDED);
  if (fullMethod === CREATE_SESSION) {
    sessionId = response?.sessionId;
    if (!sessionId) throw invalid('a CreateSession payload needs response.sessionId');
  } else if (fullMethod === SET_SESSION) {
    sessionId = request?.sessionId;
    if (!sessionId) throw invalid('a SetSession payload needs request.sessionId');
  } else {
    return { kind: 'ignore', method: fullMethod };
  }

  const checks = request?.checks ?? {};
  const checked = CREDENTIAL_CHECKS.filter((name) => checks[name] !== undefined && checks[name] !== null).map((name) => FACTOR_OF[name]);
  if (checked.length === 0) return { kind: 'skip', method: fullMethod, sessionId };
  return { kind: 'enforce', method: fullMethod, sessionId, checked };
}
