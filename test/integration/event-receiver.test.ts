import { randomBytes } from 'node:crypto';
import t from 'tap';
import { EventDelivery } from '../../src/events/delivery.js';
import { EventReceiver } from '../../src/simulator/index.js';

/**
 * The simulator's event receiver (what the demo prints "laptop notified: ..." from): it believes only what the
 * standardwebhooks verifier accepts, and keeps one event per webhook-id however often it is retried.
 */

const secret = () => `whsec_${randomBytes(32).toString('base64')}`;
const silent = { info() {}, warn() {}, error() {}, debug() {} };

t.test('events signed with its secret by the service\'s delivery are kept once each; a wrong secret is refused', async (t) => {
  const key = secret();
  const receiver = new EventReceiver(key);
  const url = await receiver.listen();
  t.teardown(() => receiver.close());
  const outcomes: string[] = [];
  const delivery = new EventDelivery({ url: new URL(url), secret: key, types: new Set(), retryForMs: 60_000, queueMax: 10, logger: silent, observe: (o) => outcomes.push(o.outcome) });
  const id = delivery.enqueue({ type: 'session.evicted', timestamp: new Date().toISOString(), data: { userId: 'u', sessionId: 's' } });
  const [event] = await receiver.waitFor(1, 10_000);
  t.match(event, { id, type: 'session.evicted', data: { userId: 'u', sessionId: 's' } });

  // The same event again (a retry whose first 2xx was lost): the same webhook-id, kept once.
  const body = JSON.stringify({ type: 'session.evicted', timestamp: new Date().toISOString(), data: {} });
  const { Webhook } = await import('standardwebhooks');
  const signed = (with_: string, eventId: string) => {
    const at = new Date();
    return { 'content-type': 'application/json', 'webhook-id': eventId, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': new Webhook(with_).sign(eventId, at, body) };
  };
  t.equal((await fetch(url, { method: 'POST', headers: signed(key, id!), body })).status, 204, 'a retry is answered 204');
  t.equal(receiver.events.length, 1, 'and kept once');
  t.equal((await fetch(url, { method: 'POST', headers: signed(secret(), 'evt_other'), body })).status, 401, 'another secret: 401');
  t.equal((await fetch(url, { method: 'POST', body })).status, 401, 'unsigned: 401');
  t.equal(receiver.refused, 2);
  t.equal(receiver.events.length, 1);
  await t.rejects(receiver.waitFor(2, 1), /got 1 of 2 events within 1 ms \(2 refused\): check EVENTS_URL and EVENTS_SECRET/);
  await delivery.shutdown(Date.now());
});
