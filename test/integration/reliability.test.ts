import { Code } from '@connectrpc/connect';
import t, { type Test } from 'tap';
import { ZitadelSimulator, type SimulatorState } from '../../src/simulator/index.js';
import { fixtureFor } from '../helpers/payloads.js';
import { startRedis } from '../helpers/redis.js';
import { minutesAgo, startStack, type Stack } from '../helpers/stack.js';

const active = (state: SimulatorState, userId: string) => state.activeSessionsOf(userId).map((s) => s.id).sort();

/** `count` sessions of `userId` authenticated one second apart (the last is the most recent). */
function seedLogins(state: SimulatorState, userId: string, count: number, startMinutesAgo = 30) {
  return Array.from({ length: count }, (_, i) => {
    const at = new Date(minutesAgo(startMinutesAgo).getTime() + i * 1000);
    return state.seedSession({ userId, creationDate: at, factors: { password: at } }).id;
  });
}

async function stackOn(t: Test, options: Parameters<typeof startStack>[0]) {
  const stack = await startStack(options);
  t.teardown(() => stack.close());
  return stack;
}

t.test('ZITADEL answering Unavailable twice, then succeeding, leads to the right evictions', async (t) => {
  const s = await stackOn(t, { limit: 2 });
  const { state } = s.simulator;
  const sessions = seedLogins(state, 'u', 4);
  state.injectFault('ListSessions', { code: Code.Unavailable, times: 2 });
  state.injectFault('DeleteSession', { code: Code.ResourceExhausted, times: 1, message: 'rate limit (429)' });
  const response = await s.send(fixtureFor('02-password.set-session', sessions[3]!));
  t.equal(response.statusCode, 204);
  t.same(active(state, 'u'), sessions.slice(2).sort());
  t.same(
    state.calls.filter((c) => c.method === 'ListSessions').map((c) => (c.code === 'ok' ? 'ok' : Code[c.code])),
    ['Unavailable', 'Unavailable', 'ok'],
  );
  t.match((await s.app.inject({ method: 'GET', url: '/metrics' })).body, /session_limiter_zitadel_retries_total\{method="ListSessions"\} 2/);
});

t.test('PermissionDenied: 502, a clear configuration-error line, no retry storm', async (t) => {
  const s = await stackOn(t, { limit: 1, simulator: { tokens: { 'simulator-token': ['session.read'] } } });
  const { state } = s.simulator;
  const sessions = seedLogins(state, 'u', 3);
  const responses = await Promise.all([0, 1, 2].map(() => s.send(fixtureFor('02-password.set-session', sessions[2]!))));
  t.same(responses.map((r) => r.statusCode), [502, 502, 502]);
  // The three webhooks of one session coalesce into two enforcements (one runs, the other two wait together).
  t.equal(state.calls.filter((c) => c.method === 'DeleteSession').length, 4, 'each enforcement tried each eviction once: 2 x 2');
  const line = s.logs.lines.find((l) => l.configurationError === true);
  t.match(line, { userId: 'u', msg: /configuration error: ZITADEL refused the call; check the token and its roles \(doctor\)/ });
  t.match(line?.err?.message, /DeleteSession failed: PermissionDenied/);
  t.equal(line?.undone?.length, 2, 'what was left undone is named');
});

t.test('beyond MAX_CONCURRENT_ENFORCEMENTS, requests are shed with 503 and the service answers again after', async (t) => {
  const s = await stackOn(t, { limit: 5, env: () => ({ MAX_CONCURRENT_ENFORCEMENTS: '2' }) });
  const { state } = s.simulator;
  // Four users (a burst of one user would be coalesced, not shed), one login each.
  const logins = ['u1', 'u2', 'u3', 'u4'].map((user) => seedLogins(state, user, 1)[0]!);
  // The simulator holds every ListSessions answer (read inside the enforcement, after the trigger's GetSession)
  // until the test opens the gate: the first two enforcements stay in flight while the other two arrive. No wall
  // clock orders anything.
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let held = 0;
  let twoHeld!: () => void;
  const bothInFlight = new Promise<void>((resolve) => (twoHeld = resolve));
  state.afterCall.push(async (call) => {
    if (call.method !== 'ListSessions') return;
    if (++held === 2) twoHeld();
    await gate;
  });
  const first = logins.slice(0, 2).map((id) => s.send(fixtureFor('02-password.set-session', id)));
  await bothInFlight;
  const shed = await Promise.all(logins.slice(2).map((id) => s.send(fixtureFor('02-password.set-session', id))));
  t.same(shed.map((r) => r.statusCode), [503, 503], 'the two beyond the bound are shed at once');
  t.equal(shed[0]!.json().error, 'ERR_OVERLOADED');
  open();
  t.same((await Promise.all(first)).map((r) => r.statusCode), [204, 204], 'the two in flight complete');
  t.match((await s.app.inject({ method: 'GET', url: '/metrics' })).body, /session_limiter_webhook_requests_total\{outcome="shed",code="ERR_OVERLOADED"\} 2/);
  t.equal((await s.send(fixtureFor('02-password.set-session', logins[2]!))).statusCode, 204, 'and the service answers again');
});

t.test('a re-authentication racing an enforcement is not evicted: the candidates are read again before deleting', async (t) => {
  const s = await stackOn(t, { limit: 2 });
  const { state } = s.simulator;
  const [old, mid, recent] = seedLogins(state, 'u', 3);
  const fresh = state.seedSession({ userId: 'u', factors: { password: new Date() } }).id;
  // The simulator orders it: right after the enforcement for `fresh` listed the sessions, `old` re-authenticates.
  let raced = false;
  state.afterCall.push((call) => {
    if (call.method === 'ListSessions' && !raced) {
      raced = true;
      state.reauthenticate(old!);
    }
  });
  t.equal((await s.send(fixtureFor('02-password.set-session', fresh))).statusCode, 204);
  t.ok(raced);
  // Then the re-authentication's own webhook.
  t.equal((await s.send(fixtureFor('02-password.set-session', old!))).statusCode, 204);
  t.same(active(state, 'u'), [old, fresh].sort(), 'the two most recently authenticated remain');
  const deleted = state.calls.filter((c) => c.method === 'DeleteSession').map((c) => c.sessionId);
  t.notOk(deleted.includes(old) || deleted.includes(fresh), 'no session of the final set was ever deleted');
  t.same(deleted.sort(), [mid, recent].sort());
});

/**
 * Two services sharing one simulator (projection lag on: ListSessions sees a write only after a GetSession) and one
 * Redis: the webhooks go to both, alternately.
 */
async function twoReplicas(t: Test, limit: number) {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const simulator = new ZitadelSimulator({ projectionMode: 'until-read' });
  await simulator.listen();
  t.teardown(() => simulator.close());
  const replicas: Stack[] = [];
  for (let i = 0; i < 2; i++) replicas.push(await stackOn(t, { limit, existingSimulator: simulator, env: () => ({ REDIS_URL: redis.url }) }));
  // Both connected to Redis (they fall back to in-process only while it is not ready).
  t.same(await Promise.all(replicas.map((replica) => replica.service.lock!.ready(5000))), [true, true], 'both replicas use Redis');
  return { redis, simulator, state: simulator.state, replicas };
}

t.test('20 logins of one user at once across two replicas with one Redis: exactly the limit remains, the most recent', async (t) => {
  const { state, replicas } = await twoReplicas(t, 3);
  const logins = seedLogins(state, 'u', 20, 5);
  const responses = await Promise.all(logins.map((id, i) => replicas[i % 2]!.send(fixtureFor('02-password.set-session', id))));
  t.same(new Set(responses.map((r) => r.statusCode)), new Set([204]));
  t.same(active(state, 'u'), logins.slice(-3).sort(), 'the three most recently authenticated');
  const deleted = new Set(state.calls.filter((c) => c.method === 'DeleteSession').map((c) => c.sessionId));
  t.notOk(logins.slice(-3).some((id) => deleted.has(id)), 'no session of the final set was ever deleted');
  const fallbacks = await replicas[0]!.app.inject({ method: 'GET', url: '/metrics' });
  t.match(fallbacks.body, /session_limiter_lock_fallbacks_total 0/, 'the Redis lock was used throughout');
});

t.test('two users interleaved across two replicas', async (t) => {
  const { state, replicas } = await twoReplicas(t, 2);
  const alice = seedLogins(state, 'alice', 8, 10);
  const bob = seedLogins(state, 'bob', 8, 10);
  const order = alice.flatMap((id, i) => [id, bob[i]!]);
  await Promise.all(order.map((id, i) => replicas[i % 2]!.send(fixtureFor('02-password.set-session', id))));
  t.same(active(state, 'alice'), alice.slice(-2).sort());
  t.same(active(state, 'bob'), bob.slice(-2).sort());
});

t.test('a re-authentication racing a new login across replicas', async (t) => {
  const { state, replicas } = await twoReplicas(t, 2);
  const [old, , recent] = seedLogins(state, 'u', 3);
  const fresh = state.seedSession({ userId: 'u', factors: { password: new Date() } }).id;
  state.reauthenticate(old!);
  const [a, b] = await Promise.all([
    replicas[0]!.send(fixtureFor('02-password.set-session', fresh)),
    replicas[1]!.send(fixtureFor('02-password.set-session', old!)),
  ]);
  t.same([a.statusCode, b.statusCode], [204, 204]);
  t.same(active(state, 'u'), [old, fresh].sort());
  t.notOk(state.sessions.has(recent!));
});

t.test('Redis unreachable: /readyz and the log say so, and enforcement goes on without the lock', async (t) => {
  const redis = await startRedis();
  const s = await stackOn(t, { limit: 1, env: () => ({ REDIS_URL: redis.url }) });
  await redis.stop();
  const { state } = s.simulator;
  const sessions = seedLogins(state, 'u', 2);
  t.equal((await s.send(fixtureFor('02-password.set-session', sessions[1]!))).statusCode, 204, 'not blocked');
  t.same(active(state, 'u'), [sessions[1]]);
  const ready = await s.app.inject({ method: 'GET', url: '/readyz' });
  t.equal(ready.statusCode, 200);
  t.equal(ready.json().status, 'degraded');
  t.equal(ready.json().checks.redis, 'not-connected');
  t.ok(s.logs.lines.some((line) => line.level === 40 && /Redis unreachable/.test(line.msg)), 'a warning in the log');
  t.match((await s.app.inject({ method: 'GET', url: '/metrics' })).body, /session_limiter_lock_fallbacks_total 1/);
});
