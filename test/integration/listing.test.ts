import t, { type Test } from 'tap';
import { ZitadelSimulator, DEFAULT_SIMULATOR_TOKEN } from '../../src/simulator/index.js';
import { PersonalAccessToken } from '../../src/zitadel/credentials.js';
import { ZitadelConnection } from '../../src/zitadel/connection.js';
import { ZitadelSessionDirectory } from '../../src/zitadel/session-directory.js';

/** A directory with small pages against a simulator whose projection is always current. */
async function setup(t: Test, seed: number) {
  const simulator = new ZitadelSimulator({ projectionMode: 'immediate', seed });
  await simulator.listen();
  t.teardown(() => simulator.close());
  const connection = new ZitadelConnection({ baseUrl: simulator.url, credentials: new PersonalAccessToken(DEFAULT_SIMULATOR_TOKEN) });
  t.teardown(() => connection.close());
  return { state: simulator.state, directory: new ZitadelSessionDirectory(connection.transport, { pageSize: 3 }) };
}

for (const seed of [1, 2, 3, 4, 5]) {
  t.test(`a session deleted between two pages makes no other session disappear (seed ${seed})`, async (t) => {
    const { state, directory } = await setup(t, seed);
    const at = new Date('2026-11-30T10:00:00Z');
    // Ties: pairs of sessions share a creation instant, and the simulator orders ties differently on every call.
    const ids = [0, 0, 1, 1, 2, 2, 3, 4, 4, 5].map((minute, i) =>
      state.seedSession({ userId: 'u', creationDate: new Date(at.getTime() + minute * 60_000), creationMicros: 0, factors: { password: at }, id: `s${i}` }).id,
    );
    state.seedSession({ userId: 'other', creationDate: at, factors: { password: at } });
    // After the first page, another login's enforcement deletes one of the sessions already listed.
    let pages = 0;
    state.afterCall.push((call) => {
      if (call.method === 'ListSessions' && ++pages === 1) state.terminate('s0');
    });
    const listed = await directory.listUserSessions('u');
    const seen = listed.map((session) => session.id);
    t.equal(new Set(seen).size, seen.length, 'no session listed twice');
    t.same(
      seen.filter((id) => id !== 's0').sort(),
      ids.filter((id) => id !== 's0').sort(),
      'every session that still exists was listed, whatever the order of ties',
    );
    t.ok(listed.every((session) => session.userId === 'u'), 'only the user\'s sessions');
  });
}

for (const seed of [7, 8, 9, 10]) {
  t.test(`more sessions in one creation instant than a page holds: all of them, or a clear error, never a gap (seed ${seed})`, async (t) => {
    const { state, directory } = await setup(t, seed);
    const at = new Date('2026-11-30T10:00:00Z');
    const ids = Array.from({ length: 5 }, () => state.seedSession({ userId: 'u', creationDate: at, creationMicros: 0, factors: { password: at } }).id);
    const outcome = await directory.listUserSessions('u').then(
      (listed) => listed.map((session) => session.id).sort(),
      (error: Error) => error.message,
    );
    if (typeof outcome === 'string') t.match(outcome, /share one creation time: they cannot be paged through/);
    else t.same(outcome, ids.sort(), 'every session, none twice');
  });
}
