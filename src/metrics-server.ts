import http from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { isBindError, ListenError } from './listen.js';

export interface MetricsAnswer {
  status: 200 | 500;
  contentType: string;
  body: string;
}

/**
 * The Prometheus text of `registry`. A collection that fails answers 500 without its error text (/metrics may be
 * public) and is logged, at most once a minute; it never becomes an unhandled rejection.
 */
export function createMetricsCollector(registry: Registry, logger: Pick<Logger, 'error'>, now: () => number = Date.now): () => Promise<MetricsAnswer> {
  let lastLogged = -Infinity;
  return async () => {
    try {
      return { status: 200, contentType: registry.contentType, body: await registry.metrics() };
    } catch (error) {
      if (now() - lastLogged >= 60_000) {
        lastLogged = now();
        logger.error({ err: error }, 'collecting /metrics failed; answered 500');
      }
      return { status: 500, contentType: 'text/plain; charset=utf-8', body: 'collecting metrics failed; see the service log\n' };
    }
  };
}

/** GET /metrics on a port of its own (METRICS_PORT), apart from the public one: Fly's scraper reads it on the private network. */
export function createMetricsServer(registry: Registry, logger: Pick<Logger, 'error'>, now: () => number = Date.now): http.Server {
  const collect = createMetricsCollector(registry, logger, now);
  return http.createServer((request, response) => {
    if (request.url !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404).end();
      return;
    }
    void collect().then((answer) => response.writeHead(answer.status, { 'content-type': answer.contentType }).end(answer.body));
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
