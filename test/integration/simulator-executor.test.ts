import { createHmac } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import { createServerTransport } from '@zitadel/client/node';
import { createSessionServiceClient } from '@zitadel/client/v2';
import t, { type Test } from 'tap';
import { LOGIN_CLIENT_PERMISSIONS, ZitadelSimulator } from '../../src/simulator/index.js';
import { startReceiver, type Received } from '../helpers/receiver.js';
import { codeOf } from '../helpers/outcomes.js';

const CREATE = '/zitadel.session.v2.SessionService/CreateSession';
const SET = '/zitadel.session.v2.SessionService/SetSession';

async function setup(t: Test, answer?: Parameters<typeof startReceiver>[0]) {
  const simulator = new ZitadelSimulator({ tokens: { login: LOGIN_CLIENT_PERMISSIONS } });
  await simulator.listen();
  const receiver = await startReceiver(answer);
  t.teardown(async () => {
    await simulator.close();
    await receiver.close();
  });
  const user = simulator.state.addUser({ loginName: 'alice@example.com', password: 'correct horse', totpCode: '123456', passkey: true });
  const client = createSessionServiceClient(createServerTransport('login', { baseUrl: simulator.url }));
  return { simulator, receiver, user, client, actions: simulator.actions, state: simulator.state };
}

t.test('Login V2 step by step: factors are verified and stamped, checks fail like ZITADEL', async (t) => {
  const { client, user, state } = await setup(t);
  const created = await client.createSession({
    checks: { user: { search: { case: 'loginName', value: 'alice@example.com' } } },
    lifetime: { seconds: 3600n },
    userAgent: { fingerprintId: 'fp-1', description: 'Firefox' },
  });
  let session = state.sessions.get(created.sessionId)!;
  t.equal(session.userId, user.id);
  t.same(session.factors, {}, 'login name only: no credential yet');
  t.ok(session.expirationDate && session.expirationDate.getTime() > Date.now() + 3_500_000, 'lifetime sets the expiry');

  t.equal(
    await codeOf(client.setSession({ sessionId: created.sessionId, sessionToken: created.sessionToken, checks: { password: { password: 'wrong' } } })),
    'InvalidArgument',
  );
  t.equal(await codeOf(client.setSession({ sessionId: created.sessionId, sessionToken: 'stale', checks: {} })), 'PermissionDenied');
  const set = await client.setSession({
    sessionId: created.sessionId,
    sessionToken: created.sessionToken,
    checks: { password: { password: 'correct horse' } },
  });
  t.not(set.sessionToken, created.sessionToken, 'a new session token');
  session = state.sessions.get(created.sessionId)!;
  t.ok(session.factors.password, 'password verifiedAt stamped');

  const got = await client.getSession({ sessionId: created.sessionId });
  t.ok(got.session?.factors?.password?.verifiedAt, 'GetSession shows verifiedAt per factor');
  t.equal(got.session?.userAgent?.fingerprintId, 'fp-1');

  // Passkey: a challenge first, then the assertion.
  t.equal(
    await codeOf(client.setSession({ sessionId: created.sessionId, checks: { webAuthN: { credentialAssertionData: { id: 'x' } } } })),
    'InvalidArgument',
    'no assertion without a challenge',
  );
  const challenged = await client.setSession({ sessionId: created.sessionId, challenges: { webAuthN: { domain: 'login.example.com' } } });
  t.ok(challenged.challenges?.webAuthN?.publicKeyCredentialRequestOptions, 'a WebAuthN challenge');
  await client.setSession({ sessionId: created.sessionId, checks: { webAuthN: { credentialAssertionData: { id: 'x' } } } });
  t.ok(state.sessions.get(created.sessionId)!.factors.webAuthN);

  const intent = state.addIdpIntent(user.id);
  const viaIdp = await client.createSession({ checks: { user: { search: { case: 'userId', value: user.id } }, idpIntent: intent } });
  t.ok(state.sessions.get(viaIdp.sessionId)!.factors.intent, 'IdP intent');
  const allAtOnce = await client.createSession({
    checks: { user: { search: { case: 'userId', value: user.id } }, password: { password: 'correct horse' }, totp: { code: '123456' } },
  });
  t.same(Object.keys(state.sessions.get(allAtOnce.sessionId)!.factors).sort(), ['password', 'totp']);
  t.equal(await codeOf(client.createSession({ checks: { user: { search: { case: 'loginName', value: 'nobody' } } } })), 'NotFound');
  t.equal(await codeOf(client.setSession({ sessionId: 'gone', checks: {} })), 'NotFound');
});

t.test('after each successful call the executor POSTs ZITADEL\'s payload, signed with the target key', async (t) => {
  const { client, receiver, actions, user } = await setup(t);
  const target = actions.createTarget({ name: 'limiter', endpoint: receiver.url, type: 'restWebhook' });
  actions.setExecution({ response: { method: CREATE } }, [target.id]);
  actions.setExecution({ response: { method: SET } }, [target.id]);

  const created = await client.createSession({
    checks: { user: { search: { case: 'userId', value: user.id } } },
    userAgent: { description: 'Firefox <Linux> & co' },
    lifetime: { seconds: 86400n },
  });
  await client.setSession({ sessionId: created.sessionId, checks: { password: { password: 'correct horse' } } });
  await t.rejects(client.setSession({ sessionId: created.sessionId, checks: { password: { password: 'wrong' } } }));
  t.equal(receiver.received.length, 2, 'a failed call runs no response execution');

  const [first, second] = receiver.received as [Received, Received];
  const payload = JSON.parse(first.body);
  t.equal(payload.fullMethod, CREATE);
  t.same(Object.keys(payload), ['fullMethod', 'instanceID', 'orgID', 'userID', 'request', 'response', 'headers'], 'Go struct field order');
  t.equal(payload.response.sessionId, created.sessionId);
  t.equal(payload.request.lifetime, '86400s', 'protobuf JSON durations');
  t.equal(payload.request.checks.user.userId, user.id);
  t.match(first.body, /Firefox \\u003cLinux\\u003e \\u0026 co/, 'Go escapes < > & in the raw body');
  t.match(payload.headers['Content-Type'][0], /application\/grpc/);
  t.equal(JSON.parse(second.body).request.checks.password.password, 'correct horse', 'the payload carries the plaintext password, as ZITADEL\'s does');

  for (const { headers, body } of receiver.received) {
    t.equal(headers['content-type'], 'application/json');
    const [, ts, hex] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(headers['zitadel-signature']))!;
    const expected = createHmac('sha256', target.signingKey).update(`${ts}.${body}`).digest('hex');
    t.equal(hex, expected, 'the signature verifies with ZITADEL\'s algorithm (independent HMAC)');
  }
});

t.test('restWebhook with interruptOnError: a non-2xx, a timeout or a forwarded error fails the call', async (t) => {
  let answer: { status?: number; body?: string; hold?: Promise<unknown> } = {};
  const { client, receiver, actions, user, state } = await setup(t, () => answer);
  const target = actions.createTarget({ name: 'strict', endpoint: receiver.url, type: 'restWebhook', interruptOnError: true, timeout: '0.2s' });
  actions.setExecution({ response: { method: CREATE } }, [target.id]);
  const login = () => client.createSession({ checks: { user: { search: { case: 'userId', value: user.id } } } });

  t.equal(await codeOf(login()), 'ok', '204: success');
  answer = { status: 500 };
  t.equal(await codeOf(login()), 'FailedPrecondition', 'non-2xx: Errors.Execution.Failed');
  answer = { status: 200, body: '{"forwardedStatusCode":403,"forwardedErrorMessage":"too many devices"}' };
  const error = await client.createSession({ checks: { user: { search: { case: 'userId', value: user.id } } } }).catch((e) => ConnectError.from(e));
  t.equal((error as ConnectError).code, Code.PermissionDenied, 'forwarded 403 becomes PermissionDenied');
  t.equal((error as ConnectError).rawMessage, 'too many devices');
  answer = { status: 200, body: '{"forwardedStatusCode":500}' };
  t.equal(await codeOf(login()), 'FailedPrecondition', 'forwarded non-4xx: FailedPrecondition');
  answer = { status: 200, body: 'not json' };
  t.equal(await codeOf(login()), 'ok', 'a 2xx body that is not JSON is a success');
  // The target does not answer until after the login call returned: only the target's timeout (0.2 s) can end it.
  let answerNow!: () => void;
  const never = new Promise<void>((resolve) => (answerNow = resolve));
  t.teardown(() => answerNow());
  answer = { hold: never };
  t.equal(await codeOf(login()), 'Unknown', 'timeout: Unknown');
  t.match(actions.deliveries.at(-1)!.failure?.rawMessage, /^no answer in time \(TimeoutError\)$/, 'in the words of src/net-failure.ts');
  answerNow();
  t.equal(state.sessions.size, 6, 'the sessions were written all the same, as in ZITADEL');
});

t.test('a target nobody listens at: the failure says why in the words the commands use (src/net-failure.ts)', async (t) => {
  const { client, receiver, actions, user } = await setup(t);
  const url = receiver.url;
  await receiver.close();
  const target = actions.createTarget({ name: 'gone', endpoint: url, type: 'restWebhook', interruptOnError: true });
  actions.setExecution({ response: { method: CREATE } }, [target.id]);
  const error = await client.createSession({ checks: { user: { search: { case: 'userId', value: user.id } } } }).catch((e) => ConnectError.from(e));
  t.equal((error as ConnectError).code, Code.Unknown, 'a connection error is a plain Go error in ZITADEL');
  t.equal((error as ConnectError).rawMessage, 'connection refused (ECONNREFUSED): nothing listens there');
});

t.test('without interruptOnError failures are only logged; restAsync does not wait', async (t) => {
  let answer: { status?: number; hold?: Promise<unknown> } = { status: 500 };
  const { client, receiver, actions, user } = await setup(t, () => answer);
  const lenient = actions.createTarget({ name: 'lenient', endpoint: receiver.url, type: 'restWebhook' });
  actions.setExecution({ response: { method: CREATE } }, [lenient.id]);
  const login = () => client.createSession({ checks: { user: { search: { case: 'userId', value: user.id } } } });
  t.equal(await codeOf(login()), 'ok');
  t.equal(actions.deliveries.at(-1)!.failure?.code, Code.FailedPrecondition, 'the failure is recorded');

  const async = actions.createTarget({ name: 'async', endpoint: receiver.url, type: 'restAsync', timeout: '5s' });
  actions.setExecution({ response: { method: CREATE } }, [async.id]);
  // The async target answers only when the test lets it: the login call must return before that.
  let answerNow!: () => void;
  answer = { hold: new Promise<void>((resolve) => (answerNow = resolve)) };
  t.teardown(() => answerNow());
  await login();
  const answered = () => actions.deliveries.filter((delivery) => delivery.async && delivery.status !== undefined).length;
  t.equal(answered(), 0, 'the call returned before the async target answered');
  answerNow();
  await actions.settled();
  t.equal(answered(), 1, 'then the async delivery completed');
  t.equal(receiver.received.length, 2);
});

t.test('restCall: a non-empty 2xx body replaces the API response', async (t) => {
  const { client, receiver, actions, user } = await setup(t, () => ({ status: 200, body: '{"sessionId":"replaced","sessionToken":"x"}' }));
  const target = actions.createTarget({ name: 'call', endpoint: receiver.url, type: 'restCall' });
  actions.setExecution({ response: { method: CREATE } }, [target.id]);
  const response = await client.createSession({ checks: { user: { search: { case: 'userId', value: user.id } } } });
  t.equal(response.sessionId, 'replaced');
});
