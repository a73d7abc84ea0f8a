import { randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';

/**
 * One signed POST per the Standard Webhooks specification (https://www.standardwebhooks.com/): headers
 * `webhook-id`, `webhook-timestamp` (seconds, the time of this attempt) and `webhook-signature` (`v1,<base64
 * HMAC-SHA256>` over `id.timestamp.body`), computed by the `standardwebhooks` package. The id stays the same across
 * retries of one event (receivers deduplicate on it); the timestamp is the attempt's, so a retry after hours still
 * passes the receiver's freshness check.
 */

/** A new event id (`evt_` + a random UUID). */
export const newEventId = (): string => `evt_${randomUUID()}`;

export interface SendResult {
  /** The HTTP status; undefined when no answer came (connection refused, timeout, TLS). */
  status: number | undefined;
  /** Why it failed, without the URL's query or any header (for logs). */
  error?: string;
}

export class EventSigner {
  readonly #webhook: Webhook;
  constructor(secret: string) {
    this.#webhook = new Webhook(secret);
  }

  headers(id: string, at: Date, body: string): Record<string, string> {
    return {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': this.#webhook.sign(id, at, body),
    };
  }
}

/** POSTs `body` signed with `signer`; never throws. Redirects are not followed (a signed event goes where it was told). */
export async function sendSigned(url: URL, signer: EventSigner, id: string, body: string, at: Date, timeoutMs: number): Promise<SendResult> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: signer.headers(id, at, body),
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    // The answer's body is not read beyond what frees the connection.
    await response.body?.cancel().catch(() => undefined);
    return { status: response.status };
  } catch (error) {
    const cause = (error as Error & { cause?: { code?: string; message?: string } }).cause;
    const reason = error instanceof Error && error.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (cause?.code ?? cause?.message ?? (error as Error).message);
    return { status: undefined, error: reason };
  }
}
