import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { fixtureFor } from '../helpers/payloads.js';
import { minutesAgo, startStack } from '../helpers/stack.js';

/**
 * The README's receiver example (section "Eviction events for applications"), run as written against the events a
 * real service sends: an evicted laptop's app session is ended by its `sid`, a retry is recognised, a forgery is
 * answered 401. Only the import of `standardwebhooks` is pointed at this clone's copy.
 */

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const section = readme.slice(readme.indexOf('## Eviction events for applications'), readme.indexOf('## Deploy'));
const example = /```js\n([\s\S]*?)```/.exec(section)?.[1];

type Handler = (rawBody: string, headers: http.IncomingHttpHeaders, db: unknown) => Promise<number>;

async function loadExample(secret: string): Promise<Handler> {
  const dir = mkdtempSync(path.join(tmpdir(), 'readme-receiver-'));
  const file = path.join(dir, 'receiver.mjs');
  writeFileSync(file, example!.replace("from 'standardwebhooks'", `from '${import.meta.resolve('standardwebhooks')}'`));
  const previous = process.env.EVENTS_SECRET;
  process.env.EVENTS_SECRET = secret;
  try {
    return ((await import(pathToFileURL(file).href)) as { onSessionEvent: Handler }).onSessionEvent;
  } finally {
    if (previous === undefined) delete process.env.EVENTS_SECRET;
    else process.env.EVENTS_SECRET = previous;
    rmSync(dir, { recursive: true });
  }
}

/** The app's store, as the example uses it. */
function appStore(sessions: Record<string, { sid: string; refreshToken: string | null; endReason?: string }>) {
  const seen = new Set<string>();
  let handled = 0;
  return {
    sessions,
    handled: () => handled,
    db: {
      eventSeen: async (id: string) => seen.has(id),
      rememberEvent: async (id: string) => void seen.add(id),
      endSessionBySid: async (sid: string, how: { reason: string; dropRefreshToken: boolean }) => {
        handled += 1;
        for (const session of Object.values(sessions)) {
          if (session.sid !== sid) continue;
          session.endReason = how.reason;
          if (how.dropRefreshToken) session.refreshToken = null;
        }
      },
    },
  };
}

t.test("the README's receiver ends the evicted device's app session on the service's real event", async (t) => {
  t.ok(example?.includes('onSessionEvent'), 'the README has the example');
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  const onSessionEvent = await loadExample(secret);

  const answers: number[] = [];
  const deliveries: { body: string; headers: http.IncomingHttpHeaders }[] = [];
  const store = appStore({});
  let handled!: () => void;
  const done = new Promise<void>((resolve) => (handled = resolve));
  // eslint-disable-next-line @typescript-eslint/no-misused-promises -- a test endpoint: a throw fails the test
  const server = http.createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    deliveries.push({ body, headers: request.headers });
    const status = await onSessionEvent(body, request.headers, store.db);
    answers.push(status);
    response.writeHead(status).end();
    handled();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const stack = await startStack({
    limit: 2,
    env: () => ({ EVENTS_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/zitadel-events`, EVENTS_SECRET: secret }),
  });
  t.teardown(() => stack.close());
  const { state } = stack.simulator;
  const laptop = state.seedSession({ userId: 'alice', creationDate: minutesAgo(30), factors: { password: minutesAgo(30) }, description: 'laptop' }).id;
  const phone = state.seedSession({ userId: 'alice', creationDate: minutesAgo(20), factors: { password: minutesAgo(20) }, description: 'phone' }).id;
  const tv = state.seedSession({ userId: 'alice', factors: { password: new Date() }, description: 'tv' }).id;
  Object.assign(store.sessions, {
    laptop: { sid: laptop, refreshToken: 'rt-laptop' },
    phone: { sid: phone, refreshToken: 'rt-phone' },
    tv: { sid: tv, refreshToken: 'rt-tv' },
  });

  t.equal((await stack.send(fixtureFor('03-password.create-session', tv))).statusCode, 204, 'the tv signs in; the laptop is evicted');
  await done;
  t.same(answers, [204], 'the real event verifies and is handled');
  t.match(store.sessions.laptop!, { endReason: 'signed_in_elsewhere', refreshToken: null }, "the laptop's app session ends, its refresh token dropped");
  t.same([store.sessions.phone!.endReason, store.sessions.tv!.refreshToken], [undefined, 'rt-tv'], 'the other devices stay');

  // A retry (same webhook-id, as the service retries) is recognised; a forged body is refused.
  const [delivery] = deliveries;
  t.equal(await onSessionEvent(delivery!.body, delivery!.headers, store.db), 204);
  t.equal(store.handled(), 1, 'the retry did nothing twice');
  const forged = delivery!.body.replace(laptop, phone);
  t.equal(await onSessionEvent(forged, delivery!.headers, store.db), 401, 'a body changed in transit is refused');
  t.equal(store.sessions.phone!.endReason, undefined);
});
