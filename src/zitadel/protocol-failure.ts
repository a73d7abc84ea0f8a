import type * as http2 from 'node:http2';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { Http2SessionManager } from '@connectrpc/connect-node';
import { TLS_FAILURE } from '../net-failure.js';

/**
 * What happens when ZITADEL_URL does not speak gRPC over HTTP/2 (a plain HTTP/1.1 server, a proxy that only speaks
 * HTTP/1.1): Node's HTTP/2 client fails with ERR_HTTP2_ERROR "Protocol error", which the Connect transport surfaces
 * as `Code.Internal`. It is not ZITADEL refusing a call: nothing answered that speaks its protocol, so it is
 * "unreachable", handled in one place for the service, `doctor` and `enforce`. The same holds for a TLS connection
 * that fails (a certificate not trusted, https:// to a plain port): nothing of ZITADEL answered.
 */

/** The Node error codes of an HTTP/2 connection that broke on the protocol, not on an answer. */
const PROTOCOL_FAILURES = new Set(['ERR_HTTP2_ERROR', 'ERR_HTTP2_SESSION_ERROR', 'ERR_HTTP2_STREAM_ERROR']);

/** What broke the connection before ZITADEL could answer: its protocol (HTTP/2), TLS, or nothing of the kind. */
export function connectionFailureOf(error: unknown): { kind: 'http2' | 'tls'; code: string } | undefined {
  if (!(error instanceof ConnectError) || error.code !== Code.Internal) return undefined;
  // A stream reset by the peer with PROTOCOL_ERROR and the like: connect-node's own wording.
  if (/^http\/2 stream closed with error code /.test(error.rawMessage)) return { kind: 'http2', code: 'stream reset' };
  const seen = new Set<unknown>();
  for (let cause: unknown = error.cause; cause instanceof Error && !seen.has(cause); cause = cause.cause) {
    seen.add(cause);
    const code = (cause as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') continue;
    if (PROTOCOL_FAILURES.has(code)) return { kind: 'http2', code };
    if (TLS_FAILURE.test(code)) return { kind: 'tls', code };
  }
  return undefined;
}

/** True when a failed call never got a gRPC answer because the peer does not speak HTTP/2 (or broke it) or TLS failed. */
export function isProtocolFailure(error: unknown): boolean {
  return connectionFailureOf(error) !== undefined;
}

/** Re-codes a protocol failure as `Unavailable` (retried within the budget, answered 503, "unreachable"). */
export const protocolFailureAsUnavailable: Interceptor = (next) => async (request) => {
  try {
    return await next(request);
  } catch (error) {
    const failure = connectionFailureOf(error);
    if (!failure) throw error;
    const detail = (error as ConnectError).rawMessage;
    throw new ConnectError(
      failure.kind === 'tls'
        ? // The code says it all; OpenSSL's message is a multi-line dump of its internals.
          `TLS to ZITADEL_URL failed (${failure.code}): if ZITADEL's certificate comes from your own ` +
            'certificate authority, trust it with NODE_EXTRA_CA_CERTS; check that the scheme (https:// or http://) is the one ZITADEL serves'
        : `ZITADEL_URL does not speak gRPC over HTTP/2 (${detail}): check that it points at ZITADEL itself, or at a proxy ` +
            'that passes HTTP/2 (h2c for http://) through',
      Code.Unavailable,
      undefined,
      undefined,
      error,
    );
  }
};

/**
 * connect-node's session manager, with one 'error' listener that stays on every HTTP/2 session it opens. When a
 * session fails (ERR_HTTP2_ERROR against an HTTP/1.1 server), Node emits 'error' on it once more as its socket
 * closes; by then the manager may have dropped its own listener (a new call, or close()), and an 'error' without a
 * listener ends the process. The calls themselves still fail with the error, as before.
 */
export class GuardedHttp2SessionManager extends Http2SessionManager {
  readonly #guarded = new WeakSet<http2.ClientHttp2Session>();

  override async request(...args: Parameters<Http2SessionManager['request']>): Promise<http2.ClientHttp2Stream> {
    const stream = await super.request(...args);
    const session = stream.session as http2.ClientHttp2Session | undefined;
    if (session && !this.#guarded.has(session)) {
      this.#guarded.add(session);
      session.on('error', () => {});
    }
    return stream;
  }
}
