import { Code } from '@connectrpc/connect';
import t, { type Test } from 'tap';
import type { SimulatorState } from '../../src/simulator/index.js';
import { fixtureFor } from '../helpers/payloads.js';
import { minutesAgo, startStack } from '../helpers/stack.js';

async function stack(t: Test, env: Record<string, string>, limit = 2) {
  // Sessions seeded right after the start count as new logins for deny-new (no clock skew between the two here).
  const s = await startStack({ limit, env: () => env, admissionClockSkewMs: 0 });
  t.teardown(() => s.close());
  return s;
}

/** `count` authenticated sessions of `userId`, one a minute apart, oldest first; then a fresh login. */
function logins(state: SimulatorState, userId: string, count: number, device?: (i: number) => string | undefined) {
  const old = Array.from({ length: count }, (_, i) =>
    state.seedSession({ userId, organizationId: 'org-1', creationDate: minutesAgo(60 - i), factors: { password: minutesAgo(60 - i) }, fingerprintId: device?.(i) }).id,
  );
  return old;
}
const active = (state: SimulatorState, userId: string) => state.activeSessionsOf(userId).map((s) => s.id).sort();

t.test('limits from metadata: user 4 keeps 4, unlimited keeps all, malformed falls back, org applies, cached', async (t) => {
  const s = await stack(t, { SESSION_LIMIT_METADATA_KEY: 'session_limit' });
  const { state } = s.simulator;
  state.setUserMetadata('four', 'session_limit', '4');
  state.setUserMetadata('exempt', 'session_limit', 'unlimited');
  state.setUserMetadata('broken', 'session_limit', 'lots');
  state.setOrgMetadata('org-1', 'session_limit', '3');
  state.setUserMetadata('plain', 'other_key', '9');

  const expectations: [string, number][] = [['four', 4], ['exempt', 7], ['broken', 3], ['plain', 3]];
  for (const [user, keeps] of expectations) {
    const sessions = logins(state, user, 6);
    const fresh = state.seedSession({ userId: user, organizationId: 'org-1', factors: { password: new Date() } }).id;
    t.equal((await s.send(fixtureFor('02-password.set-session', fresh))).statusCode, 204, user);
    t.same(active(state, user), [...sessions, fresh].slice(-keeps).sort(), `${user} keeps ${keeps}`);
  }
  t.ok(s.logs.lines.some((line) => line.level === 40 && line.userId === 'broken' && line.source === 'user-metadata'), 'a malformed value is a warning');
  const evicted = s.logs.lines.filter((line) => line.event === 'session.evicted');
  t.same([...new Set(evicted.map((line) => `${line.userId}:${line.limit}:${line.limitSource}`))].sort(), ['broken:3:org-metadata', 'four:4:user-metadata', 'plain:3:org-metadata']);

  // A burst of logins of a user not seen before (a cold cache, for the user and a new organisation) reads the
  // metadata once: one ListUserMetadata and one ListOrganizationMetadata, not one per login.
  state.setOrgMetadata('org-2', 'session_limit', '3');
  state.calls.length = 0;
  const fresh = [1, 2, 3].map(() => state.seedSession({ userId: 'cold', organizationId: 'org-2', factors: { password: new Date() } }).id);
  const answers = await Promise.all(fresh.map((id) => s.send(fixtureFor('02-password.set-session', id))));
  t.same(answers.map((answer) => answer.statusCode), [204, 204, 204]);
  t.equal(state.calls.filter((c) => c.method === 'ListUserMetadata').length, 1, 'one user look-up for the burst');
  t.equal(state.calls.filter((c) => c.method === 'ListOrganizationMetadata').length, 1, 'one organisation look-up for the burst');
});

t.test('a failed metadata look-up evicts nothing and answers 5xx', async (t) => {
  const s = await stack(t, { SESSION_LIMIT_METADATA_KEY: 'session_limit', ENFORCE_BUDGET_MS: '300' }, 1);
  const { state } = s.simulator;
  const sessions = logins(state, 'u', 3);
  state.injectFault('ListUserMetadata', { code: Code.Unavailable, times: Infinity });
  const response = await s.send(fixtureFor('02-password.set-session', sessions[2]!));
  t.equal(response.statusCode, 503);
  t.match(response.json().message, /ListUserMetadata kept failing/);
  t.equal(active(state, 'u').length, 3, 'nothing evicted');
  t.equal(state.calls.filter((c) => c.method === 'DeleteSession').length, 0, 'no delete attempted');
  state.clearFaults();
  t.equal((await s.send(fixtureFor('02-password.set-session', sessions[2]!))).statusCode, 204, 'the failure was not cached');
  t.same(active(state, 'u'), [sessions[2]]);
});

t.test('COUNT_BY=device keeps two sessions of one browser plus one other device at limit 2', async (t) => {
  const s = await stack(t, { COUNT_BY: 'device' });
  const { state } = s.simulator;
  const [phone, browserOld] = logins(state, 'u', 2, (i) => ['phone', 'browser'][i]);
  const browserNew = state.seedSession({ userId: 'u', factors: { password: new Date() }, fingerprintId: 'browser' }).id;
  t.equal((await s.send(fixtureFor('02-password.set-session', browserNew))).statusCode, 204);
  t.same(active(state, 'u'), [phone, browserOld, browserNew].sort(), 'nothing evicted: still two devices');
  const tablet = state.seedSession({ userId: 'u', factors: { password: new Date() }, fingerprintId: 'tablet' }).id;
  await s.send(fixtureFor('02-password.set-session', tablet));
  t.same(active(state, 'u'), [browserOld, browserNew, tablet].sort(), 'a third device evicts the least recent device, the phone');
});

t.test('ON_LIMIT=deny-new: old sessions stay, the new one is deleted, the answer is a forwarded 403', async (t) => {
  const s = await stack(t, { ON_LIMIT: 'deny-new', DENY_MESSAGE: 'Two devices max. Sign out elsewhere.' });
  const { state } = s.simulator;
  const existing = logins(state, 'u', 2);
  const fresh = state.seedSession({ userId: 'u', factors: { password: new Date() } }).id;
  const response = await s.send(fixtureFor('02-password.set-session', fresh));
  t.equal(response.statusCode, 200);
  t.same(response.json(), { forwardedStatusCode: 403, forwardedErrorMessage: 'Two devices max. Sign out elsewhere.' });
  t.same(active(state, 'u'), existing.sort(), 'the old sessions stay');
  t.notOk(state.sessions.has(fresh), 'the new one was deleted');
  t.ok(s.logs.lines.some((line) => line.event === 'session.denied' && line.sessionId === fresh && line.rule === 'deny-new'));

  state.sessions.get(existing[0]!)!.factors.password = new Date();
  const reauth = await s.send(fixtureFor('02-password.set-session', existing[0]!));
  t.equal(reauth.statusCode, 204, 'a re-authentication within the limit is never denied');
});

t.test('DRY_RUN deletes nothing yet reports the would-be evictions', async (t) => {
  const s = await stack(t, { DRY_RUN: 'true', PRUNE_EXPIRED: 'true' }, 1);
  const { state } = s.simulator;
  const sessions = logins(state, 'u', 3);
  state.seedSession({ userId: 'u', factors: { password: minutesAgo(90) }, expirationDate: minutesAgo(1) });
  const before = new Set(state.sessions.keys());
  t.equal((await s.send(fixtureFor('02-password.set-session', sessions[2]!))).statusCode, 204);
  t.same(new Set(state.sessions.keys()), before, 'nothing deleted');
  t.equal(state.calls.filter((c) => c.method === 'DeleteSession').length, 0);
  const would = s.logs.lines.filter((line) => line.dryRun === true && line.event);
  t.same(would.map((line) => line.event).sort(), ['session.evicted', 'session.evicted', 'session.pruned']);
  const metrics = (await s.app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /session_limiter_dry_run_actions_total\{action="evicted"\} 2/);
  t.match(metrics, /session_limiter_webhook_requests_total\{outcome="dry-run",code=""\} 1/);
  t.match(metrics, /session_limiter_sessions_evicted_total 0/);
});

t.test('PRUNE_EXPIRED deletes the user\'s expired sessions only, counted apart', async (t) => {
  const s = await stack(t, { PRUNE_EXPIRED: 'true' }, 5);
  const { state } = s.simulator;
  const expired = [1, 2].map((i) => state.seedSession({ userId: 'u', factors: { password: minutesAgo(90) }, expirationDate: minutesAgo(i) }).id);
  const foreignExpired = state.seedSession({ userId: 'bob', factors: { password: minutesAgo(90) }, expirationDate: minutesAgo(1) }).id;
  const pending = state.seedSession({ userId: 'u', factors: {}, expirationDate: minutesAgo(1) }).id;
  const live = logins(state, 'u', 2);
  await s.send(fixtureFor('02-password.set-session', live[1]!));
  for (const id of expired) t.notOk(state.sessions.has(id), 'expired session pruned');
  t.ok(state.sessions.has(foreignExpired) && state.sessions.has(pending) && live.every((id) => state.sessions.has(id)), 'nothing else touched');
  const metrics = (await s.app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /session_limiter_sessions_pruned_total 2/);
  t.match(metrics, /session_limiter_sessions_evicted_total 0/);
  t.same(s.logs.lines.filter((line) => line.event === 'session.pruned').map((line) => line.rule), ['prune-expired', 'prune-expired']);
});
