import t from 'tap';
import { Budget } from '../../src/enforcement/retry.js';
import { createLogger } from '../../src/logger.js';
import { RedisUserLock } from '../../src/enforcement/redis-lock.js';
import { startRedis } from '../helpers/redis.js';

t.test('two replicas\' locks on one Redis never run one user\'s turns at once; other users run beside them', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const replicas = [0, 1].map(() => new RedisUserLock({ url: redis.url, logger: createLogger('silent') }));
  t.teardown(() => Promise.all(replicas.map((lock) => lock.close())));
  t.same(await Promise.all(replicas.map((lock) => lock.ready(5000))), [true, true]);

  const inTurn = new Map<string, number>();
  let overlap = 0;
  let parallelUsers = 0;
  const turn = (user: string) => async (waited: boolean) => {
    const now = (inTurn.get(user) ?? 0) + 1;
    inTurn.set(user, now);
    if (now > 1) overlap += 1;
    parallelUsers = Math.max(parallelUsers, [...inTurn.values()].filter((n) => n > 0).length);
    // Hold the turn across Redis round trips (no sleep): the other replica's attempts reach Redis meanwhile, and the
    // assertion below that most turns waited proves the turns did contend.
    await replicas[0]!.redis.ping();
    await replicas[1]!.redis.ping();
    inTurn.set(user, inTurn.get(user)! - 1);
    return waited;
  };
  const runs = [];
  for (let i = 0; i < 12; i++) {
    runs.push(replicas[i % 2]!.run('alice', new Budget(5000), turn('alice')));
    runs.push(replicas[(i + 1) % 2]!.run('bob', new Budget(5000), turn('bob')));
  }
  const waited = await Promise.all(runs);
  t.equal(overlap, 0, 'no two turns of one user at once, across the two replicas');
  t.equal(parallelUsers, 2, 'alice and bob ran side by side');
  t.ok(waited.filter(Boolean).length >= 20, 'the turns that waited say so (the enforcer then reads again)');
  t.equal(await replicas[0]!.redis.keys('zitadel-session-limiter:user:*').then((keys) => keys.length), 0, 'every lock released');
});

/** A promise and its resolver: lets the test say exactly when a turn ends. */
function gate<T = void>() {
  let open!: (value: T) => void;
  const opened = new Promise<T>((resolve) => (open = resolve));
  return { open, opened };
}

t.test('a lock whose expiry passed and that another owner took is not released by the first owner\'s late release', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const [a, b] = [0, 1].map(() => new RedisUserLock({ url: redis.url, logger: createLogger('silent') }));
  t.teardown(() => Promise.all([a!.close(), b!.close()]));
  await Promise.all([a!.ready(5000), b!.ready(5000)]);
  const key = 'zitadel-session-limiter:user:carol';

  // A takes the lock and keeps its turn open until the test says so.
  const aHolds = gate();
  const aEnds = gate();
  const aTurn = a!.run('carol', new Budget(5000), async () => {
    aHolds.open();
    await aEnds.opened;
  });
  await aHolds.opened;
  const aToken = await a!.redis.get(key);
  t.ok(aToken, 'A holds the lock');

  // A's expiry passes. Redis removes an expired key exactly as DEL does: no waiting for the wall clock.
  t.equal(await a!.redis.del(key), 1);

  // B takes the lock over and keeps its turn open.
  const bHolds = gate();
  const bEnds = gate();
  const bTurn = b!.run('carol', new Budget(5000), async () => {
    bHolds.open();
    await bEnds.opened;
  });
  await bHolds.opened;
  const bToken = await b!.redis.get(key);
  t.ok(bToken && bToken !== aToken, 'B holds the lock under its own token');

  // A's turn ends late: its release must leave B's lock alone (a release that ignored the token would delete it).
  aEnds.open();
  await aTurn;
  t.equal(await a!.redis.get(key), bToken, 'B\'s lock is still there, with B\'s token, after A released');
  t.ok((await a!.redis.pttl(key)) > 0, 'and still expires');

  // While B holds it, a third turn cannot get it and gives up within its budget.
  await t.rejects(a!.run('carol', new Budget(50), async () => 'never'), /turn was held by another replica/, 'a busy lock times out within the budget');

  bEnds.open();
  await bTurn;
  t.equal(await a!.redis.get(key), null, 'released by its owner');
});
