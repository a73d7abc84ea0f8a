import { existsSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import t, { type Test } from 'tap';
import { startProcess } from '../helpers/processes.js';
import { ZitadelSimulator } from '../../src/simulator/index.js';
import { serviceEnv } from '../helpers/service-env.js';

// How the service process behaves as a process: ports it cannot bind, and stopping with the npm that started it.

/** Each in its own process group, so that the teardown can stop whatever it left behind. */
const start = (command: string, args: string[], env: Record<string, string>) => startProcess(command, args, env, true);

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A port held by another listener for the test's duration. */
async function occupiedPort(t: Test): Promise<number> {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  return (blocker.address() as net.AddressInfo).port;
}

t.before(() => {
  // npm test builds before running the tests; building here too could race another file's `npm start`.
  if (!existsSync(new URL('../../dist/main.js', import.meta.url))) throw new Error('dist/ is not built: run npm run build first');
});

for (const variable of ['METRICS_PORT', 'PORT'] as const) {
    t.test(`a busy ${variable}: exit 1 with one line naming ${variable} and the port, no stack trace`, async (t) => {
      const simulator = new ZitadelSimulator();
      await simulator.listen();
      t.teardown(() => simulator.close());
      const port = await occupiedPort(t);
      const service = start(process.execPath, ['dist/main.js'], serviceEnv(simulator.url, { [variable]: String(port) }));
      t.teardown(() => {
        if (service.child.exitCode === null) process.kill(-service.child.pid!, 'SIGKILL');
      });
      const code = await service.exited;
      const lines = service.stderr().split('\n').filter(Boolean);
      t.equal(code, 1, 'exit code 1', { stderr: service.stderr() });
      t.equal(lines.length, 1, 'one line on stderr', { stderr: service.stderr() });
      t.match(lines[0], new RegExp(`(^|[^_])${variable} ${port}\\b.*in use`));
      t.notMatch(service.stderr(), /^\s+at /m, 'no stack trace');
    });
}

/** The pids of the processes below `pid` (Linux /proc), with their command lines. */
function descendants(pid: number): { pid: number; command: string }[] {
  const children = new Map<number, number[]>();
  const commands = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name is in parentheses and may hold spaces: the parent pid is the second field after it.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
      commands.set(Number(entry), readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim());
    } catch {
      // The process ended while we looked.
    }
  }
  const found: { pid: number; command: string }[] = [];
  const queue = [...(children.get(pid) ?? [])];
  while (queue.length > 0) {
    const next = queue.shift()!;
    found.push({ pid: next, command: commands.get(next) ?? '' });
    queue.push(...(children.get(next) ?? []));
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// `npm start` (production) and `npm run -s cli -- serve` (the README's playground): both scripts `exec` node, so the
// signal npm forwards reaches the service instead of a shell that would leave it running.
for (const [args, entry] of [
  [['start', '--silent'], 'dist/main.js'],
  [['run', '-s', 'cli', '--', 'serve'], 'dist/cli/index.js serve'],
] as const) {
t.test(`npm ${args.join(' ')}: SIGTERM to npm stops the service it started, gracefully`, { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
  const simulator = new ZitadelSimulator();
  await simulator.listen();
  t.teardown(() => simulator.close());
  const npm = start('npm', [...args], serviceEnv(simulator.url, { SHUTDOWN_TIMEOUT_MS: '5000' }));
  t.teardown(() => {
    try {
      process.kill(-npm.child.pid!, 'SIGKILL');
    } catch {
      // The group is gone.
    }
  });
  await until('the service to listen', () => (/Server listening at/.test(npm.stdout()) ? true : undefined));
  const service = descendants(npm.child.pid!).find((p) => /(^|\/)node$/.test(p.command.split(' ')[0]!) && p.command.endsWith(entry));
  t.ok(service, `the node process running ${entry}`, { tree: descendants(npm.child.pid!) });
  if (!service) return;

  // As a supervisor or a terminal does: the signal to npm itself, not to its process group.
  npm.child.kill('SIGTERM');
  await npm.exited;
  // Gone within the shutdown window (5 s) plus a margin; the service also writes "stopped" when it stops cleanly.
  const gone = await until('the service process to end', () => (alive(service.pid) ? undefined : true), 15_000).catch(() => false);
  t.ok(gone, `node ${entry} (pid ${service.pid}) ended with npm`);
  if (!gone) process.kill(service.pid, 'SIGKILL');
  // Its last line may arrive just after the process is gone: wait for the line itself.
  const stopped = await until('the "stopped" line', () => (npm.stdout().includes('"msg":"stopped"') ? true : undefined), 5_000).catch(() => false);
  t.ok(stopped, 'it shut down gracefully (SIGTERM reached it)');
});
}
