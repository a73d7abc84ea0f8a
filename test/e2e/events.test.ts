import { randomBytes } from 'node:crypto';
import t from 'tap';
import { Webhook } from 'standardwebhooks';
import { signPayload } from '../../src/signature/sign.js';
import { DEFAULT_SIMULATOR_TOKEN, ZitadelSimulator } from '../../src/simulator/index.js';
import { fixtureFor } from '../helpers/payloads.js';
import { runCli, startProcess } from '../helpers/processes.js';
import { startReceiver, type Received } from '../helpers/receiver.js';
import { minutesAgo, SIGNING_KEY } from '../helpers/stack.js';
import { serviceEnv } from '../helpers/service-env.js';

/** Eviction events from processes started as users start them (the built CLI and dist/main.js). */

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;

/** A receiver that answers 204 to what verifies with `secret` and 401 to the rest, as an application would. */
async function verifyingReceiver(secret: string, hold?: Promise<unknown>) {
  const webhook = new Webhook(secret);
  let arrived!: (received: Received) => void;
  const first = new Promise<Received>((resolve) => (arrived = resolve));
  const receiver = await startReceiver((received) => {
    arrived(received);
    try {
      webhook.verify(received.body, received.headers as Record<string, string>);
    } catch {
      return { status: 401 };
    }
    return { status: 204, hold };
  });
  return { ...receiver, first };
}

t.test('doctor sends a signed test event to EVENTS_URL: PASS on 2xx, FAIL naming the secret on 401', async (t) => {
  const simulator = new ZitadelSimulator();
  await simulator.listen();
  t.teardown(() => simulator.close());
  const receiver = await verifyingReceiver(SECRET);
  t.teardown(() => receiver.close());
  const env = { ZITADEL_URL: simulator.url, ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN, EVENTS_URL: receiver.url, EVENTS_SECRET: SECRET };

  const ok = await runCli(['doctor'], env);
  t.match(ok.stdout, /^PASS {2}events receiver: http:\/\/127\.0\.0\.1:\d+\/hook accepted a signed test event \(204, webhook-id evt_[0-9a-f-]+\)$/m, ok.stderr);
  const body = JSON.parse(receiver.received[0]!.body) as { type: string };
  t.equal(body.type, 'test');

  const wrong = await runCli(['doctor'], { ...env, EVENTS_SECRET: `whsec_${randomBytes(32).toString('base64')}` });
  t.equal(wrong.code, 1);
  t.match(wrong.stdout, /^FAIL {2}events receiver: .* answered 401 to a signed test event .*: check that the receiver verifies with the same EVENTS_SECRET$/m);
  t.notOk(wrong.stdout.includes(SECRET.slice(6)) || ok.stdout.includes(SECRET.slice(6)), 'the secret is never printed');
});

t.test('SIGTERM with an event the receiver has not answered: the shutdown window passes, the event id is logged, exit 0', async (t) => {
  const simulator = new ZitadelSimulator();
  await simulator.listen();
  t.teardown(() => simulator.close());
  const { state } = simulator;
  state.seedSession({ userId: 'u', creationDate: minutesAgo(30), factors: { password: minutesAgo(30) }, description: 'laptop' });
  const fresh = state.seedSession({ userId: 'u', factors: { password: new Date() }, description: 'tv' }).id;
  // The receiver holds its answer for ever: the event stays pending.
  const receiver = await verifyingReceiver(SECRET, new Promise(() => {}));
  t.teardown(() => receiver.close());

  const service = startProcess(process.execPath, ['dist/main.js'], serviceEnv(simulator.url, {
    SESSION_LIMIT: '1',
    SHUTDOWN_TIMEOUT_MS: '1500',
    EVENTS_URL: receiver.url,
    EVENTS_SECRET: SECRET,
  }));
  t.teardown(() => void service.child.kill('SIGKILL'));
  const url = await new Promise<string>((resolve, reject) => {
    service.child.stdout!.on('data', () => {
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(service.stdout());
      if (match) resolve(match[1]!);
    });
    service.child.once('exit', () => reject(new Error(`the service exited: ${service.stderr()}`)));
  });
  const body = fixtureFor('02-password.set-session', fresh);
  const response = await fetch(`${url}/webhooks/zitadel`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'zitadel-signature': signPayload(body, SIGNING_KEY) },
    body,
  });
  t.equal(response.status, 204, 'the webhook answered');
  const event = await receiver.first;
  service.child.kill('SIGTERM');
  const code = await service.exited;
  const lines = service.stdout().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, any>);
  const left = lines.find((line) => String(line.msg).startsWith('eviction events not delivered at shutdown'));
  t.equal(code, 0, 'exited 0', { stderr: service.stderr() });
  t.same(left?.events?.map((e: { eventId: string }) => e.eventId), [event.headers['webhook-id']], 'the undelivered event is logged with its id');
});
