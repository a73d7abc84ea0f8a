import { describeFetchFailure } from '../net-failure.js';
import { signPayload } from '../signature/sign.js';
import type { PayloadKind } from '../zitadel/action-api.js';

export type Status = 'PASS' | 'FAIL' | 'WARN' | 'SKIP';

export interface CheckResult {
  status: Status;
  check: string;
  detail: string;
}

/**
 * Sends a request signed with `key` to the service's webhook, for a method it ignores: PASS when answered 204. The
 * body is JSON: a service in jwt/jwe mode answers `400 ERR_PAYLOAD_TYPE`, which it does only AFTER the HMAC passed,
 * so that answer proves the key too when the target's `payloadType` is jwt/jwe (and is a FAIL otherwise: the service
 * expects another type than the target sends).
 */
export async function checkEndpoint(endpoint: string, key: string | undefined, payloadType: PayloadKind = 'json'): Promise<CheckResult> {
  if (!key) return { status: 'SKIP', check: 'endpoint', detail: 'no signing key to sign with' };
  // A payload for a method the service ignores: it answers 204 and calls nothing.
  const body = JSON.stringify({ fullMethod: '/zitadel_session_limiter.Doctor/Check', request: {}, response: {} });
  try {
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'zitadel-signature': signPayload(body, key) },
      body,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    if (response.status === 204) return { status: 'PASS', check: 'endpoint', detail: `${endpoint} accepted a signed request` };
    const code = /"error":"(\w+)"/.exec(text)?.[1] ?? '';
    if (response.status === 400 && code === 'ERR_PAYLOAD_TYPE' && payloadType !== 'json') {
      return {
        status: 'PASS',
        check: 'endpoint',
        detail: `${endpoint} accepted the signature (it answered a JSON probe 400 ERR_PAYLOAD_TYPE, as a service expecting ${payloadType} should)`,
      };
    }
    if (response.status === 400 && code === 'ERR_PAYLOAD_TYPE') {
      return {
        status: 'FAIL',
        check: 'endpoint',
        detail: `${endpoint} answered 400 ERR_PAYLOAD_TYPE: the service expects a JWT or JWE payload but the target sends JSON; set ZITADEL_PAYLOAD_TYPE=json or register --payload-type`,
      };
    }
    const hint = response.status === 401 ? ': the service does not accept the target\'s key; check ZITADEL_SIGNING_KEYS' : '';
    return { status: 'FAIL', check: 'endpoint', detail: `${endpoint} answered ${response.status} ${code}${hint}` };
  } catch (error) {
    return { status: 'FAIL', check: 'endpoint', detail: describeFetchFailure(endpoint, error) };
  }
}

