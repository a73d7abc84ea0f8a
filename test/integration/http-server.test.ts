import type { AddressInfo, Socket } from 'node:net';
import t, { type Test } from 'tap';
import { errorCatalog } from '../../src/errors.js';
import { connect, exchange, nextResponse, untilClosed, type RawExchange } from '../helpers/raw-http.js';
import { startStack, type Stack, type StackOptions } from '../helpers/stack.js';

/** The service listening on loopback (a real socket), with these server settings. */
async function listening(t: Test, env: Record<string, string>, options: StackOptions = {}): Promise<{ stack: Stack; port: number }> {
  const stack = await startStack({ ...options, env: () => env });
  t.teardown(() => stack.close());
  await stack.app.listen({ port: 0, host: '127.0.0.1' });
  return { stack, port: (stack.app.server.address() as AddressInfo).port };
}

/** Every answer is `{"error","message"}` with a catalogue code whose status is the answer's. */
function assertOurShape(t: Test, status: number | undefined, body: string, code: string, what: string): void {
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(body);
  } catch {
    t.fail(`${what}: the body is JSON (${JSON.stringify(body.slice(0, 200))})`);
  }
  t.same(Object.keys(json), ['error', 'message'], `${what}: {"error","message"}`);
  t.equal(json.error, code, `${what}: ${code}`);
  t.equal(status, errorCatalog[code as keyof typeof errorCatalog]?.status, `${what}: the catalogue's status`);
}

const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;

/** Writes `byte` every `everyMs` until the socket closes (the server cuts it off), then stops. */
function trickle(socket: Socket, byte: string, everyMs: number): void {
  const timer = setInterval(() => {
    if (!socket.destroyed && socket.writable) socket.write(byte);
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
}

t.test('a body trickled byte by byte is cut off at REQUEST_TIMEOUT_MS: 408 in our shape, connection closed', async (t) => {
  const { stack, port } = await listening(t, { REQUEST_TIMEOUT_MS: '1000' }, { logLevel: 'debug' });
  const socket = await connect(port);
  const closed = untilClosed(socket);
  // A fresh signature header (its v1 cannot match): a header that fails on its own is refused before the body (issue 15).
  const signature = `t=${Math.floor(Date.now() / 1000)},v1=${'0'.repeat(64)}`;
  socket.write(`POST /webhooks/zitadel HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nZITADEL-Signature: ${signature}\r\nContent-Length: 10000\r\n\r\n{`);
  trickle(socket, ' ', 100);
  const { status, body } = await closed;
  assertOurShape(t, status, body, 'ERR_REQUEST_TIMEOUT', 'trickled body');
  // The route, which was reading the body, learns of it too: wait for its line, then look at what it says.
  const routeLine = () => stack.logs.lines.find((line) => /^webhook (rejected|failed)/.test(line.msg ?? ''));
  while (!routeLine()) await new Promise((resolve) => setImmediate(resolve));
  t.match(routeLine(), { msg: 'webhook rejected', code: 'ERR_BAD_REQUEST' }, 'the route logs a refused request (a warning at most), not a failure');
  t.same(stack.logs.lines.filter((line) => line.level >= 50), [], 'no error is logged for a client that was too slow');
});

t.test('headers trickled line by line are cut off at REQUEST_TIMEOUT_MS too', async (t) => {
  const { port } = await listening(t, { REQUEST_TIMEOUT_MS: '1000' });
  const socket = await connect(port);
  const closed = untilClosed(socket);
  socket.write('POST /webhooks/zitadel HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  trickle(socket, 'X-Slow: 1\r\n', 100);
  const { status, body } = await closed;
  assertOurShape(t, status, body, 'ERR_REQUEST_TIMEOUT', 'trickled headers');
});

t.test('an idle keep-alive connection is closed after KEEP_ALIVE_TIMEOUT_MS', async (t) => {
  const { stack, port } = await listening(t, { KEEP_ALIVE_TIMEOUT_MS: '1000' });
  t.equal(stack.app.server.keepAliveTimeout, 1000, 'the server uses the configured value');
  const socket = await connect(port);
  const closed = untilClosed(socket);
  socket.write(get('/healthz'));
  await closed;
  t.pass('the server closed the idle connection');
});

t.test('connections beyond MAX_CONNECTIONS are refused; the ones held keep working', async (t) => {
  const { stack, port } = await listening(t, { MAX_CONNECTIONS: '2' });
  const held: Socket[] = [];
  t.teardown(() => held.forEach((socket) => socket.destroy()));
  for (let i = 0; i < 2; i++) {
    const socket = await connect(port);
    held.push(socket);
    socket.write(get('/healthz'));
    t.equal((await nextResponse(socket)).status, 200, `connection ${i + 1} is served and kept open`);
  }
  const refused: RawExchange = await exchange(port, get('/healthz'));
  t.equal(refused.response, '', 'the third connection is closed without an answer');
  t.ok(stack.logs.lines.some((line) => /MAX_CONNECTIONS/.test(line.msg ?? '')), 'the refusal is logged, naming MAX_CONNECTIONS');

  held[0]!.write(get('/healthz'));
  t.equal((await nextResponse(held[0]!)).status, 200, 'a held connection still works');
  const gone = untilClosed(held[1]!);
  held[1]!.end();
  await gone;
  // The server notices the close on its own schedule: wait for its count, not for a time.
  while ((await new Promise<number>((resolve) => stack.app.server.getConnections((_error, count) => resolve(count)))) > 1) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  const socket = await connect(port);
  held.push(socket);
  socket.write(get('/healthz'));
  t.equal((await nextResponse(socket)).status, 200, 'once one closed, a new connection is accepted');
});

t.test('every answer outside the webhook is {"error","message"}, and no route but the webhook reads a body', async (t) => {
  const { stack } = await listening(t, {});
  const mib = Buffer.alloc(1024 * 1024, 'a');
  const json = JSON.stringify({ a: 'x'.repeat(1024 * 1024 - 16) });
  const cases: { what: string; method: string; url: string; headers?: Record<string, string>; payload?: string | Buffer; code: string; allow?: string }[] = [
    { what: 'GET /nope', method: 'GET', url: '/nope', code: 'ERR_NOT_FOUND' },
    { what: 'POST /nope with a JSON body', method: 'POST', url: '/nope', headers: { 'content-type': 'application/json' }, payload: json, code: 'ERR_NOT_FOUND' },
    { what: 'POST /nope with broken JSON', method: 'POST', url: '/nope', headers: { 'content-type': 'application/json' }, payload: '{"a', code: 'ERR_NOT_FOUND' },
    { what: 'POST /nope with 2 MiB', method: 'POST', url: '/nope', headers: { 'content-type': 'application/json' }, payload: Buffer.concat([mib, mib]), code: 'ERR_NOT_FOUND' },
    { what: 'POST /nope text/plain', method: 'POST', url: '/nope', headers: { 'content-type': 'text/plain' }, payload: 'hello', code: 'ERR_NOT_FOUND' },
    { what: 'POST /nope with a malformed content type', method: 'POST', url: '/nope', headers: { 'content-type': '///' }, payload: 'x', code: 'ERR_NOT_FOUND' },
    { what: 'POST /readyz with a 1 MiB JSON body', method: 'POST', url: '/readyz', headers: { 'content-type': 'application/json' }, payload: json, code: 'ERR_METHOD_NOT_ALLOWED', allow: 'GET, HEAD' },
    { what: 'DELETE /healthz with a body', method: 'DELETE', url: '/healthz', headers: { 'content-type': 'application/json' }, payload: '{}', code: 'ERR_METHOD_NOT_ALLOWED', allow: 'GET, HEAD' },
    { what: 'PUT /webhooks/zitadel', method: 'PUT', url: '/webhooks/zitadel', headers: { 'content-type': 'application/json' }, payload: '{}', code: 'ERR_METHOD_NOT_ALLOWED', allow: 'POST' },
    { what: 'GET /webhooks/zitadel', method: 'GET', url: '/webhooks/zitadel', code: 'ERR_METHOD_NOT_ALLOWED', allow: 'POST' },
    { what: 'GET /readyz/ (not a route)', method: 'GET', url: '/readyz/', code: 'ERR_NOT_FOUND' },
    { what: 'a malformed URL', method: 'GET', url: '/%zz', code: 'ERR_BAD_REQUEST' },
    { what: 'POST /webhooks/zitadel over the body limit', method: 'POST', url: '/webhooks/zitadel', headers: { 'content-type': 'application/json' }, payload: mib, code: 'ERR_BODY_TOO_LARGE' },
    { what: 'POST /webhooks/zitadel text/plain', method: 'POST', url: '/webhooks/zitadel', headers: { 'content-type': 'text/plain' }, payload: 'x', code: 'ERR_UNSUPPORTED_MEDIA_TYPE' },
    { what: 'POST /webhooks/zitadel with a malformed content type', method: 'POST', url: '/webhooks/zitadel', headers: { 'content-type': '///' }, payload: 'x', code: 'ERR_UNSUPPORTED_MEDIA_TYPE' },
  ];
  for (const c of cases) {
    const response = await stack.app.inject({ method: c.method as 'GET', url: c.url, headers: c.headers, payload: c.payload });
    assertOurShape(t, response.statusCode, response.body, c.code, c.what);
    if (c.allow) t.equal(response.headers.allow, c.allow, `${c.what}: Allow: ${c.allow}`);
    t.match(String(response.headers['content-type']), /^application\/json/, `${c.what}: JSON`);
  }
  const readyz = await stack.app.inject({ method: 'GET', url: '/readyz' });
  t.equal(readyz.statusCode, 200, 'the routes themselves still answer');
  t.equal((await stack.app.inject({ method: 'HEAD', url: '/healthz' })).statusCode, 200, 'HEAD of a GET route too');
});

t.test('over a real socket: a body sent to a route that does not read it closes the connection after the answer', async (t) => {
  const { port } = await listening(t, {});
  const body = JSON.stringify({ a: 'x'.repeat(64 * 1024) });
  const { status, body: answer, response } = await exchange(
    port,
    `POST /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
    body,
  );
  assertOurShape(t, status, answer, 'ERR_METHOD_NOT_ALLOWED', 'POST /readyz');
  t.match(response, /\r\nconnection: close\r\n/i, 'Connection: close: the unread body is not read to find the next request');
});

t.test('a request that arrives while the service shuts down is answered 503 ERR_SHUTTING_DOWN in our shape', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  await stack.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = stack.app.server.address() as AddressInfo;
  // The server has read the first half of the request once its own socket saw the bytes: no guessing about time.
  const received = new Promise<void>((resolve) => stack.app.server.once('connection', (socket: Socket) => socket.once('data', () => resolve())));
  const socket = await connect(port);
  const closed = untilClosed(socket);
  socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  await received;
  // A request under way keeps its connection open through the shutdown; the server stops listening first.
  const shutdown = stack.app.close();
  while (stack.app.server.listening) await new Promise((resolve) => setImmediate(resolve));
  socket.write('\r\n');
  const { status, body, response } = await closed;
  assertOurShape(t, status, body, 'ERR_SHUTTING_DOWN', 'during shutdown');
  t.match(response, /\r\nconnection: close\r\n/i, 'and the connection is closed');
  await shutdown;
});
