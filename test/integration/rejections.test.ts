import t, { type Test } from 'tap';
import { buildApp } from '../../src/app.js';
import { LARGE_BODY_MAX_BYTES } from '../../src/routes.js';
import { createLogger } from '../../src/logger.js';
import { signPayload } from '../../src/signature/sign.js';
import { LogCapture, SIGNING_KEY } from '../helpers/stack.js';

/**
 * What the README and docs/observability.md say about refused webhooks: the content type (415) and the size (413)
 * are answered before the signature is looked at, and a rejection is logged at debug, with a warning the first time
 * its code is seen in a minute.
 */
async function app(t: Test) {
  const logs = new LogCapture();
  let now = Date.UTC(2026, 0, 1);
  const enforced: string[] = [];
  const instance = buildApp({
    logger: createLogger('debug', logs),
    now: () => now,
    signingKeys: [SIGNING_KEY],
    signatureToleranceSeconds: 300,
    enforcer: {
      enforce: async (sessionId: string) => {
        enforced.push(sessionId);
        throw new Error('the enforcer must not be reached by a refused request');
      },
    },
  });
  await instance.ready();
  t.teardown(() => instance.close());
  const rejected = () => logs.lines.filter((line) => line.msg === 'webhook rejected').map((line) => [line.level, line.code]);
  return { app: instance, logs, enforced, rejected, advance: (ms: number) => (now += ms), now: () => now };
}

t.test('415 and 413 are answered before the signature check: with no signature, a bad signature or a good one', async (t) => {
  const { app: instance, enforced, now } = await app(t);
  const big = Buffer.alloc(LARGE_BODY_MAX_BYTES + 1, 0x20);
  const headersFor = (body: string | Buffer) => ({
    none: {},
    forged: { 'zitadel-signature': `t=${Math.floor(now() / 1000)},v1=${'0'.repeat(64)}` },
    valid: { 'zitadel-signature': signPayload(body.toString(), SIGNING_KEY, { timestamp: Math.floor(now() / 1000) }) },
  });
  for (const [kind, signature] of Object.entries(headersFor('a=b'))) {
    const response = await instance.inject({
      method: 'POST',
      url: '/webhooks/zitadel',
      headers: { 'content-type': 'text/plain', ...signature },
      payload: 'a=b',
    });
    t.equal(response.statusCode, 415, `text/plain, ${kind} signature: 415`);
    t.equal(response.json().error, 'ERR_UNSUPPORTED_MEDIA_TYPE');
  }
  for (const [kind, signature] of Object.entries(headersFor(big))) {
    const response = await instance.inject({
      method: 'POST',
      url: '/webhooks/zitadel',
      headers: { 'content-type': 'application/json', ...signature },
      payload: big,
    });
    t.equal(response.statusCode, 413, `over the body limit, ${kind} signature: 413`);
    t.equal(response.json().error, 'ERR_BODY_TOO_LARGE');
  }
  const unsigned = await instance.inject({ method: 'POST', url: '/webhooks/zitadel', headers: { 'content-type': 'application/json' }, payload: '{}' });
  t.equal(unsigned.json().error, 'ERR_SIGNATURE_MISSING', 'a JSON body of an allowed size is then checked for its signature');
  t.same(enforced, [], 'nothing reached the enforcer');
});

t.test('a rejection is logged at debug, with a warning the first time its code is seen in a minute', async (t) => {
  const { app: instance, rejected, advance } = await app(t);
  const unsigned = () => instance.inject({ method: 'POST', url: '/webhooks/zitadel', headers: { 'content-type': 'application/json' }, payload: '{}' });
  const wrongType = () => instance.inject({ method: 'POST', url: '/webhooks/zitadel', headers: { 'content-type': 'text/plain' }, payload: 'x' });

  await unsigned();
  await unsigned();
  await wrongType();
  await wrongType();
  t.same(rejected(), [
    [40, 'ERR_SIGNATURE_MISSING'],
    [20, 'ERR_SIGNATURE_MISSING'],
    [40, 'ERR_UNSUPPORTED_MEDIA_TYPE'],
    [20, 'ERR_UNSUPPORTED_MEDIA_TYPE'],
  ], 'one warning per code, then debug');

  advance(59_999);
  await unsigned();
  advance(1);
  await unsigned();
  await unsigned();
  t.same(rejected().slice(4), [
    [20, 'ERR_SIGNATURE_MISSING'],
    [40, 'ERR_SIGNATURE_MISSING'],
    [20, 'ERR_SIGNATURE_MISSING'],
  ], 'a minute after the last warning, the next rejection of that code warns again');
  t.notOk(rejected().some(([level]) => level === 30), 'never at info');
});
