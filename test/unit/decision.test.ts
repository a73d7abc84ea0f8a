import t from 'tap';
import { chooseEvictions, compareRecency, lastAuthenticatedAt, type SessionRecord } from '../../src/enforcement/decision.js';

const NOW = 1_767_225_600_000;
const MIN = 60_000;

function session(id: string, overrides: Partial<SessionRecord> = {}): SessionRecord {
  return { id, userId: 'alice', createdAt: NOW - 60 * MIN, expiresAt: undefined, verifiedAt: { password: NOW - 30 * MIN }, ...overrides };
}
const ids = (list: { session: SessionRecord }[]) => list.map((entry) => entry.session.id);

t.test('keeps the N most recently authenticated, evicts the rest', async (t) => {
  const sessions = [
    session('a', { verifiedAt: { password: NOW - 40 * MIN } }),
    session('b', { verifiedAt: { password: NOW - 10 * MIN } }),
    session('c', { verifiedAt: { password: NOW - 30 * MIN } }),
    session('d', { verifiedAt: { password: NOW - 1 * MIN } }),
  ];
  const decision = chooseEvictions({ userId: 'alice', sessions, now: NOW, policy: { limit: 2 } });
  t.same(ids(decision.keep), ['d', 'b']);
  t.same(ids(decision.evict), ['c', 'a']);
  t.same(decision.notCounted, []);
});

t.test('ranks by the latest credential verification of any factor, not by creation', async (t) => {
  const oldButReauthenticated = session('old', { createdAt: NOW - 600 * MIN, verifiedAt: { password: NOW - 500 * MIN, totp: NOW - 1 * MIN } });
  const newer = session('new', { createdAt: NOW - 5 * MIN, verifiedAt: { password: NOW - 5 * MIN } });
  t.equal(lastAuthenticatedAt(oldButReauthenticated), NOW - 1 * MIN);
  const decision = chooseEvictions({ userId: 'alice', sessions: [newer, oldButReauthenticated], now: NOW, policy: { limit: 1 } });
  t.same(ids(decision.keep), ['old']);
  t.same(ids(decision.evict), ['new']);
});

t.test('expired sessions, logins in progress and other users never count and are never evicted', async (t) => {
  const sessions = [
    session('expired', { expiresAt: NOW - 1, verifiedAt: { password: NOW } }),
    session('expires-now', { expiresAt: NOW, verifiedAt: { password: NOW } }),
    session('in-progress', { verifiedAt: {} }),
    session('bob', { userId: 'bob', verifiedAt: { password: NOW } }),
    session('no-user', { userId: undefined }),
    session('live', { expiresAt: NOW + 1 }),
  ];
  const decision = chooseEvictions({ userId: 'alice', sessions, now: NOW, policy: { limit: 1 } });
  t.same(ids(decision.keep), ['live']);
  t.same(decision.evict, []);
  t.same(
    decision.notCounted.map(({ session, reason }) => [session.id, reason]),
    [
      ['expired', 'expired'],
      ['expires-now', 'expired'],
      ['in-progress', 'login-in-progress'],
      ['bob', 'other-user'],
      ['no-user', 'other-user'],
    ],
  );
});

t.test('ties: later creation date, then greater id ranks higher (numeric ids compare as numbers)', async (t) => {
  const at = NOW - MIN;
  const sessions = [
    session('300000000000000099', { createdAt: NOW - 3 * MIN, verifiedAt: { password: at } }),
    session('300000000000000100', { createdAt: NOW - 3 * MIN, verifiedAt: { password: at } }),
    session('300000000000000098', { createdAt: NOW - 2 * MIN, verifiedAt: { password: at } }),
    session('99', { createdAt: NOW - 3 * MIN, verifiedAt: { password: at } }),
  ];
  const decision = chooseEvictions({ userId: 'alice', sessions, now: NOW, policy: { limit: 4 } });
  t.same(ids(decision.keep), ['300000000000000098', '300000000000000100', '300000000000000099', '99']);
});

t.test('the end state does not depend on the order sessions arrive in', async (t) => {
  const sessions = Array.from({ length: 8 }, (_, i) =>
    session(String(300 + i), { createdAt: NOW - (i % 3) * MIN, verifiedAt: { password: NOW - (i % 4) * MIN } }),
  );
  const reference = ids(chooseEvictions({ userId: 'alice', sessions, now: NOW, policy: { limit: 3 } }).keep);
  // A small seeded shuffle: deterministic, and every run tries the same orders.
  let seed = 7;
  const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  for (let round = 0; round < 50; round++) {
    const shuffled = [...sessions].sort(() => random() - 0.5);
    t.same(ids(chooseEvictions({ userId: 'alice', sessions: shuffled, now: NOW, policy: { limit: 3 } }).keep), reference);
  }
});

t.test('a session given twice counts once, as its most recently changed record', async (t) => {
  const stale = session('s1', { verifiedAt: {}, changedAt: NOW - MIN });
  const fresh = session('s1', { verifiedAt: { password: NOW }, changedAt: NOW });
  const decision = chooseEvictions({ userId: 'alice', sessions: [stale, session('s2'), fresh], now: NOW, policy: { limit: 1 } });
  t.same(ids(decision.keep), ['s1']);
  t.same(ids(decision.evict), ['s2']);
  t.same(decision.notCounted, []);

  // The review's case: GetSession read s1 after its password (t=20); the list, read later, holds s1 after its TOTP
  // (t=30). The older record given last must not win, or s1 (the most recent) would be evicted for y (t=25).
  const listed = session('s1', { verifiedAt: { password: NOW - 20, totp: NOW - 10 }, changedAt: NOW - 10 });
  const readBefore = session('s1', { verifiedAt: { password: NOW - 20 }, changedAt: NOW - 20 });
  const y = session('y', { verifiedAt: { password: NOW - 15 }, changedAt: NOW - 15 });
  const race = chooseEvictions({ userId: 'alice', sessions: [listed, y, readBefore], now: NOW, policy: { limit: 1 } });
  t.same(ids(race.keep), ['s1']);
  t.same(ids(race.evict), ['y']);
});

t.test('under the limit nothing is evicted; a bad limit is refused', async (t) => {
  t.same(chooseEvictions({ userId: 'alice', sessions: [session('a')], now: NOW, policy: { limit: 2 } }).evict, []);
  t.same(chooseEvictions({ userId: 'alice', sessions: [], now: NOW, policy: { limit: 1 } }).keep, []);
  for (const limit of [0, -1, 1.5, Number.NaN]) {
    t.throws(() => chooseEvictions({ userId: 'alice', sessions: [], now: NOW, policy: { limit } }), RangeError, `limit ${limit}`);
  }
});

t.test('compareRecency is a total order', async (t) => {
  const a = { session: session('1'), authenticatedAt: 5 };
  const b = { session: session('2'), authenticatedAt: 5 };
  t.ok(compareRecency(a, b) > 0 && compareRecency(b, a) < 0);
  t.equal(compareRecency(a, a), 0);
});
