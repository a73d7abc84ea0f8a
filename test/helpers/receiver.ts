import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A tiny HTTP endpoint that records what it receives and answers as told; stands in for a target. */
export async function startReceiver(
  answer: (received: Received) => { status?: number; body?: string; delayMs?: number; hold?: Promise<unknown> } | void = () => {},
) {
  const received: Received[] = [];
  // A test's receiver: a handler that throws fails the test as an unhandled rejection, which is what we want.
  // eslint-disable-next-line @typescript-eslint/no-misused-promises
  const server = http.createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const entry = { headers: request.headers, body: Buffer.concat(chunks).toString('utf8') };
    received.push(entry);
    const { status = 204, body = '', delayMs = 0, hold } = answer(entry) ?? {};
    if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
    // Answers only once the test lets it (deterministic, unlike a delay).
    if (hold) await hold;
    if (!response.destroyed) response.writeHead(status, body ? { 'content-type': 'application/json' } : {}).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return {
    url,
    received,
    close: () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      return closed;
    },
  };
}
