import { Code } from '@connectrpc/connect';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { errorCatalog } from '../../src/errors.js';
import { signPayload } from '../../src/signature/sign.js';
import { fixtureFor } from '../helpers/payloads.js';
import { JwksServer } from '../helpers/jwks-server.js';
import { encryptedBody, signedBody, targetKey, webKey } from '../helpers/payload-types.js';
import { exchange } from '../helpers/raw-http.js';
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
  assertNoSecret(t, values, {
    PASSWORD,
    SESSION_TOKEN,
    NEW_SESSION_TOKEN,
    ACCESS_TOKEN,
    SIGNING_KEY,
    signatureHmac: signature.split('v1=')[1]!,
    rawBody: body.slice(0, 40),
  });
});

t.test('malformed requests over a real socket at trace level: 400 in our shape, not one payload byte in the logs', async (t) => {
  const stack = await startStack({ limit: 1, logLevel: 'trace' });
  t.teardown(() => stack.close());
  await stack.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = stack.app.server.address() as AddressInfo;
  const session = stack.simulator.state.seedSession({ userId: 'u', factors: { password: new Date() } }).id;
  const body = fixtureFor('02-password.set-session', session, (payload) => {
    payload.request.sessionToken = SESSION_TOKEN;
    payload.request.checks.password.password = PASSWORD;
    payload.response.sessionToken = NEW_SESSION_TOKEN;
  });
  const signature = signPayload(body, SIGNING_KEY);
  const head = (length: number, extra = '') =>
    'POST /webhooks/zitadel HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
    `ZITADEL-Signature: ${signature}\r\n${extra}Content-Length: ${length}\r\n\r\n`;

  const malformed: Record<string, string> = {
    // The first 10 bytes are a (refused) request; the rest, password included, is parsed as the next request.
    'Content-Length shorter than the body': head(10) + body,
    'a control byte in a header value': head(Buffer.byteLength(body), 'X-Note: a\u0001b\r\n') + body,
    'a space in a header name': head(Buffer.byteLength(body), 'Bad Header: x\r\n') + body,
    'a bare LF inside the headers': head(Buffer.byteLength(body)).replace('Host: 127.0.0.1\r\n', 'Host: 127.0.0.1\n') + body,
    'headers over the size limit': head(Buffer.byteLength(body), `X-Pad: ${PASSWORD.repeat(1000)}\r\n`) + body,
  };
  for (const [what, request] of Object.entries(malformed)) {
    const { response } = await exchange(port, request);
    // The last answer on the connection is the client-error one (the first case answers its 10-byte request first).
    const last = response.slice([...response.matchAll(/HTTP\/1\.1 \d{3} /g)].at(-1)?.index ?? 0);
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(last)?.[1]);
    const json = JSON.parse(last.slice(last.indexOf('\r\n\r\n') + 4));
    t.same(Object.keys(json), ['error', 'message'], `${what}: our error shape`);
    t.equal(errorCatalog[json.error as keyof typeof errorCatalog]?.status, status, `${what}: ${status} ${json.error}, a catalogue code`);
    t.ok(status === 400 || status === 431, `${what}: a client error`);
    t.notMatch(response, PASSWORD, `${what}: nothing of the request is echoed`);
  }

  const clientErrors = stack.logs.lines.filter((line) => typeof line.reason === 'string' && /^HPE_/.test(line.reason));
  t.ok(clientErrors.length >= Object.keys(malformed).length, 'each client error is logged, by its code');
  const values = everyLoggedValue(stack.logs.lines);
  assertNoSecret(t, values, {
    PASSWORD,
    SESSION_TOKEN,
    NEW_SESSION_TOKEN,
    SIGNING_KEY,
    signatureHmac: signature.split('v1=')[1]!,
    rawBody: body.slice(0, 40),
    bodyTail: body.slice(-40),
  });
});

t.test('JWE payloads at trace level: nothing decrypted, no key and no body in the logs, whatever the outcome', async (t) => {
  const web = await webKey('web-1', 'ES256');
  const stranger = await webKey('web-1', 'ES256');
  const jwks = await new JwksServer([web.jwk]).listen();
  t.teardown(() => jwks.close());
  const mine = targetKey('rsa');
  const foreign = targetKey('rsa');
  let now = Date.now();
  const stack = await startStack({
    limit: 1,
    logLevel: 'trace',
    now: () => now,
    webKeysUrl: jwks.keysUrl,
    env: () => ({ ZITADEL_PAYLOAD_TYPE: 'jwe', ZITADEL_PAYLOAD_KEYS: mine.privatePem }),
  });
  t.teardown(() => stack.close());
  const { state } = stack.simulator;
  state.seedSession({ userId: 'u', creationDate: minutesAgo(10), factors: { password: minutesAgo(10) } });
  const fresh = state.seedSession({ userId: 'u', factors: { password: new Date() } }).id;
  const json = fixtureFor('02-password.set-session', fresh, (payload) => {
    payload.request.sessionToken = SESSION_TOKEN;
    payload.request.checks.password.password = PASSWORD;
    payload.response.sessionToken = NEW_SESSION_TOKEN;
  });
  const inner = await signedBody(json, web);
  const body = await encryptedBody(inner, mine.publicKey, 'target-key-1');
  const forgedInner = await signedBody(json, stranger);

  t.equal((await stack.send(body)).statusCode, 204, 'enforced');
  t.equal((await stack.send(await encryptedBody(forgedInner, mine.publicKey, 'target-key-1'))).statusCode, 401, 'forged inner JWS');
  t.equal((await stack.send(await encryptedBody(json, mine.publicKey, 'target-key-1'))).statusCode, 401, 'bare JSON plaintext');
  t.equal((await stack.send(await encryptedBody(inner, foreign.publicKey, 'target-key-2'))).statusCode, 401, 'a foreign key');
  state.injectFault('*', { code: Code.PermissionDenied, times: 1, message: 'denied' });
  t.equal((await stack.send(body)).statusCode, 502, 'ZITADEL refused');
  jwks.failWith = 500;
  now += 6000; // past the 5 s between two fetches of the web keys
  t.equal((await stack.send(await encryptedBody(await signedBody(json, { ...web, kid: 'web-2' }), mine.publicKey, 'k'))).statusCode, 503, 'JWKS down');

  t.ok(stack.logs.lines.some((line) => line.event === 'session.evicted'), 'the logs were captured');
  const values = everyLoggedValue(stack.logs.lines);
  t.ok(values.length > 50, 'every value of every line is looked at');
  const keyBody = mine.privatePem.split('\n').slice(1, -2).join('');
  assertNoSecret(t, values, {
    PASSWORD,
    SESSION_TOKEN,
    NEW_SESSION_TOKEN,
    SIGNING_KEY,
    plaintextJson: json.slice(0, 40),
    innerJwsPayload: inner.split('.')[1]!.slice(0, 40),
    innerJwsSignature: inner.split('.')[2]!.slice(0, 40),
    jweCiphertext: body.split('.')[3]!.slice(0, 40),
    jweEncryptedKey: body.split('.')[1]!.slice(0, 40),
    privateKey: keyBody.slice(0, 40),
    privateKeyTail: keyBody.slice(-40),
  });
});

t.test('the check itself finds secrets however they are logged', async (t) => {
  const lines = [{ nested: { raw: { type: 'Buffer', data: [...Buffer.from(`x${PASSWORD}x`)] } } }, { body: JSON.stringify({ p: PASSWORD }) }];
  const values = everyLoggedValue(lines);
  t.ok(values.some((value) => value.includes(PASSWORD)), 'a Buffer, decoded');
  t.equal(values.filter((value) => value.includes(PASSWORD)).length, 2, 'and a JSON string');
});

function assertNoSecret(t: Test, values: string[], secrets: Record<string, string>): void {
  for (const [name, secret] of Object.entries(secrets)) {
    const forms = [secret, Buffer.from(secret).toString('hex'), Buffer.from(secret).toString('base64')];
    t.notOk(values.some((value) => forms.some((form) => value.includes(form))), `${name} is not in the logs, in any form`);
  }
}

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
    } else if (value !== undefined && value !== null) out.push(JSON.stringify(value)); // a number or a boolean (parsed JSON)
  };
  lines.forEach(walk);
  return out;
}
