import { readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { runCli } from '../helpers/processes.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

// Every command, with what it needs to get past its own checks, so that only the unknown flag can be refused.
const COMMANDS: string[][] = [
  ['serve'],
  ['demo'],
  ['simulate'],
  ['simulate', 'login', 'alice@example.com'],
  ['replay', 'test/fixtures/payloads/02-password.set-session.json', '--url', 'http://127.0.0.1:9', '--key', 'k'],
  ['register', '--endpoint', 'http://127.0.0.1:9/webhooks/zitadel'],
  ['unregister'],
  ['rotate-key'],
  ['doctor'],
  ['enforce', '--all'],
];

/** Every line of a usage error is "error: ...", then one line that says where the usage is. */
function assertUsageError(t: Test, stderr: string, command: string): void {
  const lines = stderr.trimEnd().split('\n');
  t.ok(lines.length >= 2, 'a problem and the hint', { stderr });
  for (const line of lines.slice(0, -1)) t.match(line, /^error: \S/, 'one prefix style', { stderr });
  t.equal(lines.at(-1), `Run "zitadel-session-limiter ${command} --help" for usage.`, 'says where the usage is');
}

t.test('--version prints the package version and nothing else', async (t) => {
  for (const flag of ['--version', '-v']) {
    const run = await runCli([flag]);
    t.equal(run.code, 0, flag, { stderr: run.stderr });
    t.equal(run.stdout, `${pkg.version}\n`, flag);
  }
});

t.test('serve --help prints help instead of starting (no environment needed)', async (t) => {
  for (const flag of ['--help', '-h']) {
    const run = await runCli(['serve', flag]);
    t.equal(run.code, 0, `serve ${flag} exits 0`, { stderr: run.stderr });
    t.match(run.stdout, /^Usage: zitadel-session-limiter serve/);
    t.match(run.stdout, /ZITADEL_SIGNING_KEYS/, 'names the required environment');
    t.equal(run.stderr, '', 'no config error');
  }
});

t.test('an unknown flag is refused by every command, with exit code 2 and one error style', async (t) => {
  for (const args of COMMANDS) {
    const run = await runCli([...args, '--bogus'], { ZITADEL_ADMIN_TOKEN: 'x', ZITADEL_URL: 'http://127.0.0.1:9', ZITADEL_TOKEN: 'x' });
    const command = args[0] === 'simulate' && args[1] === 'login' ? 'simulate login' : args[0]!;
    t.equal(run.code, 2, `${args.join(' ')} --bogus exits 2`, { stdout: run.stdout, stderr: run.stderr });
    t.match(run.stderr, /^error: .*'--bogus'/, `${command} names the flag`);
    assertUsageError(t, run.stderr, command);
  }
});

t.test('other usage errors share the style', async (t) => {
  const cases: [string[], string, RegExp][] = [
    [['replay'], 'replay', /give exactly one FILE/],
    [['simulate', '--port', 'x'], 'simulate', /--port must be a whole number/],
    [['simulate', '--projection-lag', 'never'], 'simulate', /--projection-lag must be a whole number of milliseconds or until-read/],
    [['simulate', '--user', 'bob'], 'simulate', /--user must be LOGIN:PASSWORD/],
    [['simulate', 'login'], 'simulate login', /give exactly one LOGIN_NAME/],
    [['register'], 'register', /--endpoint is required/],
    [['enforce'], 'enforce', /give either --user ID or --all/],
  ];
  for (const [args, command, problem] of cases) {
    const run = await runCli(args, { ZITADEL_ADMIN_TOKEN: 'x', ZITADEL_URL: 'http://127.0.0.1:9', ZITADEL_TOKEN: 'x' });
    t.equal(run.code, 2, `${args.join(' ')} exits 2`, { stderr: run.stderr });
    t.match(run.stderr, problem);
    assertUsageError(t, run.stderr, command);
  }
  const unknown = await runCli(['nope']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /^error: unknown command "nope"/);
});
