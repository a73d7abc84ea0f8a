import { Code, ConnectError } from '@connectrpc/connect';
import { createServerTransport } from '@zitadel/client/node';
import { createSessionServiceClient } from '@zitadel/client/v2';
import { SessionFieldName } from '@zitadel/proto/zitadel/session/v2/session_pb.js';
import t, { type Test } from 'tap';
import { ZitadelSimulator } from '../../src/simulator/index.js';
import { ZitadelConnection } from '../../src/zitadel/connection.js';
import { PersonalAccessToken } from '../../src/zitadel/credentials.js';
import { ZitadelCallError, ZitadelSessionDirectory } from '../../src/zitadel/session-directory.js';
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

t.test('ListSessions is stale until a GetSession brings the projection up to date', async (t) => {
  const { state, directory } = await withSimulator(t);
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

t.test('projection lag: a write becomes visible on its own after the lag', async (t) => {
  const { state, directory } = await withSimulator(t, { projectionMode: 20 });
  const d = directory();
  state.seedSession({ userId: 'u1' });
  t.equal((await d.listUserSessions('u1')).length, 0);
  await new Promise((resolve) => setTimeout(resolve, 60));
  t.equal((await d.listUserSessions('u1')).length, 1);
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
  t.same(state.calls.filter((c) => c.method === 'ListSessions').map((c) => [c.offset, c.limit]), [[0, 10], [10, 10], [20, 10]]);
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
