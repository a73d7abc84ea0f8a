import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CompactEncrypt, CompactSign } from 'jose';
import t, { type Test } from 'tap';
import { signPayload } from '../../src/signature/sign.js';
import { JwksServer } from '../helpers/jwks-server.js';
import { encryptedBody, signedBody, targetKey, vector, vectors, VECTORS_NOW, webKey } from '../helpers/payload-types.js';
import { minutesAgo, SIGNING_KEY, startStack, type Stack, type StackOptions } from '../helpers/stack.js';

/**
 * Issue 12: ZITADEL targets with payload type JWT (a compact JWS signed by an instance web key) or JWE (that JWS
 * encrypted to the target's public key). Through the real service, a real HTTP JWKS server on 127.0.0.1 and the
 * simulator over gRPC. "No ZITADEL call" is read from the simulator's call log, "no JWKS fetch" from the server's count.
 */

const VECTOR_SESSION = '300000000000000100';
const [RSA_TARGET, EC_TARGET] = vectors.targetKeys as [(typeof vectors.targetKeys)[0], (typeof vectors.targetKeys)[0]];

async function jwksServer(t: Test, keys = vectors.instanceJwks.keys): Promise<JwksServer> {
  const server = await new JwksServer(keys).listen();
  t.teardown(() => server.close());
  return server;
}

async function stack(t: Test, jwks: JwksServer, type: 'json' | 'jwt' | 'jwe', options: StackOptions & { keys?: string } = {}): Promise<Stack> {
  const s = await startStack({
    limit: 1,
    webKeysUrl: jwks.keysUrl,
    ...options,
    env: () => ({ ZITADEL_PAYLOAD_TYPE: type, ZITADEL_PAYLOAD_KEYS: options.keys }),
  });
  t.teardown(() => s.close());
  return s;
}

/** A user with one older session and the session the webhook names: limit 1 evicts the older one when enforced. */
function seedUser(s: Stack, sessionId: string) {
  const { state } = s.simulator;
  const older = state.seedSession({ userId: 'u-payload', creationDate: minutesAgo(30), factors: { password: minutesAgo(30) } }).id;
  state.seedSession({ id: sessionId, userId: 'u-payload', factors: { password: new Date() } });
  state.updateProjection();
  state.calls.length = 0;
  return { older };
}

const sessionCalls = (s: Stack) => s.simulator.state.calls.length;
const codeOf = (response: { body: string }) => (JSON.parse(response.body) as { error: string }).error;
const messageOf = (response: { body: string }) => (JSON.parse(response.body) as { message: string }).message;

t.test('a JWT target against ZITADEL_PAYLOAD_TYPE=jwt: every login enforced (found: 400 ERR_BODY_NOT_JSON on every login)', async (t) => {
  const jwks = await jwksServer(t);
  const s = await stack(t, jwks, 'jwt');
  const { older } = seedUser(s, VECTOR_SESSION);
  const response = await s.send(vector('jwt-rs256').body);
  t.equal(response.statusCode, 204, response.body);
  t.notOk(s.simulator.state.sessions.has(older), 'the older session was evicted');
  t.equal(jwks.fetches, 1, 'one JWKS fetch');
});

t.test("ZITADEL's conformance vectors, each with its own HMAC header, at the time they were signed", async (t) => {
  const expected: Record<string, [number, string?]> = {
    json: [204],
    'jwt-rs256': [204],
    'jwt-es256': [204],
    'jwt-forged': [401, 'ERR_PAYLOAD_SIGNATURE'],
    'jwe-rsa': [204],
    'jwe-ec': [204],
    'jwe-foreign-key': [401, 'ERR_PAYLOAD_UNDECRYPTABLE'],
    'jwe-forged-inner': [401, 'ERR_PAYLOAD_SIGNATURE'],
  };
  t.same(vectors.cases.map((entry) => entry.name).sort(), Object.keys(expected).sort(), 'every vector is covered');
  const jwks = await jwksServer(t);
  const keys = `${RSA_TARGET.privateKeyPem}\n${EC_TARGET.privateKeyPem}`;
  for (const entry of vectors.cases) {
    const s = await stack(t, jwks, entry.payloadType, { signingKeys: [vectors.signingKey], now: () => VECTORS_NOW, keys: entry.payloadType === 'jwe' ? keys : undefined });
    const { older } = seedUser(s, VECTOR_SESSION);
    const response = await s.app.inject({
      method: 'POST',
      url: '/webhooks/zitadel',
      headers: { 'content-type': 'application/json', 'zitadel-signature': entry.signatureHeader },
      payload: entry.body,
    });
    const [status, code] = expected[entry.name]!;
    t.equal(response.statusCode, status, `${entry.name}: ${status} (${entry.why})`);
    t.equal(entry.valid, status === 204, `${entry.name}: the vector's own verdict agrees`);
    if (code) {
      t.equal(codeOf(response), code, `${entry.name}: ${code}`);
      t.equal(sessionCalls(s), 0, `${entry.name}: no ZITADEL call`);
      t.ok(s.simulator.state.sessions.has(older), `${entry.name}: nothing evicted`);
    } else {
      t.notOk(s.simulator.state.sessions.has(older), `${entry.name}: enforced`);
    }
    await s.close();
  }
});

t.test('JSON, JWT and JWE bodies against each other type: 400 ERR_PAYLOAD_TYPE naming both, no JWKS fetch, no ZITADEL call', async (t) => {
  const jwks = await jwksServer(t);
  const bodies = { json: vector('json').body, jwt: vector('jwt-rs256').body, jwe: vector('jwe-rsa').body };
  for (const configured of ['json', 'jwt', 'jwe'] as const) {
    const s = await stack(t, jwks, configured, { keys: configured === 'jwe' ? RSA_TARGET.privateKeyPem : undefined });
    for (const [sent, body] of Object.entries(bodies)) {
      if (sent === configured) continue;
      const response = await s.send(body);
      t.equal(response.statusCode, 400, `${sent} body, ${configured} configured: 400`);
      t.equal(codeOf(response), 'ERR_PAYLOAD_TYPE');
      t.match(messageOf(response), `the target sends ${sent.toUpperCase()}; set ZITADEL_PAYLOAD_TYPE=${sent}`, 'names what arrived and what to set');
      t.match(messageOf(response), `ZITADEL_PAYLOAD_TYPE is ${configured}`, 'names what is configured');
    }
    t.equal(sessionCalls(s), 0, 'no ZITADEL call');
    await s.close();
  }
  t.equal(jwks.fetches, 0, 'no JWKS fetch');
});

t.test('a valid JWS with a wrong HMAC is refused before any JWKS fetch or ZITADEL call', async (t) => {
  const jwks = await jwksServer(t);
  const s = await stack(t, jwks, 'jwt');
  seedUser(s, VECTOR_SESSION);
  const response = await s.send(vector('jwt-rs256').body, { key: 'WrongWrongWrongWrongWrongWrongWrong1' });
  t.equal(response.statusCode, 401);
  t.equal(codeOf(response), 'ERR_SIGNATURE_MISMATCH');
  t.equal(jwks.fetches, 0, 'no JWKS fetch');
  t.equal(sessionCalls(s), 0, 'no ZITADEL call');
});

t.test('RS256 and ES256 web keys accepted; a foreign key, alg none and HS256 with the HMAC secret refused with no ZITADEL call', async (t) => {
  const rsa = await webKey('rsa-1', 'RS256');
  const ec = await webKey('ec-1', 'ES256');
  const ed = await webKey('ed-1', 'EdDSA');
  const jwks = await jwksServer(t, [rsa.jwk, ec.jwk, ed.jwk]);
  const s = await stack(t, jwks, 'jwt');
  for (const key of [rsa, ec, ed]) {
    const session = `session-${key.kid}`;
    const { older } = seedUser(s, session);
    const response = await s.send(await signedBody(JSON.stringify(payloadFor(session)), key));
    t.equal(response.statusCode, 204, `${key.alg}: accepted`);
    t.notOk(s.simulator.state.sessions.has(older), `${key.alg}: enforced`);
  }
  t.equal(jwks.fetches, 1, 'one JWKS fetch for all of them');

  const payload = new TextEncoder().encode(JSON.stringify(payloadFor('session-forged')));
  const foreign = await webKey('rsa-1', 'RS256'); // the kid of a real web key, another key
  const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const forged = {
    'a foreign key with a known kid': await signedBody(payload, foreign),
    'a foreign key with an unknown kid': await signedBody(payload, { ...foreign, kid: 'nobody' }),
    'alg none': `${b64({ alg: 'none', kid: 'rsa-1', typ: 'JWT' })}.${Buffer.from(payload).toString('base64url')}.`,
    'HS256 with the HMAC secret': await new CompactSign(payload).setProtectedHeader({ alg: 'HS256', kid: 'rsa-1', typ: 'JWT' }).sign(new TextEncoder().encode(SIGNING_KEY)),
    'RS256 header over an ES256 key': await signedBody(payload, { ...ec, alg: 'ES256' }, { alg: 'RS256' }).catch(() => `${b64({ alg: 'RS256', kid: 'ec-1' })}.${Buffer.from(payload).toString('base64url')}.AAAA`),
  };
  const { older } = seedUser(s, 'session-forged');
  for (const [what, body] of Object.entries(forged)) {
    const response = await s.send(body);
    t.equal(response.statusCode, 401, `${what}: 401`);
    t.equal(codeOf(response), 'ERR_PAYLOAD_SIGNATURE', `${what}: ERR_PAYLOAD_SIGNATURE`);
  }
  t.equal(sessionCalls(s), 0, 'no ZITADEL call');
  t.ok(s.simulator.state.sessions.has(older), 'nothing evicted');
  t.ok(jwks.fetches <= 2, `at most one refetch for the unknown kid (${jwks.fetches} fetches)`);
});

t.test('a web key added after start is accepted after one refetch', async (t) => {
  const first = await webKey('key-1', 'RS256');
  const jwks = await jwksServer(t, [first.jwk]);
  let now = Date.now();
  const s = await stack(t, jwks, 'jwt', { now: () => now });
  seedUser(s, 'session-a');
  t.equal((await s.send(await signedBody(JSON.stringify(payloadFor('session-a')), first))).statusCode, 204, 'the first key');
  t.equal(jwks.fetches, 1);

  const second = await webKey('key-2', 'ES256');
  jwks.keys = [first.jwk, second.jwk];
  now += 60_000; // a web key rotation happens long after the last fetch; the cache (max-age 300) is still fresh
  seedUser(s, 'session-b');
  t.equal((await s.send(await signedBody(JSON.stringify(payloadFor('session-b')), second))).statusCode, 204, 'the new key, after a refetch');
  t.equal(jwks.fetches, 2, 'exactly one refetch');
  seedUser(s, 'session-c');
  t.equal((await s.send(await signedBody(JSON.stringify(payloadFor('session-c')), second))).statusCode, 204, 'again, from the cache');
  t.equal(jwks.fetches, 2, 'no further fetch');
});

t.test('30 concurrent logins cost one JWKS fetch', async (t) => {
  const key = await webKey('key-1', 'ES256');
  const jwks = await jwksServer(t, [key.jwk]);
  const s = await stack(t, jwks, 'jwt', { limit: 5 });
  const bodies = await Promise.all(
    Array.from({ length: 30 }, (_, i) => {
      const id = s.simulator.state.seedSession({ userId: `user-${i}`, factors: { password: new Date() } }).id;
      return signedBody(JSON.stringify(payloadFor(id)), key);
    }),
  );
  s.simulator.state.updateProjection();
  const responses = await Promise.all(bodies.map((body) => s.send(body)));
  t.same(new Set(responses.map((response) => response.statusCode)), new Set([204]), 'all 30 enforced');
  t.equal(jwks.fetches, 1, 'one fetch');
});

t.test('JWKS unreachable: 503 ERR_ZITADEL_UNAVAILABLE, nothing evicted; back when it answers again', async (t) => {
  const key = await webKey('key-1', 'RS256');
  const jwks = await jwksServer(t, [key.jwk]);
  let now = Date.now();
  const s = await stack(t, jwks, 'jwt', { now: () => now });
  const { older } = seedUser(s, 'session-a');
  jwks.failWith = 500;
  const response = await s.send(await signedBody(JSON.stringify(payloadFor('session-a')), key));
  t.equal(response.statusCode, 503);
  t.equal(codeOf(response), 'ERR_ZITADEL_UNAVAILABLE');
  t.match(messageOf(response), /oauth\/v2\/keys/, 'says which fetch failed');
  t.ok(s.simulator.state.sessions.has(older), 'nothing evicted');
  t.equal(sessionCalls(s), 0, 'no ZITADEL session call');
  jwks.failWith = undefined;
  now += 5_000;
  t.equal((await s.send(await signedBody(JSON.stringify(payloadFor('session-a')), key))).statusCode, 204, 'enforced once the JWKS answers');
  t.notOk(s.simulator.state.sessions.has(older), 'evicted then');
  const metrics = await s.service.metrics.registry.getSingleMetricAsString('session_limiter_jwks_fetches_total');
  t.match(metrics, /outcome="failed"\} 1/, 'the failed fetch is counted');
  t.match(metrics, /outcome="ok"\} 1/, 'and the good one');
});

t.test('JWE with an RSA and with a P-256 key, from the value and from a file, two keys at once (rotation)', async (t) => {
  const web = await webKey('web-1', 'RS256');
  const jwks = await jwksServer(t, [web.jwk]);
  const rsa = targetKey('rsa');
  const ec = targetKey('ec');
  const dir = await mkdtemp(path.join(tmpdir(), 'payload-keys-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'keys.pem');
  await writeFile(file, `${rsa.privatePem}\n${ec.privatePem}`, { mode: 0o600 });
  // PKCS#1 and SEC1 forms of the same keys, as openssl writes them.
  const traditional = [
    createPrivateKey(rsa.privatePem).export({ type: 'pkcs1', format: 'pem' }).toString(),
    createPrivateKey(ec.privatePem).export({ type: 'sec1', format: 'pem' }).toString(),
  ].join('');
  for (const [where, keys] of [['the value', `${rsa.privatePem}${ec.privatePem}`], ['a file', file], ['RSA/EC PRIVATE KEY blocks', traditional]] as const) {
    const s = await stack(t, jwks, 'jwe', { keys });
    for (const [type, target] of [['RSA', rsa], ['P-256', ec]] as const) {
      const session = `session-${type}`;
      const { older } = seedUser(s, session);
      const inner = await signedBody(JSON.stringify(payloadFor(session)), web);
      const response = await s.send(await encryptedBody(inner, target.publicKey, `kid-${type}`));
      t.equal(response.statusCode, 204, `${where}, ${type}: ${response.body}`);
      t.notOk(s.simulator.state.sessions.has(older), `${where}, ${type}: enforced`);
    }
    await s.close();
  }
});

t.test('JWE refused: a foreign key (cannot open), a forged inner JWS, a bare JSON plaintext; none reaches ZITADEL', async (t) => {
  const web = await webKey('web-1', 'RS256');
  const stranger = await webKey('web-1', 'RS256');
  const jwks = await jwksServer(t, [web.jwk]);
  const mine = targetKey('ec');
  const foreign = targetKey('ec');
  const s = await stack(t, jwks, 'jwe', { keys: mine.privatePem });
  const { older } = seedUser(s, 'session-x');
  const json = JSON.stringify(payloadFor('session-x'));
  const cases: [string, string, string][] = [
    ['a JWE to a foreign key', await encryptedBody(await signedBody(json, web), foreign.publicKey, 'k'), 'ERR_PAYLOAD_UNDECRYPTABLE'],
    ['a JWE whose inner JWS is forged', await encryptedBody(await signedBody(json, stranger), mine.publicKey, 'k'), 'ERR_PAYLOAD_SIGNATURE'],
    ['a JWE whose plaintext is bare JSON', await encryptedBody(json, mine.publicKey, 'k'), 'ERR_PAYLOAD_SIGNATURE'],
    [
      'a JWE with dir (no key management)',
      await new CompactEncrypt(new TextEncoder().encode(await signedBody(json, web))).setProtectedHeader({ alg: 'dir', enc: 'A256GCM' }).encrypt(new Uint8Array(32)),
      'ERR_PAYLOAD_UNDECRYPTABLE',
    ],
  ];
  for (const [what, body, code] of cases) {
    const response = await s.send(body);
    t.equal(response.statusCode, 401, `${what}: 401`);
    t.equal(codeOf(response), code, `${what}: ${code}`);
  }
  t.equal(sessionCalls(s), 0, 'no ZITADEL call');
  t.ok(s.simulator.state.sessions.has(older), 'nothing evicted');
  t.ok(createPublicKey(mine.privatePem), 'the key used is a real one');
});

t.test('a tampered body with a valid HMAC over it is still refused by the JWS signature', async (t) => {
  const web = await webKey('web-1', 'RS256');
  const jwks = await jwksServer(t, [web.jwk]);
  const s = await stack(t, jwks, 'jwt');
  const body = await signedBody(JSON.stringify(payloadFor('session-t')), web);
  const [header, , signature] = body.split('.');
  const tampered = `${header}.${Buffer.from(JSON.stringify(payloadFor('other-session'))).toString('base64url')}.${signature}`;
  const response = await s.app.inject({
    method: 'POST',
    url: '/webhooks/zitadel',
    headers: { 'content-type': 'application/json', 'zitadel-signature': signPayload(tampered, SIGNING_KEY) },
    payload: tampered,
  });
  t.equal(codeOf(response), 'ERR_PAYLOAD_SIGNATURE');
});

function payloadFor(sessionId: string) {
  return {
    fullMethod: '/zitadel.session.v2.SessionService/CreateSession',
    instanceID: 'i',
    request: { checks: { user: { userId: 'u-payload' }, password: { password: 'x' } } },
    response: { sessionId, sessionToken: 't' },
  };
}
