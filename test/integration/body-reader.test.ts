import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import Fastify, { type FastifyRequest } from 'fastify';
import t, { type Test } from 'tap';
import { bodyReader } from '../../src/body-reader.js';
import { BODY_LIMIT_BYTES, LARGE_BODY_MAX_BYTES, LARGE_BODY_POOL_BYTES, WEBHOOK_PATH } from '../../src/routes.js';
import { goJsonStringify } from '../../src/simulator/go-json.js';
import { signPayload } from '../../src/signature/sign.js';
import { webhookRoutes } from '../../src/webhook.js';
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

  const over = await exchange(port, head({ 'Content-Type': 'application/json', 'Content-Length': String(LARGE_BODY_MAX_BYTES + 1), 'ZITADEL-Signature': signature }));
  t.match([over.status, over.body], [413, /ERR_BODY_TOO_LARGE/], 'declared over the largest body read');

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

t.test('a real payload swollen past 64 KiB by escaped headers is still read and enforced (outside review of #15)', async (t) => {
  // ZITADEL writes `&` as \u0026: 15,000 of them in a forwarded Referer make a SetSession of about 90 KB.
  const { stack, port } = await listening(t);
  const { state } = stack.simulator;
  state.seedSession({ userId: 'alice', creationDate: new Date(Date.now() - 3_600_000), factors: { password: new Date(Date.now() - 3_600_000) } });
  state.seedSession({ userId: 'alice', creationDate: new Date(Date.now() - 1_800_000), factors: { password: new Date(Date.now() - 1_800_000) } });
  const session = state.seedSession({ userId: 'alice', factors: { password: new Date() } }).id;
  const payload = JSON.parse(fixtureFor('02-password.set-session', session)) as Record<string, any>;
  payload.request.userAgent = { header: { referer: { values: ['&'.repeat(15_000)] } } };
  const body = Buffer.from(goJsonStringify(payload));
  t.ok(body.length > BODY_LIMIT_BYTES && body.length <= LARGE_BODY_MAX_BYTES, `${body.length} bytes`);
  const headers = { 'Content-Type': 'application/json', 'Content-Length': String(body.length), 'ZITADEL-Signature': signPayload(body, SIGNING_KEY) };
  const answer = await exchange(port, head(headers), ...pieces(body, 16 * 1024));
  t.equal(answer.status, 204, answer.body);
  t.equal(state.activeSessionsOf('alice').length, 2, 'enforced: the oldest of three sessions evicted (limit 2)');
});

t.test('bodies over 64 KiB share one pool: a flood of large bodies is refused beyond it, and the pool comes back', async (t) => {
  const read = bodyReader({ admitted: BODY_LIMIT_BYTES, max: LARGE_BODY_MAX_BYTES, pool: LARGE_BODY_POOL_BYTES });
  /** Starts reading a request that declares `length` bytes and sends none: what the parser decided at once, if anything. */
  const start = (length: number) => {
    const raw = new EventEmitter();
    const stream = new PassThrough();
    let decided: Error | null | undefined;
    read({ headers: { 'content-length': String(length) }, raw } as unknown as FastifyRequest, stream as unknown as IncomingMessage, (error) => (decided = error));
    return { raw, stream, decided: () => decided };
  };
  const fits = LARGE_BODY_POOL_BYTES / LARGE_BODY_MAX_BYTES;
  const held = Array.from({ length: fits }, () => start(LARGE_BODY_MAX_BYTES));
  t.same(held.map((r) => r.decided()), held.map(() => undefined), `${fits} large bodies are being read`);
  const refused = start(LARGE_BODY_MAX_BYTES).decided();
  t.match(refused, { code: 'FST_ERR_CTP_BODY_TOO_LARGE' }, 'one more is refused at once, before its body');
  t.equal(start(BODY_LIMIT_BYTES).decided(), undefined, 'a body within 64 KiB is always read');
  held[0]!.raw.emit('close');
  t.equal(start(LARGE_BODY_MAX_BYTES).decided(), undefined, 'once one is over, a large body is read again');
  t.match(start(LARGE_BODY_MAX_BYTES).decided(), { code: 'FST_ERR_CTP_BODY_TOO_LARGE' }, 'and the pool is full again');
});

/** Issue 15: the HMAC is computed as the body streams in, so that a forged body is never joined. */
const streamed = (verified = new WeakSet<Buffer>()) => ({ keys: [SIGNING_KEY], toleranceSeconds: 300, now: () => Date.now(), verified });

/** Feeds `body` to a reader in pieces of `size` bytes: what it decided (error, body). */
async function readThrough(read: ReturnType<typeof bodyReader>, headers: Record<string, string>, body: Buffer, size: number) {
  const stream = new PassThrough();
  const decided = new Promise<{ error: Error | null; body: Buffer | undefined }>((resolve) =>
    read({ headers, raw: new EventEmitter() } as unknown as FastifyRequest, stream as unknown as IncomingMessage, (error, result) => resolve({ error, body: result })),
  );
  for (const piece of pieces(body, size)) stream.write(piece);
  stream.end();
  return decided;
}

t.test('the reader verifies the signature as the body streams in: a forged body is refused without being joined', async (t) => {
  const verified = new WeakSet<Buffer>();
  const read = bodyReader({ admitted: BODY_LIMIT_BYTES, max: LARGE_BODY_MAX_BYTES, pool: LARGE_BODY_POOL_BYTES }, streamed(verified));
  const body = Buffer.alloc(BODY_LIMIT_BYTES, 'a');
  const forged = await readThrough(read, { 'content-length': String(body.length), 'zitadel-signature': signPayload(body, 'wrong-key') }, body, 16 * 1024);
  t.match(forged.error, { code: 'ERR_SIGNATURE_MISMATCH', statusCode: 401 }, 'refused by the reader, with the same answer as the handler gives');
  t.equal(forged.body, undefined, 'no body handed on');

  const signed = await readThrough(read, { 'content-length': String(body.length), 'zitadel-signature': signPayload(body, SIGNING_KEY) }, body, 16 * 1024);
  t.equal(signed.error, null);
  t.ok(signed.body?.equals(body), 'the exact bytes, joined once');
  t.ok(verified.has(signed.body!), 'marked verified: the handler does not verify it again');

  const unsigned = await readThrough(read, { 'content-length': String(body.length) }, body, 16 * 1024);
  t.equal(unsigned.error, null, 'a header the reader cannot verify with is left to the handler');
  t.notOk(verified.has(unsigned.body!), 'not marked: the handler verifies it (and refuses it)');

  const plain = await readThrough(bodyReader({ admitted: BODY_LIMIT_BYTES, max: LARGE_BODY_MAX_BYTES, pool: LARGE_BODY_POOL_BYTES }), { 'content-length': String(body.length), 'zitadel-signature': signPayload(body, 'wrong-key') }, body, 16 * 1024);
  t.ok(plain.body?.equals(body), 'without the signature options the body is read as is (the handler verifies)');
});

t.test('a forged body is refused on every path: declared, declared over 64 KiB (the pool), chunked, and by the handler', async (t) => {
  const { stack, port } = await listening(t);
  const forge = (body: Buffer) => signPayload(body, 'another-key-than-the-service-holds-00');
  const small = Buffer.from(JSON.stringify({ fullMethod: '/zitadel.session.v2.SessionService/SetSession', padding: 'x'.repeat(2000) }));
  const declared = await exchange(port, head({ 'Content-Type': 'application/json', 'Content-Length': String(small.length), 'ZITADEL-Signature': forge(small) }), ...pieces(small, 300));
  t.match([declared.status, declared.body], [401, /ERR_SIGNATURE_MISMATCH/], 'declared length, in pieces');

  const large = Buffer.alloc(BODY_LIMIT_BYTES + 10_000, 'a');
  const pooled = await exchange(port, head({ 'Content-Type': 'application/json', 'Content-Length': String(large.length), 'ZITADEL-Signature': forge(large) }), ...pieces(large, 16 * 1024));
  t.match([pooled.status, pooled.body], [401, /ERR_SIGNATURE_MISMATCH/], 'declared over 64 KiB, read in the pool');

  const chunks = pieces(small, 100).flatMap((piece) => [`${piece.length.toString(16)}\r\n`, piece, '\r\n']);
  const chunked = await exchange(port, head({ 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'ZITADEL-Signature': forge(small) }), ...chunks, '0\r\n\r\n');
  t.match([chunked.status, chunked.body], [401, /ERR_SIGNATURE_MISMATCH/], 'chunked');

  // The handler's path: a body the reader did not verify (here, the webhook routes alone, without the early refusal
  // that would answer a missing header before the body).
  const bare = Fastify();
  t.teardown(() => bare.close());
  let enforced = 0;
  await bare.register(webhookRoutes, {
    enforcer: { enforce: async () => (enforced++, Promise.reject(new Error('must not be reached'))) },
    signingKeys: [SIGNING_KEY],
    signatureToleranceSeconds: 300,
    now: () => Date.now(),
  });
  const unverified = await bare.inject({ method: 'POST', url: WEBHOOK_PATH, headers: { 'content-type': 'application/json' }, payload: small });
  t.match([unverified.statusCode, unverified.body], [401, /ERR_SIGNATURE_MISSING/], 'refused by the handler');
  t.equal(enforced, 0, 'nothing enforced');
  t.equal(stack.simulator.state.calls.length, 0, 'no ZITADEL call on any path');
});
