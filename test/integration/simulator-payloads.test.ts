import { createHash, createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Code, ConnectError } from '@connectrpc/connect';
import { createServerTransport } from '@zitadel/client/node';
import { createSessionServiceClient } from '@zitadel/client/v2';
import { compactDecrypt, compactVerify, createLocalJWKSet, decodeProtectedHeader, type JSONWebKeySet } from 'jose';
import t, { type Test } from 'tap';
import { ALL_PERMISSIONS, LOGIN_CLIENT_PERMISSIONS, WEB_KEYS_PATH, ZitadelSimulator, type SimulatorOptions } from '../../src/simulator/index.js';
import { ActionApi } from '../../src/zitadel/action-api.js';
import { startReceiver } from '../helpers/receiver.js';
import { codeOf } from '../helpers/outcomes.js';
import { restCaller } from '../helpers/simulator-rest.js';

/**
 * Payload types in the simulator (ZITADEL v4.8+, docs/zitadel-behaviour.md#payload-types-json-jwt-jwe): targets'
 * payloadType and public keys in the v2 Action API, the instance's web keys at /oauth/v2/keys, and the executor's
 * JWT and JWE bodies, checked here with jose against the served JWKS and the target's private key, and against the
 * header fields of the conformance vectors made with go-jose (test/fixtures/payload-type-headers.json).
 */

const CREATE = '/zitadel.session.v2.SessionService/CreateSession';
const vectors = JSON.parse(readFileSync(new URL('../fixtures/payload-type-headers.json', import.meta.url), 'utf8')) as {
  headers: Record<string, Record<string, unknown>>;
  jwksKeyFields: Record<string, string[]>;
};

async function setup(t: Test, options: SimulatorOptions = {}) {
  const simulator = new ZitadelSimulator({
    tokens: { owner: ALL_PERMISSIONS, reader: ['action.target.read'], login: LOGIN_CLIENT_PERMISSIONS },
    ...options,
  });
  await simulator.listen();
  const receiver = await startReceiver();
  t.teardown(async () => {
    await simulator.close();
    await receiver.close();
  });
  const call = restCaller(simulator.url);
  const user = simulator.state.addUser({ loginName: 'alice@example.com', password: 'correct horse' });
  const client = createSessionServiceClient(createServerTransport('login', { baseUrl: simulator.url }));
  const login = () => client.createSession({ checks: { user: { search: { case: 'userId', value: user.id } }, password: { password: 'correct horse' } } });
  const jwks = async () => (await (await fetch(`${simulator.url}/oauth/v2/keys`)).json()) as JSONWebKeySet;
  return { simulator, receiver, call, login, jwks, actions: simulator.actions };
}

const pem = (key: KeyObject) => key.export({ type: 'spki', format: 'pem' }).toString();
const b64 = (text: string) => Buffer.from(text).toString('base64');
const fingerprintOf = (key: KeyObject) => `SHA256:${createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('base64').replace(/=+$/, '')}`;
const rsaPair = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
const ecPair = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const sortedKeys = (object: Record<string, unknown>) => Object.keys(object).sort();
t.test('targets carry payloadType: on create, get, search and update (unspecified on update = unchanged)', async (t) => {
  const { call } = await setup(t);
  const target = { endpoint: 'https://limiter.example.com/hook', timeout: '10s', restWebhook: { interruptOnError: true } };
  const plain = await call('POST', '/v2/actions/targets', { name: 'plain', ...target });
  t.notOk('payloadType' in (await call('GET', `/v2/actions/targets/${plain.json.id}`)).json.target, 'unspecified: omitted, as protobuf JSON omits a zero enum');

  const jwe = await call('POST', '/v2/actions/targets', { name: 'jwe', ...target, payloadType: 'PAYLOAD_TYPE_JWE' });
  t.equal(jwe.status, 200);
  t.equal((await call('GET', `/v2/actions/targets/${jwe.json.id}`)).json.target.payloadType, 'PAYLOAD_TYPE_JWE');
  const search = await call('POST', '/v2/actions/targets/search', { filters: [{ targetNameFilter: { targetName: 'jwe' } }] });
  t.equal(search.json.targets[0].payloadType, 'PAYLOAD_TYPE_JWE', 'in search answers too');

  t.equal((await call('POST', `/v2/actions/targets/${jwe.json.id}`, { payloadType: 'PAYLOAD_TYPE_UNSPECIFIED', timeout: '5s' })).status, 200);
  t.equal((await call('GET', `/v2/actions/targets/${jwe.json.id}`)).json.target.payloadType, 'PAYLOAD_TYPE_JWE', 'unspecified on update: unchanged');
  await call('POST', `/v2/actions/targets/${jwe.json.id}`, { payloadType: 2 });
  t.equal((await call('GET', `/v2/actions/targets/${jwe.json.id}`)).json.target.payloadType, 'PAYLOAD_TYPE_JWT', 'an enum by number, as protobuf JSON allows');
  const bad = await call('POST', '/v2/actions/targets', { name: 'bad', ...target, payloadType: 'PAYLOAD_TYPE_XML' });
  t.equal(bad.status, 400, 'an unknown enum value is refused');
});

t.test('a ZITADEL older than v4.8: payloadType absent from answers and ignored on input; no public-key routes; JSON bodies', async (t) => {
  const { call, actions, receiver, login } = await setup(t, { payloadTypes: false });
  const created = await call('POST', '/v2/actions/targets', { name: 'old', endpoint: receiver.url, timeout: '10s', restWebhook: {}, payloadType: 'PAYLOAD_TYPE_JWE' });
  t.equal(created.status, 200, 'the gateway discards the unknown field (DiscardUnknown), it does not refuse it');
  t.notOk('payloadType' in (await call('GET', `/v2/actions/targets/${created.json.id}`)).json.target);
  await call('POST', `/v2/actions/targets/${created.json.id}`, { payloadType: 'PAYLOAD_TYPE_JWT' });
  t.notOk('payloadType' in (await call('POST', '/v2/actions/targets/search', {})).json.targets[0], 'ignored on update too');
  t.equal((await call('POST', `/v2/actions/targets/${created.json.id}/publickeys`, { publicKey: b64(pem(rsaPair().publicKey)) })).status, 404, 'no AddPublicKey');
  t.equal((await call('POST', `/v2/actions/targets/${created.json.id}/publickeys/search`, {})).status, 404, 'no ListPublicKeys');

  actions.setExecution({ response: { method: CREATE } }, [created.json.id as string]);
  await login();
  t.equal(JSON.parse(receiver.received[0]!.body).fullMethod, CREATE, 'the body is the JSON payload');
});

t.test('public keys: add (RSA, EC), list, one active at a time, the active one cannot be removed, rules as ZITADEL', async (t) => {
  let now = new Date('2026-01-01T00:00:00Z');
  const { call } = await setup(t, { now: () => now });
  const id = (await call('POST', '/v2/actions/targets', { name: 'jwe', endpoint: 'https://x.example', timeout: '10s', restWebhook: {}, payloadType: 'PAYLOAD_TYPE_JWE' })).json.id as string;
  const keys = `/v2/actions/targets/${id}/publickeys`;
  const rsa = rsaPair().publicKey;
  const ec = ecPair().publicKey;

  const addedRsa = await call('POST', keys, { publicKey: b64(pem(rsa)) });
  t.equal(addedRsa.status, 200);
  t.same(sortedKeys(addedRsa.json), ['creationDate', 'keyId']);
  const addedEc = await call('POST', keys, { publicKey: b64(pem(ec)), expirationDate: '2026-06-01T00:00:00Z' });
  t.equal(addedEc.status, 200);
  const rsaId = addedRsa.json.keyId as string;
  const ecId = addedEc.json.keyId as string;

  let listed = (await call('POST', `${keys}/search`, {}, 'reader')).json.publicKeys as Record<string, unknown>[];
  t.same(listed.map((key) => key.keyId), [rsaId, ecId]);
  t.same(listed[0], { keyId: rsaId, publicKey: b64(pem(rsa)), fingerprint: fingerprintOf(rsa), creationDate: now.toISOString(), changeDate: now.toISOString() }, 'added inactive (active omitted when false)');
  t.equal(listed[1]!.fingerprint, fingerprintOf(ec), 'SHA256:<unpadded base64 of SHA-256 over the DER>');
  t.equal(listed[1]!.expirationDate, '2026-06-01T00:00:00.000Z');

  t.equal((await call('PUT', `${keys}/${rsaId}/activate`)).status, 405, 'activate is a POST in action_service.proto');
  t.equal((await call('POST', `${keys}/${rsaId}/activate`)).status, 200);
  t.equal((await call('POST', `${keys}/${ecId}/activate`)).status, 200);
  listed = (await call('POST', `${keys}/search`, {})).json.publicKeys;
  t.same(listed.map((key) => key.active === true), [false, true], 'activating one deactivates the other');
  t.equal((await call('POST', `${keys}/${ecId}/activate`)).status, 200, 'activating the active key changes nothing');

  const removeActive = await call('DELETE', `${keys}/${ecId}`);
  t.equal(removeActive.status, 400, 'the active key cannot be removed');
  t.match(removeActive.json.message, /PublicKeyActive/);
  t.equal((await call('POST', `${keys}/${ecId}/deactivate`)).status, 200);
  t.notOk((await call('POST', `${keys}/search`, {})).json.publicKeys.some((key: Record<string, unknown>) => key.active), 'no active key left');
  const removed = await call('DELETE', `${keys}/${ecId}`);
  t.equal(removed.status, 200);
  t.ok(removed.json.deletionDate);
  t.same((await call('DELETE', `${keys}/${ecId}`)).json, {}, 'removing again succeeds with nothing to do (idempotent)');

  const expiring = (await call('POST', keys, { publicKey: b64(pem(ecPair().publicKey)), expirationDate: '2026-01-02T00:00:00Z' })).json.keyId as string;
  t.equal((await call('POST', `${keys}/${expiring}/activate`)).status, 200);
  now = new Date('2026-01-03T00:00:00Z');
  t.notOk((await call('POST', `${keys}/search`, {})).json.publicKeys.find((key: Record<string, unknown>) => key.keyId === expiring).active, 'an expired key is deactivated on its own');
  const activateExpired = await call('POST', `${keys}/${expiring}/activate`);
  t.equal(activateExpired.status, 400, 'an expired key cannot be activated');

  const refusals: [string, unknown][] = [
    ['an Ed25519 key (only RSA and EC)', { publicKey: b64(pem(generateKeyPairSync('ed25519').publicKey)) }],
    ['a private key', { publicKey: b64(rsaPair().privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()) }],
    ['not PEM', { publicKey: b64('hello') }],
    ['an expiration in the past', { publicKey: b64(pem(rsa)), expirationDate: '2025-01-01T00:00:00Z' }],
  ];
  for (const [what, body] of refusals) {
    const answer = await call('POST', keys, body);
    t.equal(answer.status, 400, what);
  }
  t.match((await call('POST', keys, refusals[0]![1])).json.message, /Errors\.Target\.InvalidPublicKey/);
  t.equal((await call('POST', `/v2/actions/targets/nope/publickeys`, { publicKey: b64(pem(rsa)) })).status, 400, 'unknown target: PreconditionFailed');
  t.equal((await call('POST', `${keys}/unknown/activate`)).status, 404, 'unknown key');
  t.equal((await call('POST', keys, { publicKey: b64(pem(rsa)) }, 'reader')).status, 403, 'action.target.write needed');
});

t.test('/oauth/v2/keys serves the instance web keys as ZITADEL does; RS256 by default, ES256 on request', async (t) => {
  const rsa = await setup(t);
  const response = await fetch(`${rsa.simulator.url}/oauth/v2/keys`);
  t.equal(response.headers.get('cache-control'), 'max-age=300, must-revalidate', 'ZITADEL\'s default JWKS cache header');
  const { keys } = (await response.json()) as JSONWebKeySet;
  t.equal(keys.length, 1);
  t.same(Object.keys(keys[0]!), vectors.jwksKeyFields.RSA, 'fields as ZITADEL serves them');
  t.match(keys[0], { use: 'sig', kty: 'RSA', alg: 'RS256', kid: rsa.actions.webKeys.active.kid, e: 'AQAB' });
  t.equal(Buffer.from(keys[0]!.n!, 'base64url').length, 256, 'RSA 2048');

  const ec = await setup(t, { webKey: 'ES256', jwksMaxAgeSeconds: 0 });
  const ecResponse = await fetch(`${ec.simulator.url}/oauth/v2/keys`);
  t.equal(ecResponse.headers.get('cache-control'), 'no-store');
  const ecKeys = ((await ecResponse.json()) as JSONWebKeySet).keys;
  t.same(Object.keys(ecKeys[0]!), vectors.jwksKeyFields.EC);
  t.match(ecKeys[0], { use: 'sig', kty: 'EC', crv: 'P-256', alg: 'ES256' });
  t.equal(ec.simulator.jwksRequests, 1, 'fetches are counted');
});

for (const alg of ['RS256', 'ES256'] as const) {
  t.test(`a JWT target gets the compact JWS of the exact JSON payload, signed by the ${alg} web key`, async (t) => {
    const { actions, receiver, login, jwks } = await setup(t, { webKey: alg });
    const target = actions.createTarget({ name: 'jwt', endpoint: receiver.url, payloadType: 'PAYLOAD_TYPE_JWT' });
    actions.setExecution({ response: { method: CREATE } }, [target.id]);
    await login();

    const [{ headers, body }] = receiver.received as [{ headers: Record<string, unknown>; body: string }];
    t.equal(headers['content-type'], 'application/json', 'still application/json');
    t.match(body, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'the body is the compact JWS itself, not a JSON string');
    const [, ts, hex] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(headers['zitadel-signature']))!;
    t.equal(hex, createHmac('sha256', target.signingKey).update(`${ts}.${body}`).digest('hex'), 'the HMAC is over the final body');

    const header = decodeProtectedHeader(body);
    const expected = vectors.headers[alg === 'RS256' ? 'jwt-rs256' : 'jwt-es256']!;
    t.same(sortedKeys(header), sortedKeys(expected), 'the header fields of go-jose\'s JWS');
    t.same({ alg: header.alg, typ: header.typ }, { alg: expected.alg, typ: expected.typ });
    t.equal(header.kid, actions.webKeys.active.kid, 'kid = the web key\'s id');

    const verified = await compactVerify(body, createLocalJWKSet(await jwks()), { algorithms: [alg] });
    const delivery = actions.deliveries[0]!;
    t.equal(Buffer.from(verified.payload).toString('utf8'), delivery.payload, 'the payload is the exact JSON bytes');
    const payload = JSON.parse(delivery.payload) as Record<string, unknown>;
    t.equal(payload.fullMethod, CREATE);
    for (const claim of ['iss', 'aud', 'exp', 'iat', 'jti']) t.notOk(claim in payload, `no ${claim}`);
    t.equal(delivery.payloadType, 'PAYLOAD_TYPE_JWT');
  });
}

for (const kind of ['rsa', 'ec'] as const) {
  t.test(`a JWE target gets a compact JWE (${kind === 'rsa' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW'}, A256GCM) of that JWS, to its active key`, async (t) => {
    const { actions, receiver, login, jwks, call } = await setup(t);
    const target = actions.createTarget({ name: 'jwe', endpoint: receiver.url, payloadType: 'PAYLOAD_TYPE_JWE', interruptOnError: true });
    actions.setExecution({ response: { method: CREATE } }, [target.id]);
    const pair = kind === 'rsa' ? rsaPair() : ecPair();
    const keyId = (await call('POST', `/v2/actions/targets/${target.id}/publickeys`, { publicKey: b64(pem(pair.publicKey)) })).json.keyId as string;
    await call('POST', `/v2/actions/targets/${target.id}/publickeys/${keyId}/activate`);
    await login();

    const [{ headers, body }] = receiver.received as [{ headers: Record<string, unknown>; body: string }];
    t.equal(headers['content-type'], 'application/json');
    t.match(body, /^[\w-]+\.[\w-]+\.[\w-]+\.[\w-]+\.[\w-]+$/, 'five compact parts');
    const [, ts, hex] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(headers['zitadel-signature']))!;
    t.equal(hex, createHmac('sha256', target.signingKey).update(`${ts}.${body}`).digest('hex'), 'the HMAC is over the JWE bytes');

    const header = decodeProtectedHeader(body) as Record<string, unknown>;
    const expected = vectors.headers[kind === 'rsa' ? 'jwe-rsa' : 'jwe-ec']!;
    t.same(sortedKeys(header), sortedKeys(expected), 'the header fields of go-jose\'s JWE');
    t.same({ alg: header.alg, enc: header.enc, typ: header.typ, cty: header.cty }, { alg: expected.alg, enc: expected.enc, typ: expected.typ, cty: expected.cty });
    if (kind === 'ec') t.match(header.epk, expected.epk, 'an ephemeral P-256 key');
    t.equal(header.kid, keyId, 'kid = the id ZITADEL gave the target\'s public key');

    const { plaintext } = await compactDecrypt(body, pair.privateKey);
    const jws = Buffer.from(plaintext).toString('utf8');
    t.equal(decodeProtectedHeader(jws).kid, actions.webKeys.active.kid, 'the plaintext is the JWS of the web key');
    const verified = await compactVerify(jws, createLocalJWKSet(await jwks()));
    t.equal(Buffer.from(verified.payload).toString('utf8'), actions.deliveries[0]!.payload);
    t.equal(JSON.parse(actions.deliveries[0]!.payload).request.checks.password.password, 'correct horse', 'what only the key holder can read');
  });
}

t.test('a JWE target without an active key: the call fails as ZITADEL\'s does (MissingEncryptionKey), nothing is sent', async (t) => {
  const { actions, receiver, login } = await setup(t);
  const strict = actions.createTarget({ name: 'strict', endpoint: receiver.url, payloadType: 'PAYLOAD_TYPE_JWE', interruptOnError: true });
  actions.setExecution({ response: { method: CREATE } }, [strict.id]);
  const error = await login().catch((e: unknown) => ConnectError.from(e));
  t.ok(error instanceof ConnectError, 'the login call fails');
  t.equal((error as ConnectError).code, Code.Internal);
  t.match((error as ConnectError).rawMessage, /Errors\.Execution\.MissingEncryptionKey/);
  t.equal(receiver.received.length, 0, 'the target is not called');
  t.match(actions.deliveries[0], { targetId: strict.id, body: '', payloadType: 'PAYLOAD_TYPE_JWE' });
  t.match(actions.deliveries[0]!.failure?.rawMessage, /MissingEncryptionKey/);

  strict.interruptOnError = false;
  t.equal(await codeOf(login()), 'ok', 'without interruptOnError ZITADEL only logs it');
  t.equal(receiver.received.length, 0);
});

t.test('a web key added while running signs from then on and is served at once (method and control route)', async (t) => {
  const { simulator, actions, receiver, login, jwks, call } = await setup(t);
  const target = actions.createTarget({ name: 'jwt', endpoint: receiver.url, payloadType: 'PAYLOAD_TYPE_JWT' });
  actions.setExecution({ response: { method: CREATE } }, [target.id]);
  const first = actions.webKeys.active.kid;
  await login();

  const added = simulator.addWebKey('ES256');
  await login();
  t.not(added.kid, first);
  t.equal(decodeProtectedHeader(receiver.received[1]!.body).kid, added.kid, 'the new key signs');
  t.equal(decodeProtectedHeader(receiver.received[1]!.body).alg, 'ES256');
  t.same((await jwks()).keys.map((key) => key.kid), [first, added.kid], 'both published: the old one still verifies');
  await compactVerify(receiver.received[1]!.body, createLocalJWKSet(await jwks()));

  t.equal((await call('POST', WEB_KEYS_PATH, { alg: 'RS256' }, 'reader')).status, 401, 'the control route needs action.target.write');
  const viaRoute = await call('POST', WEB_KEYS_PATH, { alg: 'RS256', activate: false });
  t.equal(viaRoute.status, 200);
  t.match(viaRoute.json, { alg: 'RS256', active: false });
  await login();
  t.equal(decodeProtectedHeader(receiver.received[2]!.body).kid, added.kid, 'an inactive key is published but does not sign');
  t.ok((await jwks()).keys.some((key) => key.kid === viaRoute.json.kid));
  t.equal((await call('POST', WEB_KEYS_PATH, { alg: 'HS256' })).status, 400, 'only RS256 and ES256');
});

t.test('the admin client reads and writes payloadType and manages public keys; an older ZITADEL gives undefined', async (t) => {
  const { simulator } = await setup(t);
  const api = new ActionApi({ baseUrl: simulator.url, token: 'owner' });
  const spec = { name: 'limiter', endpoint: 'https://limiter.example.com/hook', timeout: '10s', kind: 'restWebhook' as const, interruptOnError: true };
  const created = await api.createTarget({ ...spec, payloadType: 'jwe' });
  t.equal((await api.findTarget('limiter'))?.payloadType, 'jwe');
  t.equal((await api.getTarget(created.id))?.payloadType, 'jwe');
  await api.updateTarget(created.id, { payloadType: 'jwt' });
  t.equal((await api.findTarget('limiter'))?.payloadType, 'jwt');
  await api.updateTarget(created.id, { timeout: '5s' });
  t.equal((await api.findTarget('limiter'))?.payloadType, 'jwt', 'an update without it leaves it');

  const { publicKey } = ecPair();
  const added = await api.addPublicKey(created.id, pem(publicKey));
  t.match(added, { keyId: /^\d+$/ });
  await api.activatePublicKey(created.id, added.keyId);
  let listed = await api.listPublicKeys(created.id);
  t.same(listed.map((key) => ({ keyId: key.keyId, active: key.active, fingerprint: key.fingerprint, pem: key.publicKeyPem })), [
    { keyId: added.keyId, active: true, fingerprint: fingerprintOf(publicKey), pem: pem(publicKey) },
  ]);
  await t.rejects(api.removePublicKey(created.id, added.keyId), /RemovePublicKey failed: 400 .*PublicKeyActive/);
  await api.deactivatePublicKey(created.id, added.keyId);
  await api.removePublicKey(created.id, added.keyId);
  listed = await api.listPublicKeys(created.id);
  t.same(listed, []);

  const plain = await api.createTarget({ ...spec, name: 'plain' });
  t.equal((await api.getTarget(plain.id))?.payloadType, undefined, 'unspecified: absent, read as undefined');

  const old = new ZitadelSimulator({ payloadTypes: false });
  await old.listen();
  t.teardown(() => old.close());
  const oldApi = new ActionApi({ baseUrl: old.url, token: 'simulator-token' });
  const oldTarget = await oldApi.createTarget({ ...spec, payloadType: 'jwe' });
  t.equal((await oldApi.getTarget(oldTarget.id))?.payloadType, undefined, 'the field is absent: undefined');
  await t.rejects(oldApi.addPublicKey(oldTarget.id, pem(publicKey)), /AddPublicKey failed: 404/);
});
