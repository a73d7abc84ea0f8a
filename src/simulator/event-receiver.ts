import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/**
 * A small receiver of the service's eviction events (EVENTS_URL), as an application would run one: every request is
 * verified with the `standardwebhooks` package's own verifier (signature, freshness) before it is believed; a
 * verified event is answered 204 and kept once per `webhook-id` (retries are deduplicated); anything else is
 * answered 401 and counted. For the demo ("laptop notified: ...") and for tests of an app's handling.
 */

export interface ReceivedEvent {
  /** The `webhook-id` (the same on every retry of one event). */
  id: string;
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
}

export class EventReceiver {
  /** Verified events, once each, in the order they arrived. */
  readonly events: ReceivedEvent[] = [];
  /** Requests refused: no or a wrong signature, stale, not JSON. */
  refused = 0;
  readonly #webhook: Webhook;
  readonly #seen = new Set<string>();
  #waiters: { count: number; resolve: () => void }[] = [];
  #server: http.Server | undefined;

  /** `secret`: the Standard Webhooks secret the service signs with (EVENTS_SECRET, `whsec_...`). */
  constructor(secret: string) {
    this.#webhook = new Webhook(secret);
  }

  /** Listens on 127.0.0.1 (`port` 0: a free one); returns the URL to set as EVENTS_URL. */
  async listen(port = 0): Promise<string> {
    // eslint-disable-next-line @typescript-eslint/no-misused-promises
    const server = http.createServer(async (request, response) => {
      const chunks: Buffer[] = [];
      for await (const chunk of request) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks).toString('utf8');
      let event: ReceivedEvent;
      try {
        const verified = this.#webhook.verify(body, request.headers as Record<string, string>) as Omit<ReceivedEvent, 'id'>;
        event = { id: String(request.headers['webhook-id']), type: verified.type, timestamp: verified.timestamp, data: verified.data ?? {} };
      } catch {
        this.refused += 1;
        response.writeHead(401).end();
        return;
      }
      if (!this.#seen.has(event.id)) {
        this.#seen.add(event.id);
        this.events.push(event);
        this.#wake();
      }
      response.writeHead(204).end();
    });
    this.#server = server;
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
  }

  /** Resolves once `count` distinct events have arrived; rejects after `timeoutMs` saying how many did. */
  async waitFor(count: number, timeoutMs: number): Promise<ReceivedEvent[]> {
    if (this.events.length < count) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#waiters.push({ count, resolve })),
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(
            () => reject(new Error(`the event receiver got ${this.events.length} of ${count} events within ${timeoutMs} ms (${this.refused} refused): check EVENTS_URL and EVENTS_SECRET`)),
            timeoutMs,
          );
        }),
      ]).finally(() => clearTimeout(timer));
    }
    return this.events.slice(0, count);
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  #wake(): void {
    const ready = this.#waiters.filter((waiter) => this.events.length >= waiter.count);
    this.#waiters = this.#waiters.filter((waiter) => this.events.length < waiter.count);
    for (const waiter of ready) waiter.resolve();
  }
}
