import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { runProcess } from '../helpers/processes.js';
import { REDIS_MISSING, startRedis } from '../helpers/redis.js';

// A machine without redis-server: a PATH that holds no program at all (node is started by its full path).
const emptyPath = mkdtempSync(path.join(tmpdir(), 'no-redis-'));
t.teardown(() => rmSync(emptyPath, { recursive: true, force: true }));

t.test('without redis-server, starting one fails with a one-line reason that names it and says how to install it', async (t) => {
  const error = await startRedis({ env: { PATH: emptyPath } }).then(
    () => undefined,
    (failure: unknown) => failure as Error,
  );
  t.ok(error, 'it fails');
  t.equal(error?.message, REDIS_MISSING);
  t.equal(error?.stack, REDIS_MISSING, 'no stack of spawn internals');
  t.match(REDIS_MISSING, /^redis-server is not installed .*apt-get install redis-server/);
  t.notMatch(REDIS_MISSING, /\n/);
});

t.test('a Redis-backed test file run on such a machine reports that reason, not spawn ENOENT', async (t) => {
  const run = await runProcess(process.execPath, ['--import=tsx', 'test/integration/redis-lock.test.ts'], { env: { PATH: emptyPath } });
  t.not(run.code, 0, 'the file fails');
  t.match(run.stdout, `not ok 1 - ${REDIS_MISSING}`);
  t.notMatch(run.stdout + run.stderr, /ENOENT|spawn redis-server/);
});
