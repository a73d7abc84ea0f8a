import t from 'tap';
import { Budget } from '../../src/enforcement/retry.js';
import { createLogger } from '../../src/logger.js';
import { RedisUserLock } from '../../src/redis-lock.js';
import { startRedis } from '../helpers/redis.js';

const tick = (ms = 2) => new Promise((resolve) => setTimeout(resolve, ms));

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
    await tick(5);
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

t.test('a lock is released only by its owner, and a busy lock times out within the budget', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const [a, b] = [0, 1].map(() => new RedisUserLock({ url: redis.url, logger: createLogger('silent'), expiryMarginMs: 0 }));
  t.teardown(() => Promise.all([a!.close(), b!.close()]));
  await Promise.all([a!.ready(5000), b!.ready(5000)]);

  // A holds the lock past its expiry; B takes it over; A finishing must not release B's lock.
  let releaseB!: () => void;
  const bHolds = new Promise<void>((resolve) => (releaseB = resolve));
  const aTurn = a!.run('carol', new Budget(100), async () => {
    await tick(250);
  });
  await tick(150);
  const bTurn = b!.run('carol', new Budget(2000), async () => {
    await bHolds;
  });
  await aTurn;
  const key = 'zitadel-session-limiter:user:carol';
  t.ok(await a!.redis.get(key), 'B\'s lock is still there after A finished');
  await t.rejects(a!.run('carol', new Budget(100), async () => 'never'), /turn was held by another replica/, 'a busy lock times out within the budget');
  releaseB();
  await bTurn;
  t.equal(await a!.redis.get(key), null, 'released by its owner');
});
