import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';

/**
 * A real HTTP server on 127.0.0.1 serving an instance JWKS at /oauth/v2/keys, as ZITADEL does: tests change the
 * keys, the Cache-Control header or make it fail, and count the fetches it answered (what "no JWKS fetch" means).
 */
export class JwksServer {
  keys: JWK[];
  cacheControl: string | undefined = 'max-age=300';
  /** Answer every fetch with this status instead of the keys (e.g. 500). */
  failWith: number | undefined;
  fetches = 0;
  readonly #server: Server;
  #waiters: (() => void)[] = [];

  constructor(keys: JWK[]) {
    this.keys = keys;
    this.#server = createServer((request, response) => {
      if (request.url !== '/oauth/v2/keys') {
        response.writeHead(404).end();
        return;
      }
      this.fetches++;
      for (const wake of this.#waiters.splice(0)) wake();
      if (this.failWith !== undefined) {
        response.writeHead(this.failWith, { 'content-type': 'text/plain' }).end('failing on purpose');
        return;
      }
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (this.cacheControl !== undefined) headers['cache-control'] = this.cacheControl;
      response.writeHead(200, headers).end(JSON.stringify({ keys: this.keys }));
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  /** The base URL, as ZITADEL_URL would be. */
  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  get keysUrl(): URL {
    return new URL('/oauth/v2/keys', this.url);
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}
