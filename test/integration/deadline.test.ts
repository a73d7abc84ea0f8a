import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import t, { type Test } from 'tap';
import { SessionLimitEnforcer } from '../../src/enforcement/enforcer.js';
import { createLogger } from '../../src/logger.js';
import { ZitadelSimulator } from '../../src/simulator/index.js';
import { ZitadelConnection } from '../../src/zitadel/connection.js';
import { JwtProfileToken, type AccessTokenSource } from '../../src/zitadel/credentials.js';
import { ZitadelSessionDirectory } from '../../src/zitadel/session-directory.js';
import { fixtureFor } from '../helpers/payloads.js';
import { startRedis } from '../helpers/redis.js';
import { minutesAgo, startStack } from '../helpers/stack.js';

/**
 * ENFORCE_BUDGET_MS bounds the time from a webhook's arrival to its answer, every wait included. The budget here is
 * 400 ms and what is waited for would take far longer (seconds, or for ever): the margin allowed on top of the
 * budget (1.5 s) is generous, so these checks prove the bound, not a speed.
 */
const BUDGET_MS = 400;
const MARGIN_MS = 1500;

async function timed<T>(work: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work;
  return { value, ms: performance.now() - started };
}

/** An HTTP server that accepts requests and never answers them (a hung token endpoint). */
async function hangingServer(t: Test) {
  const held: http.ServerResponse[] = [];
  const server = http.createServer((_request, response) => void held.push(response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const response of held) response.destroy();
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('a hung token endpoint: each caller waits at most until its own deadline, the fetch is shared', async (t) => {
  const issuer = await hangingServer(t);
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const source = new JwtProfileToken({ issuer, key: { type: 'serviceaccount', keyId: 'k', key: '', userId: 'u' }, privateKey });
  const first = timed(source.token(AbortSignal.timeout(200)).catch((error: unknown) => error));
  const second = timed(source.token(AbortSignal.timeout(300)).catch((error: unknown) => error));
  for (const { value, ms } of [await first, await second]) {
    t.ok(value instanceof ConnectError && value.code === Code.DeadlineExceeded, 'rejected as DeadlineExceeded');
    t.ok(ms < 300 + MARGIN_MS, `answered within its deadline (+ margin): ${Math.round(ms)} ms`);
  }
});

t.test('an enforcement whose token never comes answers within the budget, as ZITADEL unavailable', async (t) => {
  const simulator = new ZitadelSimulator();
  await simulator.listen();
  t.teardown(() => simulator.close());
  const hung: AccessTokenSource = { token: (signal) => new Promise((_resolve, reject) => signal?.addEventListener('abort', () => reject(new ConnectError('deadline', Code.DeadlineExceeded)))) };
  const connection = new ZitadelConnection({ baseUrl: simulator.url, credentials: hung, timeoutMs: 10_000 });
  t.teardown(() => connection.close());
  const enforcer = new SessionLimitEnforcer({
    directory: new ZitadelSessionDirectory(connection.transport),
    limits: 1,
    logger: createLogger('silent'),
    budgetMs: BUDGET_MS,
    callTimeoutMs: 10_000,
  });
  const { value, ms } = await timed(enforcer.enforce('any', { checked: ['password'] }).catch((error: unknown) => error));
  t.match(value, { name: 'BudgetExhaustedError' }, 'the budget ran out on the token');
  t.ok(ms < BUDGET_MS + MARGIN_MS, `within the budget: ${Math.round(ms)} ms (the token would never come)`);
});

t.test('a full MAX_ZITADEL_CALLS queue: a waiting call leaves at its deadline; the answer comes within the budget', async (t) => {
  const s = await startStack({ limit: 1, env: () => ({ ENFORCE_BUDGET_MS: String(BUDGET_MS), MAX_ZITADEL_CALLS: '1', ZITADEL_TIMEOUT_MS: '10000' }) });
  t.teardown(() => s.close());
  const { state } = s.simulator;
  const slow = state.seedSession({ userId: 'slow', factors: { password: minutesAgo(1) } }).id;
  const other = state.seedSession({ userId: 'other', factors: { password: minutesAgo(1) } }).id;
  // A call that takes 2 s holds the only call slot; it is in the slot once the event loop turns.
  state.latencyMs.GetSession = 2000;
  const blocker = s.service.directory.getSession(slow);
  await new Promise((resolve) => setImmediate(resolve));
  const { value, ms } = await timed(s.send(fixtureFor('02-password.set-session', other)));
  t.equal(value.statusCode, 503);
  t.equal(value.json().error, 'ERR_ZITADEL_UNAVAILABLE');
  t.ok(ms < BUDGET_MS + MARGIN_MS, `answered within the budget: ${Math.round(ms)} ms (the slot was busy for 2 s)`);
  const metrics = (await s.app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /session_limiter_zitadel_calls_total\{method="GetSession",result="QueueTimeout"\} 1/, 'counted as a wait for a call slot');
  await blocker;
});

t.test('a user\'s lock held by another replica: 503 ERR_BUSY within the budget, not ZITADEL unavailable', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const s = await startStack({ limit: 1, env: () => ({ ENFORCE_BUDGET_MS: String(BUDGET_MS), REDIS_URL: redis.url }) });
  t.teardown(() => s.close());
  await s.service.lock!.ready(5000);
  const { state } = s.simulator;
  const session = state.seedSession({ userId: 'held', factors: { password: minutesAgo(1) } }).id;
  await s.service.lock!.redis.set('zitadel-session-limiter:user:held', 'another-replica', 'PX', 60_000);
  const { value, ms } = await timed(s.send(fixtureFor('02-password.set-session', session)));
  t.equal(value.statusCode, 503);
  t.equal(value.json().error, 'ERR_BUSY', value.body);
  t.ok(ms < BUDGET_MS + MARGIN_MS, `answered within the budget: ${Math.round(ms)} ms`);
  t.equal(state.calls.filter((c) => c.method === 'ListSessions').length, 0, 'nothing listed without the turn');
  const metrics = (await s.app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /session_limiter_webhook_requests_total\{outcome="busy",code="ERR_BUSY"\} 1/);
  t.notOk(s.logs.lines.some((line) => line.level >= 50), 'no error line: busy is not a failure of ZITADEL');

  // The lock's expiry is what is left of the budget when it is taken, plus the margin, never more.
  await s.service.lock!.redis.del('zitadel-session-limiter:user:held');
  let ttl = -1;
  state.afterCall.push(async (call) => {
    if (call.method === 'ListSessions') ttl = await s.service.lock!.redis.pttl('zitadel-session-limiter:user:held');
  });
  t.equal((await s.send(fixtureFor('02-password.set-session', session))).statusCode, 204);
  t.ok(ttl > 0 && ttl <= BUDGET_MS + 5000, `the lock expires with the budget (+ 5 s margin): ${ttl} ms`);
});

t.test('--rate pacing: a call waiting for its start slot leaves the queue at its deadline', async (t) => {
  const simulator = new ZitadelSimulator({ projectionMode: 'immediate' });
  await simulator.listen();
  t.teardown(() => simulator.close());
  const results: string[] = [];
  const connection = new ZitadelConnection({
    baseUrl: simulator.url,
    credentials: { token: async () => 'simulator-token' },
    maxCallsPerSecond: 0.5,
    observe: (_method, result) => void results.push(result),
  });
  t.teardown(() => connection.close());
  const directory = new ZitadelSessionDirectory(connection.transport);
  const run = (timeoutMs: number) => (<T>(_what: string, call: (ms: number | undefined) => Promise<T>) => call(timeoutMs)) as never;
  t.equal(await directory.getSession('none', run(300)), undefined, 'the first call starts at once');
  const { value, ms } = await timed(directory.getSession('none', run(300)).catch((error: unknown) => error));
  t.match(value, { name: 'ZitadelCallError', grpcCode: 4 /* DeadlineExceeded */ }, 'the second would start 2 s later: it leaves at its deadline');
  t.ok(ms < 300 + MARGIN_MS, `within its deadline: ${Math.round(ms)} ms`);
  t.same(results, ['NotFound', 'QueueTimeout']);
});
