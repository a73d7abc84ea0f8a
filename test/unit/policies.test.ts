import t from 'tap';
import { chooseEvictions, isNewLogin, type Policy, type SessionRecord } from '../../src/enforcement/decision.js';
import { parseLimitValue, readMetadataLimit, resolveLimit } from '../../src/enforcement/limits.js';

const NOW = 1_767_225_600_000;
const MIN = 60_000;

/** A session of alice, authenticated `ago` minutes ago on `device` (undefined: no fingerprint). */
function s(id: string, ago: number, device?: string, extra: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id,
    userId: 'alice',
    organizationId: 'org',
    createdAt: NOW - ago * MIN,
    expiresAt: undefined,
    verifiedAt: { password: NOW - ago * MIN },
    fingerprintId: device,
    ...extra,
  };
}
/** `newLogin`: the trigger's login completed with this call (deny-new may refuse it); else a returning session. */
const decide = (sessions: SessionRecord[], policy: Policy, triggerId?: string, newLogin = true) =>
  chooseEvictions({ userId: 'alice', sessions, now: NOW, policy, triggers: triggerId ? [{ id: triggerId, newLogin }] : [] });
const ids = (list: { session: SessionRecord }[]) => list.map((entry) => entry.session.id).sort();

t.test('limits from metadata: integer or unlimited; malformed falls through; never 0', async (t) => {
  t.equal(parseLimitValue('4'), 4);
  t.equal(parseLimitValue(' Unlimited '), 'unlimited');
  for (const bad of ['0', '-1', '2.5', 'four', '', '1e3', '9999999']) t.equal(parseLimitValue(bad), undefined, JSON.stringify(bad));
  const bytes = (text: string) => new TextEncoder().encode(text);
  t.same(resolveLimit(readMetadataLimit(bytes('4')), readMetadataLimit(bytes('7')), 2), { limit: 4, source: 'user-metadata', malformed: [] });
  t.same(resolveLimit(readMetadataLimit(undefined), readMetadataLimit(bytes('7')), 2), { limit: 7, source: 'org-metadata', malformed: [] });
  t.same(resolveLimit(readMetadataLimit(bytes('lots')), readMetadataLimit(bytes('unlimited')), 2), {
    limit: 'unlimited',
    source: 'org-metadata',
    malformed: ['user-metadata'],
  });
  t.same(resolveLimit(readMetadataLimit(bytes('0')), readMetadataLimit(bytes('x')), 2), {
    limit: 2,
    source: 'default',
    malformed: ['user-metadata', 'org-metadata'],
  });
});

t.test('unlimited: nothing is ever evicted', async (t) => {
  const decision = decide([s('a', 50), s('b', 40), s('c', 30)], { limit: 'unlimited' });
  t.same(decision.evict, []);
  t.equal(decision.keep.length, 3);
});

t.test('count devices: sessions sharing a fingerprint are one device', async (t) => {
  const sessions = [s('laptop-1', 50, 'laptop'), s('phone', 40, 'phone'), s('laptop-2', 10, 'laptop'), s('tv', 30)];
  const decision = decide(sessions, { limit: 2, countBy: 'device' });
  t.equal(decision.units, 3);
  t.same(ids(decision.keep), ['laptop-1', 'laptop-2', 'tv'], 'the laptop (latest 10 min ago) and the tv stay, both laptop sessions with it');
  t.same(ids(decision.evict), ['phone'], 'every session of the least recently authenticated device goes');

  const sameDevice = decide([s('a', 50, 'laptop'), s('b', 40, 'phone'), s('c', 0, 'laptop')], { limit: 2, countBy: 'device' });
  t.same(sameDevice.evict, [], 'a new login on a device already in use never evicts another device');
  t.same(decide([s('a', 50), s('b', 40), s('c', 0)], { limit: 2, countBy: 'device' }).evict.length, 1, 'no fingerprint: each counts alone');

  const byDevice = decide([s('old-laptop', 50, 'laptop'), s('phone', 40, 'phone'), s('new-laptop', 0, 'laptop')], { limit: 1, countBy: 'device' });
  t.same(ids(byDevice.evict), ['phone']);
  t.same(ids(byDevice.keep), ['new-laptop', 'old-laptop']);
});

t.test('deny-new: the login that would exceed the limit is refused; existing sessions stay', async (t) => {
  const existing = [s('a', 50), s('b', 40)];
  const denied = decide([...existing, s('new', 0)], { limit: 2, onLimit: 'deny-new' }, 'new');
  t.equal(denied.deny[0]?.session.id, 'new');
  t.same(denied.evict, []);
  t.same(ids(denied.keep), ['a', 'b']);

  t.same(decide([s('a', 50), s('new', 0)], { limit: 2, onLimit: 'deny-new' }, 'new').deny, [], 'under the limit: allowed');

  // Login V2 creates the session at the login-name step: the laptop's session is the oldest, its login the newest.
  const laptopFirst = decide([s('laptop', 0, undefined, { createdAt: NOW - 90 * MIN }), s('phone', 10), s('tablet', 5)], { limit: 2, onLimit: 'deny-new' }, 'laptop');
  t.same(ids(laptopFirst.deny), ['laptop'], 'the login that completes last is denied, whatever its creation time');
  t.same(ids(laptopFirst.keep), ['phone', 'tablet']);

  const device = decide([s('laptop', 50, 'laptop'), s('phone', 40, 'phone'), s('laptop-2', 0, 'laptop')], { limit: 2, onLimit: 'deny-new', countBy: 'device' }, 'laptop-2');
  t.same(device.deny, [], 'a second session on a counted device is not a new device');
  const newDevice = decide([s('laptop', 50, 'laptop'), s('phone', 40, 'phone'), s('tv', 0, 'tv')], { limit: 2, onLimit: 'deny-new', countBy: 'device' }, 'tv');
  t.equal(newDevice.deny[0]?.session.id, 'tv');
});

t.test('deny-new: a returning session is never denied, not even over a lowered limit; nothing is ever evicted', async (t) => {
  const sessions = [s('a', 0, undefined, { createdAt: NOW - 100 * MIN }), s('b', 40), s('c', 30)];
  const returning = decide(sessions, { limit: 1, onLimit: 'deny-new' }, 'a', false);
  t.same(returning.deny, [], 'a re-authentication over a lowered limit is not denied');
  t.same(returning.evict, [], 'and nothing is evicted');
  t.same(ids(returning.keep), ['a', 'b', 'c']);
  t.same(ids(decide(sessions, { limit: 1, onLimit: 'deny-new' }, 'a', true).deny), ['a'], 'the same session as a new login is denied');
  t.same(decide(sessions, { limit: 1, onLimit: 'deny-new' }).deny, [], 'no trigger (the repair sweep): nothing denied');
});

t.test('deny-new: several new logins in one decision are admitted in arrival order while room is left', async (t) => {
  const sessions = [s('old', 50), s('first', 1), s('second', 0)];
  const deny = (triggers: { id: string; newLogin: boolean }[]) =>
    chooseEvictions({ userId: 'alice', sessions, now: NOW, policy: { limit: 2, onLimit: 'deny-new' }, triggers });
  const decision = deny([
    { id: 'second', newLogin: true },
    { id: 'first', newLogin: true },
  ]);
  t.same(ids(decision.deny), ['first'], 'the one that arrived first took the last place');
  t.equal(decision.units, 2);
  const returningFirst = deny([
    { id: 'first', newLogin: false },
    { id: 'second', newLogin: true },
  ]);
  t.same(ids(returningFirst.deny), ['second'], 'a returning session counts before any new login');
});

t.test('deny-new: logins still decided by their own webhooks (pending) do not count against an earlier one', async (t) => {
  const sessions = [s('old', 50), s('mine', 1), s('racing-1', 0), s('racing-2', 0)];
  const policy: Policy = { limit: 2, onLimit: 'deny-new' };
  const triggers = [{ id: 'mine', newLogin: true }];
  const counted = chooseEvictions({ userId: 'alice', sessions, now: NOW, policy, triggers });
  t.same(ids(counted.deny), ['mine'], 'counted, the racing logins fill the limit');
  const pending = chooseEvictions({ userId: 'alice', sessions, now: NOW, policy, triggers, pending: new Set(['racing-1', 'racing-2']) });
  t.same(pending.deny, [], 'pending, they do not: the login that arrived first is admitted');
  t.same(ids(pending.keep), ['mine', 'old', 'racing-1', 'racing-2'], 'pending logins are never touched here');
});

t.test('isNewLogin: only a first credential, unknown to the memory, on a session created while it watched', async (t) => {
  const session = s('x', 0, undefined, { createdAt: NOW - MIN });
  const base = { session, checked: ['password'] as const, admitted: false, rememberedSince: NOW - 10 * MIN, clockSkewMs: 1000 };
  t.equal(isNewLogin({ ...base }), true);
  t.equal(isNewLogin({ ...base, admitted: true }), false, 'admitted before: a re-authentication');
  t.equal(isNewLogin({ ...base, checked: ['totp'] }), false, 'the password was verified by an earlier call: a second factor');
  t.equal(isNewLogin({ ...base, session: { ...session, verifiedAt: { password: NOW, totp: NOW } }, checked: ['password', 'totp'] }), true, 'every factor checked by this call');
  t.equal(isNewLogin({ ...base, rememberedSince: NOW - 30 * 1000 }), false, 'created before the memory watched: maybe admitted before');
  t.equal(isNewLogin({ ...base, rememberedSince: NOW - MIN - 500 }), false, 'within the clock skew of the watch start: in doubt');
  t.equal(isNewLogin({ ...base, rememberedSince: undefined }), false, 'no memory at all (unreadable): never new');
  t.equal(isNewLogin({ ...base, checked: undefined }), false, 'unknown checks: only the memory could tell');
});

t.test('prune expired: only the user\'s expired sessions, bounded, oldest first; never active or foreign ones', async (t) => {
  const expired = Array.from({ length: 5 }, (_, i) => s(`x${i}`, 100, undefined, { expiresAt: NOW - (i + 1) * MIN }));
  const others = [s('live', 10), s('bob', 5, undefined, { userId: 'bob', expiresAt: NOW - MIN }), s('pending', 5, undefined, { verifiedAt: {}, expiresAt: NOW - MIN })];
  const decision = decide([...expired, ...others], { limit: 1, pruneExpired: true, pruneLimit: 3 });
  t.same(decision.prune.map((x) => x.id), ['x4', 'x3', 'x2'], 'the three that expired first');
  t.same(ids(decision.keep), ['live']);
  t.same(decide([...expired, ...others], { limit: 1 }).prune, [], 'off by default');
});

t.test('combinations: device counting with a limit of 1, deny-new with pruning', async (t) => {
  const sessions = [s('laptop-a', 30, 'laptop'), s('laptop-b', 20, 'laptop'), s('phone', 5, 'phone'), s('gone', 90, undefined, { expiresAt: NOW - MIN })];
  const devices = decide(sessions, { limit: 1, countBy: 'device', pruneExpired: true });
  t.same(ids(devices.keep), ['phone']);
  t.same(ids(devices.evict), ['laptop-a', 'laptop-b']);
  t.same(devices.prune.map((x) => x.id), ['gone']);

  const denyAndPrune = decide([s('a', 50), s('new', 0), s('gone', 90, undefined, { expiresAt: NOW - MIN })], { limit: 1, onLimit: 'deny-new', pruneExpired: true }, 'new');
  t.same(ids(denyAndPrune.deny), ['new']);
  t.same(denyAndPrune.prune.map((x) => x.id), ['gone']);
});
