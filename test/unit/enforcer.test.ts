import t from 'tap';
import { SessionLimitEnforcer } from '../../src/enforcement/enforcer.js';
import type { SessionRecord } from '../../src/enforcement/decision.js';
import { createLogger } from '../../src/logger.js';
import type { SessionDirectory } from '../../src/zitadel/session-directory.js';
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
