import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { fixtureFor } from '../helpers/payloads.js';
import { ZitadelSimulator } from '../../src/simulator/index.js';
import { startStack } from '../helpers/stack.js';

t.test('ZITADEL_URL pointing at an HTTP/1.1 server: the webhook answers 503 ERR_ZITADEL_UNAVAILABLE, and the process lives on', async (t) => {
  let connections = 0;
  const server = http.createServer((_request, response) => response.writeHead(404, { 'content-type': 'text/plain' }).end('not here'));
  server.on('connection', () => (connections += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const stack = await startStack({ env: () => ({ ZITADEL_URL: url, ENFORCE_BUDGET_MS: '500' }) });
  t.teardown(() => stack.close());

  for (let i = 0; i < 2; i++) {
    // Twice: the second call reuses (or replaces) the broken HTTP/2 session, where an unhandled 'error' used to end
    // the process.
    const response = await stack.send(fixtureFor('02-password.set-session', 'any-session'));
    t.equal(response.statusCode, 503, `webhook ${i + 1}: 503`);
    t.equal(response.json().error, 'ERR_ZITADEL_UNAVAILABLE', `webhook ${i + 1}: unavailable, not refused`);
  }
  t.ok(connections > 0, 'the calls did reach the HTTP/1.1 server');
  const failure = stack.logs.lines.find((line) => line.msg?.startsWith('webhook failed'));
  t.match(failure?.err?.message, /does not speak gRPC over HTTP\/2/, 'the log says what is wrong with ZITADEL_URL');
  t.notOk(stack.logs.lines.some((line) => line.configurationError), 'not reported as a token or permission problem');
});

t.test('TLS that fails (https:// to a plain HTTP/2 port): 503 ERR_ZITADEL_UNAVAILABLE and /readyz unreachable, never "check the token"', async (t) => {
  const simulator = new ZitadelSimulator();
  await simulator.listen();
  t.teardown(() => simulator.close());
  // The simulator speaks h2c: TLS to it fails before ZITADEL's protocol is ever spoken (as a wrong certificate does).
  const url = simulator.url.replace(/^http:/, 'https:');
  const stack = await startStack({ existingSimulator: simulator, env: () => ({ ZITADEL_URL: url, ENFORCE_BUDGET_MS: '500' }) });
  t.teardown(() => stack.close());
  const response = await stack.send(fixtureFor('02-password.set-session', 'any-session'));
  t.equal(response.statusCode, 503);
  t.equal(response.json().error, 'ERR_ZITADEL_UNAVAILABLE', 'unreachable, not refused');
  const failure = stack.logs.lines.find((line) => line.msg?.startsWith('webhook failed'));
  t.match(failure?.err?.message, /TLS to ZITADEL_URL failed/, 'the log says the TLS connection failed');
  t.notOk(stack.logs.lines.some((line) => line.configurationError), 'not reported as a token or permission problem');
  const ready = await stack.app.inject({ method: 'GET', url: '/readyz' });
  t.same(ready.json().checks, { zitadel: 'unreachable' });
});
