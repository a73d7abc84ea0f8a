import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createSessionServiceClient } from '@zitadel/client/v2';
import t, { type Test } from 'tap';
import { freePort } from '../../src/cli/free-port.js';
import { ALL_PERMISSIONS, DEFAULT_SIMULATOR_TOKEN, LOGIN_CLIENT_PERMISSIONS, ZitadelSimulator } from '../../src/simulator/index.js';
import { ZitadelConnection } from '../../src/zitadel/connection.js';
import { PersonalAccessToken } from '../../src/zitadel/credentials.js';
import { runCli, startProcess, type Started } from '../helpers/processes.js';

// register --payload-type jwe with the built CLI, then the built service started with the key it handed over,
// enforcing a login that went through the simulator's executor as JWE (issue #12, Done when).

t.before(() => {
  if (!existsSync(new URL('../../dist/cli/index.js', import.meta.url))) throw new Error('dist/ is not built: run npm run build first');
});

const PEM_BODY = /-----BEGIN PRIVATE KEY-----\n([\s\S]+?)\n-----END PRIVATE KEY-----/;

async function until<T>(what: string, probe: () => T | undefined, service: Started): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (service.child.exitCode !== null) throw new Error(`the service exited before ${what}: ${service.stderr()}${service.stdout()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function scene(t: Test, options: { payloadTypes?: boolean } = {}) {
  const simulator = new ZitadelSimulator({
    tokens: { admin: ALL_PERMISSIONS, 'login-ui': LOGIN_CLIENT_PERMISSIONS, [DEFAULT_SIMULATOR_TOKEN]: ['session.read', 'session.delete'] },
    ...options,
  });
  await simulator.listen();
  const user = simulator.state.addUser({ loginName: 'alice@example.com', password: 'pw' });
  const loginUi = new ZitadelConnection({ baseUrl: simulator.url, credentials: new PersonalAccessToken('login-ui') });
  t.teardown(async () => {
    loginUi.close();
    await simulator.close();
  });
  const sessions = createSessionServiceClient(loginUi.transport);
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}/webhooks/zitadel`;
  const admin = { ZITADEL_URL: simulator.url, ZITADEL_ADMIN_TOKEN: 'admin' };
  const register = (...args: string[]) => runCli(['register', '--endpoint', endpoint, '--interrupt-on-error', ...args], admin);
  /** The built service, started as a user starts it, at trace level (nothing decrypted may reach the log). */
  const serve = async (env: Record<string, string>) => {
    const service = startProcess(process.execPath, ['dist/main.js'], {
      ZITADEL_URL: simulator.url,
      ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN,
      SESSION_LIMIT: '1',
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'trace',
      ...env,
    }, true);
    t.teardown(() => {
      if (service.child.exitCode === null) process.kill(-service.child.pid!, 'SIGKILL');
    });
    await until('ready', () => (service.stdout().includes('Server listening') ? true : undefined), service);
    return service;
  };
  /** Two logins of alice (limit 1): the second evicts the first only if the service opened the JWE and enforced. */
  const twoLogins = async () => {
    for (let i = 0; i < 2; i++) {
      await sessions.createSession({ checks: { user: { search: { case: 'userId', value: user.id } }, password: { password: 'pw' } } });
    }
    return simulator.state.activeSessionsOf(user.id).length;
  };
  return { simulator, register, serve, twoLogins, admin };
}

t.test('register --payload-type jwe --private-key-out FILE, the service started with the file: logins enforced; twice changes nothing', async (t) => {
  const { simulator, register, serve, twoLogins } = await scene(t);
  const dir = mkdtempSync(path.join(tmpdir(), 'payload-key-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'payload-key.pem');

  const first = await register('--payload-type', 'jwe', '--private-key-out', file);
  t.equal(first.code, 0, first.stderr);
  t.equal(statSync(file).mode & 0o777, 0o600, 'the key file is readable by its owner only');
  t.match(readFileSync(file, 'utf8'), PEM_BODY, 'a PKCS#8 PEM');
  t.notMatch(first.stdout, /PRIVATE KEY/, 'written to the file, not printed');
  t.match(first.stdout, /public key \d+ \(SHA256:[A-Za-z0-9+/]+\) added and activated/);
  t.match(first.stdout, `fly secrets set ZITADEL_PAYLOAD_TYPE=jwe ZITADEL_PAYLOAD_KEYS="$(cat ${file})"`);
  t.match(first.stdout, `ZITADEL_PAYLOAD_KEYS=${file}`);
  const signingKey = /signing key \(shown once\): (\w+)/.exec(first.stdout)![1]!;

  const service = await serve({ ZITADEL_SIGNING_KEYS: signingKey, ZITADEL_PAYLOAD_TYPE: 'jwe', ZITADEL_PAYLOAD_KEYS: file });
  t.equal(await twoLogins(), 1, 'the second login evicted the first: the JWE was opened and the limit enforced');
  t.ok(simulator.actions.targets.size === 1 && [...simulator.actions.targets.values()][0]!.payloadType === 'PAYLOAD_TYPE_JWE');
  await until('the enforcement log line', () => (service.stdout().includes('"outcome":"enforced"') ? true : undefined), service);
  const pem = readFileSync(file, 'utf8');
  const keyLine = PEM_BODY.exec(pem)![1]!.split('\n')[1]!;
  t.notOk(`${service.stdout()}${service.stderr()}`.includes(keyLine), 'the private key is not in the service\'s logs');
  t.notMatch(service.stdout(), /"password"|alice@example\.com/, 'nothing decrypted is logged, even at trace');

  const other = path.join(dir, 'other.pem');
  const second = await register('--payload-type', 'jwe', '--private-key-out', other);
  t.equal(second.code, 0, second.stderr);
  t.match(second.stdout, /target "session-limiter" \(\d+\): unchanged/);
  t.match(second.stdout, /public key \d+ \(SHA256:\S+\) is active and kept.*rotate-key --payload-key/s);
  t.notOk(existsSync(other), 'no key generated, no file left behind');
  t.equal([...simulator.actions.targets.values()][0]!.publicKeys.length, 1);

  // The README's command, run a second time as it stands: nothing would change, so it succeeds and says so.
  const again = await register('--payload-type', 'jwe', '--private-key-out', file);
  t.equal(again.code, 0, again.stderr);
  t.match(again.stdout, /target "session-limiter" \(\d+\): unchanged/);
  t.match(again.stdout, `is active and kept`);
  t.match(again.stdout, `no key was generated and ${file} was not touched`);
  t.equal(readFileSync(file, 'utf8'), pem, 'the existing key file is untouched');
  t.equal([...simulator.actions.targets.values()][0]!.publicKeys.length, 1, 'still one public key');

  // A new key would be generated (another target): an existing file is refused before anything changes in ZITADEL.
  const refused = await register('--name', 'second-target', '--payload-type', 'jwe', '--private-key-out', file);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /the file exists and is never overwritten.*nothing was changed/);
  t.equal(readFileSync(file, 'utf8'), pem, 'the existing key file is untouched');
  t.equal(simulator.actions.targets.size, 1, 'no second target created');
});

t.test('register --payload-type jwe prints the key once; the service started with that value enforces; no key in its logs', async (t) => {
  const { register, serve, twoLogins } = await scene(t);
  const result = await register('--payload-type', 'jwe', '--key-type', 'rsa');
  t.equal(result.code, 0, result.stderr);
  const pem = PEM_BODY.exec(result.stdout)?.[0];
  if (!pem) return t.fail(`no key printed: ${result.stdout}`);
  t.equal(result.stdout.split('BEGIN PRIVATE KEY').length, 2, 'printed exactly once');
  t.match(result.stdout, 'fly secrets set ZITADEL_PAYLOAD_TYPE=jwe ZITADEL_PAYLOAD_KEYS="$(cat payload-key.pem)"');
  const signingKey = /signing key \(shown once\): (\w+)/.exec(result.stdout)![1]!;
  const service = await serve({ ZITADEL_SIGNING_KEYS: signingKey, ZITADEL_PAYLOAD_TYPE: 'jwe', ZITADEL_PAYLOAD_KEYS: pem });
  t.equal(await twoLogins(), 1, 'enforced with the RSA key given as the value');
  const keyLine = pem.split('\n')[2]!;
  t.notOk(`${service.stdout()}${service.stderr()}`.includes(keyLine), 'the private key is not in the service\'s logs');
  t.notMatch(result.stderr, /PRIVATE KEY/, 'no key on stderr');
  t.same(
    result.stderr.split('\n').filter((line) => line && !line.startsWith('warning: this new target interrupts logins')),
    [],
    'nothing on stderr but the warning about a new interrupting target',
  );
  t.notOk(result.stderr.includes(keyLine));
});

t.test('rotate-key --payload-key with the built CLI: step 1 writes the new key, step 2 refuses, then finishes', async (t) => {
  const { register, serve, twoLogins, admin } = await scene(t);
  const dir = mkdtempSync(path.join(tmpdir(), 'payload-key-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const current = path.join(dir, 'current.pem');
  const next = path.join(dir, 'next.pem');
  const registered = await register('--payload-type', 'jwe', '--private-key-out', current);
  const signingKey = /signing key \(shown once\): (\w+)/.exec(registered.stdout)![1]!;
  const service = await serve({ ZITADEL_SIGNING_KEYS: signingKey, ZITADEL_PAYLOAD_TYPE: 'jwe', ZITADEL_PAYLOAD_KEYS: current });
  const step1 = await runCli(['rotate-key', '--payload-key', '--private-key-out', next], admin);
  t.equal(step1.code, 0, step1.stderr);
  t.match(step1.stdout, /step 1 of 2: added public key \d+ .*inactive/);
  t.match(step1.stdout, `fly secrets set ZITADEL_PAYLOAD_KEYS="$(cat <current key file> ${next})"`);
  const nextPem = readFileSync(next, 'utf8');
  const step1Again = await runCli(['rotate-key', '--payload-key', '--private-key-out', next], admin);
  t.equal(step1Again.code, 0, step1Again.stderr);
  t.match(step1Again.stdout, /a payload key rotation is under way/);
  t.equal(readFileSync(next, 'utf8'), nextPem, 'step 1 run again leaves the key file alone');
  const refused = await runCli(['rotate-key', '--payload-key', '--finish'], admin);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /refusing to finish.*401 ERR_PAYLOAD_UNDECRYPTABLE/s);
  t.equal(await twoLogins(), 1, 'logins go on');

  service.child.kill('SIGTERM');
  await service.exited;
  writeFileSync(path.join(dir, 'both.pem'), `${readFileSync(current, 'utf8')}${readFileSync(next, 'utf8')}`);
  await serve({ ZITADEL_SIGNING_KEYS: signingKey, ZITADEL_PAYLOAD_TYPE: 'jwe', ZITADEL_PAYLOAD_KEYS: path.join(dir, 'both.pem') });
  const finished = await runCli(['rotate-key', '--payload-key', '--finish'], admin);
  t.equal(finished.code, 0, finished.stderr);
  t.match(finished.stdout, /checked: .*401 ERR_PAYLOAD_SIGNATURE.*step 2 of 2: public key \d+ .* is now active; removed: \d+/s);
  t.equal(await twoLogins(), 1, 'enforced with the new key');
});

t.test('register --payload-type jwe against a ZITADEL older than v4.8: refused plainly, nothing left behind', async (t) => {
  const { simulator, register } = await scene(t, { payloadTypes: false });
  const result = await register('--payload-type', 'jwe');
  t.equal(result.code, 1);
  t.match(result.stderr, /error: this ZITADEL does not know payload types \(it is older than v4\.8\)/);
  t.notMatch(result.stdout + result.stderr, /PRIVATE KEY/);
  t.equal(simulator.actions.targets.size, 0);
});
