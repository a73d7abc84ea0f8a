#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError } from './usage-error.js';

const help = `Usage: zitadel-session-limiter <command> [options]

Commands:
  serve      run the service (configured by environment variables; see README)
  demo       a simulated ZITADEL, the service and four devices signing in: see the limit work
  simulate   run a ZITADEL simulator (Session Service over gRPC, Action API, Actions v2 executor)
  replay     sign a payload file the way ZITADEL does and POST it to a running service
  register   create the Actions v2 target and bind it to the CreateSession and SetSession responses
  unregister unbind the target (keeping other targets) and delete it
  rotate-key rotate the signing key in two steps without losing a webhook
  doctor     check the token's permissions, the target, the executions, the endpoint and your apps
  enforce    enforce the limit now for one user (--user) or every user (--all): repair after downtime

Options:
  --version, -v   print the version
  --help, -h      print this help

"zitadel-session-limiter <command> --help" describes each command.`;

const serveHelp = `Usage: zitadel-session-limiter serve

Runs the service: POST /webhooks/zitadel (the Actions v2 target), /healthz, /readyz and /metrics. It takes no
options: it is configured by environment variables (the Configuration table in README.md), at least
  ZITADEL_URL            your ZITADEL, e.g. https://my-instance.zitadel.cloud
  ZITADEL_TOKEN          a service user's token with session.read and session.delete (or ZITADEL_KEY_FILE)
  ZITADEL_SIGNING_KEYS   the target's signing key, printed once by "zitadel-session-limiter register"
A missing or bad value stops it with exit code 1 and one "config error:" line per problem.
SIGTERM or SIGINT stops it after the enforcements in flight.`;

/** The version in the package.json beside dist/ (the installed package, the clone, the image's /app). */
function version(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

async function serveCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    console.log(serveHelp);
    return;
  }
  // Like dist/main.js: without loading Node's bundled undici at start (src/lean-import.ts).
  const { importWithoutEagerUndici } = await import('../lean-import.js');
  await (await importWithoutEagerUndici(() => import('../service.js'))).runService();
}

// Each command's module is loaded only when that command runs: `serve`, `doctor` and `enforce` in production
// never load the simulator (an HTTP/2 server and five services' descriptors), `replay` never loads the enforcer
// (test/e2e/module-loading.test.ts).
const commands: Record<string, (argv: string[]) => Promise<number | void>> = {
  serve: serveCommand,
  demo: async (argv) => (await import('./demo.js')).demoCommand(argv),
  simulate: async (argv) => (await import('./simulate.js')).simulateCommand(argv),
  replay: async (argv) => (await import('./replay.js')).replayCommand(argv),
  register: async (argv) => (await import('./admin.js')).registerCommand(argv),
  unregister: async (argv) => (await import('./admin.js')).unregisterCommand(argv),
  'rotate-key': async (argv) => (await import('./admin.js')).rotateKeyCommand(argv),
  doctor: async (argv) => (await import('./doctor.js')).doctorCommand(argv),
  enforce: async (argv) => (await import('./enforce.js')).enforceCommand(argv),
};

async function main(argv: string[]): Promise<number | void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(help);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    console.log(version());
    return 0;
  }
  const command = commands[name];
  if (!command) {
    console.error(`error: unknown command "${name}"\n\n${help}`);
    return 2;
  }
  return command(rest);
}

const argv = process.argv.slice(2);
// The command a usage error points at: "simulate login" has its own help.
const commandName = argv[0] === 'simulate' && argv[1] === 'login' ? 'simulate login' : argv[0];

// One error style for every command: "error: " before each problem; a usage error (exit code 2) ends with where
// the command's usage is.
main(argv).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (error: unknown) => {
    const code = (error as { code?: string }).code;
    // parseArgs reports unknown or malformed options with ERR_PARSE_ARGS_*: a usage error, not a crash.
    const usage = error instanceof UsageError || code?.startsWith('ERR_PARSE_ARGS') === true;
    const problems = error instanceof UsageError ? error.problems : [error instanceof Error ? error.message : String(error)];
    for (const problem of problems) console.error(`error: ${problem}`);
    if (usage) console.error(`Run "zitadel-session-limiter ${commandName} --help" for usage.`);
    process.exitCode = usage ? 2 : 1;
  },
);
