import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { KEY_TYPES, RSA_BITS, type KeyType } from '../admin/payload-keys.js';
import { register, rotateKey, rotatePayloadKey, shortMethod, unregister, type ExecutionChange } from '../admin/registration.js';
import { ConfigError, plainHttpWarning, readZitadelUrl } from '../config.js';
import { parseDuration } from '../duration.js';
import { ActionApi, type PayloadKind, type TargetSpec } from '../zitadel/action-api.js';
import { UsageError } from './usage-error.js';

const DEFAULT_NAME = 'session-limiter';

const ADMIN_ENV = `Environment:
  ZITADEL_URL           your ZITADEL, e.g. https://my-instance.zitadel.cloud
  ZITADEL_ADMIN_TOKEN   a token with IAM_OWNER (only that role may write targets and executions); keep it apart
                        from the service's runtime token`;

export const registerHelp = `Usage: zitadel-session-limiter register --endpoint URL [--name ${DEFAULT_NAME}] [--type webhook|async]
                                      [--interrupt-on-error] [--deny-new] [--timeout 10s] [--json]
                                      [--payload-type json|jwt|jwe [--key-type ec|rsa] [--private-key-out FILE]]

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
  --payload-type TYPE    what ZITADEL POSTs (ZITADEL v4.8 and later); set the same ZITADEL_PAYLOAD_TYPE on
                         the service                                 default: keep the target's (json if new)
        json     the payload as JSON, HMAC-signed
        jwt      the JSON signed by an instance web key (checked against <ZITADEL_URL>/oauth/v2/keys)
        jwe      (recommended) that JWT encrypted to the target's public key: only the service can read the
                 password and session tokens the payload carries. register generates the key pair, adds and
                 activates the public key, and hands the private key over once (printed, or --private-key-out)
                 for ZITADEL_PAYLOAD_KEYS. A target with an active key keeps it: rotate with
                 rotate-key --payload-key.
  --key-type ec|rsa      jwe: EC P-256 (default) or RSA ${RSA_BITS}
  --private-key-out FILE jwe: write the private key to FILE (mode 0600; an existing file is never overwritten)
                         instead of printing it. Only when a key is generated: when the target's active
                         key is kept, FILE is not touched (running the same command again succeeds)
  --json                 print a machine-readable result (with the private key, unless --private-key-out)

Switching an existing target's payload type refuses webhooks from the moment ZITADEL sends the new type until
the service runs with the matching ZITADEL_PAYLOAD_TYPE (one deploy): see README, "Switching the payload type".
A ZITADEL older than v4.8 has no payload types: jwt and jwe are refused there, changing nothing.

${ADMIN_ENV}`;

export const unregisterHelp = `Usage: zitadel-session-limiter unregister [--name ${DEFAULT_NAME}] [--json]

Removes the target from the CreateSession and SetSession response executions (other targets stay bound) and
deletes it. Nothing to do is not an error.

${ADMIN_ENV}`;

export const rotateHelp = `Usage: zitadel-session-limiter rotate-key [--name ${DEFAULT_NAME}] [--finish [--endpoint URL]] [--json]
       zitadel-session-limiter rotate-key --payload-key [--name ${DEFAULT_NAME}] [--key-type ec|rsa]
                                        [--private-key-out FILE] [--finish [--endpoint URL]] [--json]

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
  For a jwt/jwe target "<name>-next" gets the same payload type and, for jwe, the same active public key.

--payload-key rotates the public key of a jwe target instead (ZITADEL encrypts to one active key at a time):
  1. rotate-key --payload-key           adds a new key pair's public key, inactive, and hands its private key
                                        over once (printed, or --private-key-out FILE, mode 0600). Set both
                                        private keys in ZITADEL_PAYLOAD_KEYS and deploy.
  2. rotate-key --payload-key --finish  first POSTs the service a payload encrypted to the new key (its inner
                                        JWT signed by a throwaway key): 401 ERR_PAYLOAD_SIGNATURE proves the
                                        service opened it; anything else refuses, changing nothing. Then
                                        activates the new key and removes the old one. Then drop the old
                                        private key from ZITADEL_PAYLOAD_KEYS. The probe shows once in the
                                        service's metrics and logs as a rejected ERR_PAYLOAD_SIGNATURE.
  --key-type ec|rsa                     step 1: the new key's type        default: the current key's

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
      'payload-type': { type: 'string' },
      'key-type': { type: 'string' },
      'private-key-out': { type: 'string' },
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
  const payloadType = values['payload-type'];
  if (payloadType !== undefined && !['json', 'jwt', 'jwe'].includes(payloadType)) throw new UsageError(['--payload-type must be json, jwt or jwe']);
  if (payloadType !== 'jwe' && (values['key-type'] !== undefined || values['private-key-out'] !== undefined)) {
    throw new UsageError(['--key-type and --private-key-out are for --payload-type jwe (the key pair of an encrypted payload)']);
  }
  const keyType = readKeyType(values['key-type']);
  const spec: TargetSpec = {
    name: values.name,
    endpoint: values.endpoint!,
    timeout: parseTimeout(values.timeout),
    kind: values.type === 'webhook' ? 'restWebhook' : 'restAsync',
    interruptOnError: values['interrupt-on-error'],
    payloadType: payloadType as PayloadKind | undefined,
  };
  const api = adminApi();
  const file = values['private-key-out'];
  // The file is created only when a key pair will be generated: when the target's active key is kept, an existing
  // file (the key handed over by the first run) is fine and left alone.
  let out: ReturnType<typeof openKeyFile> | undefined;
  let result;
  try {
    result = await register(api, spec, { keyType, beforeNewKey: file === undefined ? undefined : () => void (out = openKeyFile(file)) });
  } catch (error) {
    out?.discard();
    throw error;
  }
  if (result.privateKeyPem && out) {
    out.write(result.privateKeyPem);
    delete result.privateKeyPem;
  } else out?.discard();
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
  console.log(`\npayload type: ${result.payloadType}${spec.payloadType === undefined && !result.created ? ' (kept; --payload-type changes it)' : ''}`);
  if (result.payloadKey && !result.payloadKey.created) {
    console.log(
      `public key ${result.payloadKey.keyId} (${result.payloadKey.fingerprint}) is active and kept: its private key is the one in ` +
        'ZITADEL_PAYLOAD_KEYS. To replace it: rotate-key --payload-key.',
    );
    if (file !== undefined) console.log(`--private-key-out: no key was generated and ${file} was not touched.`);
  } else if (result.payloadKey) {
    console.log(`public key ${result.payloadKey.keyId} (${result.payloadKey.fingerprint}) added and activated: ZITADEL encrypts every payload to it.`);
    console.log(handOver(result.privateKeyPem, values['private-key-out']));
  }
  if (result.payloadType !== 'json' && !result.payloadKey?.created) {
    console.log(`Set ZITADEL_PAYLOAD_TYPE=${result.payloadType} on the service.`);
  }
  if (result.updated && spec.payloadType !== undefined) {
    console.log(
      `If the service does not run with ZITADEL_PAYLOAD_TYPE=${result.payloadType} yet, it refuses each webhook (400 ERR_PAYLOAD_TYPE) ` +
        'until you deploy it so: do it now (README, "Switching the payload type"), then run enforce --all once.',
    );
  }
  return 0;
}

function readKeyType(value: string | undefined): KeyType | undefined {
  if (value === undefined) return undefined;
  if (!(KEY_TYPES as readonly string[]).includes(value)) throw new UsageError([`--key-type must be ec (P-256) or rsa (RSA ${RSA_BITS})`]);
  return value as KeyType;
}

/**
 * The file for a private key, created now (mode 0600, never over an existing file) so that a bad path fails before
 * ZITADEL holds a public key whose private half could not be handed over.
 */
function openKeyFile(file: string): { write(pem: string): void; discard(): void } {
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // Not a usage error: nothing was sent to ZITADEL, and the operator picks another path.
    throw new Error(
      code === 'EEXIST'
        ? `--private-key-out ${file}: the file exists and is never overwritten (it may hold a key in use): choose another path; nothing was changed`
        : `--private-key-out ${file}: cannot create it (${code ?? String(error)}): choose a writable path; nothing was changed`,
      { cause: error },
    );
  }
  return {
    write(pem) {
      writeSync(fd, pem);
      closeSync(fd);
    },
    discard() {
      closeSync(fd);
      unlinkSync(file);
    },
  };
}

/** The one hand-over of a private key, and the exact ZITADEL_PAYLOAD_KEYS step after it. */
function handOver(pem: string | undefined, file: string | undefined, rotation = false): string {
  const both = rotation ? ' next to the current key (both PEM blocks in one value or file)' : '';
  if (file !== undefined) {
    return [
      `\nprivate key written to ${file} (mode 0600, PKCS#8 PEM); it is not shown again and ZITADEL does not keep it.`,
      `Next: set it as ZITADEL_PAYLOAD_KEYS${both} with ZITADEL_PAYLOAD_TYPE=jwe on the service, e.g.:`,
      rotation
        ? `  fly secrets set ZITADEL_PAYLOAD_KEYS="$(cat <current key file> ${file})"`
        : `  fly secrets set ZITADEL_PAYLOAD_TYPE=jwe ZITADEL_PAYLOAD_KEYS="$(cat ${file})"`,
      rotation
        ? `or, where the service reads a file: cat <current key file> ${file} > <both keys file>, then ZITADEL_PAYLOAD_KEYS=<both keys file>`
        : `or, where the service can read the file: ZITADEL_PAYLOAD_KEYS=${file}`,
    ].join('\n');
  }
  return [
    '\nprivate key (shown once, PKCS#8 PEM; ZITADEL does not keep it):',
    pem!.trimEnd(),
    `\nNext: save it to a file (e.g. payload-key.pem, readable only by you) and set it as ZITADEL_PAYLOAD_KEYS${both} with ZITADEL_PAYLOAD_TYPE=jwe, e.g.:`,
    rotation
      ? '  fly secrets set ZITADEL_PAYLOAD_KEYS="$(cat <current key file> payload-key.pem)"'
      : '  fly secrets set ZITADEL_PAYLOAD_TYPE=jwe ZITADEL_PAYLOAD_KEYS="$(cat payload-key.pem)"',
    '(ZITADEL_PAYLOAD_KEYS takes the PEM itself or the path of a file holding it.)',
  ].join('\n');
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
      'payload-key': { type: 'boolean', default: false },
      'key-type': { type: 'string' },
      'private-key-out': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(rotateHelp);
    return 0;
  }
  if (values.endpoint !== undefined && !values.finish) throw new UsageError(['--endpoint is for --finish (the check before the switch)']);
  if (!values['payload-key'] && (values['key-type'] !== undefined || values['private-key-out'] !== undefined)) {
    throw new UsageError(['--key-type and --private-key-out are for --payload-key (the key pair of a jwe target)']);
  }
  if (values.finish && (values['key-type'] !== undefined || values['private-key-out'] !== undefined)) {
    throw new UsageError(['--key-type and --private-key-out are for step 1 (without --finish): step 2 generates no key']);
  }
  if (values['payload-key']) return rotatePayloadKeyCommand(values.name, values.finish, values.endpoint, readKeyType(values['key-type']), values['private-key-out'], values.json);
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

async function rotatePayloadKeyCommand(
  name: string,
  finish: boolean,
  endpoint: string | undefined,
  keyType: KeyType | undefined,
  file: string | undefined,
  json: boolean,
): Promise<number> {
  const api = adminApi();
  // As for register: the file is created only when step 1 generates the key pair, not when a rotation is under way.
  let out: ReturnType<typeof openKeyFile> | undefined;
  let result;
  try {
    result = await rotatePayloadKey(api, name, finish, { endpoint, keyType, beforeNewKey: file === undefined ? undefined : () => void (out = openKeyFile(file)) });
  } catch (error) {
    out?.discard();
    throw error;
  }
  if (result.phase === 'started' && out) {
    out.write(result.privateKeyPem);
    result = { ...result, privateKeyPem: undefined };
  } else out?.discard();
  if (json) {
    console.log(JSON.stringify(result, null, 2));
    return 0;
  }
  const next = `zitadel-session-limiter rotate-key --payload-key --name ${name} --finish`;
  if (result.phase === 'started') {
    console.log(`step 1 of 2: added public key ${result.keyId} (${result.fingerprint}) to target "${name}", inactive: ZITADEL still encrypts to the current key.`);
    console.log(handOver(result.privateKeyPem, file, true));
    console.log(`\nThen run: ${next}`);
  } else if (result.phase === 'already-started') {
    console.log(`a payload key rotation is under way: public key ${result.keyId} (${result.fingerprint}) waits, inactive.`);
    console.log(`Once ZITADEL_PAYLOAD_KEYS holds its private key next to the current one and is deployed, run: ${next}`);
    console.log('(Its private key was shown once by step 1. If it is lost, remove that public key in ZITADEL and run step 1 again.)');
  } else {
    console.log(`checked: ${result.proof}`);
    console.log(`step 2 of 2: public key ${result.keyId} (${result.fingerprint}) is now active; removed: ${result.removed.join(', ') || 'none'}.`);
    console.log('\nNext: drop the old private key from ZITADEL_PAYLOAD_KEYS, keeping only the new one, and deploy.');
  }
  return 0;
}
