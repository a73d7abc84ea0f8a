import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { SessionService } from '@zitadel/proto/zitadel/session/v2/session_service_pb.js';
import { sessionServiceImpl } from './session-service.js';
import { ALL_PERMISSIONS, SimulatorState, type Permission, type ProjectionMode } from './state.js';

export interface SimulatorOptions {
  /** Bearer tokens and their permissions; default: `simulator-token` with every permission. */
  tokens?: Record<string, readonly Permission[]>;
  projectionMode?: ProjectionMode;
  now?: () => Date;
}

export const DEFAULT_SIMULATOR_TOKEN = 'simulator-token';

/**
 * A ZITADEL stand-in that serves the real `@zitadel/proto` service descriptors over gRPC (h2c), so the real
 * `@zitadel/client` talks to it. Tests seed and inspect `state`.
 */
export class ZitadelSimulator {
  readonly state: SimulatorState;
  readonly #server: http2.Http2Server;
  readonly #streams = new Set<http2.ServerHttp2Session>();
  #url: string | undefined;

  constructor(options: SimulatorOptions = {}) {
    this.state = new SimulatorState({ projectionMode: options.projectionMode, now: options.now });
    const tokens = options.tokens ?? { [DEFAULT_SIMULATOR_TOKEN]: ALL_PERMISSIONS };
    for (const [token, permissions] of Object.entries(tokens)) this.state.tokens.set(token, new Set(permissions));
    const handler = connectNodeAdapter({
      grpc: true,
      connect: true,
      grpcWeb: false,
      routes: (router) => router.service(SessionService, sessionServiceImpl(this.state)),
    });
    this.#server = http2.createServer(handler);
    this.#server.on('session', (session) => {
      this.#streams.add(session);
      session.once('close', () => this.#streams.delete(session));
    });
  }

  /** The base URL to give `@zitadel/client` (ZITADEL_URL). */
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
    this.#url = `http://${host}:${address.port}`;
    return this.#url;
  }

  async close(): Promise<void> {
    this.state.dispose();
    for (const session of this.#streams) session.destroy();
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
