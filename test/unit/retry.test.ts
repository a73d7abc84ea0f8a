import { Code, ConnectError } from '@connectrpc/connect';
import t from 'tap';
import { Budget, BudgetExhaustedError, withRetries } from '../../src/enforcement/retry.js';
import { ZitadelCallError } from '../../src/zitadel/failures.js';

/** A clock that only moves when the retry sleeps: deterministic, instant. */
function fakeTime() {
  let now = 0;
  return { now: () => now, sleep: async (ms: number) => void (now += ms) };
}
const failing = (codes: (Code | 'ok')[]) => {
  let i = 0;
  const calls: number[] = [];
  const call = async (timeoutMs: number) => {
    calls.push(timeoutMs);
    const code = codes[Math.min(i++, codes.length - 1)];
    if (code === 'ok') return 'done';
    // As the ZITADEL adapter reports it: the gRPC code translated into the core's failure vocabulary.
    throw new ZitadelCallError('GetSession', new ConnectError(`code ${code}`, code));
  };
  return { call, calls };
};

t.test('retries Unavailable, ResourceExhausted, DeadlineExceeded, Unknown with growing jittered delays', async (t) => {
  const time = fakeTime();
  const { call, calls } = failing([Code.Unavailable, Code.ResourceExhausted, Code.DeadlineExceeded, Code.Unknown, 'ok']);
  const delays: number[] = [];
  const result = await withRetries('GetSession', call, {
    budget: new Budget(10_000, time.now),
    callTimeoutMs: 5000,
    random: () => 0.999,
    sleep: time.sleep,
    onRetry: (_what, _attempt, delay) => delays.push(delay),
  });
  t.equal(result, 'done');
  t.equal(calls.length, 5);
  t.same(delays, [49, 99, 199, 399], 'exponential: 50, 100, 200, 400 ms caps, jittered');
});

t.test('never retries what retrying cannot fix', async (t) => {
  for (const code of [Code.PermissionDenied, Code.Unauthenticated, Code.InvalidArgument, Code.NotFound]) {
    const { call, calls } = failing([code, 'ok']);
    await t.rejects(withRetries('x', call, { budget: new Budget(10_000), callTimeoutMs: 100 }), { grpcCode: code } as never);
    t.equal(calls.length, 1, Code[code]);
  }
});

t.test('the budget bounds the total time and each call\'s deadline', async (t) => {
  const time = fakeTime();
  const { call, calls } = failing([Code.Unavailable]);
  const budget = new Budget(1000, time.now);
  const error = await withRetries('ListSessions', call, { budget, callTimeoutMs: 5000, random: () => 0.999, sleep: time.sleep }).catch((e) => e);
  t.type(error, BudgetExhaustedError);
  t.equal((error as BudgetExhaustedError).what, 'ListSessions');
  t.equal(calls[0], 1000, 'a call never gets more than the budget left');
  t.ok(calls.every((timeout) => timeout <= 1000));
  t.ok(time.now() < 1000, 'it gives up instead of sleeping past the budget');
});
