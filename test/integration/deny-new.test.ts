import t, { type Test } from 'tap';
import type { SimulatorState } from '../../src/simulator/index.js';
import { fixtureFor } from '../helpers/payloads.js';
import { startRedis } from '../helpers/redis.js';
import { startStack, type Stack } from '../helpers/stack.js';

/**
 * deny-new with Login V2's real call order: the session is created at the login-name step, long before a
 * credential is verified, so creation order and sign-in order differ.
 */
async function stack(t: Test, limit = 2, env: Record<string, string> = {}) {
  const s = await startStack({ limit, env: () => ({ ON_LIMIT: 'deny-new', ...env }), admissionClockSkewMs: 0 });
  t.teardown(() => s.close());
  return s;
}

/** The login-name step: a session of `userId` with no credential yet. */
const loginName = (state: SimulatorState, userId: string, device: string) =>
  state.seedSession({ userId, organizationId: 'org-1', factors: {}, fingerprintId: device }).id;

/** The password step on `sessionId` (or a re-check of the password), answered by the service. */
async function password(s: Stack, sessionId: string) {
  s.simulator.state.reauthenticate(sessionId, 'password');
  return s.send(fixtureFor('02-password.set-session', sessionId));
}

const denied = (response: { statusCode: number; body: string }) =>
  response.statusCode === 200 && JSON.parse(response.body).forwardedStatusCode === 403;

t.test('the login that completes last is denied, even when its session was created first', async (t) => {
  const s = await stack(t);
  const { state } = s.simulator;
  const laptop = loginName(state, 'u', 'laptop');
  const phone = loginName(state, 'u', 'phone');
  t.equal((await password(s, phone)).statusCode, 204, 'the phone signs in');
  const tablet = loginName(state, 'u', 'tablet');
  t.equal((await password(s, tablet)).statusCode, 204, 'the tablet signs in');

  const late = await password(s, laptop);
  t.ok(denied(late), `the laptop, whose login completes third, is denied (got ${late.statusCode} ${late.body})`);
  t.notOk(state.sessions.has(laptop), 'its session is deleted');
  t.ok(state.sessions.has(phone) && state.sessions.has(tablet), 'the two signed-in devices stay');

  const recheck = await password(s, tablet);
  t.equal(recheck.statusCode, 204, 'the tablet re-checking its password is never denied');
  t.ok(state.sessions.has(tablet), 'the tablet stays signed in');
});

t.test('over a lowered limit, existing sessions are never denied; only new logins are', async (t) => {
  const s = await stack(t, 3);
  const { state } = s.simulator;
  const devices = ['a', 'b', 'c'].map((device) => loginName(state, 'u', device));
  for (const id of devices) t.equal((await password(s, id)).statusCode, 204, 'within the limit of 3');
  // The limit is lowered to 1 (a restart with another SESSION_LIMIT would do the same): a second service on the
  // same simulator shares nothing but ZITADEL's state, so use metadata on this one instead.
  const lowered = await startStack({
    limit: 1,
    existingSimulator: s.simulator,
    env: () => ({ ON_LIMIT: 'deny-new' }),
    admissionClockSkewMs: 0,
  });
  t.teardown(() => lowered.close());
  for (const id of devices) {
    const response = await password(lowered, id);
    t.equal(response.statusCode, 204, 're-authentication of an existing session over a lowered limit is allowed');
  }
  t.equal(state.activeSessionsOf('u').length, 3, 'deny-new never removes an existing session');
  const fresh = loginName(state, 'u', 'd');
  t.ok(denied(await password(lowered, fresh)), 'a new login over the lowered limit is denied');
});

t.test('a second factor on an admitted session is never denied; a re-check after a restart without memory', async (t) => {
  const s = await stack(t, 1);
  const { state } = s.simulator;
  const first = loginName(state, 'u', 'laptop');
  t.equal((await password(s, first)).statusCode, 204);
  state.reauthenticate(first, 'totp');
  t.equal((await s.send(fixtureFor('07-totp.set-session', first))).statusCode, 204, 'the second factor passes');

  // A service started afterwards (a restart without Redis) has no memory of the admission: a session created
  // before it started is treated as established and never denied.
  const restarted = await startStack({ limit: 1, existingSimulator: s.simulator, env: () => ({ ON_LIMIT: 'deny-new' }), admissionClockSkewMs: 0 });
  t.teardown(() => restarted.close());
  const other = loginName(state, 'u', 'phone');
  t.ok(denied(await password(restarted, other)), 'a new login after the restart is still denied');
  t.equal((await password(restarted, first)).statusCode, 204, 'the old session re-checking its password is not denied');
  t.ok(state.sessions.has(first));
});

t.test('with REDIS_URL the admissions are shared: a restarted replica still tells a re-check from a new login', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const env = { ON_LIMIT: 'deny-new', REDIS_URL: redis.url };
  const a = await startStack({ limit: 1, env: () => env, admissionClockSkewMs: 0 });
  t.teardown(() => a.close());
  await a.service.lock!.ready(5000);
  const { state } = a.simulator;
  const laptop = loginName(state, 'u', 'laptop');
  t.equal((await password(a, laptop)).statusCode, 204, 'admitted by replica A');
  const phone = loginName(state, 'u', 'phone');

  // Replica B starts after both sessions were created: without the shared memory it could not tell them apart.
  const b = await startStack({ limit: 1, existingSimulator: a.simulator, env: () => env, admissionClockSkewMs: 0 });
  t.teardown(() => b.close());
  await b.service.lock!.ready(5000);
  t.ok(denied(await password(b, phone)), 'the phone, a new login, is denied by replica B');
  t.equal((await password(b, laptop)).statusCode, 204, 'the laptop re-checking its password at replica B is not denied');
  t.same(state.activeSessionsOf('u').map((x) => x.id), [laptop]);
});

t.test('with Redis down, no login is denied (it cannot tell new from returning) and the log says why', async (t) => {
  const redis = await startRedis();
  const s = await startStack({ limit: 1, env: () => ({ ON_LIMIT: 'deny-new', REDIS_URL: redis.url }), admissionClockSkewMs: 0 });
  t.teardown(() => s.close());
  await s.service.lock!.ready(5000);
  const { state } = s.simulator;
  const first = loginName(state, 'u', 'laptop');
  t.equal((await password(s, first)).statusCode, 204);
  await redis.stop();
  const second = loginName(state, 'u', 'phone');
  t.equal((await password(s, second)).statusCode, 204, 'let through rather than risk logging a device out');
  t.equal((await password(s, first)).statusCode, 204, 'the admitted one is let through too');
  t.ok(s.logs.lines.some((line) => line.level === 40 && /admission memory unreadable/.test(line.msg)), 'a warning names the cause');
});
