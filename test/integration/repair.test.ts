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
  t.equal(summary.dryRun, true, 'DRY_RUN=true (the enforcer\'s policy) makes the summary a dry run\'s, without the dryRun option');
});

t.test('sessions sharing creation times across page boundaries, listed in an unstable order of ties: every user reached once', async (t) => {
  const stack = await startStack({ limit: 2, pageSize: 10, simulator: { projectionMode: 'immediate' } });
  t.teardown(() => stack.close());
  const { state } = stack.simulator;
  // 60 users, 3 sessions each; every 7 sessions share one creation time, so ties straddle the pages of 10.
  const start = minutesAgo(120).getTime();
  for (let u = 0; u < 60; u++) {
    for (let i = 0; i < 3; i++) {
      const n = u * 3 + i;
      state.seedSession({ userId: `tie-${u}`, creationDate: new Date(start + Math.floor(n / 7) * 1000), factors: { password: new Date(start + n * 1000) } });
    }
  }
  const checked: string[] = [];
  const listed = new Set<string>();
  const { directory } = stack.service;
  const summary = await repairAll({
    directory: {
      pageSize: directory.pageSize,
      listInstancePage: async (...args) => {
        const page = await directory.listInstancePage(...args);
        for (const { session } of page) listed.add(session.id);
        return page;
      },
    },
    enforcer: { enforceUser: (userId, orgId) => (checked.push(userId), stack.service.enforcer.enforceUser(userId, orgId)) },
  });
  const diagnostics = { seed: state.seed };
  t.equal(new Set(checked).size, 60, 'every user reached', diagnostics);
  t.equal(checked.length, 60, 'each once', diagnostics);
  // A session evicted before its page was listed is never seen: count what was listed, once each.
  t.equal(summary.sessionsSeen, listed.size, 'every session listed counted once', diagnostics);
  t.equal(summary.evicted, 60, 'one eviction per user', diagnostics);
  t.same(summary.warnings, [], 'nothing to warn about', diagnostics);
});

t.test('more sessions at one instant than a page holds: the sweep goes on and its summary says what it may have missed', async (t) => {
  const stack = await startStack({ limit: 2, pageSize: 10, simulator: { projectionMode: 'immediate' } });
  t.teardown(() => stack.close());
  const { state } = stack.simulator;
  const instant = minutesAgo(60);
  for (let u = 0; u < 25; u++) state.seedSession({ userId: `same-${u}`, creationDate: instant, factors: { password: instant } });
  state.seedSession({ userId: 'later', creationDate: minutesAgo(30), factors: { password: minutesAgo(30) } });
  const summary = await repairAll({ directory: stack.service.directory, enforcer: stack.service.enforcer });
  t.ok(summary.usersChecked >= 11, 'it went on past the instant', { seed: state.seed });
  t.match(summary.warnings, [new RegExp(`more sessions than a page \\(10\\) were created at ${instant.toISOString().slice(0, 19)}`)]);
});
