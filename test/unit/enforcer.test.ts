import t from 'tap';
import { InMemoryAdmissions } from '../../src/enforcement/admissions.js';
import { SessionLimitEnforcer } from '../../src/enforcement/enforcer.js';
import type { SessionRecord } from '../../src/enforcement/decision.js';
import { createLogger } from '../../src/logger.js';
import type { SessionDirectory } from '../../src/enforcement/ports.js';
import { LogCapture } from '../helpers/stack.js';

const NOW = 1_767_225_600_000;
const MIN = 60_000;

/** An in-memory directory: the enforcer's only I/O, replaced by plain data. */
function directory(sessions: SessionRecord[]) {
  const store = new Map(sessions.map((session) => [session.id, session]));
  const deleted: string[] = [];
  const seam: SessionDirectory = {
    getSession: async (id) => store.get(id),
    listUserSessions: async (userId) => [...store.values()].filter((session) => session.userId === userId),
    deleteSession: async (id) => {
      deleted.push(id);
      store.delete(id);
    },
  };
  return { seam, deleted, store };
}
const s = (id: string, ago: number, device?: string): SessionRecord => ({
  id,
  userId: 'alice',
  organizationId: 'org',
  createdAt: NOW - ago * MIN,
  expiresAt: undefined,
  verifiedAt: { password: NOW - ago * MIN },
  fingerprintId: device,
});

t.test('dry run with device counting and a limit of 1: decides everything, deletes nothing, audits what it would do', async (t) => {
  const { seam, deleted } = directory([s('laptop-a', 30, 'laptop'), s('laptop-b', 20, 'laptop'), s('phone', 0, 'phone')]);
  const logs = new LogCapture();
  const enforcer = new SessionLimitEnforcer({
    directory: seam,
    limits: 1,
    policy: { countBy: 'device', dryRun: true },
    logger: createLogger('info', logs),
    now: () => NOW,
  });
  const result = await enforcer.enforce('phone');
  t.same(deleted, [], 'nothing deleted');
  t.same(result.evicted.sort(), ['laptop-a', 'laptop-b'], 'the would-be evictions are reported');
  t.equal(result.dryRun, true);
  const audit = logs.lines.filter((line) => line.event === 'session.evicted');
  t.same(audit.map((line) => [line.sessionId, line.rule, line.limit, line.limitSource, line.countBy, line.dryRun]).sort(), [
    ['laptop-a', 'evict-oldest', 1, 'default', 'device', true],
    ['laptop-b', 'evict-oldest', 1, 'default', 'device', true],
  ]);
});

t.test('the same without dry run deletes them, with the same audit shape', async (t) => {
  const { seam, deleted } = directory([s('laptop-a', 30, 'laptop'), s('laptop-b', 20, 'laptop'), s('phone', 0, 'phone')]);
  const logs = new LogCapture();
  const enforcer = new SessionLimitEnforcer({ directory: seam, limits: 1, policy: { countBy: 'device' }, logger: createLogger('info', logs), now: () => NOW });
  await enforcer.enforce('phone');
  t.same(deleted.sort(), ['laptop-a', 'laptop-b']);
  t.same(
    Object.keys(logs.lines.find((line) => line.event === 'session.evicted')!).filter((key) => !['level', 'time', 'service', 'msg'].includes(key)).sort(),
    ['countBy', 'dryRun', 'event', 'kept', 'limit', 'limitSource', 'orgId', 'rule', 'sessionId', 'userId'],
    'the documented audit fields',
  );
});

t.test('a failed limit look-up evicts nothing and fails the enforcement', async (t) => {
  const { seam, deleted } = directory([s('a', 30), s('b', 0)]);
  const enforcer = new SessionLimitEnforcer({
    directory: seam,
    limits: { limitFor: async () => Promise.reject(new Error('metadata unavailable')) },
    logger: createLogger('silent'),
    now: () => NOW,
  });
  await t.rejects(enforcer.enforce('b'), /metadata unavailable/);
  t.same(deleted, []);
});

t.test('enforcements of one user never overlap between list and delete; different users run in parallel', async (t) => {
  const sessions = [s('a1', 50), s('a2', 40), s('a3', 30), s('a4', 20), { ...s('b1', 50), userId: 'bob' }, { ...s('b2', 0), userId: 'bob' }];
  const { seam } = directory(sessions);
  const owner = new Map(sessions.map((x) => [x.id, x.userId!]));
  const events: string[] = [];
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  const instrumented: SessionDirectory = {
    getSession: async (id) => {
      await tick();
      return seam.getSession(id);
    },
    listUserSessions: async (userId) => {
      events.push(`list ${userId}`);
      await tick();
      return seam.listUserSessions(userId);
    },
    deleteSession: async (id) => {
      await tick();
      events.push(`delete ${owner.get(id)}`);
      await tick();
      return seam.deleteSession(id);
    },
  };
  const enforcer = new SessionLimitEnforcer({ directory: instrumented, limits: 1, logger: createLogger('silent'), now: () => NOW });
  const run = async (id: string) => {
    await enforcer.enforce(id);
    events.push(`done ${owner.get(id)}`);
  };
  await Promise.all(['a1', 'a2', 'a3', 'a4', 'b1', 'b2'].map(run));
  for (const user of ['alice', 'bob']) {
    const mine = events.filter((event) => event.endsWith(` ${user}`)).map((event) => event.split(' ')[0]);
    // Each turn is list, its deletes, done: a second list before the turn's done would be an overlap.
    let open = false;
    let overlap = false;
    for (const event of mine) {
      if (event === 'list') {
        overlap ||= open;
        open = true;
      } else if (event === 'done') open = false;
    }
    t.notOk(overlap, `${user}: no two turns at once (${mine.join(' ')})`);
  }
  const firstDone = events.findIndex((event) => event.startsWith('done'));
  t.ok(events.slice(0, firstDone).includes('list alice') && events.slice(0, firstDone).includes('list bob'), 'alice and bob were listed side by side');
});

t.test('a trigger record read before the list never overrides a newer listed record of the same session', async (t) => {
  // X re-authenticates between the trigger's GetSession and the ListSessions: the list holds the newer X.
  const x = { ...s('x', 30), changedAt: NOW - 30 * MIN };
  const y = { ...s('y', 10), changedAt: NOW - 10 * MIN };
  const newerX = { ...x, verifiedAt: { password: NOW - MIN }, changedAt: NOW - MIN };
  let reads = 0;
  const seam: SessionDirectory = {
    getSession: async (id) => (id === 'x' ? (reads++ === 0 ? x : newerX) : y),
    listUserSessions: async () => [newerX, y],
    deleteSession: async (id) => void deleted.push(id),
  };
  const deleted: string[] = [];
  const enforcer = new SessionLimitEnforcer({ directory: seam, limits: 1, logger: createLogger('silent'), now: () => NOW });
  await enforcer.enforce('x');
  t.same(deleted, ['y'], 'x, the most recently authenticated, stays');
});

t.test('the repair path (no trigger, no organisation given) takes the organisation from the sessions for its limit', async (t) => {
  const { seam, deleted } = directory([s('a', 30), s('b', 20), s('c', 10)]);
  const asked: (string | undefined)[] = [];
  const enforcer = new SessionLimitEnforcer({
    directory: seam,
    limits: { limitFor: async (_user, org) => (asked.push(org), { limit: org === 'org' ? 'unlimited' : 1, source: 'org-metadata', malformed: [] }) },
    logger: createLogger('silent'),
    now: () => NOW,
  });
  await enforcer.enforceUser('alice');
  t.same(asked, ['org']);
  t.same(deleted, [], 'the organisation\'s unlimited applies, not the default');
});

t.test('a session whose every re-read shows a change is never deleted on a read that was not the last', async (t) => {
  const { seam, deleted, store } = directory([s('recent', 0), s('flapping', 30), s('old', 40)]);
  let reads = 0;
  const changing: SessionDirectory = {
    ...seam,
    getSession: async (id) => {
      const session = store.get(id);
      if (id !== 'flapping' || !session) return session;
      // Re-authenticated? No: but changed (e.g. metadata set) on every read, so no read is ever the final one.
      reads += 1;
      return { ...session, changedAt: NOW + reads };
    },
  };
  const logs = new LogCapture();
  const enforcer = new SessionLimitEnforcer({ directory: changing, limits: 1, logger: createLogger('info', logs), now: () => NOW });
  const result = await enforcer.enforce('recent', { checked: ['password'] });
  t.same(deleted, ['old'], 'only the session confirmed unchanged by its re-read is deleted');
  t.equal(result.deferred, 1, 'the other is left for the next enforcement');
  t.ok(reads >= 2, 'it was read again each round');
  t.ok(logs.lines.some((line) => line.deferred === 1 && /left for the next enforcement/.test(line.msg)), 'and the log says so');
});

t.test('evictions per enforcement are capped; the sweep repeats until the user is within the limit', async (t) => {
  const sessions = Array.from({ length: 30 }, (_, i) => s(`s${i}`, 100 - i));
  const { seam, deleted } = directory(sessions);
  const calls = { get: 0 };
  const counting: SessionDirectory = { ...seam, getSession: async (id, run) => (calls.get++, seam.getSession(id, run)) };
  const enforcer = new SessionLimitEnforcer({ directory: counting, limits: 1, logger: createLogger('silent'), now: () => NOW, maxEvictionsPerEnforcement: 10 });
  const first = await enforcer.enforce('s29', { checked: ['password'] });
  t.equal(first.evicted.length, 10, 'at most the cap in one enforcement');
  t.equal(first.deferred, 19);
  t.same([...deleted].sort(), sessions.slice(0, 10).map((x) => x.id).sort(), 'the least recently authenticated first');
  t.ok(calls.get <= 1 + 10 + 1, `re-reads bounded by the cap (and the kept sessions) too: ${calls.get} GetSession`);
  const swept = await enforcer.enforceUser('alice');
  t.equal(swept.evicted.length, 19, 'the sweep evicts the rest, pass after pass');
  t.equal(swept.deferred, 0);
  t.equal(deleted.length, 29);
});

t.test('deny-new in a dry run remembers the sessions that stay, so switching it off denies no re-authentication', async (t) => {
  const created = (id: string, agoSeconds: number): SessionRecord => ({ ...s(id, 0), createdAt: NOW - agoSeconds * 1000, verifiedAt: { password: NOW - agoSeconds * 1000 } });
  const { seam, deleted, store } = directory([]);
  // The memory has watched for a minute: these sessions were created while it watched.
  const admissions = new InMemoryAdmissions({ now: () => NOW - 60_000 });
  const options = { directory: seam, limits: 2, logger: createLogger('silent'), now: () => NOW, admissions, admissionClockSkewMs: 0 };
  const dry = new SessionLimitEnforcer({ ...options, policy: { onLimit: 'deny-new', dryRun: true } });
  // Three devices sign in one after another, each with its own webhook.
  for (const [device, ago] of [['laptop', 50], ['phone', 40], ['tablet', 30]] as const) {
    store.set(device, created(device, ago));
    const result = await dry.enforce(device, { checked: ['password'] });
    t.equal(result.outcome, device === 'tablet' ? 'denied' : 'enforced', `${device}: as the dry run decides it`);
  }
  t.same(deleted, [], 'the dry run deletes nothing');
  const enforcing = new SessionLimitEnforcer({ ...options, policy: { onLimit: 'deny-new' } });
  for (const device of ['laptop', 'phone', 'tablet']) {
    const recheck = await enforcing.enforce(device, { checked: ['password'] });
    t.equal(recheck.outcome, 'enforced', `${device} re-checking its password after the dry run is not denied`);
  }
  t.same(deleted, [], 'no session that stayed through the dry run is ever deleted');
});

t.test('the sweep reports the user as it found them; a dry run reports every would-be eviction, uncapped', async (t) => {
  const sessions = Array.from({ length: 40 }, (_, i) => s(`s${i}`, 100 - i));
  const { seam, deleted } = directory(sessions);
  const dry = new SessionLimitEnforcer({ directory: seam, limits: 2, policy: { dryRun: true }, logger: createLogger('silent'), now: () => NOW });
  const wouldBe = await dry.enforceUser('alice');
  t.equal(wouldBe.evicted.length, 38, 'the dry run says what the real run will do');
  t.equal(wouldBe.active, 40);
  t.same(deleted, []);
  const real = new SessionLimitEnforcer({ directory: seam, limits: 2, logger: createLogger('silent'), now: () => NOW });
  const swept = await real.enforceUser('alice');
  t.equal(swept.evicted.length, 38);
  t.equal(swept.active, 40, 'active: what the user held before the sweep, not after its first pass');
});
