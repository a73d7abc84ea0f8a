import t from 'tap';
import type { SimulatorState } from '../../src/simulator/index.js';
import { fixtureFor } from '../helpers/payloads.js';
import { minutesAgo, startStack } from '../helpers/stack.js';

/** `count` signed-in sessions of `userId`, one second apart (the last is the most recent). */
function seedLogins(state: SimulatorState, userId: string, count: number) {
  return Array.from({ length: count }, (_, i) => {
    const at = new Date(minutesAgo(30).getTime() + i * 1000);
    return state.seedSession({ userId, creationDate: at, factors: { password: at } }).id;
  });
}

t.test('a burst of one user\'s webhooks never sheds another user\'s login, and costs a few enforcements', async (t) => {
  const s = await startStack({ limit: 3, env: () => ({ MAX_CONCURRENT_ENFORCEMENTS: '16' }) });
  t.teardown(() => s.close());
  const { state } = s.simulator;
  // 12 other users at once need 12 enforcements; the burst must take no more than two more of the 16.
  // While the first enforcement lists, every other webhook has arrived (a slow ZITADEL makes the burst pile up).
  state.latencyMs.ListSessions = 200;
  const burst = seedLogins(state, 'flooder', 6);
  const others = Array.from({ length: 12 }, (_, i) => seedLogins(state, `user-${i}`, 4));

  const burstAnswers = Array.from({ length: 60 }, (_, i) => s.send(fixtureFor('02-password.set-session', burst[i % burst.length]!)));
  const otherAnswers = others.map((sessions) => s.send(fixtureFor('02-password.set-session', sessions.at(-1)!)));
  const [fromBurst, fromOthers] = await Promise.all([Promise.all(burstAnswers), Promise.all(otherAnswers)]);

  t.same([...new Set(fromOthers.map((r) => r.statusCode))], [204], 'no other user\'s login was shed');
  t.same([...new Set(fromBurst.map((r) => r.statusCode))], [204], 'every webhook of the burst was answered 204');
  t.same(
    state.activeSessionsOf('flooder').map((x) => x.id).sort(),
    burst.slice(-3).sort(),
    'the flooding user holds the limit, the most recent',
  );
  for (const i of others.keys()) {
    t.equal(state.activeSessionsOf(`user-${i}`).length, 3, `user-${i} was enforced too`);
  }
  const lists = state.calls.filter((c) => c.method === 'ListSessions').length;
  // 12 other users once each; the burst of 60 in at most a few enforcements (one running, one waiting, ...).
  t.ok(lists <= 12 + 4, `ListSessions calls bounded: ${lists} for 60 + 12 webhooks`);
  // A session's user is looked up once (webhooks of a session already seen join without a look-up), plus one
  // refresh per enforcement (at most 4 here, as for ListSessions), one re-read per eviction (3) and of the kept
  // sessions (3) in each enforcement that evicts (at most 2): not one per webhook.
  const burstReads = state.calls.filter((c) => c.method === 'GetSession' && burst.includes(c.sessionId!)).length;
  t.ok(burstReads <= burst.length + 4 + 3 + 3 * 2, `GetSession calls for the burst bounded: ${burstReads} for 60 webhooks of 6 sessions`);
});

t.test('deny-new: concurrent new logins of one user get their own verdicts, in the order they arrived', async (t) => {
  const s = await startStack({ limit: 2, env: () => ({ ON_LIMIT: 'deny-new' }), admissionClockSkewMs: 0 });
  t.teardown(() => s.close());
  const { state } = s.simulator;
  state.latencyMs.ListSessions = 100;
  const devices = ['a', 'b', 'c', 'd', 'e'].map((device) => state.seedSession({ userId: 'u', factors: {}, fingerprintId: device }).id);
  for (const id of devices) state.reauthenticate(id, 'password');
  const answers = await Promise.all(devices.map((id) => s.send(fixtureFor('02-password.set-session', id))));
  const verdicts = answers.map((r) => (r.statusCode === 204 ? 'admitted' : r.statusCode === 200 && r.json().forwardedStatusCode === 403 ? 'denied' : `${r.statusCode}`));
  t.same(verdicts, ['admitted', 'admitted', 'denied', 'denied', 'denied'], 'the first two to arrive are admitted');
  t.same(state.activeSessionsOf('u').map((x) => x.id).sort(), devices.slice(0, 2).sort());
});
