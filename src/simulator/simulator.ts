import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Duplex } from 'node:stream';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { AppService } from '@zitadel/proto/zitadel/app/v2beta/app_service_pb.js';
import { OrganizationService } from '@zitadel/proto/zitadel/org/v2beta/org_service_pb.js';
import { ProjectService } from '@zitadel/proto/zitadel/project/v2beta/project_service_pb.js';
import { UserService } from '@zitadel/proto/zitadel/user/v2/user_service_pb.js';
import { SessionService } from '@zitadel/proto/zitadel/session/v2/session_service_pb.js';
import { actionApiHandler, type ActionApiRequest } from './action-api.js';
import { ActionsRegistry, describeDelivery, type Delivery } from './actions.js';
import { authorize } from './calls.js';
import { appServiceImpl, projectServiceImpl } from './app-service.js';
import { organizationServiceImpl, userServiceImpl } from './metadata-service.js';
import { tokenEndpoint } from './oauth.js';
import { sessionServiceImpl } from './session-service.js';
import { ALL_PERMISSIONS, SimulatorState, type Permission, type ProjectionMode } from './state.js';
import { WebKeys, type SimWebKey, type WebKeyAlgorithm } from './web-keys.js';

export interface SimulatorOptions {
  /** Bearer tokens and their permissions; default: `simulator-token` with every permission. */
  tokens?: Record<string, readonly Permission[]>;
  /**
   * When ListSessions sees writes: by default after `DEFAULT_PROJECTION_LAG_MS` (100 ms), as ZITADEL's projection
   * catches up within moments; `'until-read'` only after a GetSession; `'immediate'`; or a lag in ms.
   */
  projectionMode?: ProjectionMode;
  /**
   * The simulator's clock (token expiry, creation and verification times, projection lag); default the real one.
   * With it, a session's creation time is exactly `now()`, so a test can create sessions with equal timestamps.
   */
  now?: () => Date;
  /** The seed of the order of ties in ListSessions (default random; read it back from `state.seed`). */
  seed?: number;
  /** Called once per webhook the executor sent, when it finished (`describeDelivery` makes it a log line). */
  onDelivery?: (delivery: Delivery) => void;
  /** The algorithm of the instance's first web key (signs JWT and JWE payloads): RSA 2048 `RS256` or P-256 `ES256`. */
  webKey?: WebKeyAlgorithm;
  /**
   * `false`: act as a ZITADEL older than v4.8: targets have no `payloadType` (absent from answers, ignored on input
   * as ZITADEL's gateway discards unknown fields), no public-key routes, every payload JSON. Default `true`.
   */
  payloadTypes?: boolean;
  /**
   * The `Cache-Control` max-age of `/oauth/v2/keys` in seconds (ZITADEL's `OIDC.JWKSCacheControlMaxAge`, default
   * 5 minutes: `max-age=300, must-revalidate`; 0: `no-store`).
   */
  jwksMaxAgeSeconds?: number;
}

/** `POST` it (a token with `action.target.write`) with `{"alg":"ES256","activate":true}`: adds a web key while running. */
export const WEB_KEYS_PATH = '/simulator/webkeys';

/** `GET` it (any token with `action.target.read`): the webhooks sent so far, without bodies (`simulate login`). */
export const WEBHOOK_LOG_PATH = '/simulator/webhooks';

/** One webhook in the simulator's log as `WEBHOOK_LOG_PATH` serves it: no body, no signature. */
export interface WebhookLogEntry {
  /** Its position in the log; `?after=N` lists the entries after position N. */
  index: number;
  targetId: string;
  endpoint: string;
  fullMethod: string;
  async: boolean;
  status?: number;
  latencyMs?: number;
  /** The payload's size: what was sent, not what it holds. */
  bytes: number;
  signed: boolean;
  /** `ok`, or why ZITADEL counts the call as failed. */
  outcome: string;
  line: string;
}

export const DEFAULT_SIMULATOR_TOKEN = 'simulator-token';

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0');

/**
 * The socket as a stream that starts with the bytes already read from it. Node's HTTP servers read a real socket's
 * handle directly, so `unshift` would lose those bytes; a plain Duplex is read through JavaScript instead.
 */
function replaying(socket: net.Socket, first: Buffer): Duplex {
  const stream = new Duplex({
    read: () => void socket.resume(),
    write: (chunk: Buffer, encoding, callback) => void socket.write(chunk, encoding, callback),
    final: (callback) => {
      socket.end();
      callback();
    },
    destroy: (error, callback) => {
      socket.destroy(error ?? undefined);
      callback(error);
    },
  });
  Object.assign(stream, { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort, encrypted: false });
  stream.push(first);
  socket.on('data', (chunk) => {
    if (!stream.push(chunk)) socket.pause();
  });
  socket.on('end', () => stream.push(null));
  socket.on('error', (error) => stream.destroy(error));
  socket.on('close', () => stream.destroy());
  return stream;
}

/**
 * A ZITADEL stand-in on one port, like ZITADEL: gRPC (h2c) serving the real `@zitadel/proto` descriptors, so the
 * real `@zitadel/client` talks to it, and the v2 Action API as JSON over HTTP/1.1. Tests seed and inspect
 * `state` and `actions`.
 */
export class ZitadelSimulator {
  readonly state: SimulatorState;
  readonly actions: ActionsRegistry;
  /** Every Action API request the simulator answered (method, path, status), for tests of `register`. */
  readonly actionApiRequests: ActionApiRequest[] = [];
  readonly #server: net.Server;
  readonly #grpc: http2.Http2Server;
  readonly #rest: http.Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #jwksMaxAge: number;
  /** How often `/oauth/v2/keys` was fetched (tests of a receiver's JWKS cache read it). */
  jwksRequests = 0;
  #url: string | undefined;

  constructor(options: SimulatorOptions = {}) {
    this.#jwksMaxAge = options.jwksMaxAgeSeconds ?? 300;
    this.state = new SimulatorState({ projectionMode: options.projectionMode, now: options.now, seed: options.seed });
    this.actions = new ActionsRegistry(this.state, options.onDelivery, {
      webKeys: new WebKeys(() => this.state.newId(), options.webKey),
      payloadTypes: options.payloadTypes,
    });
    const tokens = options.tokens ?? { [DEFAULT_SIMULATOR_TOKEN]: ALL_PERMISSIONS };
    for (const [token, permissions] of Object.entries(tokens)) this.state.addToken(token, permissions);

    this.#grpc = http2.createServer(
      connectNodeAdapter({
        grpc: true,
        connect: true,
        grpcWeb: false,
        routes: (router) =>
          router
            .service(SessionService, sessionServiceImpl(this.state, this.actions))
            .service(ProjectService, projectServiceImpl(this.state))
            .service(AppService, appServiceImpl(this.state))
            .service(UserService, userServiceImpl(this.state))
            .service(OrganizationService, organizationServiceImpl(this.state)),
      }),
    );
    const actionApi = actionApiHandler(this.state, this.actions, this.actionApiRequests);
    this.#rest = http.createServer((request, response) => {
      if (request.url?.startsWith('/oauth/v2/token')) void tokenEndpoint(this.state, this.url, request, response);
      else if (request.method === 'GET' && request.url?.split('?')[0] === '/oauth/v2/keys') void this.#jwks(response);
      else if (request.method === 'POST' && request.url?.split('?')[0] === WEB_KEYS_PATH) void this.#addWebKeyRoute(request, response);
      else if (request.method === 'GET' && request.url?.startsWith(WEBHOOK_LOG_PATH)) void this.#webhookLog(request, response);
      else actionApi(request, response);
    });
    // One port for both, as ZITADEL serves them: an HTTP/2 connection preface goes to gRPC, the rest to HTTP/1.1.
    // noDelay: the HTTP servers cannot set it through the replaying stream, and Nagle would stall small frames.
    this.#server = net.createServer({ noDelay: true }, (socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
      // No encoding is set on the socket, so data arrives as a Buffer (@types/node 26 types it string | Buffer).
      socket.once('data', (data) => {
        const first = typeof data === 'string' ? Buffer.from(data) : data;
        const isHttp2 = first.subarray(0, HTTP2_PREFACE.length).equals(HTTP2_PREFACE);
        (isHttp2 ? this.#grpc : this.#rest).emit('connection', replaying(socket, first));
      });
    });
  }

  /**
   * Adds an instance web key while running (ZITADEL's WebKeyService Create + Activate): published at
   * `/oauth/v2/keys` at once and, unless `activate: false`, the key that signs JWT and JWE payloads from now on.
   */
  addWebKey(alg: WebKeyAlgorithm = 'RS256', options: { activate?: boolean } = {}): SimWebKey {
    return this.actions.webKeys.add(alg, options);
  }

  async #jwks(response: http.ServerResponse): Promise<void> {
    this.jwksRequests += 1;
    const jwks = await this.actions.webKeys.jwks();
    const cacheControl = this.#jwksMaxAge > 0 ? `max-age=${this.#jwksMaxAge}, must-revalidate` : 'no-store';
    response.writeHead(200, { 'content-type': 'application/json', 'cache-control': cacheControl }).end(JSON.stringify(jwks));
  }

  async #addWebKeyRoute(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const send = (status: number, body: Record<string, unknown>) => response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    try {
      authorize(this.state, request.headers.authorization, 'action.target.write');
    } catch (error) {
      send(401, { message: (error as Error).message });
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    let body: { alg?: unknown; activate?: unknown };
    try {
      body = (JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') ?? {}) as typeof body;
    } catch {
      send(400, { message: 'the body is not JSON; send {"alg":"RS256"|"ES256","activate":true|false}' });
      return;
    }
    const alg = body.alg ?? 'RS256';
    if (alg !== 'RS256' && alg !== 'ES256') {
      send(400, { message: 'alg must be RS256 or ES256' });
      return;
    }
    const key = this.addWebKey(alg, { activate: body.activate !== false });
    send(200, { kid: key.kid, alg: key.alg, active: this.actions.webKeys.active.kid === key.kid });
  }

  /** The webhooks sent after `?after=N`, once every async one started so far has finished. */
  async #webhookLog(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    try {
      authorize(this.state, request.headers.authorization, 'action.target.read');
    } catch (error) {
      response.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ message: (error as Error).message }));
      return;
    }
    const after = Number(new URL(request.url ?? '/', 'http://simulator').searchParams.get('after') ?? '0') || 0;
    await this.actions.settled();
    const webhooks: WebhookLogEntry[] = this.actions.deliveries.slice(after).map((delivery, i) => ({
      index: after + i + 1,
      targetId: delivery.targetId,
      endpoint: delivery.endpoint,
      fullMethod: delivery.fullMethod,
      async: delivery.async,
      status: delivery.status,
      latencyMs: delivery.latencyMs,
      bytes: Buffer.byteLength(delivery.body),
      signed: delivery.signature !== '',
      outcome: delivery.failure ? `failed: ${delivery.failure.rawMessage}` : 'ok',
      line: describeDelivery(delivery),
    }));
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ webhooks }));
  }

  /** The base URL to give `@zitadel/client` (ZITADEL_URL) and the Action API. */
  get url(): string {
    if (!this.#url) throw new Error('the simulator is not listening; call listen() first');
    return this.#url;
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => resolve());
    });
    const address = this.#server.address() as AddressInfo;
    this.#url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
    return this.#url;
  }

  async close(): Promise<void> {
    this.state.dispose();
    await this.actions.settled();
    for (const socket of this.#sockets) socket.destroy();
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
