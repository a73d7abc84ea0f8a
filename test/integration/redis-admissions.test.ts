import { Redis } from 'ioredis';
import t from 'tap';
import { RedisAdmissions } from '../../src/enforcement/redis-admissions.js';
import { startRedis } from '../helpers/redis.js';

t.test('an update lost while Redis failed: the watch starts again when Redis answers, so nothing admitted then looks new', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const client = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  t.teardown(() => client.quit());
  await new Promise((resolve) => client.once('ready', resolve));
  let clock = 1_000_000;
  let usable = true;
  const memory = new RedisAdmissions(client, { now: () => clock, usable: () => usable });

  t.same(await memory.recall('u', ['a']), { admitted: new Set(), since: 1_000_000 }, 'the watch starts with the first use');
  await memory.update('u', ['a'], []);
  t.same((await memory.recall('u', ['a', 'b'])).admitted, new Set(['a']), 'admissions are remembered');

  // Redis fails: the session "c" is let through (the memory is unreadable) and its admission is lost.
  usable = false;
  clock += 10_000;
  await t.rejects(memory.recall('u', ['c']), /Redis is failing/, 'fails at once while Redis is known to fail');
  await t.rejects(memory.update('u', ['c'], []), /Redis is failing/);
  // Redis answers again.
  usable = true;
  clock += 10_000;
  await memory.recovered();
  const after = await memory.recall('u', ['a', 'c']);
  t.same(after.admitted, new Set(['a']));
  t.equal(after.since, clock, 'the watch restarted when Redis answered: c, created before, counts as established');

  // A second replica sharing the Redis sees the same start.
  const replica = new RedisAdmissions(client, { now: () => clock + 5 });
  t.equal((await replica.recall('u', ['c'])).since, clock);
});

t.test('bounded per user: the oldest admissions go and the watch of that user starts afresh', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const client = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  t.teardown(() => client.quit());
  await new Promise((resolve) => client.once('ready', resolve));
  let clock = 1_000;
  const memory = new RedisAdmissions(client, { now: () => clock, maxSessionsPerUser: 3 });
  for (const id of ['a', 'b', 'c', 'd']) {
    clock += 1;
    await memory.update('u', [id], []);
  }
  const recalled = await memory.recall('u', ['a', 'b', 'c', 'd']);
  t.same(recalled.admitted, new Set(['b', 'c', 'd']), 'the oldest admission was forgotten');
  t.equal(recalled.since, clock, 'and sessions created before now count as established for this user');
  t.ok((await client.pttl('zitadel-session-limiter:admitted:u:u')) > 0, 'the user\'s memory expires');
});
