/**
 * Words for a request that got no answer. `fetch` says only "fetch failed" and hides the reason in `cause`; every
 * command that talks to ZITADEL or to the service says instead where it went (without credentials) and why
 * (`ECONNREFUSED`, a TLS failure, a timeout), and what to check next.
 */

/**
 * Node's codes for a TLS connection that failed before any answer: OpenSSL's (`ERR_SSL_WRONG_VERSION_NUMBER` for
 * https:// to a plain port), Node's (`ERR_TLS_CERT_ALTNAME_INVALID`), and certificate verification
 * (`DEPTH_ZERO_SELF_SIGNED_CERT`, `UNABLE_TO_VERIFY_LEAF_SIGNATURE`, `CERT_HAS_EXPIRED`, ...).
 */
export const TLS_FAILURE = /^(ERR_SSL_|ERR_TLS_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_(GET|VERIFY|DECRYPT)_|HOSTNAME_MISMATCH)/;

/** A URL as it may appear in a log or an error: scheme, host, port and path; never credentials, query or fragment. */
export function safeUrl(url: string | URL): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return '(an invalid URL)';
  }
}

/** The first Node error code in an error's cause chain (an AggregateError's first one for a host with several addresses). */
function causeCode(error: unknown): { code?: string; message?: string } {
  const seen = new Set<unknown>();
  for (let cause: unknown = (error as { cause?: unknown }).cause; cause instanceof Error && !seen.has(cause); cause = cause.cause) {
    seen.add(cause);
    const code = (cause as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return { code, message: cause.message };
    const inner = cause instanceof AggregateError ? (cause.errors as unknown[]).find((e) => typeof (e as NodeJS.ErrnoException).code === 'string') : undefined;
    if (inner) return { code: (inner as NodeJS.ErrnoException).code!, message: (inner as Error).message };
    if (cause.message) return { message: cause.message };
  }
  return {};
}

/** Why a request got no answer, in words, with the system's code: never a bare "fetch failed". */
export function fetchFailureReason(error: unknown, url?: string | URL): string {
  if (!(error instanceof Error)) return String(error);
  if (error.name === 'TimeoutError' || error.name === 'AbortError') return `no answer in time (${error.name})`;
  const { code, message } = causeCode(error);
  if (code === 'ECONNREFUSED') return 'connection refused (ECONNREFUSED): nothing listens there';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `host not found (${code}): check the host name`;
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') return `the connection was closed before an answer (${code})`;
  if (code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    return `the host could not be reached (${code}): check the network and firewall`;
  }
  if (code && TLS_FAILURE.test(code)) {
    return (
      `TLS failed (${code}): check the scheme (https:// or http://) is the one the server speaks; a certificate ` +
      'from your own certificate authority is trusted with NODE_EXTRA_CA_CERTS'
    );
  }
  if (code) return `${code}${message ? `: ${message}` : ''}`;
  // The Fetch standard blocks some ports (1, 9, 6000, ...): fetch refuses them without connecting.
  if (message === 'bad port') {
    const port = url === undefined ? '' : ` ${new URL(url).port}`;
    return `fetch refuses port${port} (a "bad port" in the Fetch standard): serve it on another port`;
  }
  return message ? `${error.message} (${message})` : error.message;
}

/** `<url> could not be reached: <reason>`, for an error line; credentials in any URL it quotes are cut out. */
export function describeFetchFailure(url: string | URL, error: unknown): string {
  const reason = fetchFailureReason(error, url).replace(/\/\/[^/\s@]*@/g, '//');
  return `${safeUrl(url)} could not be reached: ${reason}`;
}
