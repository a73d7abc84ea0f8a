import { createPrivateKey } from 'node:crypto';
import t from 'tap';
import { addServiceAccountKey, ZitadelSimulator } from '../../src/simulator/index.js';
import { JwtProfileToken } from '../../src/zitadel/credentials.js';
import { fixtureFor } from '../helpers/payloads.js';
import { minutesAgo, startStack } from '../helpers/stack.js';

t.test('ZITADEL_KEY_FILE: the service signs in with a service-account key (JWT profile) and enforces', async (t) => {
  const stack = await startStack({
    limit: 1,
    env: (simulator) => ({
      ZITADEL_TOKEN: undefined,
      ZITADEL_KEY_FILE: JSON.stringify(addServiceAccountKey(simulator.state, ['session.read', 'session.delete'])),
    }),
  });
  t.teardown(() => stack.close());
  const { state } = stack.simulator;
  const old = state.seedSession({ userId: 'u', creationDate: minutesAgo(9), factors: { password: minutesAgo(9) } }).id;
  const fresh = state.seedSession({ userId: 'u', factors: { password: new Date() } }).id;
  t.equal((await stack.send(fixtureFor('02-password.set-session', fresh))).statusCode, 204);
  t.notOk(state.sessions.has(old), 'evicted with the key file\'s token');
  t.equal(state.tokenRequests, 1, 'one token for all three calls');
});

t.test('JWT profile: a token is fetched once, shared, refreshed before it expires', async (t) => {
  let now = Date.UTC(2026, 0, 1);
  const simulator = new ZitadelSimulator({ now: () => new Date(now) });
  await simulator.listen();
  t.teardown(() => simulator.close());
  simulator.state.accessTokenLifetimeSeconds = 600;
  const keyFile = addServiceAccountKey(simulator.state, ['session.read']);
  const tokens = new JwtProfileToken({ issuer: simulator.url, key: keyFile, privateKey: createPrivateKey(keyFile.key), now: () => now });

  const [a, b] = await Promise.all([tokens.token(), tokens.token()]);
  t.equal(a, b, 'concurrent callers share one fetch');
  t.equal(simulator.state.tokenRequests, 1);
  t.ok(simulator.state.permissionsOf(a)?.has('session.read'), 'the token carries the service user\'s permissions');
  now += 530_000;
  t.equal(await tokens.token(), a, 'still cached 70 s before expiry');
  now += 20_000;
  const c = await tokens.token();
  t.not(c, a, 'refreshed within the last minute');
  t.equal(simulator.state.tokenRequests, 2);
  now += 60_000;
  t.equal(simulator.state.permissionsOf(a), undefined, 'the old token has expired by now');

  const stranger = addServiceAccountKey(new ZitadelSimulator().state, []);
  const refused = new JwtProfileToken({ issuer: simulator.url, key: stranger, privateKey: createPrivateKey(stranger.key) });
  await t.rejects(refused.token(), /ZITADEL refused the key file's JWT at \/oauth\/v2\/token \(400 invalid_grant\)/);
});

t.test('/metrics shows the counters moving', async (t) => {
  const stack = await startStack({ limit: 1 });
  t.teardown(() => stack.close());
  const { state } = stack.simulator;
  state.seedSession({ userId: 'u', creationDate: minutesAgo(9), factors: { password: minutesAgo(9) } });
  const fresh = state.seedSession({ userId: 'u', factors: { password: new Date() } }).id;
  const metric = async (name: string) => {
    const text = (await stack.app.inject({ method: 'GET', url: '/metrics' })).body;
    const line = text.split('\n').find((l) => l.startsWith(name));
    return line === undefined ? undefined : Number(line.slice(name.length).trim());
  };
  t.equal(await metric('session_limiter_sessions_evicted_total'), 0);
  await stack.send(fixtureFor('02-password.set-session', fresh));
  await stack.send(fixtureFor('02-password.set-session', fresh), { key: 'wrong' });
  await stack.send(fixtureFor('01-login-name.create-session', fresh));
  await stack.send(fixtureFor('09-other-method.get-user', fresh));
  t.equal(await metric('session_limiter_sessions_evicted_total'), 1);
  t.equal(await metric('session_limiter_webhook_requests_total{outcome="enforced",code=""}'), 1);
  t.equal(await metric('session_limiter_webhook_requests_total{outcome="rejected",code="ERR_SIGNATURE_MISMATCH"}'), 1);
  t.equal(await metric('session_limiter_webhook_requests_total{outcome="skipped",code=""}'), 1);
  t.equal(await metric('session_limiter_webhook_requests_total{outcome="ignored",code=""}'), 1);
  t.equal(await metric('session_limiter_zitadel_calls_total{method="DeleteSession",result="ok"}'), 1);
  t.equal(
    await metric('session_limiter_zitadel_calls_total{method="GetSession",result="ok"}'),
    3,
    'the trigger, then the session about to be evicted and the one kept, read again together before the delete',
  );
  t.equal(await metric('session_limiter_active_sessions_count'), 1, 'one enforcement observed');
  t.equal(await metric('session_limiter_active_sessions_sum'), 2, 'it saw two active sessions');
  t.equal(await metric('session_limiter_enforcement_duration_seconds_count'), 1);
});

t.test('/readyz: ready when ZITADEL answers, 503 with the reason code when it does not', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const ready = await stack.app.inject({ method: 'GET', url: '/readyz' });
  t.equal(ready.statusCode, 200, 'a probe asked ZITADEL (NotFound is an answer)');
  t.equal(ready.json().status, 'ready');

  const badToken = await startStack({ token: 'revoked' });
  t.teardown(() => badToken.close());
  const refused = await badToken.app.inject({ method: 'GET', url: '/readyz' });
  t.equal(refused.statusCode, 503);
  t.same(refused.json(), { status: 'not ready', checks: { zitadel: 'unauthenticated' } });

  const gone = await startStack();
  await gone.simulator.close();
  t.teardown(() => gone.service.close());
  const down = await gone.app.inject({ method: 'GET', url: '/readyz' });
  t.equal(down.statusCode, 503);
  t.same(down.json(), { status: 'not ready', checks: { zitadel: 'unreachable' } });
  t.equal((await gone.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, '/healthz only says the process runs');
});

