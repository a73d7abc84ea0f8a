import { parseArgs } from 'node:util';
import { register, rotateKey, shortMethod, unregister, type ExecutionChange } from '../admin/registration.js';
import { ConfigError, plainHttpWarning, readZitadelUrl } from '../config.js';
import { parseDuration } from '../duration.js';
import { ActionApi, type TargetSpec } from '../zitadel/action-api.js';
import { UsageError } from './usage-error.js';

const DEFAULT_NAME = 'session-limiter';

const ADMIN_ENV = `Environment:
  ZITADEL_URL           your ZITADEL, e.g. https://my-instance.zitadel.cloud
  ZITADEL_ADMIN_TOKEN   a token with IAM_OWNER (only that role may write targets and executions); keep it apart
                        from the service's runtime token`;

export const registerHelp = `Usage: zitadel-session-limiter register --endpoint URL [--name ${DEFAULT_NAME}] [--type webhook|async]
                                      [--interrupt-on-error] [--deny-new] [--timeout 10s] [--json]

Creates the Actions v2 target (or updates the one with that name) and binds it to the responses of
SessionService CreateSession and SetSession, keeping every other target bound there. Idempotent: running it
again with the same flags changes nothing; other flags (or the defaults, when a flag is left out) update the
target to match them. When the target is created, its signing key is printed once: put it in
ZITADEL_SIGNING_KEYS.

  --endpoint URL         the service's webhook, e.g. https://session-limiter.fly.dev/webhooks/zitadel
  --name NAME            target name                                            default ${DEFAULT_NAME}
  --type webhook|async   default webhook
        webhook  (restWebhook, recommended) ZITADEL waits for the enforcement (a few ms plus three ZITADEL
                 calls): the limit holds when the login completes; required for deny-new. A failure of this
                 service is only logged by ZITADEL and the login goes on (unless --interrupt-on-error).
        async    (restAsync) ZITADEL does not wait: no added login latency, failures only logged by ZITADEL;
                 the limit holds a moment after the login instead of before ZITADEL answers it.
  --interrupt-on-error   webhook only: a failure of this service fails the user's login. Choose it only if
                         "no login without enforcement" matters more than availability.
  --deny-new             for ON_LIMIT=deny-new: the same as --type webhook --interrupt-on-error, so that the
                         service's forwarded 403 turns a login over the limit into a failed login.
  --timeout DURATION     how long ZITADEL waits, e.g. 10s (max 270s)                default 10s
  --json                 print a machine-readable result

${ADMIN_ENV}`;

export const unregisterHelp = `Usage: zitadel-session-limiter unregister [--name ${DEFAULT_NAME}] [--json]

Removes the target from the CreateSession and SetSession response executions (other targets stay bound) and
deletes it. Nothing to do is not an error.

${ADMIN_ENV}`;

export const rotateHelp = `Usage: zitadel-session-limiter rotate-key [--name ${DEFAULT_NAME}] [--finish [--endpoint URL]] [--json]

Rotates the signing key without losing a webhook. ZITADEL replaces a target's key at once, so the rotation
goes through a second target:
  1. rotate-key            creates "<name>-next" with a fresh key (not yet bound) and prints the key.
                           Add it to ZITADEL_SIGNING_KEYS next to the old one and deploy.
  2. rotate-key --finish   first sends the service a request signed with the new key (as doctor does) and
                           refuses, changing nothing, unless it is accepted; then binds "<name>-next" in place
                           of "<name>", deletes the old target and renames the new one to "<name>". Then drop
                           the old key from ZITADEL_SIGNING_KEYS.
  --endpoint URL           with --finish: check the service at this address instead of the target's endpoint
                           (e.g. an internal address when the public one is not reachable from here)

${ADMIN_ENV}`;

/**
 * The Action API with the admin token, once ZITADEL_URL passed the service's own validation (never echoed: it may
 * hold credentials). Warns on stderr, before anything is sent, when the token would travel over plain http://.
 */
function adminApi(): ActionApi {
  const problems: string[] = [];
  let url: URL | undefined;
  try {
    url = readZitadelUrl(process.env.ZITADEL_URL, 'your ZITADEL, e.g. https://my-instance.zitadel.cloud');
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.problems);
  }
  const token = process.env.ZITADEL_ADMIN_TOKEN?.trim();
  if (!token) problems.push('ZITADEL_ADMIN_TOKEN is required: a token of an IAM_OWNER (targets and executions need it)');
  if (!url || !token) throw new UsageError(problems);
  const warning = plainHttpWarning(url, 'the admin token');
  if (warning) process.stderr.write(`warning: ${warning}\n`);
  return new ActionApi({ baseUrl: url, token });
}

function describeExecutions(executions: ExecutionChange[]): string[] {
  return executions.map(
    (e) => `  ${shortMethod(e.method)} response: ${e.changed ? 'bound' : 'already bound'} (targets: ${e.targets.join(', ')})`,
  );
}

function parseTimeout(value: string): string {
  const ms = parseDuration(value, ['ms', 's', 'm']);
  if (ms === undefined || !(ms > 0 && ms <= 270_000)) throw new UsageError(['--timeout must be a duration such as 10s, at most 270s']);
  return `${ms / 1000}s`;
}

export async function registerCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      endpoint: { type: 'string' },
      name: { type: 'string', default: DEFAULT_NAME },
      type: { type: 'string', default: 'webhook' },
      'interrupt-on-error': { type: 'boolean', default: false },
      'deny-new': { type: 'boolean', default: false },
      timeout: { type: 'string', default: '10s' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(registerHelp);
    return 0;
  }
  if (values['deny-new']) {
    // Denying needs ZITADEL to wait for the answer and fail the login on the forwarded 403.
    if (argv.some((arg) => arg === '--type' || arg.startsWith('--type=')) && values.type !== 'webhook') {
      throw new UsageError(['--deny-new needs --type webhook (ZITADEL must wait for the answer to refuse the login)']);
    }
    values.type = 'webhook';
    values['interrupt-on-error'] = true;
  }
  const problems = [
    !values.endpoint && '--endpoint is required: the URL of POST /webhooks/zitadel on your deployment',
    values.endpoint && !/^https?:\/\//.test(values.endpoint) && '--endpoint must be an http(s) URL',
    !['async', 'webhook'].includes(values.type) && '--type must be async or webhook',
    values.type === 'async' && values['interrupt-on-error'] && '--interrupt-on-error needs --type webhook (ZITADEL ignores async failures)',
  ].filter((problem): problem is string => Boolean(problem));
  if (problems.length > 0) throw new UsageError(problems);
  const spec: TargetSpec = {
    name: values.name,
    endpoint: values.endpoint!,
    timeout: parseTimeout(values.timeout),
    kind: values.type === 'webhook' ? 'restWebhook' : 'restAsync',
    interruptOnError: values['interrupt-on-error'],
  };
  const result = await register(adminApi(), spec);
  if (values.json) {
    console.log(JSON.stringify(result, null, 2));
    return 0;
  }
  console.log(
    `target "${result.name}" (${result.targetId}): ${result.created ? 'created' : result.updated ? 'updated' : 'unchanged'}`,
  );
  for (const line of describeExecutions(result.executions)) console.log(line);
  if (result.signingKey) {
    console.log(`\nsigning key (shown once): ${result.signingKey}`);
    console.log('Set it as ZITADEL_SIGNING_KEYS on the service, e.g.: fly secrets set ZITADEL_SIGNING_KEYS=<key>');
    if (spec.interruptOnError) {
      console.error(
        'warning: this new target interrupts logins on failure, and the service does not hold its key yet: EVERY login ' +
          'fails until ZITADEL_SIGNING_KEYS holds it. Safer: register without --deny-new/--interrupt-on-error, set the ' +
          'key, run doctor, then register again with it.',
      );
    }
  } else if (result.created === false) {
    console.log('\nThe signing key is unchanged (use rotate-key to rotate it).');
  }
  return 0;
}

export async function unregisterCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { name: { type: 'string', default: DEFAULT_NAME }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    console.log(unregisterHelp);
    return 0;
  }
  const result = await unregister(adminApi(), values.name);
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else if (!result.deleted) console.log(`no target named "${values.name}": nothing to do`);
  else {
    for (const e of result.executions) {
      console.log(`  ${shortMethod(e.method)} response: ${e.changed ? 'unbound' : 'was not bound'} (targets left: ${e.targets.join(', ') || 'none'})`);
    }
    console.log(`target "${values.name}" (${result.targetId}) deleted`);
  }
  return 0;
}

export async function rotateKeyCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      name: { type: 'string', default: DEFAULT_NAME },
      finish: { type: 'boolean', default: false },
      endpoint: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(rotateHelp);
    return 0;
  }
  if (values.endpoint !== undefined && !values.finish) throw new UsageError(['--endpoint is for --finish (the check before the switch)']);
  const result = await rotateKey(adminApi(), values.name, values.finish, { endpoint: values.endpoint });
  if (values.json) {
    console.log(JSON.stringify(result, null, 2));
    return 0;
  }
  const finish = `zitadel-session-limiter rotate-key --name ${values.name} --finish`;
  if (result.phase === 'started') {
    console.log(`step 1 of 2: created target "${result.nextName}" (${result.nextId}) with a new key; nothing is signed with it yet.`);
    console.log(`\nnew signing key (shown once): ${result.signingKey}`);
    console.log('\nNext:');
    console.log('  1. add it next to the current key and deploy, e.g.:');
    console.log('       fly secrets set ZITADEL_SIGNING_KEYS=<current key>,<new key>');
    console.log(`  2. then run: ${finish}`);
  } else if (result.phase === 'already-started') {
    console.log(`a rotation is under way: "${result.nextName}" (${result.nextId}) exists.`);
    console.log(`Once ZITADEL_SIGNING_KEYS holds its key and is deployed, run: ${finish}`);
  } else {
    console.log(`step 2 of 2: the executions now call ${result.newId}; the old target ${result.oldId || '(already gone)'} was deleted.`);
    for (const line of describeExecutions(result.executions)) console.log(line);
    console.log('\nNext: remove the old key, keeping only the new one, e.g.:');
    console.log('  fly secrets set ZITADEL_SIGNING_KEYS=<new key>');
  }
  return 0;
}
