import { Code } from '@connectrpc/connect';
import t, { type Test } from 'tap';
import type { SimulatorState } from '../../src/simulator/index.js';
import { LARGE_BODY_MAX_BYTES } from '../../src/routes.js';
import { fixtureFor } from '../helpers/payloads.js';
import { signPayload } from '../../src/signature/sign.js';
import { minutesAgo, SIGNING_KEY, startStack, type Stack } from '../helpers/stack.js';

/**
 * Alice holds 3 authenticated sessions, an expired one, a login in progress; Bob holds 3 sessions of his own.
 * Returns the ids by name.
 */
function seedAliceAndBob(state: SimulatorState) {
  const alice = 'alice-id';
  const seed = (userId: string, minutes: number, extra: Parameters<SimulatorState['seedSession']>[0] extends infer S ? Partial<S> : never = {}) =>
    state.seedSession({ userId, creationDate: minutesAgo(minutes), factors: { password: minutesAgo(minutes) }, ...extra }).id;
  const ids = {
    a1: seed(alice, 50),
    a2: seed(alice, 40),
    a3: seed(alice, 30),
    // Verified more recently than all the others, but expired: never counted, never deleted.
    expired: seed(alice, 20, { factors: { password: minutesAgo(2) }, expirationDate: minutesAgo(1) }),
    inProgress: seed(alice, 5, { factors: {} }),
    b1: seed('bob-id', 60),
    b2: seed('bob-id', 45),
    b3: seed('bob-id', 35),
  };
  state.updateProjection();
  state.calls.length = 0;
  return { alice, ...ids };
}

async function stack(t: Test, options: Parameters<typeof startStack>[0] = {}): Promise<Stack> {
  const s = await startStack(options);
  t.teardown(() => s.close());
  return s;
}

const remaining = (state: SimulatorState) => new Set(state.sessions.keys());

t.test('a new password login (CreateSession) leaves exactly the 2 most recently authenticated sessions', async (t) => {
  const { simulator, send, logs } = await stack(t, { limit: 2 });
  const { state } = simulator;
  const ids = seedAliceAndBob(state);
  // The login writes a new session; ListSessions will not show it until a GetSession (ZITADEL's projection).
  const fresh = state.seedSession({ userId: ids.alice, factors: { password: new Date() } }).id;
  const before = remaining(state);

  const response = await send(fixtureFor('03-password.create-session', fresh));
  t.equal(response.statusCode, 204);
  t.equal(response.body, '', 'empty body: a restCall target must not overwrite the login response');

  const expected = new Set([...before].filter((id) => id !== ids.a1 && id !== ids.a2));
  t.same(remaining(state), expected, 'a1 and a2 evicted; everything else untouched');
  t.same(state.activeSessionsOf(ids.alice).map((s) => s.id).sort(), [ids.a3, fresh].sort());
  t.same(
    state.calls.filter((c) => c.method === 'DeleteSession').map((c) => c.sessionId).sort(),
    [ids.a1, ids.a2].sort(),
    'only the evicted sessions were deleted',
  );
  const evictions = logs.lines.filter((line) => line.event === 'session.evicted');
  t.same(
    evictions.map((line) => [line.userId, line.sessionId, line.kept, line.limit]).sort(),
    [[ids.alice, ids.a1, 2, 2], [ids.alice, ids.a2, 2, 2]].sort(),
    'one info line per eviction with user, session, kept count and limit',
  );
  t.ok(evictions.every((line) => line.level === 30), 'at info level');
});

t.test('a SetSession with a password check on an existing session does the same', async (t) => {
  const { simulator, send } = await stack(t, { limit: 2 });
  const { state } = simulator;
  const ids = seedAliceAndBob(state);
  // The login in progress gets its password verified (Login V2 step 2).
  state.sessions.get(ids.inProgress)!.factors.password = new Date();
  const before = remaining(state);

  const response = await send(fixtureFor('02-password.set-session', ids.inProgress));
  t.equal(response.statusCode, 204);
  t.same(remaining(state), new Set([...before].filter((id) => id !== ids.a1 && id !== ids.a2)));
  t.same(state.activeSessionsOf(ids.alice).map((s) => s.id).sort(), [ids.a3, ids.inProgress].sort());
});

t.test('a login-name-only CreateSession deletes nothing and calls ZITADEL not at all', async (t) => {
  const { simulator, send } = await stack(t, { limit: 1 });
  const { state } = simulator;
  const ids = seedAliceAndBob(state);
  const before = remaining(state);
  const response = await send(fixtureFor('01-login-name.create-session', ids.inProgress));
  t.equal(response.statusCode, 204);
  t.same(remaining(state), before);
  t.same(state.calls, [], 'no ZITADEL call');
  for (const name of ['04-passkey-challenge.set-session', '09-other-method.get-user']) {
    t.equal((await send(fixtureFor(name, ids.a1))).statusCode, 204, name);
  }
  t.same(state.calls, [], 'challenge requests and other methods make no call either');
});

t.test('a bad signature gets 401 and no ZITADEL call', async (t) => {
  const { simulator, send, app } = await stack(t, { limit: 1 });
  const { state } = simulator;
  const ids = seedAliceAndBob(state);
  const body = fixtureFor('03-password.create-session', ids.a3);
  const cases: [string, Promise<{ statusCode: number; json(): any }>, string][] = [
    ['wrong key', send(body, { key: 'not-the-key' }), 'ERR_SIGNATURE_MISMATCH'],
    ['too old', send(body, { timestamp: Math.floor(Date.now() / 1000) - 301 }), 'ERR_SIGNATURE_STALE'],
    ['too new', send(body, { timestamp: Math.floor(Date.now() / 1000) + 120 }), 'ERR_SIGNATURE_FUTURE'],
    ['malformed', send(body, { headers: { 'zitadel-signature': 'v1=abc' } }), 'ERR_SIGNATURE_MALFORMED'],
    [
      'missing',
      app.inject({ method: 'POST', url: '/webhooks/zitadel', headers: { 'content-type': 'application/json' }, payload: body }),
      'ERR_SIGNATURE_MISSING',
    ],
  ];
  for (const [name, pending, code] of cases) {
    const response = await pending;
    t.equal(response.statusCode, 401, name);
    t.equal(response.json().error, code, name);
    t.type(response.json().message, 'string', `${name}: says what to do`);
  }
  t.same(state.calls, [], 'no ZITADEL call');
  t.equal(state.sessions.size, 8, 'nothing deleted');
});

t.test('the body is verified as raw bytes: a re-serialised body does not pass', async (t) => {
  const { send } = await stack(t);
  const compact = fixtureFor('03-password.create-session', '1');
  const pretty = JSON.stringify(JSON.parse(compact), null, 2);
  const response = await send(pretty, { headers: { 'zitadel-signature': signPayload(compact, SIGNING_KEY) } });
  t.equal(response.statusCode, 401);
  t.equal(response.json().error, 'ERR_SIGNATURE_MISMATCH');
  t.equal((await send(pretty)).statusCode, 204, 'the same bytes, signed as sent, pass');
});

t.test('HTTP-level errors: 415, 413, 400, 404, and /healthz', async (t) => {
  const { app, send, simulator } = await stack(t);
  const post = (headers: Record<string, string>, payload: string | Buffer) =>
    app.inject({ method: 'POST', url: '/webhooks/zitadel', headers, payload });

  const form = await post({ 'content-type': 'application/x-www-form-urlencoded' }, 'a=b');
  t.equal(form.statusCode, 415);
  t.equal(form.json().error, 'ERR_UNSUPPORTED_MEDIA_TYPE');
  const none = await post({}, '{}');
  t.equal(none.statusCode, 415, 'no content type');

  const big = Buffer.alloc(LARGE_BODY_MAX_BYTES + 1, 0x20);
  const tooLarge = await post({ 'content-type': 'application/json' }, big);
  t.equal(tooLarge.statusCode, 413);
  t.equal(tooLarge.json().error, 'ERR_BODY_TOO_LARGE');

  const notJson = await send('{"fullMethod": oops');
  t.equal(notJson.statusCode, 400);
  t.equal(notJson.json().error, 'ERR_BODY_NOT_JSON');

  const noSession = await send(JSON.stringify({ fullMethod: '/zitadel.session.v2.SessionService/CreateSession', response: {} }));
  t.equal(noSession.statusCode, 400);
  t.equal(noSession.json().error, 'ERR_PAYLOAD_INVALID');
  t.match(noSession.json().message, /response\.sessionId/);

  const charset = await send(fixtureFor('09-other-method.get-user', '1'), { headers: { 'content-type': 'application/json; charset=utf-8' } });
  t.equal(charset.statusCode, 204, 'a charset parameter is fine');

  const missing = await app.inject({ method: 'GET', url: '/nope' });
  t.equal(missing.statusCode, 404);
  t.equal(missing.json().error, 'ERR_NOT_FOUND');
  const health = await app.inject({ method: 'GET', url: '/healthz' });
  t.equal(health.statusCode, 200);
  t.same(simulator.state.calls, []);
});

t.test('an unknown session or a login still in progress: nothing to do', async (t) => {
  const { simulator, send } = await stack(t, { limit: 1 });
  const ids = seedAliceAndBob(simulator.state);
  t.equal((await send(fixtureFor('02-password.set-session', 'gone'))).statusCode, 204);
  t.equal((await send(fixtureFor('02-password.set-session', ids.inProgress))).statusCode, 204);
  t.same(simulator.state.calls.map((c) => c.method), ['GetSession', 'GetSession'], 'no list, no delete');
});

t.test('ZITADEL refusing or unreachable: 502 / 503 with a JSON error; the log names the call', async (t) => {
  const { simulator, send, logs } = await stack(t, {
    limit: 1,
    simulator: { tokens: { 'simulator-token': ['session.read'] } },
    env: () => ({ ENFORCE_BUDGET_MS: '300' }),
  });
  const ids = seedAliceAndBob(simulator.state);
  const refused = await send(fixtureFor('02-password.set-session', ids.a3));
  t.equal(refused.statusCode, 502);
  t.equal(refused.json().error, 'ERR_ZITADEL_REFUSED');
  t.ok(logs.lines.some((line) => line.level === 50 && /DeleteSession/.test(line.err?.message)), 'the log says DeleteSession failed');
  t.equal(simulator.state.sessions.size, 8);

  t.ok(logs.lines.some((line) => line.configurationError === true && line.userId === ids.alice), 'logged as a configuration error, naming the user');
  const deletes = simulator.state.calls.filter((c) => c.method === 'DeleteSession').map((c) => c.sessionId);
  t.same(deletes.sort(), [ids.a1, ids.a2].sort(), 'PermissionDenied is not retried: one attempt per session');

  simulator.state.injectFault('ListSessions', { code: Code.Unavailable, times: Infinity });
  const unavailable = await send(fixtureFor('02-password.set-session', ids.a3));
  t.equal(unavailable.statusCode, 503);
  t.equal(unavailable.json().error, 'ERR_ZITADEL_UNAVAILABLE');
  t.match(unavailable.json().message, /ListSessions kept failing until the enforcement budget ran out/);
});

t.test('concurrent logins of one user end with the N most recently authenticated sessions', async (t) => {
  const { simulator, send } = await stack(t, { limit: 2 });
  const { state } = simulator;
  const ids = seedAliceAndBob(state);
  const logins = Array.from({ length: 6 }, (_, i) =>
    state.seedSession({ userId: ids.alice, creationDate: minutesAgo(1), factors: { password: minutesAgo(1 - i / 10) } }).id,
  );
  // All six are in flight at once: the simulator holds each webhook's first GetSession (its trigger) until the
  // sixth has arrived, then answers them together. Events, not latency, make them concurrent.
  let arrived = 0;
  let allArrived!: () => void;
  const six = new Promise<void>((resolve) => (allArrived = resolve));
  state.afterCall.push(async (call) => {
    if (call.method !== 'GetSession' || arrived >= 6 || !logins.includes(call.sessionId!)) return;
    if (++arrived === 6) allArrived();
    await six;
  });
  // Webhooks arrive in reverse order of authentication, all at once.
  const responses = await Promise.all([...logins].reverse().map((id) => send(fixtureFor('02-password.set-session', id))));
  t.same(responses.map((r) => r.statusCode), responses.map(() => 204));
  t.same(state.activeSessionsOf(ids.alice).map((s) => s.id).sort(), logins.slice(-2).sort());
  const deleted = new Set(state.calls.filter((c) => c.method === 'DeleteSession').map((c) => c.sessionId));
  t.notOk(deleted.has(logins[5]) || deleted.has(logins[4]), 'no session of the final set was ever deleted');
  t.ok(state.sessions.has(ids.expired) && state.sessions.has(ids.b1), 'expired and other users untouched');
});

t.test('a user with thousands of listed sessions is paged through', async (t) => {
  const { simulator, send } = await stack(t, { limit: 2, pageSize: 100 });
  const { state } = simulator;
  for (let i = 0; i < 450; i++) state.seedSession({ userId: 'u', factors: { password: minutesAgo(200) }, expirationDate: minutesAgo(100) });
  const old = state.seedSession({ userId: 'u', creationDate: minutesAgo(10), factors: { password: minutesAgo(10) } }).id;
  const mid = state.seedSession({ userId: 'u', creationDate: minutesAgo(5), factors: { password: minutesAgo(5) } }).id;
  const fresh = state.seedSession({ userId: 'u', factors: { password: new Date() } }).id;
  t.equal((await send(fixtureFor('02-password.set-session', fresh))).statusCode, 204);
  t.same(state.activeSessionsOf('u').map((s) => s.id).sort(), [mid, fresh].sort());
  t.notOk(state.sessions.has(old));
  t.equal(state.sessions.size, 452, 'expired sessions are left alone');
  t.equal(state.calls.filter((c) => c.method === 'ListSessions').length, 5, 'five pages of 100');
});
