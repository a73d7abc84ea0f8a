import http from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { isBindError, ListenError } from './listen.js';

/**
 * GET /metrics on a port of its own (METRICS_PORT), apart from the public one: Fly's scraper reads it on the private
 * network. A failing collection answers 500 and is logged (at most once a minute); it never becomes an unhandled
 * rejection.
 */
export function createMetricsServer(registry: Registry, logger: Logger, now: () => number = Date.now): http.Server {
  let lastLogged = -Infinity;
  return http.createServer((request, response) => {
    if (request.url !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: unknown) => {
        if (now() - lastLogged >= 60_000) {
          lastLogged = now();
          logger.error({ err: error }, 'collecting /metrics failed; answered 500');
        }
        if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain' });
        response.end('collecting metrics failed; see the service log\n');
      },
    );
  });
}

/** Listens on METRICS_PORT; a port that cannot be bound rejects with a ListenError naming METRICS_PORT. */
export async function listenMetrics(server: http.Server, port: number, host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const failed = (error: Error) => reject(isBindError(error) ? new ListenError('METRICS_PORT', port, host, error) : error);
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve();
    });
  });
}
