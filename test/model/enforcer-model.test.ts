import fc from 'fast-check';
import t, { type Test } from 'tap';
import { createLogger } from '../../src/logger.js';
import { RedisUserLock } from '../../src/enforcement/redis-lock.js';
import { DEFAULT_SIMULATOR_TOKEN, ZitadelSimulator } from '../../src/simulator/index.js';
import { ZitadelConnection } from '../../src/zitadel/connection.js';
import { PersonalAccessToken } from '../../src/zitadel/credentials.js';
import { ZitadelSessionDirectory } from '../../src/zitadel/session-directory.js';
import { startRedis } from '../helpers/redis.js';
import { scenario } from './arbitraries.js';
import { runScenario, type Invariant, type OnLimit, type RunReport } from './harness.js';

/**
 * Model-based test of the enforcer under controlled interleavings (issue 10, section 8). fast-check generates what
 * happens (logins in Login V2's two calls, re-authentications, second factors, logouts, expiries, projection lag,
 * webhooks delivered late and twice, Unavailable faults) and its scheduler the order in which those steps, the
 * deliveries and every ZITADEL call of two enforcers sharing one user lock happen and answer. After every run the
 * test's own reference model (harness.ts) is checked:
 *
 * - other-user-deleted: never a session of another user than the trigger's;
 * - login-in-progress-deleted: never a session without a verified credential;
 * - evicted-within-limit-when-read (evict-oldest): no deleted session was, by the model, among the `limit` most
 *   recently authenticated active sessions of its user when the enforcement last read it;
 * - evicted-within-limit-as-read (evict-oldest): no deleted session was among them by the truth at the moments of the
 *   enforcement's own reads of each of the user's sessions (a stale projection does not excuse; a change after
 *   the enforcement's last read of a session does);
 * - evicted-within-limit-at-delete (evict-oldest, strict): none was among them at the moment of its deletion, except
 *   for the documented window (README, Races): a re-authentication after the enforcement's last read of it;
 * - denied-in-evict-mode: evict-oldest never denies;
 * - deny-new-deleted-admitted / deny-new-deleted-non-trigger: deny-new deletes only the denied trigger, never a
 *   session it had admitted (answered 2xx, not denied);
 * - deny-new-denied-active-session: a re-authentication or a second factor is never denied;
 * - deny-new-admitted-over-limit: a login completing while the user held >= limit other active sessions (still
 *   active when the answer came) is denied;
 * - over-limit-when-quiet: once quiet (every webhook answered, faults over, projection caught up, and for a user with
 *   a failed webhook one final `enforceUser` in evict mode), no user holds more than the limit (deny-new: only users
 *   whose webhooks all succeeded: a 503 fails the login but leaves its session in ZITADEL);
 * - undocumented-answer / no-answer: every webhook is answered, 204, 200 denied or a documented 503.
 *
 * Reproduce a failure with the printed `MODEL_SEED=<seed> MODEL_PATH=<path>`:
 *   MODEL_SEED=<seed> MODEL_PATH=<path> npx tap test/model/enforcer-model.test.ts
 * MODEL_RUNS sets the runs per mode (default below: what CI runs); MODEL_SEED=random draws a new seed.
 */

// Under load (a shared CI machine) thousands of runs can take longer than tap's default 120 s per file.
t.setTimeout(5 * 60_000);

const RUNS = Number(process.env.MODEL_RUNS ?? 2000);
const SEED = process.env.MODEL_SEED === 'random' ? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0 : Number(process.env.MODEL_SEED ?? 20_260_110);
const PATH = process.env.MODEL_PATH;

/**
 * Invariants the enforcer is known to break, with why, and a run that breaks them (seed and path, replayed in a
 * `todo` subtest that prints the counterexample). Empty: every invariant must hold in every run. The two races
 * this test found (a logout racing an eviction; a login's late webhook after another enforcement remembered it)
 * are fixed; their replays below are kept for the record (a path replays a schedule of the code it was found on).
 */
const REPLAY: Record<OnLimit, { seed: number; path: string } | undefined> = {
  'evict-oldest': { seed: 20_260_110, path: '79:4:3:4:8:8:12:12:16:17:22:25:32:32:23:23:23:23:23:23:23' },
  'deny-new': { seed: 20_260_110, path: '9119:5:4:4:8:9:8:12:13:18:17:17:17:22:22:22:25:25:27:29:37:38:36:36:37:38:38:39:5:0:5:11:16:17:18:12:12:13:13:13' },
};
const KNOWN: Record<OnLimit, Partial<Record<Invariant, string>>> = {
  'evict-oldest': {},
  'deny-new': {},
};

interface Totals {
  runs: number;
  deliveries: number;
  calls: number;
}

function describe(report: RunReport, s: fc.Scheduler, only: (invariant: Invariant) => boolean): string | undefined {
  const broken = report.violations.filter((violation) => only(violation.invariant));
  if (broken.length === 0) return undefined;
  return [
    ...broken.map((violation) => `[${violation.invariant}] ${violation.text}`),
    '--- what happened (model event: what) ---',
    ...report.trace,
    '--- the schedule ---',
    ...s.report().map((task) => `${task.status} ${task.label}`),
  ].join('\n');
}

async function check(
  t: Test,
  onLimit: OnLimit,
  only: (invariant: Invariant) => boolean,
  options: { runs: number; run?: typeof runScenario; timeLimitMs?: number; todo?: string; replay?: { seed: number; path: string } | undefined },
) {
  const started = performance.now();
  const totals: Totals = { runs: 0, deliveries: 0, calls: 0 };
  const run = options.run ?? runScenario;
  const result = await fc.check(
    fc.asyncProperty(scenario(onLimit), fc.scheduler(), async (generated, s) => {
      totals.runs += 1;
      const report = await run(generated, s);
      totals.deliveries += report.deliveries;
      totals.calls += report.calls;
      const failure = describe(report, s, only);
      if (failure) throw new Error(failure);
    }),
    options.replay
      ? { numRuns: 1, seed: options.replay.seed, path: options.replay.path, endOnFailure: true }
      : { numRuns: options.runs, seed: SEED, path: PATH, endOnFailure: PATH !== undefined, interruptAfterTimeLimit: options.timeLimitMs },
  );
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  t.comment(
    `${onLimit}: ${totals.runs} interleavings (${totals.deliveries} webhook deliveries, ${totals.calls} ZITADEL calls) in ${seconds}s, ` +
      `seed ${options.replay?.seed ?? SEED}${options.replay ? ` path ${options.replay.path}` : ''}`,
  );
  if (result.failed) {
    t.fail(
      `an invariant broke: reproduce with MODEL_SEED=${result.seed} MODEL_PATH=${result.counterexamplePath} ` +
        `npx tap test/model/enforcer-model.test.ts\n${fc.stringify(result.counterexample?.[0])}\n` +
        `${(result.errorInstance as Error | undefined)?.message ?? String(result.errorInstance)}`,
      { todo: options.todo },
    );
  } else t.ok(result.numRuns > 0 && !result.interrupted, `${result.numRuns} interleaving(s), no invariant broken`, { todo: options.todo });
}

for (const onLimit of ['evict-oldest', 'deny-new'] as const) {
  const known = KNOWN[onLimit];
  const isKnown = (invariant: Invariant) => invariant in known;
  const but = Object.keys(known).length > 0 ? ' (but the known failures below)' : '';
  t.test(`${onLimit}: every invariant holds in ${RUNS} interleavings${but}`, (t) =>
    check(t, onLimit, (invariant) => !isKnown(invariant), { runs: RUNS }),
  );
  if (Object.keys(known).length > 0) {
    // Reported as a todo: printed with its counterexample, not failing the suite (tap skips the body of a todo
    // subtest, so the todo is on the assertion).
    t.test(`${onLimit}: known failures (${Object.keys(known).join(', ')})`, (t) =>
      check(t, onLimit, isKnown, {
        runs: RUNS,
        replay: REPLAY[onLimit],
        todo: Object.entries(known).map(([invariant, why]) => `${invariant}: ${why}`).join('; '),
      }),
    );
  }
}

t.test('two enforcers on two real Redis locks (two replicas): the same invariants, fewer runs', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const locks: [RedisUserLock, RedisUserLock] = [0, 1].map(() => new RedisUserLock({ url: redis.url, logger: createLogger('silent') })) as [
    RedisUserLock,
    RedisUserLock,
  ];
  t.teardown(() => Promise.all(locks.map((lock) => lock.close())));
  t.same(await Promise.all(locks.map((lock) => lock.ready(5000))), [true, true], 'both connected');
  const runs = Math.max(1, Math.round(RUNS / 25));
  const known = KNOWN['evict-oldest'];
  // Redis answers on the event loop, outside the scheduler: these runs vary in timing, not only in seed.
  await check(t, 'evict-oldest', (invariant) => !(invariant in known), { runs, run: (generated, s) => runScenario(generated, s, { locks }) });
  t.equal((await locks[0].redis.keys('zitadel-session-limiter:user:*')).length, 0, 'every lock released');
});

t.test('over real gRPC (ZitadelSessionDirectory to the simulator): the same invariants, fewer runs', async (t) => {
  const simulator = new ZitadelSimulator({ projectionMode: 'until-read' });
  await simulator.listen();
  t.teardown(() => simulator.close());
  const connection = new ZitadelConnection({ baseUrl: simulator.url, credentials: new PersonalAccessToken(DEFAULT_SIMULATOR_TOKEN) });
  t.teardown(() => connection.close());
  // A small page size: the keyset paging of a user's sessions runs too.
  const directory = new ZitadelSessionDirectory(connection.transport, { pageSize: 2 });
  const runs = Math.max(1, Math.round(RUNS / 25));
  for (const onLimit of ['evict-oldest', 'deny-new'] as const) {
    const known = KNOWN[onLimit];
    // The network answers outside the scheduler: these runs vary in timing, not only in seed.
    await check(t, onLimit, (invariant) => !(invariant in known), {
      runs,
      run: (generated, s) => runScenario(generated, s, { grpc: { state: simulator.state, directory } }),
    });
  }
});
