import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { JWK } from 'jose';
import t from 'tap';
import { PayloadRefusedError, WebKeysUnavailableError } from '../../src/payload-type/failures.js';
import { bodyForm } from '../../src/payload-type/form.js';
import { parsePayloadKeys, PayloadKeyError } from '../../src/payload-type/keys.js';
import { PayloadOpener, type WebKeySource } from '../../src/payload-type/open.js';
import { InstanceWebKeys, maxAgeSeconds, webKeysUrl } from '../../src/zitadel/web-keys.js';
import { JwksServer } from '../helpers/jwks-server.js';
import { encryptedBody, signedBody, targetKey, vector, vectors, VECTORS_FILE, webKey } from '../helpers/payload-types.js';

const FAR = Date.now() + 60_000;

/** Web keys from a fixed JWKS, counting look-ups (what a fetch would be). */
function fixedWebKeys(keys: JWK[]): WebKeySource & { lookups: number } {
  const source = {
    lookups: 0,
    webKey(kid: string) {
      source.lookups++;
      return Promise.resolve(keys.find((key) => key.kid === kid));
    },
  };
  return source;
}

const refusal = (error: unknown) => (error instanceof PayloadRefusedError ? error.reason : error);

t.test('the conformance vectors are pinned: an edit must be deliberate', async (t) => {
  t.equal(createHash('sha256').update(readFileSync(VECTORS_FILE)).digest('hex'), 'c24b8adad25e8e33548902b056194a68bfadf123c297bd8782acb4855945e9fd');
});

t.test('bodyForm tells a JSON object, a compact JWS and a compact JWE apart from the bytes alone', async (t) => {
  for (const entry of vectors.cases) t.equal(bodyForm(Buffer.from(entry.body)), entry.payloadType, entry.name);
  const cases: [string, string][] = [
    [' \n{"a":1}', 'json'],
    ['[1]', 'other'],
    ['"eyJ.eyJ.sig"', 'other'],
    ['', 'other'],
    ['a.b', 'other'],
    ['a.b.c.d', 'other'],
    ['a.b.c.d.e.f', 'other'],
    ['a.b.', 'jwt'],
    ['a..b.c.d', 'jwe'],
    ['a.b+c.d', 'other'],
    [' a.b.c', 'other'],
  ];
  for (const [body, form] of cases) t.equal(bodyForm(Buffer.from(body)), form, JSON.stringify(body));
});

t.test('the pure pipeline on the vectors: valid ones open to the payload, the others are refused for the right reason', async (t) => {
  const payload = Buffer.from(vectors.payloadBase64, 'base64');
  const keys = parsePayloadKeys(vectors.targetKeys.map((key) => key.privateKeyPem).join('\n'));
  const webKeys = fixedWebKeys(vectors.instanceJwks.keys);
  const jwt = new PayloadOpener({ type: 'jwt', webKeys });
  const jwe = new PayloadOpener({ type: 'jwe', keys, webKeys });
  const expected: Record<string, string> = { 'jwt-forged': 'signature', 'jwe-foreign-key': 'undecryptable', 'jwe-forged-inner': 'signature' };
  for (const entry of vectors.cases.filter((entry) => entry.payloadType !== 'json')) {
    const opener = entry.payloadType === 'jwe' ? jwe : jwt;
    const opened = await opener.open(entry.body, FAR).then((bytes) => Buffer.from(bytes), refusal);
    if (entry.valid) t.same(opened, payload, `${entry.name}: the exact payload bytes`);
    else t.equal(opened, expected[entry.name], `${entry.name}: refused (${String(expected[entry.name])})`);
  }
});

t.test('signature algorithms: none and HS* are refused before any web key is looked up', async (t) => {
  const webKeys = fixedWebKeys(vectors.instanceJwks.keys);
  const opener = new PayloadOpener({ type: 'jwt', webKeys });
  const [, payload] = vector('jwt-rs256').body.split('.');
  const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  for (const alg of ['none', 'HS256', 'HS512', 'RSA-OAEP-256', 'dir', 'nonsense']) {
    t.equal(await opener.open(`${b64({ alg, kid: 'webkey-rsa-1' })}.${payload}.AAAA`, FAR).catch(refusal), 'signature', `${alg}: refused`);
  }
  t.equal(await opener.open(`${b64({ alg: 'RS256' })}.${payload}.AAAA`, FAR).catch(refusal), 'signature', 'no kid: refused');
  t.equal(await opener.open(`notbase64.${payload}.AAAA`, FAR).catch(refusal), 'signature', 'an unreadable header');
  t.equal(webKeys.lookups, 0, 'no web key was looked up');
  // The alg must fit the web key: an RS256 header naming the EC key, a PS256 header naming a key pinned to RS256.
  t.equal(await opener.open(`${b64({ alg: 'RS256', kid: 'webkey-ec-1' })}.${payload}.AAAA`, FAR).catch(refusal), 'signature');
  t.equal(await opener.open(`${b64({ alg: 'PS256', kid: 'webkey-rsa-1' })}.${payload}.AAAA`, FAR).catch(refusal), 'signature');
});

t.test('JWE: only RSA-OAEP-256 / ECDH-ES+A256KW with A256GCM; the key that opened a kid is tried first', async (t) => {
  const web = await webKey('w', 'ES256');
  const rsaA = targetKey('rsa');
  const rsaB = targetKey('rsa');
  const keys = parsePayloadKeys(`${rsaA.privatePem}${rsaB.privatePem}`);
  const opener = new PayloadOpener({ type: 'jwe', keys, webKeys: fixedWebKeys([web.jwk]) });
  const inner = await signedBody('{"fullMethod":"x"}', web);
  t.equal(Buffer.from(await opener.open(await encryptedBody(inner, rsaB.publicKey, 'kid-b'), FAR)).toString(), '{"fullMethod":"x"}', 'the second key opens');
  const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  for (const header of [{ alg: 'RSA1_5', enc: 'A256GCM' }, { alg: 'RSA-OAEP', enc: 'A256GCM' }, { alg: 'RSA-OAEP-256', enc: 'A128CBC-HS256' }, { alg: 'dir', enc: 'A256GCM' }]) {
    t.equal(await opener.open(`${b64(header)}.AAAA.AAAA.AAAA.AAAA`, FAR).catch(refusal), 'undecryptable', `${header.alg}/${header.enc} refused`);
  }
  t.throws(() => new PayloadOpener({ type: 'jwe', keys: [], webKeys: fixedWebKeys([]) }), RangeError, 'jwe without a key is a programming error');
});

t.test('parsePayloadKeys: PKCS#8, PKCS#1, SEC1, several blocks, escaped newlines; errors name the block, never the key', async (t) => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const pkcs8 = (key: typeof rsa) => key.export({ type: 'pkcs8', format: 'pem' }).toString();
  const parsed = parsePayloadKeys(`${pkcs8(rsa)}${rsa.export({ type: 'pkcs1', format: 'pem' }).toString()}${ec.export({ type: 'sec1', format: 'pem' }).toString()}`);
  t.same(parsed.map((key) => [key.type, key.curve]), [['rsa', undefined], ['rsa', undefined], ['ec', 'P-256']]);
  t.equal(parsed[0]!.fingerprint, parsed[1]!.fingerprint, 'one key in two encodings: one fingerprint');
  const der = createPublicKey(rsa).export({ type: 'spki', format: 'der' });
  t.equal(parsed[0]!.fingerprint, `SHA256:${createHash('sha256').update(der).digest('base64').replace(/=+$/, '')}`, "ZITADEL's fingerprint form");
  t.equal(parsePayloadKeys(pkcs8(ec).replace(/\n/g, '\\n')).length, 1, 'a one-line value with \\n');

  const secret = pkcs8(ec);
  const body = secret.split('\n')[1]!;
  const problems: [string, RegExp][] = [
    ['no PEM here', /^it holds no PEM block: give the private key as PEM/],
    [createPublicKey(ec).export({ type: 'spki', format: 'pem' }).toString(), /is a PUBLIC KEY: give the unencrypted private key/],
    [ec.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }).toString(), /^the PEM block is encrypted \(ENCRYPTED PRIVATE KEY\): give it unencrypted, e\.g\. openssl pkey -in /],
    [ec.export({ type: 'sec1', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }).toString(), /^the PEM block is encrypted \(Proc-Type: 4,ENCRYPTED\): give it unencrypted, e\.g\. openssl pkey -in /],
    [pkcs8(ec).replace(/PRIVATE KEY/g, 'CERTIFICATE'), /^the PEM block is a CERTIFICATE: give/],
    [secret.replace(body, body.slice(0, 10)), /is not a readable private key/],
    [`${secret}${pkcs8(generateKeyPairSync('ed25519').privateKey)}`, /^the 2nd PEM block is an ed25519 key: ZITADEL encrypts payloads to RSA or EC keys only/],
    // A rotation value whose second key was cut short (the first 150 bytes: BEGIN line and part of the body, no END).
    [`${secret}${pkcs8(rsa).slice(0, 150)}`, /^the 2nd PEM block has no END line \(-----END PRIVATE KEY-----\): it was cut short/],
    [`${secret}\n${pkcs8(rsa).slice(0, 150)}\n`, /^the 2nd PEM block has no END line/],
    [`${pkcs8(rsa).slice(0, 150)}${secret}`, /^the 1st PEM block has no END line/],
    [pkcs8(rsa).slice(0, 150), /^the PEM block has no END line/],
    [`${secret}${secret}${pkcs8(rsa).slice(0, 150)}`, /^the 3rd PEM block has no END line/],
    [`${secret}junk\n${pkcs8(rsa)}`, /^there is text after the 1st PEM block that is not PEM: keep only the PEM blocks/],
    [`junk\n${secret}`, /^there is text before the PEM block that is not PEM: keep only the PEM blocks/],
    [`${secret.replace('-----END PRIVATE KEY-----', '-----END RSA PRIVATE KEY-----')}`, /^the PEM block has no END line \(-----END PRIVATE KEY-----\)/],
  ];
  for (const [text, message] of problems) {
    const error = t.throws(() => parsePayloadKeys(text)) as Error;
    t.ok(error instanceof PayloadKeyError, 'a PayloadKeyError');
    t.match(error.message, message);
    t.notMatch(error.message, body.slice(0, 12), 'no key material in the message');
  }
  t.ok(createPrivateKey(secret), 'the secret itself is a key');
});

t.test('InstanceWebKeys: cached per max-age, one refetch per 5 s for unknown kids (a kid flood), shared fetches, stale keys while down', async (t) => {
  const key = await webKey('k1', 'ES256');
  const server = await new JwksServer([key.jwk]).listen();
  t.teardown(() => server.close());
  let now = 1_000_000;
  const fetches: string[] = [];
  const webKeys = new InstanceWebKeys({ url: server.keysUrl, timeoutMs: 2000, now: () => now, onFetch: (outcome) => fetches.push(outcome) });

  t.same(await Promise.all(Array.from({ length: 20 }, () => webKeys.webKey('k1', FAR))), Array(20).fill(key.jwk), '20 concurrent look-ups');
  t.equal(server.fetches, 1, 'share one fetch');

  // A flood of made-up kids over 60 s of the injected clock: at most one refetch per 5 s. Their budget (500 ms) is
  // shorter than any wait for the next allowed refetch, so they are answered at once.
  for (let second = 0; second < 60; second++) {
    now += 1000;
    await Promise.all(Array.from({ length: 10 }, (_, i) => webKeys.webKey(`made-up-${second}-${i}`, Date.now() + 500)));
  }
  t.equal(server.fetches, 1 + 12, 'one refetch per 5 seconds (12 in 60 s), not 600');

  // A new key is found by the next allowed refetch.
  const second = await webKey('k2', 'RS256');
  server.keys = [key.jwk, second.jwk];
  now += 5000;
  t.same(await webKeys.webKey('k2', FAR), second.jwk, 'a key added at ZITADEL');

  // Down: known kids keep working from the cache (even once expired), unknown ones are unavailable.
  server.failWith = 503;
  now += 10 * 60_000; // past max-age=300
  t.same(await webKeys.webKey('k1', FAR), key.jwk, 'a cached key while the JWKS fails');
  now += 5000;
  await t.rejects(webKeys.webKey('k3', FAR), WebKeysUnavailableError, 'an unknown kid while the JWKS fails');
  await t.rejects(webKeys.webKey('k4', FAR), WebKeysUnavailableError, 'and within the 5 s after, without a fetch');
  t.equal(fetches.filter((outcome) => outcome === 'failed').length, 2, 'each failed fetch reported');
});

t.test('InstanceWebKeys: a web key activated right after a fetch waits for the next allowed refetch when the budget allows', async (t) => {
  const first = await webKey('k1', 'ES256');
  const server = await new JwksServer([first.jwk]).listen();
  t.teardown(() => server.close());
  let now = 1_000_000;
  const slept: number[] = [];
  const webKeys = new InstanceWebKeys({
    url: server.keysUrl,
    timeoutMs: 2000,
    now: () => now,
    // The injected clock moves when the wait ends (no real time passes).
    sleep: async (ms) => {
      slept.push(ms);
      await Promise.resolve();
      now += ms;
    },
  });
  t.same(await webKeys.webKey('k1', FAR), first.jwk);
  t.equal(server.fetches, 1);

  // ZITADEL activates a new web key 1 s after our fetch and signs with it at once.
  const activated = await webKey('k2', 'RS256');
  server.keys = [first.jwk, activated.jwk];
  now += 1000;
  const budget = () => Date.now() + 10_000;
  t.same(
    await Promise.all([webKeys.webKey('k2', budget()), webKeys.webKey('k2', budget()), webKeys.webKey('k3', budget())]),
    [activated.jwk, activated.jwk, undefined],
    'the new key is found instead of refused; a kid still unknown after the refetch is refused',
  );
  t.same(slept, [4000], 'one wait, until 5 s after the last fetch, shared by the three');
  t.equal(server.fetches, 2, 'one refetch for all of them');

  // A budget shorter than the wait (3 s) plus the second it must leave: refused at once, no wait, no fetch (as before).
  now += 2000;
  t.equal(await webKeys.webKey('k4', Date.now() + 1000), undefined);
  t.equal(await webKeys.webKey('k4', Date.now() + 3900), undefined, 'the wait would leave less than 1 s');
  t.same(slept, [4000]);
  t.equal(server.fetches, 2);

  // The refetch fails after the wait: unavailable (503), not refused as unsigned.
  server.failWith = 500;
  await t.rejects(webKeys.webKey('k5', budget()), WebKeysUnavailableError);
  t.equal(server.fetches, 3);
});

t.test('InstanceWebKeys: Cache-Control max-age bounded to 1 min .. 24 h', async (t) => {
  t.equal(maxAgeSeconds('public, max-age=300'), 300);
  t.equal(maxAgeSeconds('max-age="60", must-revalidate'), 60);
  t.equal(maxAgeSeconds('no-store, max-age=300'), undefined);
  t.equal(maxAgeSeconds(null), undefined);
  t.equal(webKeysUrl(new URL('https://id.example.com/zitadel/')).href, 'https://id.example.com/zitadel/oauth/v2/keys', 'a path prefix is kept');

  const key = await webKey('k1', 'ES256');
  const server = await new JwksServer([key.jwk]).listen();
  t.teardown(() => server.close());
  const cases: [string | undefined, number][] = [
    ['max-age=5', 60_000],
    ['max-age=600', 600_000],
    ['max-age=31536000', 86_400_000],
    [undefined, 60_000],
    ['no-cache', 60_000],
  ];
  for (const [header, lifetime] of cases) {
    server.cacheControl = header;
    let now = 0;
    const webKeys = new InstanceWebKeys({ url: server.keysUrl, timeoutMs: 2000, now: () => now });
    const before = server.fetches;
    await webKeys.webKey('k1', FAR);
    now = lifetime - 1;
    await webKeys.webKey('k1', FAR);
    t.equal(server.fetches, before + 1, `${String(header)}: cached for ${lifetime} ms`);
    now = lifetime;
    await webKeys.webKey('k1', FAR);
    t.equal(server.fetches, before + 2, `${String(header)}: refetched after`);
  }
});

t.test('InstanceWebKeys: a JWKS that does not answer in time is unavailable at the caller\'s deadline', async (t) => {
  const { createServer } = await import('node:http');
  const silent = createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    silent.closeAllConnections();
    silent.close();
  });
  const { port } = silent.address() as import('node:net').AddressInfo;
  const webKeys = new InstanceWebKeys({ url: new URL(`http://127.0.0.1:${port}/oauth/v2/keys`), timeoutMs: 60_000 });
  const error = await webKeys.webKey('k1', Date.now() + 50).catch((error: unknown) => error);
  t.ok(error instanceof WebKeysUnavailableError, 'unavailable');
  t.match((error as WebKeysUnavailableError).detail, /ENFORCE_BUDGET_MS/, 'names the budget');
});
