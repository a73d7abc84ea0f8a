import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { Webhook } from 'standardwebhooks';
import { EventDelivery, type DeliveryOptions, type DeliveryOutcome, type Schedule } from '../../src/events/delivery.js';
import { DEFAULT_SIMULATOR_TOKEN } from '../../src/simulator/index.js';
import { fixtureFor } from '../helpers/payloads.js';
import { startReceiver, type Received } from '../helpers/receiver.js';
import { minutesAgo, SIGNING_KEY, startStack, type Stack } from '../helpers/stack.js';

/**
 * Eviction events (issue 14, section 1), with a real HTTP receiver and the service over the gRPC simulator: signed
 * and verifiable with the standardwebhooks package's own verifier, retried after an outage with the same id, never
 * carrying a secret, absent in a dry run, never holding up the webhook's answer, drained or logged at shutdown.
 * Retries are fired by the test through an injected scheduler: no sleeps.
 */

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const PASSWORD = 'Pa55-word-that-must-never-leave';
const SESSION_TOKEN = 'session-token-that-must-never-leave';

/** A scheduler the test drives: it records what is scheduled and runs it when told. */
function manualSchedule() {
  const pending: { run: () => void; ms: number; cancelled: boolean }[] = [];
  const schedule: Schedule = (run, ms) => {
    const entry = { run, ms, cancelled: false };
    pending.push(entry);
    return () => (entry.cancelled = true);
  };
  return {
    schedule,
    delays: () => pending.map((entry) => entry.ms),
    /** Runs every timer scheduled and not cancelled so far. */
    fireAll() {
      for (const entry of pending.splice(0)) if (!entry.cancelled) entry.run();
    },
  };
}

/** Outcomes as they happen, and a way to await the next one that matches. */
function outcomes() {
  const seen: DeliveryOutcome[] = [];
  const waiters: { match: (o: DeliveryOutcome) => boolean; resolve: (o: DeliveryOutcome) => void }[] = [];
  return {
    seen,
    observe(outcome: DeliveryOutcome) {
      seen.push(outcome);
      for (const waiter of [...waiters]) {
        if (waiter.match(outcome)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(outcome);
        }
      }
    },
    /** The first outcome seen so far that matches, or the next one. */
    until(match: (o: DeliveryOutcome) => boolean): Promise<DeliveryOutcome> {
      const already = seen.find(match);
      return already ? Promise.resolve(already) : new Promise((resolve) => waiters.push({ match, resolve }));
    },
  };
}

interface Setup {
  stack: Stack;
  receiver: Awaited<ReturnType<typeof startReceiver>>;
  /** Resolves with the n-th request the receiver got (1-based). */
  request: (n: number) => Promise<Received>;
  timers: ReturnType<typeof manualSchedule>;
  observed: ReturnType<typeof outcomes>;
}

async function setup(
  t: Test,
  answer: (received: Received, n: number) => { status?: number; hold?: Promise<unknown> } | void = () => {},
  env: Record<string, string> = {},
): Promise<Setup> {
  const arrivals: ((received: Received) => void)[] = [];
  const arrived: Promise<Received>[] = [];
  for (let i = 0; i < 10; i++) arrived.push(new Promise((resolve) => arrivals.push(resolve)));
  let count = 0;
  const receiver = await startReceiver((received) => {
    const n = ++count;
    arrivals[n - 1]?.(received);
    return answer(received, n);
  });
  t.teardown(() => receiver.close());
  const timers = manualSchedule();
  const observed = outcomes();
  const stack = await startStack({
    limit: 2,
    env: () => ({ EVENTS_URL: receiver.url, EVENTS_SECRET: SECRET, SHUTDOWN_TIMEOUT_MS: '5000', ...env }),
    events: { schedule: timers.schedule, observe: (outcome) => observed.observe(outcome), random: () => 1 },
  });
  t.teardown(() => stack.close());
  return { stack, receiver, request: (n) => arrived[n - 1]!, timers, observed };
}

/** Alice on a laptop and a phone, then a login on the tv: the laptop is evicted. Returns the ids. */
async function aliceSignsInOnTheTv(stack: Stack) {
  const { state } = stack.simulator;
  const alice = 'alice-id';
  const laptop = state.seedSession({ userId: alice, creationDate: minutesAgo(30), factors: { password: minutesAgo(30) }, description: 'laptop', fingerprintId: 'fp-laptop' }).id;
  const phone = state.seedSession({ userId: alice, creationDate: minutesAgo(20), factors: { password: minutesAgo(20) }, description: 'phone', fingerprintId: 'fp-phone' }).id;
  const tv = state.seedSession({ userId: alice, factors: { password: new Date() }, description: 'tv', fingerprintId: 'fp-tv' }).id;
  const body = fixtureFor('03-password.create-session', tv, (payload) => {
    payload.request.checks.password.password = PASSWORD;
    payload.response.sessionToken = SESSION_TOKEN;
  });
  const response = await stack.send(body);
  return { alice, laptop, phone, tv, response };
}

t.test('an eviction reaches the receiver signed, verifiable with the library\'s verifier, naming the device and the login that caused it', async (t) => {
  const { stack, request, observed } = await setup(t);
  const { alice, laptop, tv, response } = await aliceSignsInOnTheTv(stack);
  t.equal(response.statusCode, 204);
  const received = await request(1);
  const verified = new Webhook(SECRET).verify(received.body, received.headers as Record<string, string>) as Record<string, any>;
  t.match(received.headers['webhook-id'], /^evt_[0-9a-f-]{36}$/);
  t.match(received.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+=*$/);
  t.equal(received.headers['content-type'], 'application/json');
  t.match(verified, {
    type: 'session.evicted',
    timestamp: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
    data: {
      userId: alice,
      orgId: '300000000000000002',
      sessionId: laptop,
      userAgent: { description: 'laptop', fingerprintId: 'fp-laptop' },
      reason: 'limit_exceeded',
      limit: 2,
      limitSource: 'default',
      causedBySessionId: tv,
    },
  });
  t.throws(() => new Webhook(`whsec_${randomBytes(32).toString('base64')}`).verify(received.body, received.headers as Record<string, string>), 'another secret does not verify');
  await observed.until((o) => o.outcome === 'sent');
  const metrics = await stack.service.metrics.registry.metrics();
  t.match(metrics, /session_limiter_events_total\{type="session.evicted",outcome="sent"\} 1/);
});

t.test('events never carry a password, a token or a key', async (t) => {
  const { stack, request } = await setup(t);
  await aliceSignsInOnTheTv(stack);
  const received = await request(1);
  const everything = JSON.stringify(received.headers) + received.body;
  for (const secret of [PASSWORD, SESSION_TOKEN, SIGNING_KEY, DEFAULT_SIMULATOR_TOKEN, SECRET, SECRET.slice('whsec_'.length)]) {
    t.notOk(everything.includes(secret), `the event does not contain ${secret.slice(0, 6)}...`);
  }
  t.notMatch(received.body, /password|token/i, 'no field named like a credential');
});

t.test('the webhook\'s answer does not wait for the receiver (its answer is held open until after the webhook answered)', async (t) => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const { stack, request } = await setup(t, () => ({ hold: held }));
  const { response } = await aliceSignsInOnTheTv(stack);
  t.equal(response.statusCode, 204, 'the webhook answered while the receiver holds its answer');
  const received = await request(1);
  t.ok(received.body.includes('session.evicted'), 'the event arrived; the receiver still holds its answer');
  t.equal(stack.service.events?.depth, 1, 'the event is in flight, not yet delivered');
  release();
});

t.test('absent in a dry run: no delivery is built, nothing arrives', async (t) => {
  const { stack, receiver } = await setup(t, () => {}, { DRY_RUN: 'true' });
  const { laptop } = await aliceSignsInOnTheTv(stack);
  t.equal(stack.service.events, undefined, 'no events delivery in a dry run');
  t.ok(stack.logs.lines.some((line) => line.event === 'session.evicted' && line.sessionId === laptop && line.dryRun), 'the dry run decided the eviction');
  t.ok(stack.simulator.state.sessions.has(laptop), 'nothing deleted');
  t.same(receiver.received, [], 'the receiver got nothing');
});

t.test('after a receiver outage the event is retried with backoff and the same id (deduplicable), and delivered', async (t) => {
  const { stack, request, timers, observed } = await setup(t, (_received, n) => (n <= 2 ? { status: 503 } : { status: 204 }));
  await aliceSignsInOnTheTv(stack);
  const first = await request(1);
  // The backoff is read from the failure itself: the timer waits for what is left of it on the real clock (1000 ms,
  // or 999 when a millisecond passed in between).
  t.match(await observed.until((o) => o.outcome === 'failed' && o.attempt === 1), { retryInMs: 1000 }, 'first retry after the base delay (jitter at its maximum)');
  t.equal(timers.delays().length, 1, 'one retry scheduled');
  timers.fireAll();
  const second = await request(2);
  t.match(await observed.until((o) => o.outcome === 'failed' && o.attempt === 2), { retryInMs: 2000 }, 'the next one twice as long');
  t.equal(timers.delays().length, 1, 'one retry scheduled');
  timers.fireAll();
  const third = await request(3);
  const sent = await observed.until((o) => o.outcome === 'sent');
  t.match(sent, { attempt: 3, status: 204 });
  const ids = [first, second, third].map((received) => received.headers['webhook-id']);
  t.equal(new Set(ids).size, 1, 'the same webhook-id on every attempt');
  t.equal(new Set([first, second, third].map((received) => received.body)).size, 1, 'the same body');
  const webhook = new Webhook(SECRET);
  for (const received of [first, second, third]) t.ok(webhook.verify(received.body, received.headers as Record<string, string>), 'every attempt verifies');
  const metrics = await stack.service.metrics.registry.metrics();
  t.match(metrics, /session_limiter_events_total\{type="session.evicted",outcome="failed"\} 2/);
  t.match(metrics, /session_limiter_events_total\{type="session.evicted",outcome="sent"\} 1/);
  t.match(metrics, /session_limiter_events_queue_depth 0/);
  const warnings = stack.logs.lines.filter((line) => line.msg?.startsWith('eviction event not delivered'));
  t.equal(warnings.length, 1, 'one warning for the first failure; retries are debug');
  t.equal(warnings[0]?.eventId, ids[0]);
});

t.test('an event still failing is tried a last time AT the EVENTS_RETRY_FOR deadline, then given up, counted and logged with its user and session', async (t) => {
  let now = Date.now();
  const receiver = await startReceiver(() => ({ status: 500 }));
  t.teardown(() => receiver.close());
  const timers = manualSchedule();
  const observed = outcomes();
  const stack = await startStack({
    limit: 2,
    env: () => ({ EVENTS_URL: receiver.url, EVENTS_SECRET: SECRET, EVENTS_RETRY_FOR: '10s' }),
    events: { schedule: timers.schedule, observe: (o) => observed.observe(o), random: () => 1, now: () => now },
  });
  t.teardown(() => stack.close());
  const queuedAt = now;
  const { alice, laptop } = await aliceSignsInOnTheTv(stack);
  // Backoff (jitter at its maximum): 1 s, 2 s, 4 s; attempts at +0, +1 s, +3 s, +7 s. The next step (8 s) would land
  // at +15 s, past the 10 s: the last attempt is scheduled at the deadline instead (+10 s), 3 s later.
  for (const [attempt, delay] of [[1, 1000], [2, 2000], [3, 4000]] as const) {
    t.match(await observed.until((o) => o.outcome === 'failed' && o.attempt === attempt), { retryInMs: delay }, `attempt ${attempt}: retry in ${delay} ms`);
    now += delay;
    timers.fireAll();
  }
  t.match(await observed.until((o) => o.outcome === 'failed' && o.attempt === 4), { retryInMs: 3000 }, 'attempt 4 at +7 s: the last one is due at the deadline, not given up 3 s early');
  t.same(timers.delays(), [3000]);
  t.notOk(observed.seen.some((o) => o.outcome === 'dropped'), 'not given up before EVENTS_RETRY_FOR has passed');
  t.match(await stack.service.metrics.registry.metrics(), /session_limiter_events_queue_depth 1/);
  now += 1000;
  t.match(await stack.service.metrics.registry.metrics(), /session_limiter_events_oldest_pending_seconds 8/, 'the oldest pending event is 8 s old');
  now += 2000;
  timers.fireAll();
  const dropped = await observed.until((o) => o.outcome === 'dropped');
  t.match(dropped, { reason: 'expired' });
  t.equal(now - queuedAt, 10_000, 'given up once the attempt at the deadline failed');
  t.match(observed.seen.find((o) => o.outcome === 'failed' && o.attempt === 5), { retryInMs: undefined }, 'the fifth attempt, at the deadline, was the last');
  t.equal(receiver.received.length, 5);
  const line = stack.logs.lines.find((l) => l.msg?.startsWith('eviction event given up'));
  t.match(line, { eventId: dropped.id, type: 'session.evicted', userId: alice, sessionId: laptop, attempts: 5, status: 500, level: 50 }, 'an error naming the event, its user and session');
  t.notOk(JSON.stringify(line).includes(SECRET.slice('whsec_'.length)), 'never the secret');
  const metrics = await stack.service.metrics.registry.metrics();
  t.match(metrics, /session_limiter_events_total\{type="session.evicted",outcome="dropped",reason="expired"\} 1/);
  t.match(metrics, /session_limiter_events_queue_depth 0/);
});

t.test('with events configured, every type x outcome (x reason) series is exported at 0 from the start (alerts see the first drop)', async (t) => {
  const { stack } = await setup(t, () => {}, { EVENTS_TYPES: 'session.evicted,session.pruned' });
  const metrics = await stack.service.metrics.registry.metrics();
  for (const type of ['session.evicted', 'session.pruned']) {
    for (const outcome of ['sent', 'failed']) t.match(metrics, `session_limiter_events_total{type="${type}",outcome="${outcome}"} 0`);
    for (const reason of ['expired', 'overflow', 'shutdown']) t.match(metrics, `session_limiter_events_total{type="${type}",outcome="dropped",reason="${reason}"} 0`);
  }
  t.notMatch(metrics, /type="session.denied"/, 'a type not in EVENTS_TYPES is never sent: no series');
  const without = await startStack({ limit: 2 });
  t.teardown(() => without.close());
  t.notMatch(await without.service.metrics.registry.metrics(), /session_limiter_events_total\{/, 'without EVENTS_URL: no event series');
});

t.test('a full queue drops the new event, counts and logs it', async (t) => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const { stack, request, observed } = await setup(t, () => ({ hold: held }), { EVENTS_QUEUE_MAX: '1' });
  await aliceSignsInOnTheTv(stack);
  await request(1);
  const id = stack.service.events!.enqueue({ type: 'session.pruned', timestamp: new Date().toISOString(), data: { userId: 'bob-id', sessionId: 'bob-session' } });
  t.equal(id, undefined, 'not queued');
  const dropped = await observed.until((o) => o.outcome === 'dropped');
  t.match(dropped, { reason: 'overflow', type: 'session.pruned' });
  const line = stack.logs.lines.find((l) => l.eventId === dropped.id);
  t.match(line, { msg: /queue is full \(EVENTS_QUEUE_MAX\)/, type: 'session.pruned', userId: 'bob-id', sessionId: 'bob-session', queueMax: 1 }, 'logged with its id, type, user and session');
  t.match(await stack.service.metrics.registry.metrics(), /session_limiter_events_total\{type="session.pruned",outcome="dropped",reason="overflow"\} 1/);
  release();
  await observed.until((o) => o.outcome === 'sent');
});

t.test('on shutdown a pending event is tried at once instead of waiting for its backoff', async (t) => {
  const { stack, request, timers, observed } = await setup(t, (_received, n) => (n === 1 ? { status: 503 } : { status: 204 }));
  await aliceSignsInOnTheTv(stack);
  await request(1);
  t.match(await observed.until((o) => o.outcome === 'failed'), { retryInMs: 1000 }, 'the retry is due in a second');
  const closed = stack.service.close();
  await request(2);
  await closed;
  t.match(await observed.until((o) => o.outcome === 'sent'), { attempt: 2 });
  t.ok(stack.logs.lines.some((l) => l.msg === 'every eviction event was delivered before shutdown'));
  // The wake-up is scheduled for what is left of that second on the real clock.
  const [wakeUp] = timers.delays();
  t.ok(wakeUp !== undefined && wakeUp > 0 && wakeUp <= 1000, `the retry was scheduled (${wakeUp} ms) and not waited for`);
});

t.test('on shutdown what the receiver did not confirm is logged with each event\'s id, type, user and session', async (t) => {
  const { stack, timers, observed } = await setup(t, () => ({ status: 503 }));
  const { alice, laptop } = await aliceSignsInOnTheTv(stack);
  const failed = await observed.until((o) => o.outcome === 'failed');
  const closed = stack.service.close();
  // The last-chance attempt fails too; then the shutdown window ends (the test ends it: its timer is the test's).
  await observed.until((o) => o.outcome === 'failed' && o.attempt === 2);
  timers.fireAll();
  await closed;
  const line = stack.logs.lines.find((l) => l.msg?.startsWith('eviction events not delivered at shutdown'));
  t.same(line?.events, [{ eventId: failed.id, type: 'session.evicted', userId: alice, sessionId: laptop }], 'each event with its type, user and session');
  t.match(line, { count: 1, level: 50 });
  t.match(line?.msg, /not confirmed by the receiver \(no 2xx\): it may have got some of them/);
  t.notMatch(line?.msg, /never got/, 'the receiver may have got them and answered late or refused');
  t.match(await stack.service.metrics.registry.metrics(), /session_limiter_events_total\{type="session.evicted",outcome="dropped",reason="shutdown"\} 1/);
});

t.test('on shutdown, thousands of unconfirmed events are logged 1,000 to a line: every one named, no line unbounded', async (t) => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const receiver = await startReceiver(() => ({ hold: held }));
  t.teardown(async () => {
    release();
    await receiver.close();
  });
  const timers = manualSchedule();
  const lines: { level: string; fields: Record<string, any>; msg: string }[] = [];
  const record = (level: string) => (fields: Record<string, any>, msg?: string) => lines.push({ level, fields, msg: msg ?? '' });
  const logger = { info: record('info'), warn: record('warn'), error: record('error'), debug: record('debug') } as unknown as DeliveryOptions['logger'];
  const delivery = new EventDelivery({
    url: new URL(receiver.url),
    secret: SECRET,
    types: new Set(['session.evicted']),
    retryForMs: 60_000,
    queueMax: 10_000,
    logger,
    schedule: timers.schedule,
  });
  const ids = new Set<string>();
  for (let i = 0; i < 2500; i++) {
    ids.add(delivery.enqueue({ type: 'session.evicted', timestamp: new Date().toISOString(), data: { userId: `user-${i}`, sessionId: `session-${i}` } })!);
  }
  const closed = delivery.shutdown(Date.now() + 60_000);
  // The receiver holds every answer: the shutdown window ends when the test fires its timer.
  timers.fireAll();
  await closed;
  const shutdownLines = lines.filter((line) => line.msg.startsWith('eviction events not delivered at shutdown'));
  t.same(shutdownLines.map((line) => line.fields.events.length), [1000, 1000, 500], 'three lines of at most 1,000 events');
  t.same(shutdownLines.map((line) => [line.fields.part, line.fields.parts, line.fields.count]), [[1, 3, 2500], [2, 3, 2500], [3, 3, 2500]], 'each says which part of how many');
  const logged = shutdownLines.flatMap((line) => line.fields.events as { eventId: string; userId: string; sessionId: string }[]);
  t.same(new Set(logged.map((event) => event.eventId)), ids, 'every event id is in the log');
  t.match(logged[2499], { type: 'session.evicted', userId: 'user-2499', sessionId: 'session-2499' });
});
