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

  const logs = stack.logs.text;
  t.ok(logs.length > 0 && stack.logs.lines.some((line) => line.event === 'session.evicted'), 'the logs were captured');
  for (const [name, secret] of Object.entries({
    PASSWORD,
    SESSION_TOKEN,
    NEW_SESSION_TOKEN,
    ACCESS_TOKEN,
    SIGNING_KEY,
    signatureHmac: signature.split('v1=')[1]!,
    rawBody: body.slice(0, 40),
  })) {
    t.notOk(logs.includes(secret), `${name} is not in the logs`);
  }
});
