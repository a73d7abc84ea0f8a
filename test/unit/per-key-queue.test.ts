import t from 'tap';
import { PerKeyQueue } from '../../src/enforcement/per-key-queue.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

t.test('tasks of one key run one after another, in arrival order', async (t) => {
  const queue = new PerKeyQueue();
  const events: string[] = [];
  const releases: (() => void)[] = [];
  const task = (name: string) => async (waited: boolean) => {
    events.push(`start ${name}${waited ? ' (waited)' : ''}`);
    await new Promise<void>((resolve) => releases.push(resolve));
    events.push(`end ${name}`);
    return name;
  };
  const a = queue.run('alice', task('a1'));
  const b = queue.run('alice', task('a2'));
  const c = queue.run('bob', task('b1'));
  await tick();
  t.same(events, ['start a1', 'start b1'], 'bob runs beside alice; alice\'s second task waits');
  releases.shift()!();
  await tick();
  t.same(events.slice(2), ['end a1', 'start a2 (waited)']);
  releases.splice(0).forEach((release) => release());
  await tick();
  t.same(events.slice(4).sort(), ['end a2', 'end b1']);
  t.same(await Promise.all([a, b, c]), ['a1', 'a2', 'b1']);
  t.equal(queue.size, 0, 'no key is kept once its tasks are done');
});

t.test('a failing task does not block the next one', async (t) => {
  const queue = new PerKeyQueue();
  const failed = queue.run('k', async () => {
    throw new Error('boom');
  });
  const next = queue.run('k', async (waited: boolean) => waited);
  await t.rejects(failed, /boom/);
  t.equal(await next, true);
  t.equal(queue.size, 0);
});
