import { Code, ConnectError, type Interceptor, type Transport } from '@connectrpc/connect';
import { createGrpcTransport, type Http2SessionManager } from '@connectrpc/connect-node';
import PQueue from 'p-queue';
import type { AccessTokenSource } from './credentials.js';
import { GuardedHttp2SessionManager, protocolFailureAsUnavailable } from './protocol-failure.js';

/** The outcome of one ZITADEL call: `ok` or the gRPC code's name (e.g. `Unavailable`). */
export type CallObserver = (method: string, result: string, seconds: number) => void;

export interface ZitadelConnectionOptions {
  baseUrl: string | URL;
  credentials: AccessTokenSource;
  /** Deadline of every call (ZITADEL_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Told about every call, e.g. for metrics. */
  observe?: CallObserver;
  /** Calls in flight at once; more wait their turn (MAX_ZITADEL_CALLS). */
  maxInFlight?: number;
  /** Calls started per second at most, evenly spaced (the repair sweep; ZITADEL Cloud allows 50/s per IP). */
  maxCallsPerSecond?: number;
}


/**
 * One HTTP/2 connection to ZITADEL for every gRPC client of the service: bearer token from the credentials on each
 * call, a deadline per call, every call observed, and a record of when ZITADEL last answered (for /readyz).
 */
export class ZitadelConnection {
  readonly transport: Transport;
  readonly #sessions: Http2SessionManager;
  /** Epoch ms of the last call ZITADEL answered with success or NotFound (a revoked token does not count). */
  lastAnswerAt: number | undefined;
  /** Why the last call failed without an answer, if it did. */
  lastFailure: string | undefined;

  constructor(options: ZitadelConnectionOptions) {
    const baseUrl = String(options.baseUrl).replace(/\/+$/, '');
    // Our own session manager: it pings idle connections, and close() can abort it (a test server would hang).
    this.#sessions = new GuardedHttp2SessionManager(baseUrl, { pingIntervalMs: 30_000, idleConnectionTimeoutMs: 60_000 });
    // The token fetch waits at most for what is left of the call's deadline (the fetch itself is shared and bounded).
    const authenticate: Interceptor = (next) => async (request) => {
      request.header.set('authorization', `Bearer ${await options.credentials.token(request.signal)}`);
      return next(request);
    };
    const observe: Interceptor = (next) => async (request) => {
      const started = process.hrtime.bigint();
      const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
      try {
        const response = await next(request);
        this.lastAnswerAt = Date.now();
        options.observe?.(request.method.name, 'ok', seconds());
        return response;
      } catch (error) {
        const code = ConnectError.from(error).code;
        if (code === Code.NotFound) this.lastAnswerAt = Date.now();
        else this.lastFailure = `${request.method.name}: ${Code[code]}`;
        options.observe?.(request.method.name, Code[code] ?? 'error', seconds());
        throw error;
      }
    };
    // A bound on calls in flight (MAX_ZITADEL_CALLS), so that an outage (calls hanging until their deadline) cannot
    // pile up sockets and memory, and with --rate an even pace of call starts. A call waits in the queue at most until
    // its own deadline (the enforcement's budget): then it leaves the queue and fails as DeadlineExceeded.
    const interval = options.maxCallsPerSecond ? 1000 / options.maxCallsPerSecond : 0;
    const queue = new PQueue({ concurrency: options.maxInFlight ?? 64, ...(interval > 0 ? { interval, intervalCap: 1 } : {}) });
    const bounded: Interceptor = (next) => async (request) => {
      let started = false;
      try {
        return await queue.add(
          () => {
            started = true;
            return next(request);
          },
          { signal: request.signal },
        );
      } catch (error) {
        // Counted apart (result "QueueTimeout"): the time went waiting for MAX_ZITADEL_CALLS, not in ZITADEL.
        if (!started) {
          options.observe?.(request.method.name, 'QueueTimeout', 0);
          throw new ConnectError(`${request.method.name} waited for a free call slot (MAX_ZITADEL_CALLS) until its deadline`, Code.DeadlineExceeded);
        }
        throw error;
      }
    };
    this.transport = createGrpcTransport({
      baseUrl,
      sessionManager: this.#sessions,
      defaultTimeoutMs: options.timeoutMs ?? 5000,
      interceptors: [bounded, observe, authenticate, protocolFailureAsUnavailable],
    });
  }

  /** Ends the HTTP/2 connection (on shutdown). */
  close(): void {
    this.#sessions.abort();
  }
}
