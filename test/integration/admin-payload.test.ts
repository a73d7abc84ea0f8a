import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { runDoctor, type CheckResult } from '../../src/admin/doctor.js';
import { checkEndpoint } from '../../src/admin/endpoint-check.js';
import { generatePayloadKey } from '../../src/admin/payload-keys.js';
import { METHODS, register, rotateKey, rotatePayloadKey } from '../../src/admin/registration.js';
import { parsePayloadKeys } from '../../src/payload-type/keys.js';
import { ALL_PERMISSIONS, ZitadelSimulator } from '../../src/simulator/index.js';
import { ActionApi, type TargetSpec } from '../../src/zitadel/action-api.js';
import { ZitadelConnection } from '../../src/zitadel/connection.js';
import { PersonalAccessToken } from '../../src/zitadel/credentials.js';
import { JwksServer } from '../helpers/jwks-server.js';
import { rotationRig } from '../helpers/rotation-rig.js';

/** Issue #12, the operations side: register --payload-type, the payload key rotation, doctor's payload checks. */

const spec: TargetSpec = { name: 'session-limiter', endpoint: 'https://limiter.example.com/webhooks/zitadel', timeout: '10s', kind: 'restWebhook', interruptOnError: true };
const executionTargets = (simulator: ZitadelSimulator) =>
  METHODS.map((method) => simulator.actions.executions.get(JSON.stringify({ response: { method } }))?.targets ?? []);


t.test('register --payload-type jwe: an active EC key, the private key once; a login through the executor enforced; twice changes nothing', async (t) => {
  const { simulator, api, url, deploy, enforced } = await rotationRig(t);
  const first = await register(api, { ...spec, endpoint: url, payloadType: 'jwe' });
  t.equal(first.created, true);
  t.equal(first.payloadType, 'jwe');
  t.match(first.privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8 PEM');
  const target = simulator.actions.targets.get(first.targetId)!;
  t.equal(target.payloadType, 'PAYLOAD_TYPE_JWE');
  t.equal(target.publicKeys.length, 1);
  t.equal(simulator.actions.activePublicKey(target)?.keyId, first.payloadKey!.keyId, 'the key is active');
  const [parsed] = parsePayloadKeys(first.privateKeyPem!);
  t.equal(parsed!.type, 'ec');
  t.equal(parsed!.curve, 'P-256', 'EC P-256 by default');
  t.equal(parsed!.fingerprint, target.publicKeys[0]!.fingerprint, 'the printed key is the private half of the active key');
  t.equal(first.payloadKey!.fingerprint, parsed!.fingerprint);

  await deploy({ payloadType: 'jwe', signingKeys: [first.signingKey!], payloadKeys: [first.privateKeyPem!] });
  t.equal(await enforced(), 'enforced', 'the executor sends JWE; the service opens it and enforces');

  simulator.actionApiRequests.length = 0;
  const second = await register(api, { ...spec, endpoint: url, payloadType: 'jwe' });
  t.same(
    { created: second.created, updated: second.updated, key: second.payloadKey, pem: second.privateKeyPem, changed: second.executions.map((e) => e.changed) },
    { created: false, updated: false, key: { ...first.payloadKey!, created: false }, pem: undefined, changed: [false, false] },
    'the second run keeps the active key and hands no private key over',
  );
  t.same(
    simulator.actionApiRequests.map((r) => r.method),
    ['POST', 'POST', 'POST', 'POST'],
    'only reads: the target search, the public-key search and two execution searches',
  );
  t.equal(target.publicKeys.length, 1);

  const rsa = await register(api, { ...spec, name: 'rsa-target', endpoint: url, payloadType: 'jwe' }, { keyType: 'rsa' });
  const [rsaKey] = parsePayloadKeys(rsa.privateKeyPem!);
  t.equal(rsaKey!.type, 'rsa');
  t.equal(rsaKey!.key.asymmetricKeyDetails?.modulusLength, 2048, '--key-type rsa: RSA 2048');
});

t.test('register switches an existing JSON target to jwe only after its key is active; back to json keeps the key', async (t) => {
  const { simulator, api } = await rotationRig(t);
  const json = await register(api, spec);
  t.equal(json.payloadType, 'json');
  simulator.actionApiRequests.length = 0;
  const jwe = await register(api, { ...spec, payloadType: 'jwe' });
  t.equal(jwe.updated, true);
  const calls = simulator.actionApiRequests.map((r) => `${r.method} ${r.path.replace(json.targetId, '{id}').replace(jwe.payloadKey!.keyId, '{key}')}`);
  t.ok(
    calls.indexOf('POST /v2/actions/targets/{id}/publickeys/{key}/activate') < calls.indexOf('POST /v2/actions/targets/{id}'),
    `the key is active before the type changes: ${calls.join(', ')}`,
  );
  t.equal(simulator.actions.targets.get(json.targetId)!.payloadType, 'PAYLOAD_TYPE_JWE');
  const unchanged = await register(api, spec);
  t.equal(unchanged.payloadType, 'jwe', 'register without --payload-type keeps the type');
  t.equal(unchanged.updated, false);
  const back = await register(api, { ...spec, payloadType: 'json' });
  t.equal(back.updated, true);
  t.equal(simulator.actions.targets.get(json.targetId)!.payloadType, 'PAYLOAD_TYPE_JSON');
});

t.test('a ZITADEL older than v4.8: register --payload-type jwt|jwe is refused plainly and changes nothing', async (t) => {
  const { simulator, api } = await rotationRig(t, { payloadTypes: false });
  for (const payloadType of ['jwt', 'jwe'] as const) {
    await t.rejects(register(api, { ...spec, payloadType }), /older than v4\.8.*--payload-type json/s, `${payloadType} on a new target`);
    t.equal(simulator.actions.targets.size, 0, `${payloadType}: the JSON target the old server created is deleted again`);
    t.same(executionTargets(simulator), [[], []], 'nothing bound');
  }
  const { targetId } = await register(api, { ...spec, payloadType: 'json' });
  t.equal(simulator.actions.targets.size, 1, 'json works');
  for (const payloadType of ['jwt', 'jwe'] as const) {
    await t.rejects(register(api, { ...spec, payloadType }), /older than v4\.8/, `${payloadType} on the existing target`);
  }
  t.equal(simulator.actions.targets.get(targetId)!.payloadType, 'PAYLOAD_TYPE_UNSPECIFIED');
});

t.test('payload key rotation: step 2 refuses while the service lacks the new key, then succeeds; no login lost', async (t) => {
  const { simulator, api, url, deploy, login, enforced } = await rotationRig(t);
  const registered = await register(api, { ...spec, endpoint: url, payloadType: 'jwe' });
  const signingKeys = [registered.signingKey!];
  const oldKey = registered.privateKeyPem!;
  await deploy({ payloadType: 'jwe', signingKeys, payloadKeys: [oldKey] });
  t.equal(await enforced(), 'enforced', 'before the rotation');
  const target = simulator.actions.targets.get(registered.targetId)!;

  const step1 = await rotatePayloadKey(api, spec.name, false);
  if (step1.phase !== 'started') return t.fail('step 1 did not start');
  t.equal(target.publicKeys.length, 2);
  t.equal(simulator.actions.activePublicKey(target)?.keyId, registered.payloadKey!.keyId, 'the new key waits inactive');
  t.equal(parsePayloadKeys(step1.privateKeyPem)[0]!.fingerprint, step1.fingerprint);
  t.equal(parsePayloadKeys(step1.privateKeyPem)[0]!.type, 'ec', 'the new key is of the current key\'s kind');
  t.equal(await login(), 'ok', 'after step 1, before the redeploy');
  t.equal((await rotatePayloadKey(api, spec.name, false)).phase, 'already-started', 'step 1 twice is safe');
  t.equal(target.publicKeys.length, 2, 'and adds nothing');

  const keysBefore = JSON.stringify(target.publicKeys.map((key) => [key.keyId, key.active]));
  await t.rejects(rotatePayloadKey(api, spec.name, true), /refusing to finish.*401 ERR_PAYLOAD_UNDECRYPTABLE.*ZITADEL_PAYLOAD_KEYS.*Nothing was changed/s, 'the service lacks the new key');
  t.equal(JSON.stringify(target.publicKeys.map((key) => [key.keyId, key.active])), keysBefore, 'nothing changed');
  t.equal(await login(), 'ok', 'logins go on with the old key');

  await deploy({ payloadType: 'jwe', signingKeys, payloadKeys: [oldKey, step1.privateKeyPem] });
  t.equal(await enforced(), 'enforced', 'with both keys deployed');
  const finished = await rotatePayloadKey(api, spec.name, true);
  if (finished.phase !== 'finished') return t.fail('not finished');
  t.match(finished.proof, /401 ERR_PAYLOAD_SIGNATURE: the service opened a payload encrypted to key/);
  t.same(finished.removed, [registered.payloadKey!.keyId], 'the old key removed');
  t.same(target.publicKeys.map((key) => key.keyId), [step1.keyId]);
  t.equal(simulator.actions.activePublicKey(target)?.keyId, step1.keyId, 'the new key is active');
  t.equal(await enforced(), 'enforced', 'ZITADEL now encrypts to the new key');
  await deploy({ payloadType: 'jwe', signingKeys, payloadKeys: [step1.privateKeyPem] });
  t.equal(await enforced(), 'enforced', 'the old key dropped from ZITADEL_PAYLOAD_KEYS');
  await t.rejects(rotatePayloadKey(api, spec.name, true), /no new public key waits.*rotate-key --payload-key/s);

  // The controls: without the new key the service refuses every webhook; in json mode the probe is refused as such.
  await deploy({ payloadType: 'jwe', signingKeys, payloadKeys: [oldKey] });
  t.match(await login(), /Errors\.Execution\.Failed/, 'a service without the active key does fail the login');
  await rotatePayloadKey(api, spec.name, false);
  await deploy({ payloadType: 'json', signingKeys });
  await t.rejects(rotatePayloadKey(api, spec.name, true), /400 ERR_PAYLOAD_TYPE: the service is not in jwe mode: set ZITADEL_PAYLOAD_TYPE=jwe/);
});

t.test('signing key rotation of a jwe target: the next target carries the payload type and the active key; no login lost', async (t) => {
  const { simulator, api, url, deploy, enforced } = await rotationRig(t);
  const registered = await register(api, { ...spec, endpoint: url, payloadType: 'jwe' });
  const payloadKeys = [registered.privateKeyPem!];
  await deploy({ payloadType: 'jwe', signingKeys: [registered.signingKey!], payloadKeys });
  const step1 = await rotateKey(api, spec.name, false);
  if (step1.phase !== 'started') return t.fail('step 1 did not start');
  const next = simulator.actions.targets.get(step1.nextId)!;
  t.equal(next.payloadType, 'PAYLOAD_TYPE_JWE', 'the same payload type');
  t.equal(simulator.actions.activePublicKey(next)?.fingerprint, registered.payloadKey!.fingerprint, 'the same active public key');
  await t.rejects(rotateKey(api, spec.name, true), /refusing to finish.*401 ERR_SIGNATURE_MISMATCH/s, 'the service lacks the new signing key');
  await deploy({ payloadType: 'jwe', signingKeys: [registered.signingKey!, step1.signingKey], payloadKeys });
  t.equal(await enforced(), 'enforced');
  const finished = await rotateKey(api, spec.name, true);
  t.equal(finished.phase, 'finished', 'the JSON probe answered 400 ERR_PAYLOAD_TYPE after the HMAC passed: PASS for a jwe target');
  t.equal(await enforced(), 'enforced', 'the new target sends JWE to the same key, signed with the new key');
  await deploy({ payloadType: 'jwe', signingKeys: [step1.signingKey], payloadKeys });
  t.equal(await enforced(), 'enforced', 'the old signing key dropped');
});

t.test('the endpoint check: 400 ERR_PAYLOAD_TYPE passes for a jwt/jwe target (the HMAC passed), fails for a JSON one', async (t) => {
  const { api, url, deploy } = await rotationRig(t);
  const registered = await register(api, { ...spec, endpoint: url, payloadType: 'jwt' });
  await deploy({ payloadType: 'jwt', signingKeys: [registered.signingKey!] });
  t.match(await checkEndpoint(url, registered.signingKey, 'jwt'), { status: 'PASS', detail: /accepted the signature.*400 ERR_PAYLOAD_TYPE/ });
  t.match(await checkEndpoint(url, registered.signingKey, 'json'), { status: 'FAIL', detail: /400 ERR_PAYLOAD_TYPE.*ZITADEL_PAYLOAD_TYPE=json/ });
  t.match(await checkEndpoint(url, 'another-key', 'jwt'), { status: 'FAIL', detail: /401 ERR_SIGNATURE_MISMATCH/ });
});

t.test('doctor: payload type, the JWE key fingerprint, the JWKS, an old ZITADEL', async (t) => {
  const { simulator, api, url, deploy } = await rotationRig(t);
  const admin = new ZitadelConnection({ baseUrl: simulator.url, credentials: new PersonalAccessToken('admin') });
  t.teardown(() => admin.close());
  const registered = await register(api, { ...spec, endpoint: url, payloadType: 'jwe' });
  const [held] = parsePayloadKeys(registered.privateKeyPem!);
  await deploy({ payloadType: 'jwe', signingKeys: [registered.signingKey!], payloadKeys: [registered.privateKeyPem!] });
  const doctor = (inputs: { payloadType: 'json' | 'jwt' | 'jwe'; payloadKeys?: string[]; webKeysUrl?: string; sim?: ZitadelSimulator; api?: ActionApi }) =>
    runDoctor({
      zitadelUrl: (inputs.sim ?? simulator).url,
      runtime: admin.transport,
      signingKeys: [registered.signingKey!],
      admin: { api: inputs.api ?? api, transport: admin.transport },
      targetName: spec.name,
      payloadType: inputs.payloadType,
      payloadKeyFingerprints: inputs.payloadKeys ?? [],
      webKeysUrl: inputs.webKeysUrl,
    });
  const line = (results: CheckResult[], check: string) => results.find((r) => r.check === check);

  const healthy = await doctor({ payloadType: 'jwe', payloadKeys: [held!.fingerprint] });
  t.same(healthy.filter((r) => r.status === 'FAIL'), [], 'no FAIL');
  t.match(line(healthy, 'payload type'), { status: 'PASS', detail: /jwe/ });
  t.match(line(healthy, 'payload key'), { status: 'PASS', detail: new RegExp(`${registered.payloadKey!.keyId}.*${held!.fingerprint.replace(/[+/]/g, '.')}`) });
  t.match(line(healthy, 'web keys (JWKS)'), { status: 'PASS', detail: /\/oauth\/v2\/keys.*1 key/ });
  t.match(line(healthy, 'endpoint'), { status: 'PASS', detail: /400 ERR_PAYLOAD_TYPE/ });

  const mismatch = await doctor({ payloadType: 'json' });
  t.match(line(mismatch, 'payload type'), { status: 'FAIL', detail: /target sends JWE.*ZITADEL_PAYLOAD_TYPE is json.*ZITADEL_PAYLOAD_TYPE=jwe/ });

  const otherKey = generatePayloadKey('ec');
  const wrongKey = await doctor({ payloadType: 'jwe', payloadKeys: [otherKey.fingerprint] });
  t.match(line(wrongKey, 'payload key'), { status: 'FAIL', detail: /no key of ZITADEL_PAYLOAD_KEYS.*active public key/ });
  t.notMatch(JSON.stringify(wrongKey), /PRIVATE KEY/, 'no key material in any line');

  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/oauth/v2/keys`;
  closed.close();
  const unreachable = await doctor({ payloadType: 'jwe', payloadKeys: [held!.fingerprint], webKeysUrl: deadUrl });
  t.match(line(unreachable, 'web keys (JWKS)'), { status: 'FAIL', detail: /could not be reached: connection refused/ });

  const jwks = await new JwksServer([]).listen();
  t.teardown(() => jwks.close());
  const empty = await doctor({ payloadType: 'jwe', payloadKeys: [held!.fingerprint], webKeysUrl: jwks.keysUrl.href });
  t.match(line(empty, 'web keys (JWKS)'), { status: 'FAIL', detail: /\/oauth\/v2\/keys answered 200 with no keys: the service cannot verify/ });
  jwks.failWith = 502;
  const failing = await doctor({ payloadType: 'jwe', payloadKeys: [held!.fingerprint], webKeysUrl: jwks.keysUrl.href });
  const detail = line(failing, 'web keys (JWKS)')?.detail ?? '';
  t.match(detail, /\/oauth\/v2\/keys answered HTTP 502 \(no JWKS\): the service cannot verify/);
  t.notMatch(detail, /0 keys/, 'an error status is not a JWKS with 0 keys');

  const old = new ZitadelSimulator({ tokens: { admin: ALL_PERMISSIONS }, payloadTypes: false });
  await old.listen();
  t.teardown(() => old.close());
  const oldApi = new ActionApi({ baseUrl: old.url, token: 'admin' });
  await register(oldApi, { ...spec, endpoint: url });
  const oldJwe = await doctor({ payloadType: 'jwe', payloadKeys: [held!.fingerprint], sim: old, api: oldApi });
  t.match(line(oldJwe, 'payload type'), { status: 'FAIL', detail: /older than v4\.8.*ZITADEL_PAYLOAD_TYPE=json/ });
  const oldJson = await doctor({ payloadType: 'json', sim: old, api: oldApi });
  t.match(line(oldJson, 'payload type'), { status: 'PASS', detail: /older than v4\.8.*JSON/ });
});
