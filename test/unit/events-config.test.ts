import { randomBytes } from 'node:crypto';
import t from 'tap';
import { loadConfig } from '../../src/config.js';
import { problemsOf } from '../helpers/outcomes.js';

/** EVENTS_*: validated at start like every variable, one line naming the variable, never the secret. */
const base = {
  ZITADEL_URL: 'https://example.zitadel.cloud',
  ZITADEL_TOKEN: 'token-value',
  ZITADEL_SIGNING_KEYS: 'Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7C',
};
const SECRET = `whsec_${randomBytes(32).toString('base64')}`;

t.test('unset: no events', async (t) => {
  t.equal(loadConfig(base).config.events, undefined);
  t.equal(loadConfig({ ...base, EVENTS_URL: ' ', EVENTS_SECRET: '' }).config.events, undefined, 'blank is unset');
});

t.test('set: every type by default, 24 h of retries, a bounded queue', async (t) => {
  const { events } = loadConfig({ ...base, EVENTS_URL: 'https://app.example.com/zitadel-events', EVENTS_SECRET: SECRET }).config;
  t.equal(events?.url.href, 'https://app.example.com/zitadel-events');
  t.equal(events?.secret, SECRET);
  t.same([...events!.types], ['session.evicted', 'session.denied', 'session.pruned']);
  t.equal(events?.retryForMs, 24 * 3600 * 1000);
  t.equal(events?.queueMax, 10_000);
  const custom = loadConfig({
    ...base,
    EVENTS_URL: 'http://127.0.0.1:9000/hook',
    EVENTS_SECRET: SECRET,
    EVENTS_TYPES: 'session.evicted, session.pruned',
    EVENTS_RETRY_FOR: '30m',
    EVENTS_QUEUE_MAX: '50',
  }).config.events;
  t.same([...custom!.types], ['session.evicted', 'session.pruned']);
  t.equal(custom?.retryForMs, 30 * 60 * 1000);
  t.equal(custom?.queueMax, 50);
});

t.test('bad values: one line each, naming the variable, never the secret', async (t) => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ EVENTS_URL: 'http://app.example.com/hook', EVENTS_SECRET: SECRET }, /^EVENTS_URL must be an https:\/\/ URL/],
    [{ EVENTS_URL: 'https://user:pw@app.example.com/hook', EVENTS_SECRET: SECRET }, /^EVENTS_URL must be/],
    [{ EVENTS_URL: 'not a url', EVENTS_SECRET: SECRET }, /^EVENTS_URL must be/],
    [{ EVENTS_URL: 'https://app.example.com', EVENTS_SECRET: 'supersecretvalue' }, /^EVENTS_SECRET must be a Standard Webhooks secret: whsec_/],
    [{ EVENTS_URL: 'https://app.example.com', EVENTS_SECRET: 'whsec_c2hvcnQ=' }, /^EVENTS_SECRET must be/],
    [{ EVENTS_URL: 'https://app.example.com' }, /^EVENTS_SECRET is required with EVENTS_URL/],
    [{ EVENTS_SECRET: SECRET }, /^EVENTS_URL is required with EVENTS_SECRET/],
    [{ EVENTS_URL: 'https://app.example.com', EVENTS_SECRET: SECRET, EVENTS_TYPES: 'session.evicted,session.deleted' }, /^EVENTS_TYPES must be a comma-separated list of session.evicted, session.denied, session.pruned$/],
    [{ EVENTS_URL: 'https://app.example.com', EVENTS_SECRET: SECRET, EVENTS_RETRY_FOR: '24' }, /^EVENTS_RETRY_FOR must be a duration/],
    [{ EVENTS_URL: 'https://app.example.com', EVENTS_SECRET: SECRET, EVENTS_RETRY_FOR: '30d' }, /^EVENTS_RETRY_FOR must be a duration/],
    [{ EVENTS_URL: 'https://app.example.com', EVENTS_SECRET: SECRET, EVENTS_QUEUE_MAX: '0' }, /^EVENTS_QUEUE_MAX must be a whole number/],
  ];
  for (const [env, expected] of cases) {
    const problems = problemsOf({ ...base, ...env });
    t.equal(problems.length, 1, `${JSON.stringify(env)}: one problem`);
    t.match(problems[0], expected);
    t.notMatch(problems.join('\n'), /supersecretvalue|c2hvcnQ|user:pw/, 'no value is echoed');
    if (env.EVENTS_SECRET) t.notOk(problems.join('\n').includes(env.EVENTS_SECRET.slice(6, 20)), 'the secret is not echoed');
  }
});

t.test('commands without webhooks read the same variables (doctor sends a test event)', async (t) => {
  const { events } = loadConfig({ ...base, ZITADEL_SIGNING_KEYS: '', EVENTS_URL: 'https://app.example.com', EVENTS_SECRET: SECRET }, { servesWebhooks: false }).config;
  t.equal(events?.url.origin, 'https://app.example.com');
});
