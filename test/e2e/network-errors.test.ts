import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { freePort } from '../../src/cli/free-port.js';
import { runCli } from '../helpers/processes.js';

// Issue #13 §4: every command that talks over the network says where it went (no credentials) and why, never a bare
// "fetch failed", and never a stray status "0" when nothing answered.

const ADMIN_COMMANDS = [['register', '--endpoint', 'https://limiter.example.com/webhooks/zitadel'], ['unregister'], ['rotate-key']];

function assertNamesTheFailure(t: Test, output: string, url: string, cause: RegExp): void {
  t.match(output, url, 'names the URL it tried', { output });
  t.match(output, cause, 'names the cause', { output });
  t.notMatch(output, /fetch failed/, 'never a bare "fetch failed"', { output });
  t.notMatch(output, /failed: 0 /, 'no status 0 when nothing answered', { output });
}

t.test('ZITADEL down: the admin commands name the URL and ECONNREFUSED', async (t) => {
  const url = `http://127.0.0.1:${await freePort()}`;
  for (const args of ADMIN_COMMANDS) {
    const run = await runCli(args, { ZITADEL_URL: url, ZITADEL_ADMIN_TOKEN: 'admin-secret-token' });
    t.equal(run.code, 1, `${args[0]} exits 1`, { stdout: run.stdout, stderr: run.stderr });
    assertNamesTheFailure(t, run.stderr, `${url}/v2/actions/targets/search`, /connection refused \(ECONNREFUSED\)/);
    t.match(run.stderr, /^error: /, 'one error prefix');
    t.notMatch(run.stdout + run.stderr, /admin-secret-token/, 'the token is not printed');
  }
});

t.test('https:// to a plain HTTP port: the admin commands say TLS failed and what to check', async (t) => {
  const plain = http.createServer((_request, response) => response.end('not TLS'));
  await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => plain.close(() => resolve())));
  const url = `https://127.0.0.1:${(plain.address() as AddressInfo).port}`;
  const run = await runCli(['register', '--endpoint', 'https://limiter.example.com/webhooks/zitadel'], { ZITADEL_URL: url, ZITADEL_ADMIN_TOKEN: 'x' });
  t.equal(run.code, 1);
  assertNamesTheFailure(t, run.stderr, url, /TLS failed \(ERR_SSL_WRONG_VERSION_NUMBER\).*scheme/);
});

t.test('doctor with ZITADEL down: each check names the URL and the cause', async (t) => {
  const url = `http://127.0.0.1:${await freePort()}`;
  const run = await runCli(['doctor'], { ZITADEL_URL: url, ZITADEL_ADMIN_TOKEN: 'x', ZITADEL_TOKEN: 'x', ZITADEL_SIGNING_KEYS: 'k'.repeat(36) });
  t.equal(run.code, 1);
  assertNamesTheFailure(t, run.stdout, url, /ECONNREFUSED/);
  t.notMatch(run.stdout, /admin token cannot read applications/, 'an unreachable ZITADEL is not blamed on the token');
});

t.test('replay to a service that is not running names the URL and the cause; credentials in --url never printed', async (t) => {
  const port = await freePort();
  const run = await runCli(['replay', 'test/fixtures/payloads/02-password.set-session.json', '--url', `http://127.0.0.1:${port}`, '--key', 'k']);
  t.equal(run.code, 1);
  assertNamesTheFailure(t, run.stderr, `http://127.0.0.1:${port}/webhooks/zitadel`, /ECONNREFUSED/);
  t.match(run.stderr, /is the service running/, 'says what to check');

  const withCredentials = await runCli(['replay', 'test/fixtures/payloads/02-password.set-session.json', '--url', `http://user:hunter2@127.0.0.1:${port}/`, '--key', 'k']);
  t.equal(withCredentials.code, 1);
  t.notMatch(withCredentials.stdout + withCredentials.stderr, /hunter2/, 'the password in the URL is not printed');
  t.match(withCredentials.stderr, `http://127.0.0.1:${port}/webhooks/zitadel`, 'the URL without its credentials');
});

t.test('simulate login against something that is not a simulator says what answered', async (t) => {
  const other = http.createServer((_request, response) => response.writeHead(404).end('no such route'));
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => other.close(() => resolve())));
  const url = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
  const run = await runCli(['simulate', 'login', 'alice@example.com', '--url', url]);
  t.equal(run.code, 1);
  t.match(run.stderr, `error: ${url} answered 404 to the simulator's webhook log: is it a zitadel-session-limiter simulator?`);
  t.notMatch(run.stderr, /cannot reach/, 'something did answer');
});

t.test('simulate on a port in use says so and how to pick another', async (t) => {
  const busy = http.createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => busy.close(() => resolve())));
  const port = (busy.address() as AddressInfo).port;
  const run = await runCli(['simulate', '--port', String(port)]);
  t.equal(run.code, 1);
  t.match(run.stderr, `error: 127.0.0.1:${port} is in use: stop what listens there, or pick another port with --port`);
});
