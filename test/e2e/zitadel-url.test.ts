import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { DEFAULT_SIMULATOR_TOKEN, ZitadelSimulator } from '../../src/simulator/index.js';
import { runCli } from '../helpers/processes.js';
import { SIGNING_KEY } from '../helpers/stack.js';

// The admin and diagnostic commands, run as users run them (the built CLI in a child process).

const ADMIN_SCOPES = ['action.target.read', 'action.target.write', 'action.target.delete', 'action.execution.read', 'action.execution.write'] as const;
const endpoint = 'http://127.0.0.1:9/webhooks/zitadel';

t.test('register, rotate-key, unregister and doctor refuse a ZITADEL_URL with credentials and never echo it', async (t) => {
  const simulator = new ZitadelSimulator({ tokens: { admin: ADMIN_SCOPES } });
  await simulator.listen();
  t.teardown(() => simulator.close());
  const port = new URL(simulator.url).port;
  const PASSWORD = 'SECRET-url-password-4c1a';
  const env = {
    ZITADEL_URL: `http://operator:${PASSWORD}@127.0.0.1:${port}`,
    ZITADEL_ADMIN_TOKEN: 'admin',
    ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN,
    ZITADEL_SIGNING_KEYS: SIGNING_KEY,
  };
  for (const args of [['register', '--endpoint', endpoint], ['rotate-key'], ['unregister'], ['doctor']]) {
    const run = await runCli(args, env);
    const output = run.stdout + run.stderr;
    t.equal(run.code, args[0] === 'doctor' ? 1 : 2, `${args[0]}: refused before anything is sent`);
    t.match(output, /ZITADEL_URL must be an https:\/\/ \(or, for a local ZITADEL, http:\/\/\) URL without credentials/, `${args[0]}: says why`);
    t.notMatch(output, PASSWORD, `${args[0]}: the password is not printed`);
    t.notMatch(output, 'operator', `${args[0]}: nor the user name`);
  }
  t.equal(simulator.actions.targets.size, 0, 'nothing was registered');

  const bad = await runCli(['register', '--endpoint', endpoint], { ...env, ZITADEL_URL: `ftp://operator:${PASSWORD}@127.0.0.1` });
  t.equal(bad.code, 2, 'not an http(s) URL: a usage error');
  t.notMatch(bad.stdout + bad.stderr, PASSWORD);
});

t.test('a warning on stderr, before the admin token is sent, when it would travel over plain http to a host that is not loopback', async (t) => {
  const simulator = new ZitadelSimulator({ tokens: { admin: ADMIN_SCOPES } });
  await simulator.listen();
  t.teardown(() => simulator.close());
  const port = new URL(simulator.url).port;
  // 0.0.0.0 reaches this machine, but is not a loopback address: the check goes by the address written.
  const remote = { ZITADEL_URL: `http://0.0.0.0:${port}`, ZITADEL_ADMIN_TOKEN: 'admin' };

  const registered = await runCli(['register', '--endpoint', endpoint], remote);
  t.equal(registered.code, 0, registered.stderr);
  t.match(registered.stderr, /^warning: ZITADEL_URL uses plain http:\/\/ to 0\.0\.0\.0, which is not a loopback address: the admin token travels unencrypted/m);
  for (const args of [['rotate-key'], ['unregister']]) {
    const run = await runCli(args, remote);
    t.equal(run.code, 0, run.stderr);
    t.match(run.stderr, /the admin token travels unencrypted/, `${args[0]} warns too`);
  }
  const doctor = await runCli(['doctor', '--endpoint', endpoint], { ...remote, ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN, ZITADEL_SIGNING_KEYS: SIGNING_KEY });
  t.match(doctor.stderr, /the access token travels unencrypted/, 'doctor warns for the runtime token');
  t.match(doctor.stderr, /the admin token travels unencrypted/, 'and for the admin token');

  const local = await runCli(['register', '--endpoint', endpoint], { ...remote, ZITADEL_URL: simulator.url });
  t.equal(local.code, 0, local.stderr);
  t.notMatch(local.stderr, /warning/, 'no warning for a loopback address');
});

t.test('doctor against a server that does not speak HTTP/2: "unreachable", exit 1, no crash', async (t) => {
  const server = http.createServer((_request, response) => response.writeHead(404, { 'content-type': 'text/plain' }).end('not here'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const doctor = await runCli(['doctor', '--endpoint', endpoint], {
    ZITADEL_URL: url,
    ZITADEL_TOKEN: 'runtime',
    ZITADEL_ADMIN_TOKEN: 'admin',
    ZITADEL_SIGNING_KEYS: SIGNING_KEY,
  });
  t.equal(doctor.code, 1, 'a FAIL: exit 1');
  t.match(doctor.stdout, new RegExp(`^FAIL  ZITADEL reachable: ${url} is unreachable: Unavailable: ZITADEL_URL does not speak gRPC over HTTP/2`, 'm'));
  t.equal(doctor.stderr, '', 'nothing on stderr: no unhandled error, no stack trace');
});
