import { parseArgs } from 'node:util';
import { runDoctor, type CheckResult } from '../admin/doctor.js';
import { ConfigError, loadConfig, plainHttpWarning } from '../config.js';
import { credentialsFor } from '../service.js';
import { ActionApi } from '../zitadel/action-api.js';
import { ZitadelConnection } from '../zitadel/connection.js';
import { PersonalAccessToken } from '../zitadel/credentials.js';
import { webKeysUrl } from '../zitadel/web-keys.js';

export const doctorHelp = `Usage: zitadel-session-limiter doctor [--name session-limiter] [--endpoint URL] [--json]

Checks a deployment, one PASS / FAIL / WARN / SKIP line each; exits 1 if anything FAILs:
  - ZITADEL is reachable and the runtime token is valid; it holds session.read and session.delete
  - the target exists, is bound to the CreateSession and SetSession responses, and its key is in
    ZITADEL_SIGNING_KEYS                                          (needs ZITADEL_ADMIN_TOKEN)
  - the target's payload type is ZITADEL_PAYLOAD_TYPE (a ZITADEL older than v4.8 has JSON only); for jwe, the
    target's active public key is the public half of a key in ZITADEL_PAYLOAD_KEYS   (needs ZITADEL_ADMIN_TOKEN)
  - for jwt and jwe: the instance's web keys (<ZITADEL_URL>/oauth/v2/keys) answer with at least one key
  - the endpoint accepts a request signed the way ZITADEL signs it (for a jwt/jwe target its JSON probe is
    answered 400 ERR_PAYLOAD_TYPE after the signature passed: that is a PASS)
  - WARN when ON_LIMIT=deny-new but the target does not wait and interrupt (async, or no interruptOnError)
  - WARN for each OIDC app where an eviction does not really sign the device out: no back-channel logout URI,
    JWT access tokens, refresh tokens granted                     (needs ZITADEL_ADMIN_TOKEN)

It reads the service's own environment (ZITADEL_URL, ZITADEL_TOKEN or ZITADEL_KEY_FILE, and ZITADEL_SIGNING_KEYS
if set: without it the key check is skipped; ZITADEL_PAYLOAD_TYPE and ZITADEL_PAYLOAD_KEYS) plus ZITADEL_ADMIN_TOKEN; run it where the service's configuration
is, e.g. "fly ssh console -C 'zitadel-session-limiter doctor'".

  --name NAME      the target's name                          default session-limiter
  --endpoint URL   check this endpoint instead of the target's
  --json           print the results as JSON`;

export async function doctorCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      name: { type: 'string', default: 'session-limiter' },
      endpoint: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(doctorHelp);
    return 0;
  }
  const print = (results: CheckResult[]) => {
    if (values.json) console.log(JSON.stringify(results, null, 2));
    else for (const r of results) console.log(`${r.status.padEnd(4)}  ${r.check}: ${r.detail}`);
    return results.some((r) => r.status === 'FAIL') ? 1 : 0;
  };

  let config;
  let warnings: string[];
  try {
    ({ config, warnings } = loadConfig(process.env, { servesWebhooks: false })); // the signing keys are optional here
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return print(error.problems.map((problem) => ({ status: 'FAIL' as const, check: 'configuration', detail: problem })));
  }
  const adminToken = process.env.ZITADEL_ADMIN_TOKEN?.trim();
  // Before any token is sent: a warning on stderr when one would travel unencrypted.
  if (adminToken) warnings.push(plainHttpWarning(config.zitadelUrl, 'the admin token') ?? '');
  for (const warning of warnings.filter(Boolean)) process.stderr.write(`warning: ${warning}\n`);
  const runtime = new ZitadelConnection({ baseUrl: config.zitadelUrl, credentials: credentialsFor(config), timeoutMs: config.zitadelTimeoutMs });
  const adminConnection = adminToken
    ? new ZitadelConnection({ baseUrl: config.zitadelUrl, credentials: new PersonalAccessToken(adminToken), timeoutMs: config.zitadelTimeoutMs })
    : undefined;
  try {
    const results = await runDoctor({
      zitadelUrl: config.zitadelUrl.origin,
      runtime: runtime.transport,
      signingKeys: config.signingKeys,
      admin: adminConnection && { api: new ActionApi({ baseUrl: config.zitadelUrl, token: adminToken! }), transport: adminConnection.transport },
      targetName: values.name,
      endpoint: values.endpoint,
      onLimit: config.policy.onLimit,
      limitMetadataKey: config.limitMetadataKey,
      events: config.events,
      payloadType: config.payloadType,
      payloadKeyFingerprints: config.payloadKeys.map((key) => key.fingerprint),
      webKeysUrl: webKeysUrl(config.zitadelUrl).href,
    });
    return print(results);
  } finally {
    runtime.close();
    adminConnection?.close();
  }
}
