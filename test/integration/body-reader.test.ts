import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { BODY_LIMIT_BYTES } from '../../src/routes.js';
import { signPayload } from '../../src/signature/sign.js';
import { fixtureFor } from '../helpers/payloads.js';
import { connect, exchange } from '../helpers/raw-http.js';
import { SIGNING_KEY, startStack } from '../helpers/stack.js';

/**
 * The webhook's body, read over a real socket into one buffer of the declared length (src/body-reader.ts): whatever
 * way the bytes arrive, the service sees exactly what was sent; the limit and a short body keep Fastify's answers.
 */

async function listening(t: Test) {
  const stack = await startStack();
  t.teardown(() => stack.close());
  await stack.app.listen({ port: 0, host: '127.0.0.1' });
  return { stack, port: (stack.app.server.address() as AddressInfo).port };
}

const head = (headers: Record<string, string>) =>
  `POST /webhooks/zitadel HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')}\r\n`;

/** The body in pieces of `size` bytes (the last may be shorter). */
const pieces = (body: Buffer, size: number) => Array.from({ length: Math.ceil(body.length / size) }, (_, i) => body.subarray(i * size, (i + 1) * size));

t.test('a signed payload arriving in many small writes is read whole: the signature verifies', async (t) => {
  const { stack, port } = await listening(t);
  const session = stack.simulator.state.seedSession({ userId: 'alice', factors: { password: new Date() } }).id;
  const body = Buffer.from(fixtureFor('02-password.set-session', session));
  const headers = { 'Content-Type': 'application/json', 'Content-Length': String(body.length), 'ZITADEL-Signature': signPayload(body, SIGNING_KEY) };
  const answer = await exchange(port, head(headers), ...pieces(body, 7));
  t.equal(answer.status, 204, answer.body);
});

t.test('chunked transfer (no Content-Length) is read whole as well', async (t) => {
  const { stack, port } = await listening(t);
  const session = stack.simulator.state.seedSession({ userId: 'alice', factors: { password: new Date() } }).id;
  const body = Buffer.from(fixtureFor('02-password.set-session', session));
  const chunked = pieces(body, 100).flatMap((piece) => [`${piece.length.toString(16)}\r\n`, piece, '\r\n']);
  const headers = { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'ZITADEL-Signature': signPayload(body, SIGNING_KEY) };
  const answer = await exchange(port, head(headers), ...chunked, '0\r\n\r\n');
  t.equal(answer.status, 204, answer.body);
});

t.test('the limit: at it the body is read (and judged by its signature), over it 413, declared or chunked', async (t) => {
  const { port } = await listening(t);
  const signature = signPayload('{}', 'another-key-than-the-service-holds-00');
  const atLimit = Buffer.alloc(BODY_LIMIT_BYTES, 'a');
  const at = await exchange(port, head({ 'Content-Type': 'application/json', 'Content-Length': String(atLimit.length), 'ZITADEL-Signature': signature }), atLimit);
  t.match([at.status, at.body], [401, /ERR_SIGNATURE_MISMATCH/], 'read to the end, then refused for its signature');

  const over = await exchange(port, head({ 'Content-Type': 'application/json', 'Content-Length': String(BODY_LIMIT_BYTES + 1), 'ZITADEL-Signature': signature }));
  t.match([over.status, over.body], [413, /ERR_BODY_TOO_LARGE/], 'declared over the limit');

  const big = Buffer.alloc(BODY_LIMIT_BYTES + 1, 'a');
  const chunked = await exchange(port, head({ 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'ZITADEL-Signature': signature }), `${big.length.toString(16)}\r\n`, big, '\r\n0\r\n\r\n');
  t.match([chunked.status, chunked.body], [413, /ERR_BODY_TOO_LARGE/], 'chunked over the limit');
});

t.test('a body that ends before its declared length is not taken for the whole', async (t) => {
  const { stack, port } = await listening(t);
  const session = stack.simulator.state.seedSession({ userId: 'alice', factors: { password: new Date() } }).id;
  const body = Buffer.from(fixtureFor('02-password.set-session', session));
  const headers = { 'Content-Type': 'application/json', 'Content-Length': String(body.length + 10), 'ZITADEL-Signature': signPayload(body, SIGNING_KEY) };
  const socket = await connect(port);
  const closed = new Promise<string>((resolve) => {
    let response = '';
    socket.on('data', (chunk: Buffer) => (response += chunk.toString()));
    socket.on('error', () => {});
    socket.once('close', () => resolve(response));
  });
  socket.write(head(headers));
  socket.end(body);
  const response = await closed;
  t.notMatch(response, /^HTTP\/1\.1 204/, 'not enforced on a partial body');
  t.equal(stack.simulator.state.calls.length, 0, 'no ZITADEL call');
});
