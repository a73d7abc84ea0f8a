import { Gauge } from 'prom-client';
import t, { type Test } from 'tap';
import { startRedis } from '../helpers/redis.js';
import { startStack, type Stack } from '../helpers/stack.js';

// /readyz is on the public port: it names the dependency that fails and a stable reason code, never an address, a
// port, a gRPC method or an error text (those go to the log).

async function stackOn(t: Test, options: Parameters<typeof startStack>[0] = {}): Promise<Stack> {
  const stack = await startStack(options);
  t.teardown(() => stack.close());
  return stack;
}

/** Whatever in a body would tell an outsider about the inside: addresses, ports, error texts, method names. */
function leaks(body: string, ports: number[]): string[] {
  const patterns = [/127\.0\.0\.1/, /localhost/i, /ECONN\w+/, /Unavailable|Unauthenticated|PermissionDenied/, /GetSession|ListSessions/, /error/i];
  return [...patterns.filter((pattern) => pattern.test(body)).map(String), ...ports.filter((port) => body.includes(String(port))).map(String)];
}

const portOf = (url: string) => Number(new URL(url).port);

t.test('ZITADEL down: 503, zitadel "unreachable", no address or error text; the detail is in the log, once', async (t) => {
  const s = await stackOn(t);
  const port = portOf(s.simulator.url);
  await s.simulator.close();
  const first = await s.app.inject({ method: 'GET', url: '/readyz' });
  t.equal(first.statusCode, 503);
  t.same(leaks(first.body, [port]), [], 'nothing of the inside in the body', { body: first.body });
  t.same(first.json(), { status: 'not ready', checks: { zitadel: 'unreachable' } });
  await s.app.inject({ method: 'GET', url: '/readyz' });
  const logged = s.logs.lines.filter((line) => line.dependency === 'zitadel');
  t.equal(logged.length, 1, 'one log line for repeated probes (rate-limited)');
  t.match(logged[0], { level: 40, reason: 'unreachable', detail: /Unavailable/ });
});

t.test('a revoked token: 503, zitadel "unauthenticated"', async (t) => {
  const s = await stackOn(t, { token: 'revoked' });
  const answer = await s.app.inject({ method: 'GET', url: '/readyz' });
  t.equal(answer.statusCode, 503);
  t.same(answer.json(), { status: 'not ready', checks: { zitadel: 'unauthenticated' } });
});

t.test('Redis down: 200 degraded, redis "not-connected", no address or error text', async (t) => {
  const redis = await startRedis();
  const s = await stackOn(t, { env: () => ({ REDIS_URL: redis.url }) });
  const readyz = async () => s.app.inject({ method: 'GET', url: '/readyz' });
  t.ok(await s.service.lock!.ready(10_000), 'connected to Redis');
  t.same((await readyz()).json(), { status: 'ready', checks: { zitadel: 'ok', redis: 'ok' } }, 'both named when both work');
  await redis.stop();
  // Wait for the client to have tried to reconnect and failed (its warning names the refused address).
  const refused = () => s.logs.lines.some((line) => line.level === 40 && /ECONNREFUSED/.test(String(line.problem)));
  for (let i = 0; i < 400 && !refused(); i++) await new Promise((resolve) => setTimeout(resolve, 25));
  t.ok(refused(), 'the log names what failed');
  const answer = await readyz();
  t.equal(answer.statusCode, 200, 'enforcement goes on without the lock');
  t.same(leaks(answer.body, [redis.port, portOf(s.simulator.url)]), [], 'nothing of the inside in the body', { body: answer.body });
  t.same(answer.json(), { status: 'degraded', checks: { zitadel: 'ok', redis: 'not-connected' } });
});

t.test('/metrics on the public port (no METRICS_PORT): a failing collection answers 500 without its error text, logged once', async (t) => {
  const s = await stackOn(t);
  new Gauge({
    name: 'broken',
    help: 'a gauge whose collection fails',
    registers: [s.service.metrics.registry],
    collect() {
      throw new Error('the collector broke at 10.1.2.3');
    },
  });
  const answers = [await s.app.inject({ method: 'GET', url: '/metrics' }), await s.app.inject({ method: 'GET', url: '/metrics' })];
  t.same(answers.map((answer) => answer.statusCode), [500, 500]);
  t.notMatch(answers[0]!.body, /collector|10\.1\.2\.3/, 'the error text stays in the log');
  const logged = s.logs.lines.filter((line) => /collector broke/.test(JSON.stringify(line)));
  t.equal(logged.length, 1, 'logged once, not once per scrape');
});

/** The value of an unlabelled series in Prometheus text, or undefined when it is not exposed. */
async function scraped(s: Stack, name: string): Promise<number | undefined> {
  const answer = await s.app.inject({ method: 'GET', url: '/metrics' });
  const line = answer.body.split('\n').find((text) => text.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

t.test('session_limiter_ready follows /readyz: 1 while ZITADEL answers (alerts read it)', async (t) => {
  const s = await stackOn(t);
  t.equal(await scraped(s, 'session_limiter_ready'), 1, 'a scrape alone tells it');
  t.equal((await s.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, '/readyz agrees');
});

t.test('session_limiter_ready is 0 when ZITADEL is down, without anyone asking /readyz first', async (t) => {
  const s = await stackOn(t);
  await s.simulator.close();
  t.equal(await scraped(s, 'session_limiter_ready'), 0);
  t.equal((await s.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503, '/readyz agrees');
});

t.test('session_limiter_ready is 0 with a revoked token, without anyone asking /readyz first', async (t) => {
  const s = await stackOn(t, { token: 'revoked' });
  t.equal(await scraped(s, 'session_limiter_ready'), 0);
});
