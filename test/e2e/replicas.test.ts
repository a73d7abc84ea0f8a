import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { signPayload } from '../../src/signature/sign.js';
import { DEFAULT_SIMULATOR_TOKEN, ZitadelSimulator } from '../../src/simulator/index.js';
import { fixtureFor } from '../helpers/payloads.js';
import { runCli } from '../helpers/processes.js';
import { startRedis } from '../helpers/redis.js';
import { minutesAgo, SIGNING_KEY } from '../helpers/stack.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The built service, as the container runs it. */
function startReplica(
  env: Record<string, string>,
): Promise<{ url: string; child: ChildProcess; output: () => string; logged: (pattern: RegExp) => Promise<boolean> }> {
  const child = spawn(process.execPath, ['dist/main.js'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  /** Resolves once the output matches `pattern` (its log lines may arrive after the HTTP answer), false at exit. */
  const logged = (pattern: RegExp) =>
    new Promise<boolean>((resolve) => {
      const check = () => {
        if (!pattern.test(output)) return;
        child.stdout.off('data', check);
        resolve(true);
      };
      child.stdout.on('data', check);
      child.once('exit', () => resolve(pattern.test(output)));
      check();
    });
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
      if (url && output.includes('Redis connected')) resolve({ url, child, output: () => output, logged });
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`replica exited ${code}: ${output}`)));
  });
}

const run = (args: string[], env: Record<string, string>) => runCli(args, env);

t.test('two service processes sharing one Redis: 20 logins of one user at once, with projection lag', async (t) => {
  // npm test builds before running the tests; building here too could race another file's `npm start`.
  t.ok(existsSync(new URL('../../dist/main.js', import.meta.url)), 'dist/ is built (npm test builds first)');
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  // Projection lag: ListSessions sees a write only after a GetSession (ZITADEL's behaviour), not after a delay.
  const simulator = new ZitadelSimulator({ projectionMode: 'until-read' });
  await simulator.listen();
  t.teardown(() => simulator.close());
  const { state } = simulator;
  const env = {
    ZITADEL_URL: simulator.url,
    ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN,
    ZITADEL_SIGNING_KEYS: SIGNING_KEY,
    SESSION_LIMIT: '3',
    REDIS_URL: redis.url,
    PORT: '0',
    HOST: '127.0.0.1',
  };
  const replicas = await Promise.all([startReplica(env), startReplica(env)]);
  t.teardown(() => replicas.forEach((replica) => replica.child.kill('SIGKILL')));

  const logins = Array.from({ length: 20 }, (_, i) => {
    const at = new Date(minutesAgo(5).getTime() + i * 1000);
    return state.seedSession({ userId: 'u', creationDate: at, factors: { password: at } }).id;
  });
  const responses = await Promise.all(
    logins.map((id, i) => {
      const body = fixtureFor('02-password.set-session', id);
      return fetch(`${replicas[i % 2]!.url}/webhooks/zitadel`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'zitadel-signature': signPayload(body, SIGNING_KEY) },
        body,
      });
    }),
  );
  t.same([...new Set(responses.map((r) => r.status))], [204]);
  const final = state.activeSessionsOf('u').map((s) => s.id).sort();
  t.same(final, logins.slice(-3).sort(), 'exactly the limit remains: the most recently authenticated');
  const deleted = new Set(state.calls.filter((c) => c.method === 'DeleteSession').map((c) => c.sessionId));
  t.notOk(final.some((id) => deleted.has(id)), 'no session of the final set was ever deleted');
  // Each replica handled its webhooks (coalesced per user: a trigger evicted by the other replica meanwhile reads as
  // session-not-found, which is right). Log lines may arrive after the answers: wait for them, not for a time.
  t.same(
    await Promise.all(replicas.map((replica) => replica.logged(/"outcome":"(enforced|session-not-found)"/))),
    [true, true],
    'both replicas enforced',
  );
  t.ok(replicas.every((replica) => !replica.output().includes('without the cross-replica lock')), 'both held the Redis lock');

  // The repair sweep, from the command line, with the same configuration.
  for (let u = 0; u < 30; u++) for (let i = 0; i < 5; i++) state.seedSession({ userId: `r${u}`, creationDate: minutesAgo(50 - i), factors: { password: minutesAgo(50 - i) } });
  state.updateProjection();
  const one = await run(['enforce', '--user', 'r0'], env);
  t.equal(one.code, 0, one.stderr);
  t.notMatch(one.stderr, /without the cross-replica lock/, 'no warning: Redis was used');
  t.equal(one.stderr.split('\n').filter((line) => line.includes('"event":"session.evicted"')).length, 2, 'one audit line per eviction');
  t.match(one.stdout, /user r0: 5 active; evicted 2/);
  // ZITADEL's projection catches up with those deletes (an event, not a wait).
  state.syncProjection();
  const dry = await run(['enforce', '--all', '--dry-run', '--json'], env);
  t.equal(dry.code, 0, dry.stderr);
  t.match(JSON.parse(dry.stdout), { usersChecked: 31, evicted: 29 * 2, dryRun: true, failures: [] });
  const all = await run(['enforce', '--all', '--concurrency', '8', '--created-since', '2h'], env);
  t.equal(all.code, 0, all.stderr);
  t.match(all.stdout, /users checked: 31, sessions seen: \d+, sessions evicted: 58, pruned: 0, failures: 0/);
  t.ok([...Array(30).keys()].every((u) => state.activeSessionsOf(`r${u}`).length === 3), 'every user repaired');
  t.equal((await run(['enforce'], env)).code, 2, 'usage error without --user or --all');
});
