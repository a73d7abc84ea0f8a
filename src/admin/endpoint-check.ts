import { describeFetchFailure } from '../net-failure.js';
import { signPayload } from '../signature/sign.js';

export type Status = 'PASS' | 'FAIL' | 'WARN' | 'SKIP';

export interface CheckResult {
  status: Status;
  check: string;
  detail: string;
}

/** Sends a request signed with `key` to the service's webhook, for a method it ignores: PASS when answered 204. */
export async function checkEndpoint(endpoint: string, key: string | undefined): Promise<CheckResult> {
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
    const hint = response.status === 401 ? ': the service does not accept the target\'s key; check ZITADEL_SIGNING_KEYS' : '';
    return { status: 'FAIL', check: 'endpoint', detail: `${endpoint} answered ${response.status} ${code}${hint}` };
  } catch (error) {
    return { status: 'FAIL', check: 'endpoint', detail: describeFetchFailure(endpoint, error) };
  }
}

