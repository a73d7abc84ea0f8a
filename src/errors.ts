import { BODY_LIMIT_BYTES, LARGE_BODY_MAX_BYTES, LARGE_BODY_POOL_BYTES } from './routes.js';

/**
 * Every error this service answers with, in one place: the stable code (shared by HTTP responses, logs and
 * the README), its HTTP status, and a message that says what to do next.
 *
 * Messages never contain request data: the payloads carry plaintext passwords and live session tokens.
 */
export const errorCatalog = {
  ERR_SIGNATURE_MISSING: {
    status: 401,
    message:
      'The ZITADEL-Signature header is missing. Register this endpoint as an Actions v2 target in ZITADEL; ' +
      'only ZITADEL-signed requests are accepted.',
  },
  ERR_SIGNATURE_MALFORMED: {
    status: 401,
    message:
      'The ZITADEL-Signature header is not of the form t=<unix seconds>,v1=<hex>. Check that nothing between ' +
      'ZITADEL and this service rewrites the header.',
  },
  ERR_SIGNATURE_MISMATCH: {
    status: 401,
    message:
      'No v1 signature matches any configured key. Check ZITADEL_SIGNING_KEYS against the target\'s signing ' +
      'key, and that the raw body reaches this service unchanged.',
  },
  ERR_SIGNATURE_STALE: {
    status: 401,
    message:
      'The signature timestamp is older than SIGNATURE_TOLERANCE_SECONDS allows. Check the clocks of ZITADEL ' +
      'and this service; replayed requests are refused.',
  },
  ERR_SIGNATURE_FUTURE: {
    status: 401,
    message:
      'The signature timestamp lies further in the future than the allowed clock skew. Synchronise the clocks ' +
      'of ZITADEL and this service (NTP).',
  },
  ERR_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    message: 'Send the payload as Content-Type: application/json, as ZITADEL does.',
  },
  ERR_BODY_TOO_LARGE: {
    status: 413,
    message:
      `The body exceeds ${LARGE_BODY_MAX_BYTES / 1024} KiB, or ${BODY_LIMIT_BYTES / 1024} KiB without a Content-Length or while ` +
      `${LARGE_BODY_POOL_BYTES / (1024 * 1024)} MiB of other large bodies are being read; ZITADEL session payloads are far smaller. Check the target binding.`,
  },
  ERR_BODY_NOT_JSON: {
    status: 400,
    message: 'The signature is valid but the body is not JSON. Check what is bound to this target.',
  },
  ERR_PAYLOAD_INVALID: {
    status: 400,
    message:
      'The signature is valid but the body is not an Actions v2 execution payload this service understands. ' +
      'Bind the target to the response of SessionService CreateSession and SetSession.',
  },
  ERR_PAYLOAD_TYPE: {
    status: 400,
    message:
      'The signature is valid but the body is not of the payload type this service expects. ZITADEL_PAYLOAD_TYPE ' +
      "must equal the target's payload type (JSON, JWT or JWE).",
  },
  ERR_PAYLOAD_SIGNATURE: {
    status: 401,
    message:
      'The payload is not a JWT signed by a current web key of the ZITADEL instance at ZITADEL_URL. Check that ' +
      'ZITADEL_URL names the instance that sends this target\'s webhooks.',
  },
  ERR_PAYLOAD_UNDECRYPTABLE: {
    status: 401,
    message:
      'No key of ZITADEL_PAYLOAD_KEYS opens the encrypted payload. Add the private key of the target\'s active public ' +
      'key to ZITADEL_PAYLOAD_KEYS (during a rotation, both keys).',
  },
  ERR_ZITADEL_UNAVAILABLE: {
    status: 503,
    message: 'ZITADEL could not be reached or timed out; the limit was not enforced for this login. Check ZITADEL_URL and the network.',
  },
  ERR_ZITADEL_REFUSED: {
    status: 502,
    message:
      'ZITADEL refused a call; the limit was not enforced for this login. Check that ZITADEL_TOKEN is valid and ' +
      'holds session.read and session.delete (e.g. role IAM_USER_MANAGER).',
  },
  ERR_OVERLOADED: {
    status: 503,
    message:
      'Too many enforcements are waiting (ZITADEL is slow or down); this one was shed. Check ZITADEL, or raise ' +
      'MAX_CONCURRENT_ENFORCEMENTS if ZITADEL keeps up.',
  },
  ERR_BUSY: {
    status: 503,
    message:
      'Another enforcement of the same user held the user\'s turn until this webhook\'s time (ENFORCE_BUDGET_MS) ran ' +
      'out; the limit is enforced again at the user\'s next login. ZITADEL is not at fault: look for a burst of ' +
      'logins of one user, or a replica holding the lock (enforce_duration), or raise ENFORCE_BUDGET_MS.',
  },
  ERR_NOT_FOUND: {
    status: 404,
    message: 'No such route. The webhook endpoint is POST /webhooks/zitadel.',
  },
  ERR_METHOD_NOT_ALLOWED: {
    status: 405,
    message: 'This route does not accept this method; the Allow header lists the ones it does. The webhook endpoint is POST /webhooks/zitadel.',
  },
  ERR_BAD_REQUEST: {
    status: 400,
    message:
      'The request is not valid HTTP/1.1 (request line, a header, the URL or Content-Length); the connection was closed. ' +
      'Check the client or the proxy in front of this service.',
  },
  ERR_REQUEST_TIMEOUT: {
    status: 408,
    message:
      'The request was not received whole within REQUEST_TIMEOUT_MS; the connection was closed. Check the network ' +
      'between ZITADEL and this service.',
  },
  ERR_HEADERS_TOO_LARGE: {
    status: 431,
    message: 'The request headers exceed 16 KiB; ZITADEL sends far less. Check what a proxy in front of this service adds.',
  },
  ERR_SHUTTING_DOWN: {
    status: 503,
    message: 'This instance is shutting down and takes no new request; retry, another instance (or this one, restarted) will answer.',
  },
  ERR_INTERNAL: {
    status: 500,
    message: 'An unexpected error occurred; the log has the details.',
  },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCatalog;

const serialized = new Map<string, string>();

/** An error with a stable code and an HTTP status, safe to show to the caller. */
export class ServiceError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;

  constructor(code: ErrorCode, detail?: string) {
    const entry = errorCatalog[code];
    // These are expected answers (a forged request, a bad payload), not bugs: no stack trace to capture, which
    // matters on the path a flood of forged requests takes.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(detail ? `${entry.message} (${detail})` : entry.message);
    Error.stackTraceLimit = stackTraceLimit;
    this.name = 'ServiceError';
    this.code = code;
    this.statusCode = entry.status;
  }

  toJSON(): { error: ErrorCode; message: string } {
    return { error: this.code, message: this.message };
  }

  /** The JSON body, serialised once per distinct message. */
  body(): string {
    let body = serialized.get(this.message);
    if (body === undefined) {
      body = JSON.stringify(this.toJSON());
      if (serialized.size < 1000) serialized.set(this.message, body);
    }
    return body;
  }
}
