import { Code } from '@connectrpc/connect';
import t from 'tap';
import { fixtureFor } from '../helpers/payloads.js';
import { minutesAgo, startStack } from '../helpers/stack.js';

t.test('every line of one webhook carries the same request id; another webhook has another', async (t) => {
  const s = await startStack({ limit: 1 });
  t.teardown(() => s.close());
  const { state } = s.simulator;
  const old = state.seedSession({ userId: 'u', creationDate: minutesAgo(10), factors: { password: minutesAgo(10) } }).id;
  const fresh = state.seedSession({ userId: 'u', factors: { password: new Date() } }).id;
  t.equal((await s.send(fixtureFor('02-password.set-session', fresh))).statusCode, 204);
  const handled = s.logs.lines.find((line) => line.msg === 'webhook handled')!;
  const evicted = s.logs.lines.find((line) => line.event === 'session.evicted')!;
  t.match(handled.reqId, /^[0-9a-f]{8}-[0-9a-z]+$/, 'the handled line has an id');
  t.equal(evicted.sessionId, old);
  t.equal(evicted.reqId, handled.reqId, 'the audit line of that webhook has the same id');

  state.injectFault('ListSessions', { code: Code.PermissionDenied, times: 1 });
  const other = state.seedSession({ userId: 'v', factors: { password: new Date() } }).id;
  t.equal((await s.send(fixtureFor('02-password.set-session', other))).statusCode, 502);
  const failed = s.logs.lines.find((line) => line.level === 50)!;
  t.ok(failed.reqId && failed.reqId !== handled.reqId, 'the failure line names its own webhook');
});

t.test('one enforcement answering several webhooks names them all', async (t) => {
  const s = await startStack({ limit: 1 });
  t.teardown(() => s.close());
  const { state } = s.simulator;
  const sessions = [0, 1, 2].map((i) => state.seedSession({ userId: 'u', creationDate: minutesAgo(10 - i), factors: { password: minutesAgo(10 - i) } }).id);
  // Hold the first enforcement's list until the other two webhooks have joined the next one.
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let lists = 0;
  state.afterCall.push(async (call) => {
    if (call.method === 'ListSessions' && ++lists === 1) await held;
  });
  const first = s.send(fixtureFor('02-password.set-session', sessions[0]!));
  const others = [s.send(fixtureFor('02-password.set-session', sessions[1]!)), s.send(fixtureFor('02-password.set-session', sessions[2]!))];
  while (s.service.enforcer.active < 2) await new Promise((resolve) => setImmediate(resolve));
  // A session the first enforcement did not list: the second one (answering both waiting webhooks) evicts it.
  state.seedSession({ userId: 'u', creationDate: minutesAgo(20), factors: { password: minutesAgo(20) } });
  release();
  await Promise.all([first, ...others]);
  const handled = s.logs.lines.filter((line) => line.msg === 'webhook handled');
  const joined = handled.filter((line) => line.coalesced === 1).map((line) => line.reqId).sort();
  t.equal(joined.length, 2, 'two webhooks were answered by one enforcement');
  const audit = s.logs.lines.filter((line) => line.event === 'session.evicted' && Array.isArray(line.reqIds));
  t.ok(audit.length > 0, 'its audit lines exist');
  for (const line of audit) t.same([...line.reqIds].sort(), joined, 'and name both webhooks');
});
