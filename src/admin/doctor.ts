import { randomBytes } from 'node:crypto';
import { Code, ConnectError, type Transport } from '@connectrpc/connect';
import { createClientFor } from '@zitadel/client';
import { createSessionServiceClient, createUserServiceClient } from '@zitadel/client/v2';
import { AppService } from '@zitadel/proto/zitadel/app/v2beta/app_service_pb.js';
import { OIDCGrantType, OIDCTokenType } from '@zitadel/proto/zitadel/app/v2beta/oidc_pb.js';
import { ProjectService } from '@zitadel/proto/zitadel/project/v2beta/project_service_pb.js';
import { describeFetchFailure } from '../net-failure.js';
import { ActionApiError, type ActionApi, type PayloadKind, type Target } from '../zitadel/action-api.js';
import { UNAVAILABLE_CODES } from '../zitadel/failures.js';
import { METHODS, shortMethod } from './registration.js';

import { checkEndpoint, type CheckResult, type Status } from './endpoint-check.js';
import { publicKeyFingerprint } from './payload-keys.js';

export type { CheckResult, Status };

export interface DoctorInputs {
  zitadelUrl: string;
  /** The service's runtime connection (its token or key file). */
  runtime: Transport;
  /** The keys the service verifies with (ZITADEL_SIGNING_KEYS). */
  signingKeys: string[];
  /** The admin side, when ZITADEL_ADMIN_TOKEN is set: Action API and a gRPC transport with that token. */
  admin?: { api: ActionApi; transport: Transport } | undefined;
  targetName: string;
  /** Overrides the target's endpoint (or stands in for it without an admin token). */
  endpoint?: string | undefined;
  /** The service's ON_LIMIT: deny-new only refuses logins through a waiting, interrupting target. */
  onLimit?: 'evict-oldest' | 'deny-new';
  /** SESSION_LIMIT_METADATA_KEY: then the runtime token must read user and organisation metadata. */
  limitMetadataKey?: string | undefined;
  /** EVENTS_URL and EVENTS_SECRET: then a signed test event is sent there. */
  events?: { url: URL; secret: string } | undefined;
  /** ZITADEL_PAYLOAD_TYPE; undefined: the payload checks are skipped. */
  payloadType?: PayloadKind | undefined;
  /** The fingerprints of ZITADEL_PAYLOAD_KEYS' public halves (`SHA256:...`); empty when it is not set here. */
  payloadKeyFingerprints?: readonly string[] | undefined;
  /** The instance's JWKS; default `<zitadelUrl>/oauth/v2/keys`. */
  webKeysUrl?: string | undefined;
}

const codeOf = (error: unknown) => ConnectError.from(error).code;
const probeId = () => `doctor-probe-${randomBytes(6).toString('hex')}`;

/** Runs every check in order; later checks that depend on a failed one are skipped, with the reason. */
export async function runDoctor(inputs: DoctorInputs): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const add = (status: Status, check: string, detail: string) => results.push({ status, check, detail });
  const sessions = createSessionServiceClient(inputs.runtime);

  // 1. Reachability and the runtime token.
  let reachable = false;
  try {
    await sessions.getSession({ sessionId: probeId() });
    reachable = true;
  } catch (error) {
    const code = codeOf(error);
    if (code === Code.NotFound || code === Code.PermissionDenied) reachable = true;
    else if (code === Code.Unauthenticated) {
      add('FAIL', 'runtime token', 'ZITADEL rejected the token: check ZITADEL_TOKEN (or ZITADEL_KEY_FILE); it may be expired or revoked');
    } else if (UNAVAILABLE_CODES.has(code)) {
      add('FAIL', 'ZITADEL reachable', `${inputs.zitadelUrl} is unreachable: ${Code[code]}: ${ConnectError.from(error).rawMessage}`);
    } else add('FAIL', 'ZITADEL reachable', `${inputs.zitadelUrl} did not answer: ${Code[code]} ${ConnectError.from(error).rawMessage}`);
  }
  if (reachable) {
    add('PASS', 'ZITADEL reachable, runtime token valid', inputs.zitadelUrl);
    try {
      await sessions.listSessions({ query: { limit: 1 } });
      add('PASS', 'session.read', 'ListSessions answered');
    } catch (error) {
      add('FAIL', 'session.read', `ListSessions: ${Code[codeOf(error)]}: grant the service user IAM_USER_MANAGER (instance members)`);
    }
    try {
      // Deleting an id that does not exist is harmless and succeeds only with the permission.
      await sessions.deleteSession({ sessionId: probeId() });
      add('PASS', 'session.delete', 'DeleteSession answered');
    } catch (error) {
      add('FAIL', 'session.delete', `DeleteSession: ${Code[codeOf(error)]}: grant the service user IAM_USER_MANAGER (instance members)`);
    }
    if (inputs.limitMetadataKey) {
      try {
        await createUserServiceClient(inputs.runtime).listUserMetadata({ userId: probeId() });
        add('PASS', 'metadata read', 'ListUserMetadata answered');
      } catch (error) {
        const code = codeOf(error);
        if (code === Code.NotFound) add('PASS', 'metadata read', 'ListUserMetadata answered');
        else add('FAIL', 'metadata read', `ListUserMetadata: ${Code[code]}: SESSION_LIMIT_METADATA_KEY needs user.read and org.read (IAM_USER_MANAGER)`);
      }
    }
  } else {
    add('SKIP', 'session.read, session.delete', 'ZITADEL or the token is not usable (see above)');
  }

  // 2. The target and its executions (admin token).
  let target: Target | undefined;
  if (!inputs.admin) {
    add('SKIP', 'target and executions', 'set ZITADEL_ADMIN_TOKEN (IAM_OWNER) to check them');
  } else {
    try {
      target = await inputs.admin.api.findTarget(inputs.targetName);
      if (!target) add('FAIL', 'target', `no target named "${inputs.targetName}": run "zitadel-session-limiter register --endpoint <URL>"`);
      else {
        add('PASS', 'target', `"${target.name}" (${target.id}) ${target.kind} -> ${target.endpoint}`);
        for (const method of METHODS) {
          const bound = (await inputs.admin.api.responseTargets(method)).includes(target.id);
          add(
            bound ? 'PASS' : 'FAIL',
            `${shortMethod(method)} response execution`,
            bound ? 'the target is bound' : 'the target is not bound: run register again (it keeps other targets)',
          );
        }
        if (target.signingKey !== undefined && inputs.signingKeys.length === 0) {
          add('SKIP', 'signing key', 'ZITADEL_SIGNING_KEYS is not set here: run doctor with the service\'s environment to check it');
        } else if (target.signingKey !== undefined) {
          const known = inputs.signingKeys.includes(target.signingKey);
          add(
            known ? 'PASS' : 'FAIL',
            'signing key',
            known
              ? 'ZITADEL_SIGNING_KEYS holds the target\'s current key'
              : 'ZITADEL_SIGNING_KEYS does not hold the target\'s current key: the service would refuse every webhook',
          );
        }
        if (inputs.onLimit === 'deny-new' && (target.kind !== 'restWebhook' || !target.interruptOnError)) {
          add(
            'WARN',
            'deny-new',
            `ON_LIMIT=deny-new, but the target is ${target.kind}${target.kind === 'restWebhook' ? ' without interruptOnError' : ''}: ` +
              'logins over the limit are not refused, only their sessions deleted. Run "register --deny-new"',
          );
        }
        if (inputs.payloadType) results.push(...(await checkPayloadType(inputs.admin.api, target, inputs.payloadType, inputs.payloadKeyFingerprints ?? [])));
        if (target.kind === 'restCall') {
          add('WARN', 'target type', 'restCall lets a target rewrite the login\'s response: register it as async or webhook');
        }
      }
    } catch (error) {
      add('FAIL', 'target', (error as Error).message);
    }
  }

  // 3. JWT and JWE payloads are signed by an instance web key: the service must be able to fetch them.
  if ((inputs.payloadType !== undefined && inputs.payloadType !== 'json') || (target?.payloadType !== undefined && target.payloadType !== 'json')) {
    results.push(await checkWebKeys(inputs.webKeysUrl ?? `${inputs.zitadelUrl.replace(/\/+$/, '')}/oauth/v2/keys`));
  }

  // 4. The endpoint answers a request signed as ZITADEL would sign it.
  const endpoint = inputs.endpoint ?? target?.endpoint;
  if (!endpoint) add('SKIP', 'endpoint', 'no target found; pass --endpoint URL to check a deployment');
  else results.push(await checkEndpoint(endpoint, target?.signingKey ?? inputs.signingKeys[0], target?.payloadType ?? inputs.payloadType ?? 'json'));

  // 5. Applications where an eviction does not really sign the device out.
  if (inputs.admin) results.push(...(await checkApplications(inputs.admin.transport)));

  // 5. The application's event receiver takes a signed test event.
  if (inputs.events) results.push(await checkEvents(inputs.events.url, inputs.events.secret));
  return results;
}

/** Sends one signed event of type `test` to EVENTS_URL: PASS on 2xx. Loaded only when EVENTS_URL is set. */
async function checkEvents(url: URL, secret: string): Promise<CheckResult> {
  const { EventSigner, newEventId, sendSigned } = await import('../events/send.js');
  const id = newEventId();
  const body = JSON.stringify({
    type: 'test',
    timestamp: new Date().toISOString(),
    data: { message: 'zitadel-session-limiter doctor: a test event; nothing happened to any session' },
  });
  const check = 'events receiver';
  const where = `${url.origin}${url.pathname}`;
  const result = await sendSigned(url, new EventSigner(secret), id, body, new Date(), 10_000);
  if (result.status === undefined) return { status: 'FAIL', check, detail: `${where} could not be reached: ${result.error}` };
  if (result.status >= 200 && result.status < 300) return { status: 'PASS', check, detail: `${where} accepted a signed test event (${result.status}, webhook-id ${id})` };
  const hint = result.status === 401 || result.status === 403 || result.status === 400 ? ': check that the receiver verifies with the same EVENTS_SECRET' : '';
  return { status: 'FAIL', check, detail: `${where} answered ${result.status} to a signed test event (webhook-id ${id})${hint}` };
}

const NAMES: Record<PayloadKind, string> = { json: 'JSON', jwt: 'JWT', jwe: 'JWE' };

/**
 * The target's payload type against ZITADEL_PAYLOAD_TYPE, and for jwe its active public key against
 * ZITADEL_PAYLOAD_KEYS. A target read without a payload type is JSON: on ZITADEL v4.8+ (protobuf JSON omits the zero
 * enum) or on an older ZITADEL, told apart by the public-key routes (404 there).
 */
async function checkPayloadType(api: ActionApi, target: Target, configured: PayloadKind, held: readonly string[]): Promise<CheckResult[]> {
  const check = 'payload type';
  let keys: Awaited<ReturnType<ActionApi['listPublicKeys']>> | undefined;
  try {
    keys = await api.listPublicKeys(target.id);
  } catch (error) {
    if (!(error instanceof ActionApiError && error.status === 404)) return [{ status: 'FAIL', check, detail: (error as Error).message }];
  }
  if (keys === undefined && target.payloadType === undefined) {
    return [
      configured === 'json'
        ? { status: 'PASS', check, detail: 'this ZITADEL is older than v4.8 and has no payload types: it sends JSON, as ZITADEL_PAYLOAD_TYPE=json expects' }
        : {
            status: 'FAIL',
            check,
            detail:
              `this ZITADEL is older than v4.8 and has no payload types: it sends JSON, but ZITADEL_PAYLOAD_TYPE is ${configured}. ` +
              'Set ZITADEL_PAYLOAD_TYPE=json, or upgrade ZITADEL to v4.8 or later and run register --payload-type ' + configured,
          },
    ];
  }
  const sent = target.payloadType ?? 'json';
  const results: CheckResult[] = [];
  if (sent === configured) results.push({ status: 'PASS', check, detail: `the target sends ${NAMES[sent]}, as ZITADEL_PAYLOAD_TYPE=${configured} expects` });
  else {
    results.push({
      status: 'FAIL',
      check,
      detail:
        `the target sends ${NAMES[sent]} but ZITADEL_PAYLOAD_TYPE is ${configured}: the service refuses every webhook (400 ERR_PAYLOAD_TYPE). ` +
        `Set ZITADEL_PAYLOAD_TYPE=${sent}, or run register --payload-type ${configured}`,
    });
  }
  if (sent !== 'jwe') return results;
  const active = keys?.find((key) => key.active);
  if (!active) {
    results.push({ status: 'FAIL', check: 'payload key', detail: 'the target has no active public key: ZITADEL fails every call (MissingEncryptionKey); run register --payload-type jwe' });
  } else if (held.length === 0) {
    results.push({ status: 'SKIP', check: 'payload key', detail: "ZITADEL_PAYLOAD_KEYS is not set here: run doctor with the service's environment to check it" });
  } else {
    const fingerprint = publicKeyFingerprint(active.publicKeyPem) ?? active.fingerprint;
    results.push(
      held.includes(fingerprint)
        ? { status: 'PASS', check: 'payload key', detail: `ZITADEL_PAYLOAD_KEYS holds the private key of the active public key ${active.keyId} (${fingerprint})` }
        : {
            status: 'FAIL',
            check: 'payload key',
            detail:
              `no key of ZITADEL_PAYLOAD_KEYS (${held.join(', ')}) is the private half of the target's active public key ${active.keyId} ` +
              `(${fingerprint}): the service refuses every webhook (401 ERR_PAYLOAD_UNDECRYPTABLE). Set the right key, or rotate with rotate-key --payload-key if it is lost`,
          },
    );
  }
  return results;
}

/** The instance's JWKS answers with at least one key (the service verifies JWT payloads against it). */
async function checkWebKeys(url: string): Promise<CheckResult> {
  const check = 'web keys (JWKS)';
  try {
    const response = await fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(10_000) });
    const json = (await response.json().catch(() => undefined)) as { keys?: unknown } | undefined;
    const count = Array.isArray(json?.keys) ? json.keys.length : 0;
    if (response.ok && count > 0) return { status: 'PASS', check, detail: `${url} serves ${count} key(s)` };
    const answered = response.ok ? `answered ${response.status} with no keys` : `answered HTTP ${response.status} (no JWKS)`;
    return {
      status: 'FAIL',
      check,
      detail: `${url} ${answered}: the service cannot verify JWT/JWE payloads (503 ERR_ZITADEL_UNAVAILABLE or 401 ERR_PAYLOAD_SIGNATURE); check ZITADEL_URL`,
    };
  } catch (error) {
    return { status: 'FAIL', check, detail: `${describeFetchFailure(url, error)}: the service cannot verify JWT/JWE payloads (503 ERR_ZITADEL_UNAVAILABLE)` };
  }
}

async function checkApplications(transport: Transport): Promise<CheckResult[]> {
  const projects = createClientFor(ProjectService)(transport);
  const apps = createClientFor(AppService)(transport);
  const results: CheckResult[] = [];
  try {
    const { projects: list } = await projects.listProjects({ pagination: { limit: 1000 } });
    let oidcApps = 0;
    for (const project of list) {
      const { applications } = await apps.listApplications({ projectId: project.id, pagination: { limit: 1000 } });
      for (const app of applications) {
        if (app.config.case !== 'oidcConfig') continue;
        oidcApps += 1;
        const oidc = app.config.value;
        const name = `app "${app.name}" (project "${project.name}")`;
        if (!oidc.backChannelLogoutUri) {
          results.push({ status: 'WARN', check: name, detail: 'no back-channel logout URI: the app is not told when a session is evicted' });
        }
        if (oidc.accessTokenType === OIDCTokenType.OIDC_TOKEN_TYPE_JWT) {
          results.push({ status: 'WARN', check: name, detail: 'JWT access tokens: APIs that validate them locally accept them until they expire' });
        }
        if (oidc.grantTypes.includes(OIDCGrantType.OIDC_GRANT_TYPE_REFRESH_TOKEN)) {
          results.push({ status: 'WARN', check: name, detail: 'refresh tokens granted: they survive an eviction (ZITADEL issue #12637)' });
        }
      }
    }
    if (results.length === 0) {
      results.push({ status: 'PASS', check: 'applications', detail: `${oidcApps} OIDC app(s): an eviction signs their devices out` });
    }
  } catch (error) {
    if (UNAVAILABLE_CODES.has(codeOf(error))) {
      results.push({ status: 'SKIP', check: 'applications', detail: 'ZITADEL could not be reached (see above)' });
      return results;
    }
    results.push({
      status: 'WARN',
      check: 'applications',
      detail: `the admin token cannot read applications (${Code[codeOf(error)]}): skipped this part`,
    });
  }
  return results;
}
