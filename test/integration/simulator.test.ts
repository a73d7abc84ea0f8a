import { create } from '@bufbuild/protobuf';
import { TimestampSchema, type Timestamp } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import { createServerTransport } from '@zitadel/client/node';
import { createSessionServiceClient } from '@zitadel/client/v2';
import { TimestampQueryMethod } from '@zitadel/proto/zitadel/object/v2/object_pb.js';
import { SessionFieldName } from '@zitadel/proto/zitadel/session/v2/session_pb.js';
import t, { type Test } from 'tap';
import { ZitadelSimulator } from '../../src/simulator/index.js';
import { ZitadelConnection } from '../../src/zitadel/connection.js';
import { PersonalAccessToken } from '../../src/zitadel/credentials.js';
import { ZitadelCallError } from '../../src/zitadel/failures.js';
import { ZitadelSessionDirectory } from '../../src/zitadel/session-directory.js';
import { minutesAgo } from '../helpers/stack.js';

async function withSimulator(t: Test, options: ConstructorParameters<typeof ZitadelSimulator>[0] = {}) {
  const simulator = new ZitadelSimulator(options);
  await simulator.listen();
  const connections: ZitadelConnection[] = [];
  const directory = (token = 'simulator-token', pageSize?: number) => {
    const connection = new ZitadelConnection({ baseUrl: simulator.url, credentials: new PersonalAccessToken(token), timeoutMs: 2000 });
    connections.push(connection);
    return new ZitadelSessionDirectory(connection.transport, { pageSize });
  };
  t.teardown(async () => {
    for (const connection of connections) connection.close();
    await simulator.close();
  });
  return { simulator, state: simulator.state, directory };
}

const grpcCode = async (promise: Promise<unknown>) => {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    return Code[error instanceof ZitadelCallError ? error.grpcCode : ConnectError.from(error).code];
  }
};

t.test('with projectionMode until-read, ListSessions is stale until a GetSession brings the projection up to date', async (t) => {
  const { state, directory } = await withSimulator(t, { projectionMode: 'until-read' });
  const d = directory();
  const first = state.seedSession({ userId: 'u1', factors: { password: new Date() } });
  t.same(await d.listUserSessions('u1'), [], 'a fresh write is not listed yet');
  t.equal((await d.getSession(first.id))?.id, first.id, 'GetSession sees it');
  t.same((await d.listUserSessions('u1')).map((s) => s.id), [first.id], 'now it is listed');
  await d.deleteSession(first.id);
  t.same((await d.listUserSessions('u1')).map((s) => s.id), [first.id], 'a deleted session is still listed');
  t.equal(await d.getSession(first.id), undefined, 'unknown session: NotFound becomes undefined');
  t.same(await d.listUserSessions('u1'), [], 'gone after the projection update');
});

t.test('by default the projection lags 100 ms: a write is listed once the lag has passed, or at once after a GetSession', async (t) => {
  let clock = Date.parse('2026-01-01T00:00:00.000Z');
  const { state, directory } = await withSimulator(t, { now: () => new Date(clock) });
  const d = directory();
  const listed = async () => (await d.listUserSessions('u1')).map((s) => s.id).sort();
  const first = state.seedSession({ userId: 'u1', factors: { password: new Date(clock) } });
  t.same(await listed(), [], 'a fresh write is not listed at once');
  clock += 99;
  t.same(await listed(), [], 'nor 99 ms later');
  clock += 1;
  t.same(await listed(), [first.id], 'listed once the lag has passed, with no GetSession');

  const second = state.seedSession({ userId: 'u1', factors: { password: new Date(clock) } });
  t.equal((await d.getSession(second.id))?.id, second.id);
  t.same(await listed(), [first.id, second.id].sort(), 'a GetSession brings the projection up to date at once');

  await d.deleteSession(first.id);
  t.same(await listed(), [first.id, second.id].sort(), 'a deletion is not seen at once');
  clock += 100;
  t.same(await listed(), [second.id], 'but after the lag');
});

t.test('projection lag applies writes in order: a session written twice shows its first write first', async (t) => {
  let clock = Date.parse('2026-01-01T00:00:00.000Z');
  const { state, directory } = await withSimulator(t, { now: () => new Date(clock), projectionMode: 100 });
  const d = directory();
  const session = state.seedSession({ userId: 'u1', factors: { password: new Date(clock) } });
  const firstVerifiedAt = clock;
  clock += 50;
  state.reauthenticate(session.id);
  clock += 50;
  const [early] = await d.listUserSessions('u1');
  t.equal(Math.round(early!.verifiedAt.password!), firstVerifiedAt, 'the first write is visible, the re-authentication not yet');
  clock += 50;
  const [late] = await d.listUserSessions('u1');
  t.equal(Math.round(late!.verifiedAt.password!), firstVerifiedAt + 50, 'then the re-authentication');
});

t.test('DeleteSession is idempotent; expired sessions are listed with their dates', async (t) => {
  const { state, directory } = await withSimulator(t, { projectionMode: 'immediate' });
  const d = directory();
  await d.deleteSession('does-not-exist');
  const expired = state.seedSession({ userId: 'u1', factors: { password: minutesAgo(90) }, expirationDate: minutesAgo(30) });
  await d.deleteSession(state.seedSession({ userId: 'u1' }).id);
  const listed = await d.listUserSessions('u1');
  t.same(listed.map((s) => s.id), [expired.id]);
  t.equal(Math.round(listed[0]!.expiresAt!), expired.expirationDate!.getTime());
  t.ok(listed[0]!.verifiedAt.password, 'verifiedAt per factor');
  t.same(state.calls.map((c) => [c.method, c.code]), [
    ['DeleteSession', 'ok'],
    ['DeleteSession', 'ok'],
    ['ListSessions', 'ok'],
  ]);
});

t.test('paging: the directory reads every page; limits over 1000 are rejected', async (t) => {
  const { state, simulator, directory } = await withSimulator(t, { projectionMode: 'immediate' });
  for (let i = 0; i < 25; i++) state.seedSession({ userId: 'u1', creationDate: minutesAgo(100 - i) });
  state.seedSession({ userId: 'u2' });
  const listed = await directory('simulator-token', 10).listUserSessions('u1');
  t.equal(listed.length, 25);
  // Keyset paging: each page asks for the sessions created at or after the last one seen (offset 0).
  t.same(state.calls.filter((c) => c.method === 'ListSessions').map((c) => [c.offset, c.limit]), [[0, 10], [0, 10], [0, 10]]);
  const ascending = listed.map((s) => s.createdAt!);
  t.same(ascending, [...ascending].sort((a, b) => a - b), 'sorted by creation date');

  const client = createSessionServiceClient(createServerTransport('simulator-token', { baseUrl: simulator.url }));
  t.equal(await grpcCode(client.listSessions({ query: { limit: 1001 } })), 'InvalidArgument');
  const unsorted = await client.listSessions({ query: { limit: 0 }, sortingColumn: SessionFieldName.UNSPECIFIED });
  t.equal(unsorted.sessions.length, 26, 'limit 0 means the default of 100');
  t.equal(unsorted.details?.totalResult, 26n);
});

t.test('the bearer token and its permissions are checked', async (t) => {
  const { state, directory } = await withSimulator(t, {
    tokens: { reader: ['session.read'], full: ['session.read', 'session.delete'] },
  });
  const session = state.seedSession({ userId: 'u1' });
  t.equal(await grpcCode(directory('wrong').getSession(session.id)), 'Unauthenticated');
  t.equal(await grpcCode(directory('reader').deleteSession(session.id)), 'PermissionDenied');
  t.equal(await grpcCode(directory('reader').getSession(session.id)), 'ok');
  t.equal(await grpcCode(directory('full').deleteSession(session.id)), 'ok');
  t.equal(state.sessions.size, 0);
});

t.test('faults and latency can be injected', async (t) => {
  const { state, directory } = await withSimulator(t);
  const d = directory();
  state.injectFault('GetSession', { code: Code.Unavailable, times: 2 });
  t.equal(await grpcCode(d.getSession('x')), 'Unavailable');
  t.equal(await grpcCode(d.getSession('x')), 'Unavailable');
  t.equal(await d.getSession('x'), undefined, 'then it answers again (NotFound)');
  state.latencyMs.ListSessions = 30;
  const started = process.hrtime.bigint();
  await d.listUserSessions('u1');
  t.ok(Number(process.hrtime.bigint() - started) / 1e6 >= 29, 'the delay was applied');
});

/** Lists every session, oldest first, with the raw client; returns the ids in the order ZITADEL gave them. */
async function listAscending(url: string, queries: Parameters<ReturnType<typeof createSessionServiceClient>['listSessions']>[0]['queries'] = []) {
  const client = createSessionServiceClient(createServerTransport('simulator-token', { baseUrl: url }));
  const { sessions } = await client.listSessions({ query: { limit: 1000, asc: true }, queries, sortingColumn: SessionFieldName.CREATION_DATE });
  return sessions;
}

t.test('ties: sessions created at the same instant come back in an order that changes between calls, reproducibly by seed', async (t) => {
  const orders = async (seed: number) => {
    const { state, simulator } = await withSimulator(t, { projectionMode: 'immediate', seed });
    const at = new Date('2026-01-01T00:00:00.000Z');
    const before = state.seedSession({ userId: 'u', creationDate: new Date(at.getTime() - 1) }).id;
    for (let i = 0; i < 12; i++) state.seedSession({ userId: `u${i}`, creationDate: at });
    const after = state.seedSession({ userId: 'u', creationDate: new Date(at.getTime() + 1) }).id;
    const seen: string[][] = [];
    for (let call = 0; call < 5; call++) {
      const ids = (await listAscending(simulator.url)).map((s) => s.id);
      t.equal(ids[0], before, 'a strictly older session still comes first');
      t.equal(ids.at(-1), after, 'a strictly newer one last');
      seen.push(ids.slice(1, -1));
    }
    return seen.map((ids) => ids.join());
  };
  const first = await orders(7);
  t.ok(new Set(first).size > 1, 'the order of ties differs between calls');
  t.same(await orders(7), first, 'the same seed gives the same orders');
});

t.test('a fixed clock gives sessions created over gRPC identical creation timestamps (ties a test can produce)', async (t) => {
  const fixed = new Date('2026-01-01T00:00:00.000Z');
  const { state, simulator } = await withSimulator(t, { projectionMode: 'immediate', now: () => fixed });
  const user = state.addUser({ loginName: 'a@example.com', password: 'pw' });
  const client = createSessionServiceClient(createServerTransport('simulator-token', { baseUrl: simulator.url }));
  for (let i = 0; i < 3; i++) await client.createSession({ checks: { user: { search: { case: 'userId', value: user.id } }, password: { password: 'pw' } } });
  const created = (await listAscending(simulator.url)).map((s) => `${s.creationDate?.seconds}.${s.creationDate?.nanos}`);
  t.equal(created.length, 3);
  t.equal(new Set(created).size, 1, 'one creation timestamp for all three');
});

t.test('creation dates carry microseconds, and creationDateQuery compares them exactly (GREATER_OR_EQUALS a listed timestamp)', async (t) => {
  const { state, simulator } = await withSimulator(t, { projectionMode: 'immediate' });
  const ms = new Date('2026-01-01T00:00:00.123Z');
  const early = state.seedSession({ userId: 'u', creationDate: ms, creationMicros: 456 }).id;
  const late = state.seedSession({ userId: 'u', creationDate: ms, creationMicros: 457 }).id;
  const listed = await listAscending(simulator.url);
  t.same(listed.map((s) => s.id), [early, late]);
  t.same(listed.map((s) => s.creationDate?.nanos), [123_456_000, 123_457_000], 'the timestamps hold the microseconds');
  const since = (creationDate: Timestamp, method: TimestampQueryMethod) => [
    { query: { case: 'creationDateQuery' as const, value: { creationDate, method } } },
  ];
  const at = listed[1]!.creationDate!;
  t.same((await listAscending(simulator.url, since(at, TimestampQueryMethod.GREATER_OR_EQUALS))).map((s) => s.id), [late], '>= the later one: only it');
  t.same((await listAscending(simulator.url, since(at, TimestampQueryMethod.GREATER))).map((s) => s.id), [], '> the later one: none');
  t.same((await listAscending(simulator.url, since(listed[0]!.creationDate!, TimestampQueryMethod.GREATER_OR_EQUALS))).map((s) => s.id), [early, late]);
  const subMicro = create(TimestampSchema, { seconds: at.seconds, nanos: at.nanos + 999 });
  t.same((await listAscending(simulator.url, since(subMicro, TimestampQueryMethod.GREATER_OR_EQUALS))).map((s) => s.id), [late], 'nanoseconds below a microsecond are cut off, as PostgreSQL does');
});
