import { Code } from '@connectrpc/connect';
import t from 'tap';
import { signPayload } from '../../src/signature/sign.js';
import { fixtureFor } from '../helpers/payloads.js';
import { minutesAgo, SIGNING_KEY, startStack } from '../helpers/stack.js';

// Known, unmistakable secrets: if any of them reaches a log line, this test fails.
const PASSWORD = 'Pa55-SECRET-password-9f2c';
const SESSION_TOKEN = 'SECRET-session-token-77ab';
const NEW_SESSION_TOKEN = 'SECRET-new-session-token-31cd';
const ACCESS_TOKEN = 'SECRET-access-token-5e5e';

t.test('a full request at trace level writes no password, token, key, signature or raw body', async (t) => {
  const stack = await startStack({ limit: 1, logLevel: 'trace', token: ACCESS_TOKEN, simulator: { tokens: { [ACCESS_TOKEN]: ['session.read', 'session.delete'] } } });
  t.teardown(() => stack.close());
  const { state } = stack.simulator;
  state.seedSession({ userId: 'u', creationDate: minutesAgo(10), factors: { password: minutesAgo(10) } });
  const fresh = state.seedSession({ userId: 'u', factors: { password: new Date() } }).id;

  const body = fixtureFor('02-password.set-session', fresh, (payload) => {
    payload.request.sessionToken = SESSION_TOKEN;
    payload.request.checks.password.password = PASSWORD;
    payload.response.sessionToken = NEW_SESSION_TOKEN;
  });
  const signature = signPayload(body, SIGNING_KEY);
  const post = (headers: Record<string, string>, payload = body) =>
    stack.app.inject({ method: 'POST', url: '/webhooks/zitadel', headers: { 'content-type': 'application/json', ...headers }, payload });

  t.equal((await post({ 'zitadel-signature': signature })).statusCode, 204, 'enforced');
  const tampered = signature.replace(/v1=(.)/, (_match, first: string) => `v1=${first === '0' ? '1' : '0'}`);
  t.equal((await post({ 'zitadel-signature': tampered })).statusCode, 401, 'rejected');
  t.equal((await post({ 'zitadel-signature': signPayload(body.slice(0, -1), SIGNING_KEY) }, body.slice(0, -1))).statusCode, 400, 'not JSON');
  state.injectFault('*', { code: Code.PermissionDenied, times: 1, message: 'denied' });
  t.equal((await post({ 'zitadel-signature': signature })).statusCode, 502, 'ZITADEL refused');

  t.ok(stack.logs.lines.some((line) => line.event === 'session.evicted'), 'the logs were captured');
  const values = everyLoggedValue(stack.logs.lines);
  t.ok(values.length > 50, 'every value of every line is looked at');
  for (const [name, secret] of Object.entries({
    PASSWORD,
    SESSION_TOKEN,
    NEW_SESSION_TOKEN,
    ACCESS_TOKEN,
    SIGNING_KEY,
    signatureHmac: signature.split('v1=')[1]!,
    rawBody: body.slice(0, 40),
  })) {
    const forms = [secret, Buffer.from(secret).toString('hex'), Buffer.from(secret).toString('base64')];
    t.notOk(values.some((value) => forms.some((form) => value.includes(form))), `${name} is not in the logs, in any form`);
  }
});

t.test('the check itself finds secrets however they are logged', async (t) => {
  const lines = [{ nested: { raw: { type: 'Buffer', data: [...Buffer.from(`x${PASSWORD}x`)] } } }, { body: JSON.stringify({ p: PASSWORD }) }];
  const values = everyLoggedValue(lines);
  t.ok(values.some((value) => value.includes(PASSWORD)), 'a Buffer, decoded');
  t.equal(values.filter((value) => value.includes(PASSWORD)).length, 2, 'and a JSON string');
});

/** Every string in the log lines, recursively, with Buffers (as pino writes them) decoded to text. */
function everyLoggedValue(lines: unknown[]): string[] {
  const out: string[] = [];
  const walk = (value: unknown): void => {
    if (typeof value === 'string') out.push(value);
    else if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') {
      const record = value as Record<string, unknown>;
      if (record.type === 'Buffer' && Array.isArray(record.data)) out.push(Buffer.from(record.data as number[]).toString('utf8'));
      for (const [key, inner] of Object.entries(record)) {
        out.push(key);
        walk(inner);
      }
    } else if (value !== undefined && value !== null) out.push(String(value));
  };
  lines.forEach(walk);
  return out;
}
