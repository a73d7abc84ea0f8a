import fc from 'fast-check';
import t from 'tap';
import { signPayload } from '../../src/signature/sign.js';
import { fixtureFor, fixtureNames } from '../helpers/payloads.js';
import { minutesAgo, SIGNING_KEY, startStack } from '../helpers/stack.js';

/**
 * Seeded fuzzing of the public endpoint: random and mutated bodies, headers, content types, sizes and signature
 * headers. Never a 5xx, never a crash, never a ZITADEL call without a valid signature; a valid request right after
 * still works.
 */

const RUNS = 3000;
const SEED = 20_261_128;

const contentTypes = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'APPLICATION/JSON',
  'application/json;charset=latin1',
  'application/jsonx',
  'application/problem+json',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  '',
  undefined,
);

const printable = (max: number) => fc.stringMatching(new RegExp(`^[\\x20-\\x7e]{0,${max}}$`));

/** Bodies: fixtures, mutated fixtures (flipped, cut, spliced bytes), random JSON, random bytes, and big ones. */
const bodies = fc.oneof(
  fc.constantFrom(...fixtureNames()).map((name) => Buffer.from(fixtureFor(name, '300000000000000100'))),
  fc
    .tuple(fc.constantFrom(...fixtureNames()), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'cut', 'insert')), { maxLength: 6 }))
    .map(([name, edits]) => {
      let bytes = Buffer.from(fixtureFor(name, '300000000000000100'));
      for (const [at, value, kind] of edits) {
        const i = at % Math.max(1, bytes.length);
        if (kind === 'flip') bytes[i] = value;
        else if (kind === 'cut') bytes = bytes.subarray(0, i);
        else bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from([value]), bytes.subarray(i)]);
      }
      return bytes;
    }),
  fc.jsonValue().map((value) => Buffer.from(JSON.stringify(value) ?? 'null')),
  fc
    .record({ fullMethod: fc.oneof(fc.constantFrom('/zitadel.session.v2.SessionService/CreateSession', '/zitadel.session.v2.SessionService/SetSession'), printable(60)), request: fc.jsonValue(), response: fc.jsonValue() })
    .map((value) => Buffer.from(JSON.stringify(value))),
  fc.uint8Array({ maxLength: 4096 }).map((bytes) => Buffer.from(bytes)),
  fc.integer({ min: 200_000, max: 400_000 }).map((size) => Buffer.alloc(size, '{'.charCodeAt(0))),
);

type SignatureKind = 'valid' | 'none' | 'garbage' | 'wrong-key' | 'stale' | 'future' | 'other-body' | 'shape';
const signatures = fc.constantFrom<SignatureKind>('valid', 'valid', 'none', 'garbage', 'wrong-key', 'stale', 'future', 'other-body', 'shape');

function signatureFor(kind: SignatureKind, body: Buffer, garbage: string, hex: string): string | undefined {
  const now = Math.floor(Date.now() / 1000);
  switch (kind) {
    case 'valid':
      return signPayload(body, SIGNING_KEY, { timestamp: now });
    case 'none':
      return undefined;
    case 'garbage':
      return garbage;
    case 'wrong-key':
      return signPayload(body, 'not-the-key', { timestamp: now });
    case 'stale':
      return signPayload(body, SIGNING_KEY, { timestamp: now - 3600 });
    case 'future':
      return signPayload(body, SIGNING_KEY, { timestamp: now + 3600 });
    case 'other-body':
      return signPayload(Buffer.concat([body, Buffer.from(' ')]), SIGNING_KEY, { timestamp: now });
    case 'shape':
      return `t=${now},v1=${hex}`;
  }
}

t.test(`${RUNS} seeded fuzz cases: no 5xx, no crash, no ZITADEL call without a valid signature`, async (t) => {
  const stack = await startStack({ limit: 2, env: () => ({ LOG_LEVEL: 'silent' }) });
  t.teardown(() => stack.close());
  const { state } = stack.simulator;
  let withValidSignature = 0;
  const statuses = new Map<number, number>();

  await fc.assert(
    fc.asyncProperty(bodies, contentTypes, signatures, printable(120), fc.stringMatching(/^[0-9a-f]{0,80}$/), fc.boolean(), async (body, contentType, kind, garbage, hex, duplicateHeader) => {
      const before = state.calls.length;
      const signature = signatureFor(kind, body, garbage, hex);
      const headers: Record<string, string | string[]> = {};
      if (contentType !== undefined) headers['content-type'] = contentType;
      if (signature !== undefined) headers['zitadel-signature'] = duplicateHeader ? [signature, signature] : signature;
      const response = await stack.app.inject({ method: 'POST', url: '/webhooks/zitadel', headers, payload: body });
      statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
      // A repeated header holding the same valid signature still carries it.
      const validlySigned = kind === 'valid';
      if (validlySigned) withValidSignature += 1;
      if (response.statusCode >= 500) throw new Error(`${response.statusCode} ${response.body}`);
      if (!validlySigned && state.calls.length !== before) throw new Error(`a ZITADEL call without a valid signature (${kind})`);
      if (response.statusCode !== 204 && response.statusCode !== 200) {
        const error = response.json() as { error?: string; message?: string };
        if (!/^ERR_[A-Z_]+$/.test(error.error ?? '') || !error.message) throw new Error(`an error without a code: ${response.body}`);
      }
    }),
    { numRuns: RUNS, seed: SEED },
  );
  t.ok(withValidSignature > RUNS / 10, `${withValidSignature} cases carried a valid signature`);
  t.ok(statuses.has(204) && statuses.has(401) && statuses.has(400) && statuses.has(415) && statuses.has(413), `statuses seen: ${JSON.stringify([...statuses])}`);

  // And the service answers a valid request right after.
  const old = state.seedSession({ userId: 'after', creationDate: minutesAgo(30), factors: { password: minutesAgo(30) } }).id;
  state.seedSession({ userId: 'after', creationDate: minutesAgo(20), factors: { password: minutesAgo(20) } });
  const fresh = state.seedSession({ userId: 'after', factors: { password: new Date() } }).id;
  t.equal((await stack.send(fixtureFor('02-password.set-session', fresh))).statusCode, 204);
  t.notOk(state.sessions.has(old), 'and enforces');
});
