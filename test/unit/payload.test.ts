import t from 'tap';
import { toServiceError } from '../../src/error-map.js';
import { interpretPayload, PayloadError } from '../../src/payload.js';
import { fixtureNames, loadFixture } from '../helpers/payloads.js';

const expected: Record<string, 'enforce' | 'skip' | 'ignore'> = {
  '01-login-name.create-session.json': 'skip',
  '02-password.set-session.json': 'enforce',
  '03-password.create-session.json': 'enforce',
  '04-passkey-challenge.set-session.json': 'skip',
  '05-passkey.set-session.json': 'enforce',
  '06-idp-intent.create-session.json': 'enforce',
  '07-totp.set-session.json': 'enforce',
  '08-all-checks.create-session.json': 'enforce',
  '09-other-method.get-user.json': 'ignore',
};

t.test('every Login V2 step is read right', async (t) => {
  t.same(fixtureNames(), Object.keys(expected).sort(), 'every fixture has an expectation');
  for (const name of fixtureNames()) {
    const action = interpretPayload(loadFixture(name));
    t.equal(action.kind, expected[name], name);
    if (action.kind !== 'ignore') t.equal(action.sessionId, '300000000000000100', `${name}: session id`);
  }
});

t.test('the action holds no secret from the payload', async (t) => {
  for (const name of fixtureNames()) {
    const text = JSON.stringify(interpretPayload(loadFixture(name)));
    t.notMatch(text, /placeholder/, name);
  }
});

t.test('each credential check triggers enforcement; user and challenges alone do not', async (t) => {
  const setSession = (checks: Record<string, unknown>) => ({
    fullMethod: '/zitadel.session.v2.SessionService/SetSession',
    request: { sessionId: '1', checks },
    response: {},
  });
  for (const check of ['password', 'webAuthN', 'idpIntent', 'totp', 'otpSms', 'otpEmail']) {
    t.equal(interpretPayload(setSession({ [check]: {} })).kind, 'enforce', check);
  }
  t.equal(interpretPayload(setSession({ user: { userId: '1' } })).kind, 'skip', 'user only');
  t.equal(interpretPayload(setSession({})).kind, 'skip', 'empty checks');
  t.equal(interpretPayload(setSession({ password: null })).kind, 'skip', 'a null check is no check');
  t.equal(
    interpretPayload({ fullMethod: '/zitadel.session.v2.SessionService/SetSession', request: { sessionId: '1' }, response: {} }).kind,
    'skip',
    'no checks at all',
  );
});

t.test('what the service does not understand is a clear 400, naming the field, never its value', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['not an object', 'text', /body/],
    ['array', [], /body/],
    ['no fullMethod', { request: {} }, /fullMethod/],
    ['fullMethod not a string', { fullMethod: 42 }, /fullMethod/],
    ['CreateSession without response.sessionId', { ...loadFixture('03-password.create-session'), response: {} }, /response\.sessionId/],
    [
      'SetSession without request.sessionId',
      { fullMethod: '/zitadel.session.v2.SessionService/SetSession', request: { checks: { password: { password: 'hunter2' } } }, response: {} },
      /request\.sessionId/,
    ],
    [
      'a request execution (no response): the checks are not verified yet',
      { fullMethod: '/zitadel.session.v2.SessionService/SetSession', request: { sessionId: '1', checks: { password: { password: 'hunter2' } } } },
      /bind it to the response/,
    ],
    ['checks not an object', { fullMethod: '/zitadel.session.v2.SessionService/SetSession', request: { sessionId: '1', checks: 'hunter2' }, response: {} }, /request\.checks/],
    ['sessionId not a string', { fullMethod: '/zitadel.session.v2.SessionService/SetSession', request: { sessionId: 7 }, response: {} }, /request\.sessionId/],
  ];
  for (const [name, payload, where] of cases) {
    const error = t.throws(() => interpretPayload(payload), name) as unknown;
    t.ok(error instanceof PayloadError && toServiceError(error).code === 'ERR_PAYLOAD_INVALID', `${name}: ERR_PAYLOAD_INVALID`);
    t.match((error as Error).message, where, `${name}: names the field`);
    t.notMatch((error as Error).message, /hunter2|placeholder/, `${name}: no value echoed`);
  }
});

t.test('other methods are ignored, whatever they carry', async (t) => {
  t.same(interpretPayload({ fullMethod: '/zitadel.user.v2.UserService/AddHumanUser', request: { password: 'x' } }), {
    kind: 'ignore',
    method: '/zitadel.user.v2.UserService/AddHumanUser',
  });
});
