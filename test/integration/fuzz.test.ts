import fc from 'fast-check';
import t from 'tap';
import { interpretPayload } from '../../src/payload.js';
import { signPayload } from '../../src/signature/sign.js';
import type { SimulatorState } from '../../src/simulator/index.js';
import { fixtureFor, fixtureNames } from '../helpers/payloads.js';
import { minutesAgo, SIGNING_KEY, startStack } from '../helpers/stack.js';

/**
 * Seeded fuzzing of the public endpoint: random and mutated bodies, headers, content types, sizes and signature
 * headers. Never a 5xx, never a crash, never a ZITADEL call without a valid signature; a valid request right after
 * still works. A share of the bodies (fixtures, some mutated) name real sessions of real users who hold more than the
 * limit, so that signed ones reach the list, the decision and the deletes: after each, the user holds at most the
 * limit when the payload asked for enforcement, and no session of another user was touched.
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
    .map(([name, edits]) => edit(Buffer.from(fixtureFor(name, '300000000000000100')), edits)),
  fc.jsonValue().map((value) => Buffer.from(JSON.stringify(value) ?? 'null')),
  fc
    .record({ fullMethod: fc.oneof(fc.constantFrom('/zitadel.session.v2.SessionService/CreateSession', '/zitadel.session.v2.SessionService/SetSession'), printable(60)), request: fc.jsonValue(), response: fc.jsonValue() })
    .map((value) => Buffer.from(JSON.stringify(value))),
  fc.uint8Array({ maxLength: 4096 }).map((bytes) => Buffer.from(bytes)),
  fc.integer({ min: 200_000, max: 400_000 }).map((size) => Buffer.alloc(size, '{'.charCodeAt(0))),
);

const LIMIT = 2;
const USERS = ['300000000000000701', '300000000000000702', '300000000000000703', '300000000000000704'];

/** A body built at run time around a live session of a real user (possibly mutated, like the others). */
interface LiveBody {
  fixture: string;
  user: number;
  pick: number;
  wellFormed: boolean;
  edits: [number, number, 'flip' | 'cut' | 'insert'][];
}
const live = fc.record({
  fixture: fc.constantFrom(...fixtureNames()),
  user: fc.nat(USERS.length - 1),
  pick: fc.nat(20),
  /** Signed with the key and sent as JSON (else the case's own signature kind and content type). */
  wellFormed: fc.boolean(),
  edits: fc.oneof(
    { weight: 3, arbitrary: fc.constant([] as LiveBody['edits']) },
    { weight: 1, arbitrary: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip' as const, 'cut' as const, 'insert' as const)), { minLength: 1, maxLength: 3 }) },
  ),
});

/** Tops the user up to LIMIT + 2 active sessions (authenticated a second apart), and picks one of them. */
let clockMs = Date.now() - 3600_000;
function liveSession(state: SimulatorState, userId: string, pick: number): string {
  while (state.activeSessionsOf(userId).length < LIMIT + 2) {
    clockMs += 1000;
    const at = new Date(clockMs);
    state.seedSession({ userId, creationDate: at, factors: { password: at } });
  }
  state.updateProjection();
  const sessions = state.activeSessionsOf(userId);
  return sessions[pick % sessions.length]!.id;
}

function edit(bytes: Buffer, edits: LiveBody['edits']): Buffer {
  for (const [at, value, kind] of edits) {
    const i = at % Math.max(1, bytes.length);
    if (kind === 'flip') bytes[i] = value;
    else if (kind === 'cut') bytes = bytes.subarray(0, i);
    else bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from([value]), bytes.subarray(i)]);
  }
  return bytes;
}

/** What the service would do with a body, if it is a payload at all (pure, no I/O). */
function wouldEnforce(body: Buffer): boolean {
  try {
    return interpretPayload(JSON.parse(body.toString('utf8'))).kind === 'enforce';
  } catch {
    return false;
  }
}

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

t.test(`${RUNS} seeded fuzz cases: no 5xx, no crash, no ZITADEL call without a valid signature; signed ones on real sessions enforce the limit and touch no other user`, async (t) => {
  const stack = await startStack({ limit: LIMIT, env: () => ({ LOG_LEVEL: 'silent' }) });
  t.teardown(() => stack.close());
  const { state } = stack.simulator;
  let withValidSignature = 0;
  let enforcedLive = 0;
  const statuses = new Map<number, number>();
  const bodyOrLive = fc.oneof({ weight: 3, arbitrary: bodies }, { weight: 2, arbitrary: live });

  await fc.assert(
    fc.asyncProperty(bodyOrLive, contentTypes, signatures, printable(120), fc.stringMatching(/^[0-9a-f]{0,80}$/), fc.boolean(), async (generated, anyContentType, anyKind, garbage, hex, duplicateHeader) => {
      let contentType = anyContentType;
      let kind = anyKind;
      let body: Buffer;
      let user: string | undefined;
      if (Buffer.isBuffer(generated)) body = generated;
      else {
        user = USERS[generated.user]!;
        if (generated.wellFormed) [contentType, kind] = ['application/json', 'valid'];
        body = edit(Buffer.from(fixtureFor(generated.fixture, liveSession(state, user, generated.pick))), generated.edits);
      }
      const sessionsBefore = new Map([...state.sessions].map(([id, session]) => [id, session.userId]));
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
      // Deleted sessions belong to the user of the session the body named, and to no one else.
      const gone = [...sessionsBefore].filter(([id]) => !state.sessions.has(id));
      const others = gone.filter(([, owner]) => owner !== user);
      if (others.length > 0) throw new Error(`sessions of another user were deleted: ${JSON.stringify(others)}`);
      if (user !== undefined && validlySigned && response.statusCode === 204 && contentType?.toLowerCase().startsWith('application/json') && wouldEnforce(body)) {
        enforcedLive += 1;
        const held = state.activeSessionsOf(user).length;
        if (held > LIMIT) throw new Error(`user ${user} holds ${held} active sessions after an enforced webhook (limit ${LIMIT})`);
      }
      if (response.statusCode !== 204 && response.statusCode !== 200) {
        const error = response.json<{ error?: string; message?: string }>();
        if (!/^ERR_[A-Z_]+$/.test(error.error ?? '') || !error.message) throw new Error(`an error without a code: ${response.body}`);
      }
    }),
    { numRuns: RUNS, seed: SEED },
  );
  t.ok(withValidSignature > RUNS / 10, `${withValidSignature} cases carried a valid signature`);
  t.ok(enforcedLive > RUNS / 20, `${enforcedLive} signed cases reached the list, the decision and the deletes of a real user over the limit`);
  const deletes = state.calls.filter((call) => call.method === 'DeleteSession' && call.code === 'ok').length;
  t.ok(deletes > RUNS / 20, `${deletes} sessions were evicted along the way`);
  t.ok(statuses.has(204) && statuses.has(401) && statuses.has(400) && statuses.has(415) && statuses.has(413), `statuses seen: ${JSON.stringify([...statuses])}`);

  // And the service answers a valid request right after.
  const old = state.seedSession({ userId: 'after', creationDate: minutesAgo(30), factors: { password: minutesAgo(30) } }).id;
  state.seedSession({ userId: 'after', creationDate: minutesAgo(20), factors: { password: minutesAgo(20) } });
  const fresh = state.seedSession({ userId: 'after', factors: { password: new Date() } }).id;
  t.equal((await stack.send(fixtureFor('02-password.set-session', fresh))).statusCode, 204);
  t.notOk(state.sessions.has(old), 'and enforces');
});
