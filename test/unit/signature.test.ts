import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { signPayload } from '../../src/signature/sign.js';
import { parseSignatureHeader, SignatureError, verifySignature } from '../../src/signature/verify.js';
import { toServiceError } from '../../src/error-map.js';

interface Vector {
  name: string;
  signingKeys: string[];
  timestamp: number;
  bodyBase64: string;
  header: string;
  verifyKey: string;
  valid: boolean;
}

// ZITADEL's signature vectors (made by ZITADEL's own signing code), kept in the repository so that a clone tests on
// its own. The digest pins the file as it was taken: an edit to a vector must be deliberate (and change it here).
const COPY = new URL('../fixtures/zitadel-signature-vectors.json', import.meta.url);
const VECTORS_SHA256 = '88f5c788425b49419996df9c1488788250ac4544c1d18bd425a6ae6811b49fce';
const vectors: Vector[] = JSON.parse(readFileSync(COPY, 'utf8'));

t.test('the vectors are the ones taken from ZITADEL, unchanged', async (t) => {
  t.equal(createHash('sha256').update(readFileSync(COPY)).digest('hex'), VECTORS_SHA256);
});

/** The test's own oracle: the HMAC computed here, independently of the code under test. */
const oracle = (key: string, timestamp: number, body: string | Buffer) =>
  createHmac('sha256', Buffer.from(key, 'utf8'))
    .update(Buffer.concat([Buffer.from(`${timestamp}.`), Buffer.isBuffer(body) ? body : Buffer.from(body)]))
    .digest('hex');

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (error) {
    // The verdict is the signature module's own (no HTTP); the edge's one error map gives the catalogue code.
    return error instanceof SignatureError ? toServiceError(error).code : `not a SignatureError: ${String(error)}`;
  }
};

t.test('every conformance vector gets ZITADEL\'s verdict', async (t) => {
  t.ok(vectors.length >= 10, 'the vectors are there');
  for (const vector of vectors) {
    const body = Buffer.from(vector.bodyBase64, 'base64');
    const code = codeOf(() =>
      verifySignature({
        body,
        header: vector.header,
        keys: [vector.verifyKey],
        toleranceSeconds: 300,
        now: vector.timestamp * 1000,
      }),
    );
    t.equal(code === undefined, vector.valid, `${vector.name}: ${code ?? 'accepted'}`);
  }
});

t.test('signPayload reproduces ZITADEL\'s headers for the valid vectors', async (t) => {
  for (const vector of vectors.filter((v) => v.valid && !v.header.includes('zz') && !v.header.includes('v0='))) {
    const body = Buffer.from(vector.bodyBase64, 'base64');
    t.equal(signPayload(body, vector.signingKeys, { timestamp: vector.timestamp }), vector.header, vector.name);
  }
});

t.test('the first vector keeps Go\'s escaping: verify the raw bytes, never a re-serialisation', async (t) => {
  const vector = vectors[0]!;
  const raw = Buffer.from(vector.bodyBase64, 'base64');
  t.match(raw.toString('utf8'), /\\u003c/, 'the body holds Go-escaped characters');
  const reserialised = Buffer.from(JSON.stringify(JSON.parse(raw.toString('utf8'))));
  t.not(reserialised.toString(), raw.toString(), 'JSON.stringify changes the bytes');
  const verify = (body: Buffer) =>
    codeOf(() => verifySignature({ body, header: vector.header, keys: [vector.verifyKey], toleranceSeconds: 300, now: vector.timestamp * 1000 }));
  t.equal(verify(raw), undefined);
  t.equal(verify(reserialised), 'ERR_SIGNATURE_MISMATCH');
});

t.test('sign matches an independent HMAC', async (t) => {
  const body = '{"fullMethod":"x","a":"Zürich \\u003c"}';
  const header = signPayload(body, ['key-one', 'key-two'], { timestamp: 1_767_225_600 });
  t.equal(header, `t=1767225600,v1=${oracle('key-one', 1_767_225_600, body)},v1=${oracle('key-two', 1_767_225_600, body)}`);
  t.throws(() => signPayload(body, []), TypeError);
});

t.test('each failure has its own code', async (t) => {
  const body = Buffer.from('{"fullMethod":"x"}');
  const now = 1_767_225_600_000;
  const at = (offsetSeconds: number) => Math.floor(now / 1000) + offsetSeconds;
  const verify = (header: string | undefined, options: { keys?: string[]; tolerance?: number } = {}) =>
    codeOf(() =>
      verifySignature({ body, header, keys: options.keys ?? ['key'], toleranceSeconds: options.tolerance ?? 300, now }),
    );
  const good = (offset = 0, key = 'key') => `t=${at(offset)},v1=${oracle(key, at(offset), body)}`;

  t.equal(verify(good()), undefined, 'a fresh signature passes');
  t.equal(verify(undefined), 'ERR_SIGNATURE_MISSING');
  t.equal(verify(''), 'ERR_SIGNATURE_MISSING');
  t.equal(verify('garbage'), 'ERR_SIGNATURE_MALFORMED');
  t.equal(verify(`t=${at(0)}`), 'ERR_SIGNATURE_MALFORMED', 'no v1');
  t.equal(verify(`v1=${oracle('key', at(0), body)}`), 'ERR_SIGNATURE_MALFORMED', 'no t');
  t.equal(verify(`t=1.5,v1=${oracle('key', at(0), body)}`), 'ERR_SIGNATURE_MALFORMED', 'fractional t');
  t.equal(verify(`t=${at(0)},v1=a=b`), 'ERR_SIGNATURE_MALFORMED', 'two "=" in one pair');
  t.equal(verify(good(), { keys: ['other'] }), 'ERR_SIGNATURE_MISMATCH');
  t.equal(verify(`t=${at(0)},v1=${oracle('key', at(0), body).slice(0, 62)}`), 'ERR_SIGNATURE_MISMATCH', 'truncated hex');
  t.equal(verify(`t=${at(0)},v1=${oracle('key', at(0) + 1, body)}`), 'ERR_SIGNATURE_MISMATCH', 'signed at another t');
  t.equal(verify(good(-300)), undefined, 'exactly at the tolerance');
  t.equal(verify(good(-301)), 'ERR_SIGNATURE_STALE');
  t.equal(verify(good(-11), { tolerance: 10 }), 'ERR_SIGNATURE_STALE', 'tolerance is configurable');
  t.equal(verify(good(60)), undefined, '60 s of clock skew into the future is allowed');
  t.equal(verify(good(61)), 'ERR_SIGNATURE_FUTURE');
  t.equal(verify(good(6), { tolerance: 5 }), 'ERR_SIGNATURE_FUTURE', 'the future bound never exceeds the tolerance');
  t.equal(verify(good(0).toUpperCase().replace('T=', 't=').replace('V1=', 'v1=')), undefined, 'upper-case hex');
});

t.test('rotation: any configured key may match any v1 entry', async (t) => {
  const body = Buffer.from('{}');
  const now = Date.now();
  const ts = Math.floor(now / 1000);
  const header = `t=${ts},v1=${oracle('old', ts, body)}`;
  t.doesNotThrow(() => verifySignature({ body, header, keys: ['new', 'old'], toleranceSeconds: 300, now }));
  const both = signPayload(body, ['new', 'old'], { timestamp: ts });
  t.doesNotThrow(() => verifySignature({ body, header: both, keys: ['old'], toleranceSeconds: 300, now }));
});

t.test('dangerous settings are impossible, not merely documented', async (t) => {
  const body = Buffer.from('{}');
  const header = signPayload(body, 'k');
  t.throws(() => verifySignature({ body, header, keys: ['k'], toleranceSeconds: 0 }), RangeError, 'tolerance 0 never means "skip"');
  t.throws(() => verifySignature({ body, header, keys: [], toleranceSeconds: 300 }), RangeError);
});

t.test('parseSignatureHeader skips non-hex v1 entries and ignores other names', async (t) => {
  const parsed = parseSignatureHeader('t=10,v1=zz,v0=ab,v1=abcd');
  t.equal(parsed.timestamp, 10);
  t.same(parsed.signatures.map((b) => b.toString('hex')), ['abcd']);
});
