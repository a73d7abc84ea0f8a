import t from 'tap';
import { freePort } from '../../src/cli/free-port.js';
import { runCli, runProcess, startProcess, type Started } from '../helpers/processes.js';

/**
 * The local playground as a newcomer uses it: `simulate` in one terminal, then exactly the commands it prints
 * (register, serve, simulate login, enforce), run through a shell the way they are pasted.
 */

async function waitFor<T>(what: string, probe: () => T | undefined, process_: Started, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (process_.child.exitCode !== null) throw new Error(`exited before ${what}: ${process_.stdout()}${process_.stderr()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const PASSWORD = 'playground-secret-pw';

t.test('simulate prints the next steps; pasted as printed, they register, serve, sign in and sweep', async (t) => {
  const simulator = startProcess(process.execPath, ['dist/cli/index.js', 'simulate', '--port', '0', '--user', `alice@example.com:${PASSWORD}`], {}, true);
  t.teardown(() => {
    if (simulator.child.exitCode === null) process.kill(-simulator.child.pid!, 'SIGKILL');
  });
  await waitFor('the next steps', () => (/Every webhook/.test(simulator.stdout()) ? true : undefined), simulator);
  const printed = simulator.stdout();
  const url = /listening at (http:\/\/\S+)/.exec(printed)![1]!;
  t.match(printed, `ZITADEL_URL=${url} ZITADEL_TOKEN=simulator-token ZITADEL_SIGNING_KEYS=`, "the service's environment");
  t.match(printed, /simulator token\s+serves as ZITADEL_ADMIN_TOKEN/, 'says the same token is the admin token here');
  const commands = printed
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('ZITADEL_URL=') || line.startsWith('node '));
  const [registerCmd, serveCmd, loginCmd, enforceCmd] = commands;
  t.equal(commands.length, 4, 'four commands to paste');
  t.match(registerCmd, / register --type webhook --endpoint /);
  t.match(serveCmd, / serve$/);
  t.match(loginCmd, /simulate login alice@example\.com --password \S+ --device phone --url /);
  t.match(enforceCmd, / enforce --all --dry-run$/);

  // The service's port: the printed 8080 may be taken on this machine, so the test moves it to a free one.
  const port = String(await freePort());
  const shell = (command: string) => runProcess('sh', ['-c', command]);

  const early = await shell(`${loginCmd!.replace('--device phone', '--device early')}`);
  t.equal(early.code, 0, early.stderr);
  t.match(early.stdout, 'no webhook sent: no target is bound to this response (run "register" first)', 'before register');

  const registered = await shell(registerCmd!.replaceAll('8080', port));
  t.equal(registered.code, 0, registered.stderr);
  const key = /signing key \(shown once\): (\S+)/.exec(registered.stdout)?.[1];
  t.ok(key, 'register printed the key');

  const service = startProcess('sh', ['-c', serveCmd!.replaceAll('8080', port).replace('<the key register printed>', key!)], {}, true);
  t.teardown(() => {
    if (service.child.exitCode === null) process.kill(-service.child.pid!, 'SIGKILL');
  });
  await waitFor('the service', () => (service.stdout().includes('zitadel-session-limiter ready') ? true : undefined), service);

  const outputs: string[] = [];
  for (const device of ['phone', 'tablet']) {
    const login = await shell(loginCmd!.replace('--device phone', `--device ${device}`));
    t.equal(login.code, 0, login.stderr);
    outputs.push(login.stdout);
  }
  const last = outputs.at(-1)!;
  t.match(last, /CreateSession \(user alice@example\.com\) -> ok: session \d+/, "ZITADEL's answer to CreateSession");
  t.match(last, /SetSession \(password\) -> ok/, "ZITADEL's answer to SetSession");
  t.match(
    last,
    new RegExp(`webhook POST http://127\\.0\\.0\\.1:${port}/webhooks/zitadel \\(SetSession response, restWebhook, \\d+ bytes, signed\\) -> 204 in \\d+ ms: ok`),
    'what the executor sent and what the target answered',
  );
  // early + phone + tablet: three active sessions, limit 2; the tablet's SetSession evicted one.
  await waitFor('the enforcement', () => (/"outcome":"enforced"[^\n]*"evicted":1/.test(service.stdout()) ? true : undefined), service);

  const wrong = await shell(loginCmd!.replace(`--password ${PASSWORD}`, '--password wrong'));
  t.equal(wrong.code, 1, 'a refused login exits 1');
  t.match(wrong.stdout, /SetSession \(password\) -> refused: .*Password\.Invalid/);
  t.match(wrong.stdout, 'no webhook sent: response executions run only after a successful call');

  const swept = await shell(enforceCmd!);
  t.equal(swept.code, 0, `enforce exits 0 ${swept.code === 0 ? '' : swept.stderr}`);
  t.match(swept.stdout, /users checked: 1, sessions seen: \d+, sessions that would be evicted: 1,/, 'enforce --all finds the user');

  // The simulator logged each webhook (method, target, status, latency) and never a body.
  const webhookLines = () => simulator.stdout().slice(printed.length).split('\n').filter((line) => line.includes('webhook POST'));
  await waitFor('five webhook lines', () => (webhookLines().length >= 5 ? true : undefined), simulator);
  const log = simulator.stdout().slice(printed.length);
  const lines = webhookLines();
  t.equal(lines.length, 5, 'one line per webhook: CreateSession and SetSession of phone and tablet, CreateSession of the wrong password');
  for (const line of lines) {
    t.match(line, new RegExp(`^\\S+Z webhook POST http://127\\.0\\.0\\.1:${port}/webhooks/zitadel \\((Create|Set)Session response, restWebhook\\) -> 204 in \\d+ ms: ok$`));
  }
  for (const output of [log, ...outputs, wrong.stdout]) {
    t.notMatch(output, PASSWORD, 'no password');
    t.notMatch(output, /sessionToken|"fullMethod"|v1=/, 'no payload, no session token, no signature');
  }
  simulator.child.kill('SIGTERM');
  t.equal(await simulator.exited, 0, 'the simulator stops cleanly');
});

t.test('simulate login: a usage error without a login name, and a clear line when no simulator runs', async (t) => {
  const usage = await runCli(['simulate', 'login']);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /give exactly one LOGIN_NAME/);
  const port = await freePort();
  const down = await runCli(['simulate', 'login', 'alice@example.com', '--url', `http://127.0.0.1:${port}`]);
  t.equal(down.code, 1);
  t.equal(down.stderr.trim().split('\n').length, 1, 'one line');
  t.match(down.stderr, `error: cannot reach the simulator at http://127.0.0.1:${port}: connection refused (ECONNREFUSED)`, 'names the URL and the cause');
  t.match(down.stderr, /start it with "simulate" in another terminal/, 'says what to do');
});
