import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { signPayload } from '../../src/signature/sign.js';
import { DEFAULT_SIMULATOR_TOKEN, ZitadelSimulator } from '../../src/simulator/index.js';
import { fixtureFor } from '../helpers/payloads.js';
import { minutesAgo, SIGNING_KEY } from '../helpers/stack.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Service {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** `npm start`, as a user runs it, in its own process group so that the whole group can be signalled. */
function npmStart(env: Record<string, string>): Service {
  const child = spawn('npm', ['start', '--silent'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

async function waitFor<T>(what: string, probe: () => T | undefined, service: Service, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (service.child.exitCode !== null) throw new Error(`service exited before ${what}: ${service.stderr()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

t.test('npm start serves the webhook against a ZITADEL over gRPC, and stops on SIGTERM', async (t) => {
  const simulator = new ZitadelSimulator();
  await simulator.listen();
  t.teardown(() => simulator.close());
  const { state } = simulator;
  const old = state.seedSession({ userId: 'u', creationDate: minutesAgo(30), factors: { password: minutesAgo(30) } }).id;
  const mid = state.seedSession({ userId: 'u', creationDate: minutesAgo(20), factors: { password: minutesAgo(20) } }).id;
  const fresh = state.seedSession({ userId: 'u', factors: { password: new Date() } }).id;

  const service = npmStart({
    ZITADEL_URL: simulator.url,
    ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN,
    ZITADEL_SIGNING_KEYS: `rotated-out-key,${SIGNING_KEY}`,
    SESSION_LIMIT: '2',
    PORT: '0',
    HOST: '127.0.0.1',
  });
  t.teardown(() => {
    if (service.child.exitCode === null) process.kill(-service.child.pid!, 'SIGKILL');
  });
  const url = await waitFor('the listening line', () => /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(service.stdout())?.[1], service);

  t.equal((await fetch(`${url}/healthz`)).status, 200);
  const body = fixtureFor('02-password.set-session', fresh);
  const post = (signature: string) =>
    fetch(`${url}/webhooks/zitadel`, { method: 'POST', headers: { 'content-type': 'application/json', 'zitadel-signature': signature }, body });

  const rejected = await post(signPayload(body, 'wrong-key'));
  t.equal(rejected.status, 401);
  t.equal(((await rejected.json()) as { error: string }).error, 'ERR_SIGNATURE_MISMATCH');
  t.same(state.calls, [], 'no ZITADEL call for a bad signature');

  const accepted = await post(signPayload(body, SIGNING_KEY));
  t.equal(accepted.status, 204);
  t.same([...state.sessions.keys()].sort(), [mid, fresh].sort(), 'the oldest session was evicted');
  t.notOk(state.sessions.has(old));

  process.kill(-service.child.pid!, 'SIGTERM');
  await service.exited;
  const lines = service.stdout().split('\n').filter(Boolean).map((line) => JSON.parse(line));
  t.ok(lines.some((line) => line.event === 'session.evicted' && line.sessionId === old), 'the eviction was logged');
  t.ok(lines.some((line) => line.msg === 'stopped'), 'it shut down cleanly');
});

t.test('a bad configuration stops npm start with exit code 1 and one line per problem', async (t) => {
  const service = npmStart({ ZITADEL_URL: 'ftp://nowhere', ZITADEL_SIGNING_KEYS: 'SECRET-signing-key', SESSION_LIMIT: '0' });
  const code = await service.exited;
  t.equal(code, 1);
  const problems = service.stderr().split('\n').filter((line) => line.startsWith('config error: '));
  t.same(
    problems.map((line) => line.slice('config error: '.length).split(/[ :]/)[0]),
    ['ZITADEL_URL', 'ZITADEL_TOKEN', 'SESSION_LIMIT'],
  );
  t.notMatch(service.stderr() + service.stdout(), /SECRET/);
});
