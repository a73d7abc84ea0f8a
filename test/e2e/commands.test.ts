import { readFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { freePort } from '../../src/cli/free-port.js';
import { ROOT, runCli, runProcess, startProcess, type Started } from '../helpers/processes.js';
import { signPayload } from '../../src/signature/sign.js';
import { DEFAULT_SIMULATOR_TOKEN, ZitadelSimulator } from '../../src/simulator/index.js';
import { fixtureFor } from '../helpers/payloads.js';
import { minutesAgo, SIGNING_KEY } from '../helpers/stack.js';
import { serviceEnv } from '../helpers/service-env.js';

type Service = Started;

/** `npm start`, as a user runs it, in its own process group so that the whole group can be signalled. */
function npmStart(env: Record<string, string>): Service {
  return startChild('npm', ['start', '--silent'], env, true);
}

const startChild = startProcess;

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

  const metricsPort = await freePort();
  const service = npmStart({
    ZITADEL_URL: simulator.url,
    ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN,
    ZITADEL_SIGNING_KEYS: `rotated-out-key,${SIGNING_KEY}`,
    SESSION_LIMIT: '2',
    PORT: '0',
    HOST: '127.0.0.1',
    METRICS_PORT: String(metricsPort),
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

  t.equal((await fetch(`${url}/metrics`)).status, 404, 'with METRICS_PORT, /metrics is not on the public port');
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  t.match(metrics, /^session_limiter_sessions_evicted_total 1$/m, 'the metrics port counts the eviction');
  t.match(metrics, /^process_resident_memory_bytes /m, 'with the default process metrics');

  process.kill(-service.child.pid!, 'SIGTERM');
  await service.exited;
  // npm may exit before the service it started has written its last line: wait for the line itself.
  for (let i = 0; i < 200 && !service.stdout().includes('"msg":"stopped"'); i++) await new Promise((resolve) => setTimeout(resolve, 50));
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
    problems.map((line) => line.slice('config error: '.length).split(/[ :]/)[0]).sort(),
    ['SESSION_LIMIT', 'ZITADEL_TOKEN', 'ZITADEL_URL'],
  );
  t.notMatch(service.stderr() + service.stdout(), /SECRET/);
});

t.test('SIGTERM during an enforcement lets it finish, then exits 0 (node dist/main.js, as in the container)', async (t) => {
  const simulator = new ZitadelSimulator();
  await simulator.listen();
  t.teardown(() => simulator.close());
  const { state } = simulator;
  const old = state.seedSession({ userId: 'u', creationDate: minutesAgo(30), factors: { password: minutesAgo(30) } }).id;
  const fresh = state.seedSession({ userId: 'u', factors: { password: new Date() } }).id;
  state.latencyMs.DeleteSession = 1500;

  const service = startChild(process.execPath, ['dist/main.js'], serviceEnv(simulator.url, { SESSION_LIMIT: '1' }));
  const { child, exited } = service;
  t.teardown(() => void child.kill('SIGKILL'));
  const url = await waitFor('the listening line', () => /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(service.stdout())?.[1], service);

  const body = fixtureFor('02-password.set-session', fresh);
  const pending = fetch(`${url}/webhooks/zitadel`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'zitadel-signature': signPayload(body, SIGNING_KEY) },
    body,
  });
  // The list is done once ListSessions is recorded: the DeleteSession (1.5 s) is in flight now.
  await waitFor('the enforcement to reach DeleteSession', () => (state.calls.some((c) => c.method === 'ListSessions') ? true : undefined), service);
  child.kill('SIGTERM');
  const response = await pending;
  const code = await exited;
  const diagnostics = { status: response.status, body: await response.text(), code, stdout: service.stdout() };
  t.equal(response.status, 204, 'the enforcement in flight finished and was answered', { diagnostics });
  t.equal(code, 0, 'then the process exited 0', { diagnostics });
  t.notOk(state.sessions.has(old), 'the eviction happened');
  // In the order they were logged (their times: lines can reach a pipe out of order when stdout is busy).
  const lines = service.stdout().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { time: number; msg: string; event?: string });
  const at = (match: (line: { msg: string; event?: string }) => boolean) => lines.find(match)?.time ?? NaN;
  const shuttingDown = at((line) => line.msg === 'shutting down: finishing enforcements in flight');
  const evicted = at((line) => line.event === 'session.evicted');
  const stopped = at((line) => line.msg === 'stopped');
  t.ok(shuttingDown <= evicted && evicted <= stopped, 'shutting down, then the eviction, then stopped', { diagnostics });
});

for (const payloadType of [undefined, 'jwe', 'jwt'] as const) {
t.test(`npm run demo${payloadType ? ` -- --payload-type ${payloadType}` : ''} plays four devices, a second user and a re-check, and ends in the right state`, async (t) => {
  const { code, stdout, stderr } = await runProcess('npm', ['run', 'demo', '--silent', '--', '--json', ...(payloadType ? ['--payload-type', payloadType] : [])]);
  t.equal(code, 0, stderr);
  const outcome = JSON.parse(stdout) as {
    payloadType: string;
    webhooks: { count: number; forms: string[] };
    limit: number;
    steps: { user: string; device: string; call: string; active: string[]; evicted: string[]; note?: string }[];
    final: Record<string, string[]>;
    notifications: { device: string; user: string; signedInOn: string; type: string; reason: string }[];
  };
  t.equal(outcome.limit, 2);
  t.same(outcome.final, { alice: ['tablet', 'tv'], bob: ['laptop'] }, 'the two most recently authenticated remain');
  t.same(
    outcome.steps.filter((step) => step.evicted.length > 0).map((step) => [step.user, step.device, step.evicted]),
    [
      ['alice', 'tablet', ['laptop']],
      ['alice', 'tv', ['phone']],
    ],
    'the third and fourth password logins each evicted the oldest device, nothing else was evicted',
  );
  t.ok(outcome.steps.filter((step) => step.call.includes('login name')).every((step) => step.evicted.length === 0), 'login-name steps never evict');
  t.match(outcome.steps.at(-1)!.note, /not_found/, 'the evicted laptop cannot go on');
  t.equal(outcome.payloadType, payloadType ?? 'json');
  t.same(outcome.webhooks.forms, [payloadType ?? 'json'], `every webhook body the simulator sent was ${payloadType ?? 'json'}`);
  t.ok(outcome.webhooks.count >= 11, 'one webhook per login call');
  t.same(
    outcome.notifications,
    [
      { device: 'laptop', user: 'alice', signedInOn: 'tablet', type: 'session.evicted', reason: 'limit_exceeded' },
      { device: 'phone', user: 'alice', signedInOn: 'tv', type: 'session.evicted', reason: 'limit_exceeded' },
    ],
    'the demo\'s event receiver got one verified event per eviction, naming the device and the login that caused it',
  );
});
}

t.test('npm run demo prints the transcript README.md shows, notifications of the evicted devices included', async (t) => {
  const { code, stdout, stderr } = await runProcess('npm', ['run', 'demo', '--silent']);
  t.equal(code, 0, stderr);
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## See it work: `npm run demo`'));
  const block = /```\n( {2}step {2}user[\s\S]*?)```/.exec(section)?.[1]?.trimEnd().split('\n');
  t.ok(block, 'README.md has the demo transcript under "See it work"');
  const lines = stdout.split('\n').map((line) => line.trimEnd());
  const start = lines.indexOf(block![0]!);
  t.same(lines.slice(start, start + block!.length), block, 'the README transcript is what the demo prints, line for line');
  t.match(stdout, /^ {2}laptop notified: signed out because alice signed in on the tablet$/m);
  t.match(stdout, /^ {2}phone notified: signed out because alice signed in on the tv$/m);
  t.notMatch(stdout, /whsec_/, 'the demo prints no events secret');
});

t.test('npm run demo -- --payload-type jwe: the table as with JSON, and a line saying the payloads were JWE', async (t) => {
  const { code, stdout, stderr } = await runProcess('npm', ['run', 'demo', '--silent', '--', '--payload-type', 'jwe']);
  t.equal(code, 0, stderr);
  t.match(stdout, /payload type\s+JWE/);
  t.match(stdout, /evicted laptop/);
  t.match(stdout, /The \d+ webhooks were JWE: encrypted to the target's public key/);
  t.notMatch(stdout, /PRIVATE KEY/, 'the demo prints no key');
  const bad = await runProcess('npm', ['run', 'demo', '--silent', '--', '--payload-type', 'xml']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--payload-type must be json, jwt or jwe/);
});

t.test('replay: a valid fixture gets 204, --key wrong gets 401 with its code; - reads stdin', async (t) => {
  const simulator = new ZitadelSimulator();
  await simulator.listen();
  t.teardown(() => simulator.close());
  const fresh = simulator.state.seedSession({ userId: 'u', factors: { password: new Date() } }).id;
  const service = npmStart({
    ZITADEL_URL: simulator.url,
    ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN,
    ZITADEL_SIGNING_KEYS: SIGNING_KEY,
    PORT: '0',
    HOST: '127.0.0.1',
  });
  t.teardown(() => {
    if (service.child.exitCode === null) process.kill(-service.child.pid!, 'SIGKILL');
  });
  const url = await waitFor('the listening line', () => /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(service.stdout())?.[1], service);
  const cli = (...args: string[]) => runCli(['replay', ...args]);

  const fixture = 'test/fixtures/payloads/01-login-name.create-session.json';
  const ok = await cli(fixture, '--url', url, '--key', SIGNING_KEY);
  t.equal(ok.code, 0);
  t.equal(ok.stdout.trim(), '204');

  const wrong = await cli(fixture, '--url', url, '--key', 'wrong');
  t.equal(wrong.code, 1);
  t.match(wrong.stdout, /^401 ERR_SIGNATURE_MISMATCH: /);

  const stale = await cli(fixture, '--url', url, '--key', SIGNING_KEY, '--timestamp', '1767225600');
  t.match(stale.stdout, /^401 ERR_SIGNATURE_STALE/);

  const stdin = await runCli(['replay', '-', '--url', `${url}/webhooks/zitadel`, '--key', SIGNING_KEY], {}, fixtureFor('02-password.set-session', fresh));
  t.equal(stdin.stdout.trim(), '204', 'stdin, enforced');

  const usage = await cli('--url', url);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /give exactly one FILE/);
  process.kill(-service.child.pid!, 'SIGTERM');
  await service.exited;
});

t.test('simulate runs a ZITADEL the real client can sign a user in with; bad arguments are usage errors', async (t) => {
  const service = startChild(process.execPath, ['dist/cli/index.js', 'simulate', '--port', '0', '--user', 'bob@example.com:pw:with:colons']);
  const { child, exited } = service;
  t.teardown(() => void child.kill('SIGKILL'));
  const url = await waitFor('the simulator', () => /listening at (http:\/\/\S+)/.exec(service.stdout())?.[1], service);
  const { createServerTransport } = await import('@zitadel/client/node');
  const { createSessionServiceClient } = await import('@zitadel/client/v2');
  const client = createSessionServiceClient(createServerTransport(DEFAULT_SIMULATOR_TOKEN, { baseUrl: url }));
  const created = await client.createSession({
    checks: { user: { search: { case: 'loginName', value: 'bob@example.com' } }, password: { password: 'pw:with:colons' } },
  });
  t.ok((await client.getSession({ sessionId: created.sessionId })).session?.factors?.password?.verifiedAt);
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'stops cleanly');

  const bad = await runCli(['simulate', '--port', 'x']);
  t.equal(bad.code, 2);
  const unknown = await runCli(['nope']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown command "nope"/);
  const option = await runCli(['replay', '--bogus']);
  t.equal(option.code, 2);
});

t.test('register and doctor from the command line: idempotent register, a FAIL line and exit 1 for a missing permission', async (t) => {
  const simulator = new ZitadelSimulator({
    tokens: { admin: ['action.target.read', 'action.target.write', 'action.execution.read', 'action.execution.write'], reader: ['session.read'] },
  });
  await simulator.listen();
  t.teardown(() => simulator.close());
  const cli = (env: Record<string, string>, ...args: string[]) => runCli(args, env);
  const admin = { ZITADEL_URL: simulator.url, ZITADEL_ADMIN_TOKEN: 'admin' };
  const endpoint = 'http://127.0.0.1:9/webhooks/zitadel';

  const first = await cli(admin, 'register', '--endpoint', endpoint, '--json');
  t.equal(first.code, 0, first.stderr);
  const created = JSON.parse(first.stdout);
  t.equal(created.created, true);
  t.match(created.signingKey, /^[A-Za-z0-9]{36}$/);
  const target = simulator.actions.targets.get(created.targetId);
  // The production checklist recommends a waiting webhook that does not interrupt the login: the default (#13 §2).
  t.same([target?.type, target?.interruptOnError], ['restWebhook', false], 'the default type is the recommended one');
  const again = await cli(admin, 'register', '--endpoint', endpoint);
  t.equal(again.code, 0);
  t.match(again.stdout, /target "session-limiter" \(\d+\): unchanged/);
  t.match(again.stdout, /CreateSession response: already bound/);
  t.notMatch(again.stdout, new RegExp(created.signingKey), 'the key is shown once only');

  const deny = JSON.parse((await cli(admin, 'register', '--endpoint', endpoint, '--deny-new', '--json')).stdout);
  t.same([deny.updated, simulator.actions.targets.get(deny.targetId)?.type, simulator.actions.targets.get(deny.targetId)?.interruptOnError], [true, 'restWebhook', true], '--deny-new: a waiting, interrupting webhook');
  const conflicting = await cli(admin, 'register', '--endpoint', endpoint, '--deny-new', '--type', 'async');
  t.equal(conflicting.code, 2);
  // A NEW interrupting target fails every login until the service holds its key: said plainly (outside review of #13).
  const fresh = await cli(admin, 'register', '--endpoint', endpoint, '--name', 'interrupting', '--deny-new');
  t.equal(fresh.code, 0);
  t.match(fresh.stderr, /^warning: this new target interrupts logins on failure.*EVERY login fails until ZITADEL_SIGNING_KEYS holds it/m);
  await cli(admin, 'unregister', '--name', 'interrupting');

  const usage = await cli({}, 'register', '--endpoint', endpoint);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /ZITADEL_ADMIN_TOKEN is required/);

  const doctor = await cli(
    { ...admin, ZITADEL_TOKEN: 'reader', ZITADEL_SIGNING_KEYS: created.signingKey },
    'doctor',
  );
  t.equal(doctor.code, 1, 'a FAIL makes the exit code non-zero');
  t.match(doctor.stdout, /^FAIL {2}session\.delete: DeleteSession: PermissionDenied: grant the service user IAM_USER_MANAGER/m);
  t.match(doctor.stdout, /^PASS {2}session\.read: /m);
  t.match(doctor.stdout, /^PASS {2}CreateSession response execution: the target is bound$/m);
  t.match(doctor.stdout, /^FAIL {2}endpoint: http:\/\/127\.0\.0\.1:9\/webhooks\/zitadel could not be reached/m);
  t.match(doctor.stdout, /^WARN {2}applications: the admin token cannot read applications \(PermissionDenied\): skipped this part$/m);
});

/** The JSON lines of an output (log lines), skipping anything else. */
function jsonLines(output: string): Record<string, any>[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, any>);
}

/**
 * A simulator with ZITADEL's default behaviour (projection lag on) on a clock the test moves: seeded sessions
 * reach ListSessions once the clock passed the lag, with no GetSession and no sleep.
 */
async function sweepSimulator(t: Test) {
  let clock = Date.now();
  const simulator = new ZitadelSimulator({ now: () => new Date(clock) });
  await simulator.listen();
  t.teardown(() => simulator.close());
  const env = { ZITADEL_URL: simulator.url, ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN, SESSION_LIMIT: '2' };
  return { simulator, state: simulator.state, env, advance: (ms: number) => void (clock += ms) };
}

/** `count` users with `perUser` active sessions each (authenticated oldest first), plus an expired one each. */
function seedOverLimit(state: ZitadelSimulator['state'], count: number, perUser: number) {
  for (let u = 0; u < count; u++) {
    for (let i = 0; i < perUser; i++) state.seedSession({ userId: `sweep-${u}`, creationDate: minutesAgo(50 - i), factors: { password: minutesAgo(50 - i) } });
    state.seedSession({ userId: `sweep-${u}`, creationDate: minutesAgo(90), factors: { password: minutesAgo(90) }, expirationDate: minutesAgo(60) });
  }
}

t.test('enforce --all, as users run it, with the simulator\'s defaults: repairs, and writes one audit line per eviction and prune', async (t) => {
  const { state, env, advance } = await sweepSimulator(t);
  seedOverLimit(state, 5, 4);
  advance(1000); // past the projection lag: ZITADEL's projection has caught up by itself
  const before = new Set(state.sessions.keys());
  const run = await runCli(['enforce', '--all'], { ...env, ZITADEL_SIGNING_KEYS: SIGNING_KEY, PRUNE_EXPIRED: 'true' });
  t.equal(run.code, 0, 'exit code 0', { stderr: run.stderr });
  t.match(run.stdout, /^users checked: 5, sessions seen: 25, sessions evicted: 10, pruned: 5, failures: 0$/m, 'the summary on standard output');
  const deleted = [...before].filter((id) => !state.sessions.has(id)).sort();
  t.equal(deleted.length, 15);
  const audit = jsonLines(run.stderr).filter((line) => typeof line.event === 'string' && line.event.startsWith('session.'));
  t.same(audit.filter((line) => line.event === 'session.evicted').length, 10, 'one session.evicted line per eviction');
  t.same(audit.filter((line) => line.event === 'session.pruned').length, 5, 'one session.pruned line per prune');
  t.same(audit.map((line) => line.sessionId).sort(), deleted, 'each line names a session that was deleted, each once');
  t.ok(audit.every((line) => line.userId && line.rule && line.limit === 2 && line.dryRun === false), 'with the fields of the service\'s audit lines');
  t.notMatch(run.stdout, /^\{/m, 'standard output holds the summary only');

  const one = await runCli(['enforce', '--user', 'sweep-0'], env);
  t.equal(one.code, 0, 'exit code 0', { stderr: one.stderr });
  t.match(one.stdout, /^user sweep-0: 2 active; evicted 0, pruned 0$/m, 'nothing left to do for a repaired user');
});

t.test('enforce --user writes its audit lines too; LOG_LEVEL=warn leaves them out as in the service', async (t) => {
  const { state, env, advance } = await sweepSimulator(t);
  seedOverLimit(state, 2, 3);
  advance(1000);
  const one = await runCli(['enforce', '--user', 'sweep-0'], env);
  t.equal(one.code, 0, 'exit code 0', { stderr: one.stderr });
  t.match(one.stdout, /^user sweep-0: 3 active; evicted 1, pruned 0$/m);
  t.equal(jsonLines(one.stderr).filter((line) => line.event === 'session.evicted').length, 1);
  const quiet = await runCli(['enforce', '--user', 'sweep-1'], { ...env, LOG_LEVEL: 'warn' });
  t.equal(quiet.code, 0, 'exit code 0', { stderr: quiet.stderr });
  t.equal(jsonLines(quiet.stderr).filter((line) => line.event).length, 0, 'an operator who asks for warn gets warn');
});

t.test('DRY_RUN=true in the environment makes enforce --all a dry run, and its summary says so', async (t) => {
  const { state, env, advance } = await sweepSimulator(t);
  seedOverLimit(state, 3, 3);
  advance(1000);
  const before = state.sessions.size;
  const text = await runCli(['enforce', '--all'], { ...env, DRY_RUN: 'true' });
  t.equal(text.code, 0, 'exit code 0', { stderr: text.stderr });
  t.equal(state.sessions.size, before, 'nothing deleted');
  t.match(text.stdout, /^dry run \(DRY_RUN=true\), nothing deleted: users checked: 3, sessions seen: 12, sessions that would be evicted: 3, /m);
  const audit = jsonLines(text.stderr).filter((line) => line.event === 'session.evicted');
  t.equal(audit.length, 3, 'what would have been evicted is logged');
  t.ok(audit.every((line) => line.dryRun === true), 'marked as a dry run');
  const json = await runCli(['enforce', '--all', '--json'], { ...env, DRY_RUN: 'true' });
  t.match(JSON.parse(json.stdout), { dryRun: true, evicted: 3 });
  const flag = await runCli(['enforce', '--all', '--dry-run'], env);
  t.match(flag.stdout, /^dry run \(--dry-run\), nothing deleted: users checked: 3, /m);
  t.equal(state.sessions.size, before, 'still nothing deleted');
});

t.test('enforce and doctor need no ZITADEL_SIGNING_KEYS; enforce --user of an unknown user says so', async (t) => {
  const { state, env, advance } = await sweepSimulator(t);
  seedOverLimit(state, 1, 3);
  advance(1000);
  const unknown = await runCli(['enforce', '--user', 'no-such-user'], env);
  t.equal(unknown.code, 0, 'exit code 0', { stderr: unknown.stderr });
  t.match(unknown.stdout, /^no sessions found for user no-such-user \(an unknown id, or a user with no sessions\): nothing to do$/m);
  const json = await runCli(['enforce', '--user', 'no-such-user', '--json'], env);
  t.match(JSON.parse(json.stdout), { userId: 'no-such-user', sessionsFound: 0, evicted: [] });
  const all = await runCli(['enforce', '--all'], env);
  t.equal(all.code, 0, 'exit code 0', { stderr: all.stderr });
  t.match(all.stdout, /sessions evicted: 1,/);
  t.notMatch(all.stderr, /ZITADEL_SIGNING_KEYS/);
  const doctor = await runCli(['doctor'], env);
  t.notMatch(doctor.stdout, /ZITADEL_SIGNING_KEYS is required/, 'doctor does not ask for the keys');
  t.match(doctor.stdout, /^PASS {2}session\.delete: /m);
  t.equal(doctor.code, 0, 'exit code 0', { stdout: doctor.stdout });
  const admin = { ...env, ZITADEL_ADMIN_TOKEN: DEFAULT_SIMULATOR_TOKEN };
  t.equal((await runCli(['register', '--endpoint', 'http://127.0.0.1:9/webhooks/zitadel'], admin)).code, 0);
  const withTarget = await runCli(['doctor'], admin);
  t.match(withTarget.stdout, /^SKIP {2}signing key: ZITADEL_SIGNING_KEYS is not set here/m, 'the key check is skipped, not failed');
  const serve = await runCli(['serve'], { ...env, PORT: '0', HOST: '127.0.0.1' });
  t.equal(serve.code, 1, 'the service still needs the keys');
  t.match(serve.stderr, /^config error: ZITADEL_SIGNING_KEYS is required/m);
});
