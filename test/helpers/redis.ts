import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { freePort } from '../../src/cli/free-port.js';

/** A real redis-server of the test's own, on a free loopback port, with nothing persisted. */
export interface TestRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** What a machine without redis-server is told, in one line, instead of a `spawn redis-server ENOENT` stack. */
export const REDIS_MISSING =
  'redis-server is not installed (not on PATH): the Redis-backed tests start their own. ' +
  'Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis), then run the tests again';

/** `env`: the child's environment (default this process's); a test of the missing-binary message sets PATH. */
export async function startRedis(options: { env?: NodeJS.ProcessEnv } = {}): Promise<TestRedis> {
  const port = await freePort();
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
    env: options.env ?? process.env,
  });
  const missing = new Promise<never>((_resolve, reject) =>
    child.once('error', (error: NodeJS.ErrnoException) => {
      const reason = error.code === 'ENOENT' ? REDIS_MISSING : `redis-server could not be started: ${error.message}`;
      const failure = new Error(reason);
      failure.stack = reason; // one line in the test report, not a stack of spawn internals
      reject(failure);
    }),
  );
  missing.catch(() => {});
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Ready once it accepts connections.
  for (let attempt = 0; ; attempt++) {
    const up = await Promise.race([missing, new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.end();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    })]);
    if (up) break;
    if (attempt > 200 || child.exitCode !== null) throw new Error('redis-server did not start (is the redis-server package installed?)');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
