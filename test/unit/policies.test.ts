import t from 'tap';
import { chooseEvictions, type Policy, type SessionRecord } from '../../src/enforcement/decision.js';
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
const decide = (sessions: SessionRecord[], policy: Policy, triggerId?: string) =>
  chooseEvictions({ userId: 'alice', sessions, now: NOW, policy, triggerId });
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
  t.equal(denied.deny?.session.id, 'new');
  t.same(denied.evict, []);
  t.same(ids(denied.keep), ['a', 'b']);

  const reauth = decide([s('a', 50, undefined, { verifiedAt: { password: NOW } }), s('b', 40)], { limit: 2, onLimit: 'deny-new' }, 'a');
  t.equal(reauth.deny, undefined, 'a re-authentication within the limit is never denied');
  const reauthOverLimit = decide([s('a', 50, undefined, { verifiedAt: { password: NOW } }), s('b', 40), s('c', 30)], { limit: 2, onLimit: 'deny-new' }, 'a');
  t.equal(reauthOverLimit.deny, undefined, 'even when others exceed the limit (after downtime), an established session is not denied');
  t.equal(decide([s('a', 50), s('new', 0)], { limit: 2, onLimit: 'deny-new' }, 'new').deny, undefined, 'under the limit: allowed');

  const device = decide([s('laptop', 50, 'laptop'), s('phone', 40, 'phone'), s('laptop-2', 0, 'laptop')], { limit: 2, onLimit: 'deny-new', countBy: 'device' }, 'laptop-2');
  t.equal(device.deny, undefined, 'a second session on a counted device is not a new device');
  const newDevice = decide([s('laptop', 50, 'laptop'), s('phone', 40, 'phone'), s('tv', 0, 'tv')], { limit: 2, onLimit: 'deny-new', countBy: 'device' }, 'tv');
  t.equal(newDevice.deny?.session.id, 'tv');
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
  t.equal(denyAndPrune.deny?.session.id, 'new');
  t.same(denyAndPrune.prune.map((x) => x.id), ['gone']);
});
