import t from 'tap';
import { repairAll, type RepairSummary } from '../../src/admin/repair.js';
import { minutesAgo, startStack } from '../helpers/stack.js';

t.test('enforce --all repairs a seeded instance of 1,000 users and reports it', async (t) => {
  const stack = await startStack({ limit: 2, pageSize: 500 });
  t.teardown(() => stack.close());
  const { state } = stack.simulator;
  // 1,000 users: 700 over the limit (3 or 4 sessions), 300 within it; plus expired and in-progress sessions.
  const expectedEvictions = new Set<string>();
  const kept = new Map<string, string[]>();
  for (let u = 0; u < 1000; u++) {
    const userId = `user-${u}`;
    const count = u < 400 ? 3 : u < 700 ? 4 : 2;
    const ids = Array.from({ length: count }, (_, i) => state.seedSession({ userId, creationDate: minutesAgo(100 - i), factors: { password: minutesAgo(100 - i) } }).id);
    ids.slice(0, -2).forEach((id) => expectedEvictions.add(id));
    kept.set(userId, ids.slice(-2));
    if (u % 100 === 0) state.seedSession({ userId, factors: { password: minutesAgo(300) }, expirationDate: minutesAgo(200) });
    if (u % 150 === 0) state.seedSession({ userId, factors: {} });
  }
  state.updateProjection();
  const progress: number[] = [];
  const summary: RepairSummary = await repairAll({
    directory: stack.service.directory,
    enforcer: stack.service.enforcer,
    concurrency: 8,
    onProgress: (s) => progress.push(s.usersChecked),
  });
  t.equal(summary.usersChecked, 1000);
  t.equal(summary.evicted, 400 * 1 + 300 * 2);
  t.same(summary.failures, []);
  t.equal(progress.at(-1), 1000, 'progress was reported');
  for (const id of expectedEvictions) {
    if (state.sessions.has(id)) {
      t.fail(`${id} should have been evicted`);
      break;
    }
  }
  let wrong = 0;
  for (const [userId, ids] of kept) if (state.activeSessionsOf(userId).map((s) => s.id).sort().join() !== [...ids].sort().join()) wrong += 1;
  t.equal(wrong, 0, 'every user holds exactly their two most recently authenticated sessions');
  t.equal([...state.sessions.values()].filter((s) => s.expirationDate).length, 10, 'expired sessions untouched (no PRUNE_EXPIRED)');

  const again = await repairAll({ directory: stack.service.directory, enforcer: stack.service.enforcer, concurrency: 8 });
  t.equal(again.evicted, 0, 'a second sweep finds nothing to do');
});

t.test('--created-since limits the sweep to recent sessions; --dry-run deletes nothing', async (t) => {
  const stack = await startStack({ limit: 1, env: () => ({ DRY_RUN: 'true' }) });
  t.teardown(() => stack.close());
  const { state } = stack.simulator;
  for (const [userId, age] of [['old', 600], ['recent', 10]] as const) {
    for (let i = 0; i < 3; i++) state.seedSession({ userId, creationDate: minutesAgo(age - i), factors: { password: minutesAgo(age - i) } });
  }
  state.updateProjection();
  const summary = await repairAll({ directory: stack.service.directory, enforcer: stack.service.enforcer, createdSince: minutesAgo(60).getTime() });
  t.equal(summary.usersChecked, 1, 'only the recent user');
  t.equal(summary.evicted, 2, 'reported');
  t.equal(state.sessions.size, 6, 'but nothing deleted in dry run');
});
