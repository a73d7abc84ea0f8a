#!/usr/bin/env node
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

"zitadel-session-limiter <command> --help" describes each command.`;

// Each command's module is loaded only when that command runs: `serve`, `doctor` and `enforce` in production
// never load the simulator (an HTTP/2 server and five services' descriptors), `replay` never loads the enforcer
// (test/e2e/module-loading.test.ts).
const commands: Record<string, (argv: string[]) => Promise<number | void>> = {
  serve: async () => (await import('../service.js')).runService(),
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
  const command = commands[name];
  if (!command) {
    console.error(`unknown command "${name}"\n\n${help}`);
    return 2;
  }
  return command(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      for (const problem of error.problems) console.error(problem);
      process.exitCode = 2;
      return;
    }
    const code = (error as { code?: string }).code;
    // parseArgs reports unknown or malformed options with ERR_PARSE_ARGS_*: a usage error, not a crash.
    console.error(`${code?.startsWith('ERR_PARSE_ARGS') ? '' : 'error: '}${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = code?.startsWith('ERR_PARSE_ARGS') ? 2 : 1;
  },
);
