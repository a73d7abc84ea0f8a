import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import t, { type Test } from 'tap';
import { DEFAULT_SIMULATOR_TOKEN, ZitadelSimulator } from '../../src/simulator/index.js';
import { MetadataLimits } from '../../src/zitadel/metadata.js';
import type { CallRunner } from '../../src/enforcement/ports.js';

// The metadata limit cache against a simulated ZITADEL over gRPC. Calls can be held at the client (a gate before
// they leave) so that the tests choose the order in which look-ups start, finish and fail, instead of timing them.

interface Held {
  method: string;
  release(): void;
}

async function setUp(t: Test) {
  const simulator = new ZitadelSimulator();
  await simulator.listen();
  t.teardown(() => simulator.close());
  const sessions = new Http2SessionManager(simulator.url);
  t.teardown(() => sessions.abort());
  const held: Held[] = [];
  let gating = false;
  // Holds each call until released; a call whose deadline passes while held fails as a real one would.
  const gate: Interceptor = (next) => async (request) => {
    if (gating) {
      await new Promise<void>((resolve, reject) => {
        held.push({ method: request.method.name, release: resolve });
        request.signal.addEventListener('abort', () => reject(ConnectError.from(request.signal.reason)), { once: true });
      });
    }
    return next(request);
  };
  const authenticate: Interceptor = (next) => (request) => {
    request.header.set('authorization', `Bearer ${DEFAULT_SIMULATOR_TOKEN}`);
    return next(request);
  };
  const transport = createGrpcTransport({ baseUrl: simulator.url, sessionManager: sessions, interceptors: [gate, authenticate] });
  const { state } = simulator;
  const calls = (method: string) => state.calls.filter((call) => call.method === method).length;
  /** Waits until `count` calls are held at the gate. */
  const heldCount = async (count: number) => {
    for (let i = 0; i < 2000 && held.length < count; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    if (held.length < count) throw new Error(`expected ${count} held calls, have ${held.length}`);
  };
  return { state, transport, held, heldCount, calls, gate: (on: boolean) => (gating = on) };
}

/** A caller with `ms` left of its budget: one attempt, that long at most. */
const within =
  (ms: number): CallRunner =>
  (_what, call) =>
    call(ms);

const settled = <T>(promise: Promise<T>) =>
  promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

t.test('a cold cache read by concurrent callers: exactly one call each for the user and the organisation', async (t) => {
  const { state, transport, calls } = await setUp(t);
  state.setOrgMetadata('org-9', 'session_limit', '3');
  const limits = new MetadataLimits(transport, { key: 'session_limit', fallback: 2, cacheSeconds: 60 });
  const results = await Promise.all(Array.from({ length: 5 }, () => limits.limitFor('no-own-limit', 'org-9')));
  t.same(new Set(results.map((result) => `${result.limit}:${result.source}`)), new Set(['3:org-metadata']));
  t.equal(calls('ListUserMetadata'), 1, 'one ListUserMetadata for five callers');
  t.equal(calls('ListOrganizationMetadata'), 1, 'one ListOrganizationMetadata for five callers');
});

t.test('a shared look-up is not bound to the first caller\'s budget: a caller with time left gets the answer', async (t) => {
  const { state, transport, held, heldCount, calls, gate } = await setUp(t);
  state.setUserMetadata('u', 'session_limit', '4');
  const limits = new MetadataLimits(transport, { key: 'session_limit', fallback: 2, cacheSeconds: 60 });
  gate(true);
  const hurried = settled(limits.limitFor('u', undefined, within(20)));
  await heldCount(1);
  const patient = settled(limits.limitFor('u', undefined));
  // The first caller gives up when its own time is over (an event: its promise settles), the look-up goes on.
  const first = await hurried;
  t.notOk(first.ok, 'the hurried caller gives up after its 20 ms');
  t.equal((first as { error: { grpcCode?: Code } }).error.grpcCode, Code.DeadlineExceeded, 'as a deadline, which its retries may wait on again');
  held[0]!.release();
  const second = await patient;
  t.ok(second.ok, 'the patient caller gets the look-up\'s answer', { error: (second as { error?: unknown }).error });
  t.same(second.ok && second.value, { limit: 4, source: 'user-metadata', malformed: [] });
  t.equal(calls('ListUserMetadata'), 1, 'one look-up shared by both');
  t.equal(held.length, 1);
});

t.test('a failed look-up does not delete the newer entry that replaced it', async (t) => {
  const { state, transport, held, heldCount, calls, gate } = await setUp(t);
  state.setUserMetadata('u', 'session_limit', '4');
  let clock = 1_000_000;
  const limits = new MetadataLimits(transport, { key: 'session_limit', fallback: 2, cacheSeconds: 60, now: () => clock });
  gate(true);
  const older = settled(limits.limitFor('u', undefined));
  await heldCount(1);
  clock += 61_000; // the older look-up's entry expired while it was still running
  const newer = limits.limitFor('u', undefined);
  await heldCount(2);
  held[1]!.release();
  t.same(await newer, { limit: 4, source: 'user-metadata', malformed: [] });
  state.injectFault('ListUserMetadata', { code: Code.Unavailable, times: 1 });
  held[0]!.release();
  t.notOk((await older).ok, 'the older look-up failed');
  gate(false);
  const before = calls('ListUserMetadata');
  t.same(await limits.limitFor('u', undefined), { limit: 4, source: 'user-metadata', malformed: [] });
  t.equal(calls('ListUserMetadata') - before, 0, 'answered from the newer entry, which the failure left in place');
});

t.test('the cache is bounded: past maxEntries the least recently used entry goes; entries expire after the TTL', async (t) => {
  const { transport, calls } = await setUp(t);
  let clock = 1_000_000;
  const limits = new MetadataLimits(transport, { key: 'session_limit', fallback: 2, cacheSeconds: 60, maxEntries: 2, now: () => clock });
  await limits.limitFor('a', undefined);
  await limits.limitFor('b', undefined);
  await limits.limitFor('a', undefined); // a is now the most recently used
  t.equal(calls('ListUserMetadata'), 2);
  await limits.limitFor('c', undefined); // evicts b
  await limits.limitFor('a', undefined);
  t.equal(calls('ListUserMetadata'), 3, 'a stayed');
  await limits.limitFor('b', undefined);
  t.equal(calls('ListUserMetadata'), 4, 'b was evicted');
  clock += 60_001;
  await limits.limitFor('b', undefined);
  t.equal(calls('ListUserMetadata'), 5, 'expired after LIMIT_CACHE_SECONDS');
});
