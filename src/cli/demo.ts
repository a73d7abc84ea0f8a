import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createServerTransport } from '@zitadel/client/node';
import { createSessionServiceClient } from '@zitadel/client/v2';
import { register } from '../admin/registration.js';
import { bodyForm } from '../payload-type/form.js';
import { lastAuthenticatedAt } from '../enforcement/decision.js';
import { WEBHOOK_PATH } from '../routes.js';
import { ALL_PERMISSIONS, EventReceiver, LOGIN_CLIENT_PERMISSIONS, ZitadelSimulator, type SimSession } from '../simulator/index.js';
import { ActionApi, type PayloadKind } from '../zitadel/action-api.js';
import { freePort } from './free-port.js';
import { UsageError } from './usage-error.js';

export const demoHelp = `Usage: zitadel-session-limiter demo [--payload-type json|jwt|jwe] [--json]

Starts a ZITADEL simulator and the service (limit 2), registers the service as a restWebhook target on the
responses of CreateSession and SetSession through the v2 Action API, and plays Login V2: alice signs in on four
devices one after another, then bob on one, then alice re-checks her password on an older session, then an
evicted device tries to go on. The service sends its signed eviction events (EVENTS_URL) to a small receiver the
demo runs, which verifies them as an app would and says which device was notified, and why.
Prints the timeline; --json prints the outcome as JSON instead.
No network, no ZITADEL and no configuration needed.

  --payload-type TYPE   what the target sends: json (default), jwt (signed by the simulator's web key) or jwe
                        (that JWT encrypted to the target's key; register generates the key pair and the service
                        opens the payloads with its private key, as ZITADEL_PAYLOAD_KEYS). Same story, same table.
  --json                print the outcome as JSON`;

const LIMIT = 2;
const ADMIN_TOKEN = 'demo-admin';
const LOGIN_TOKEN = 'demo-login-ui';
const LIMITER_TOKEN = 'demo-session-limiter';

export interface DemoStep {
  step: number;
  user: string;
  device: string;
  call: string;
  /** The acting user's active sessions after the step, by device, most recently authenticated first. */
  active: string[];
  evicted: string[];
  note?: string;
}

/** An eviction event the demo's receiver got and verified, in the demo's words. */
export interface DemoNotification {
  /** The device signed out (the evicted session's). */
  device: string;
  user: string;
  /** The device whose login caused it. */
  signedInOn: string;
  type: string;
  reason: string;
}

export interface DemoOutcome {
  limit: number;
  /** The target's payload type, and the form of every webhook body the simulator sent (e.g. all `jwe`). */
  payloadType: PayloadKind;
  webhooks: { count: number; forms: string[] };
  steps: DemoStep[];
  /** Active sessions per user at the end, by device. */
  final: Record<string, string[]>;
  /** The eviction events received, in the order of the evictions. */
  notifications: DemoNotification[];
}

/** The compiled service next to this file (dist/main.js), started the way users start it. */
function startService(env: Record<string, string>): { child: ChildProcess; ready: Promise<void>; stopped: Promise<void> } {
  const main = fileURLToPath(new URL('../main.js', import.meta.url));
  if (!existsSync(main)) throw new Error(`${main} is missing: run "npm run build" first (npm run demo does)`);
  const child = spawn(process.execPath, [main], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('zitadel-session-limiter ready')) resolve();
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`the service exited with ${code}:\n${output}`)));
  });
  const stopped = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, ready, stopped };
}

/** When the session last verified a credential, by the service's own rule (0: never). */
function lastAuthenticated(session: SimSession): number {
  const verifiedAt = Object.fromEntries(Object.entries(session.factors).map(([factor, date]) => [factor, date.getTime()]));
  return lastAuthenticatedAt({ id: session.id, userId: session.userId, createdAt: undefined, expiresAt: undefined, verifiedAt }) ?? 0;
}

export async function runDemo(log: (line: string) => void, payloadType: PayloadKind = 'json'): Promise<DemoOutcome> {
  const simulator = new ZitadelSimulator({
    tokens: { [ADMIN_TOKEN]: ALL_PERMISSIONS, [LOGIN_TOKEN]: LOGIN_CLIENT_PERMISSIONS, [LIMITER_TOKEN]: ['session.read', 'session.delete'] },
  });
  const { state } = simulator;
  const zitadelUrl = await simulator.listen();
  // The app's side: a receiver of the service's signed eviction events, with a secret made for this run.
  const eventsSecret = `whsec_${randomBytes(32).toString('base64')}`;
  const receiver = new EventReceiver(eventsSecret);
  const eventsUrl = await receiver.listen();
  const alice = state.addUser({ loginName: 'alice@example.com', password: 'alice-password' });
  const bob = state.addUser({ loginName: 'bob@example.com', password: 'bob-password' });
  const names = new Map([
    [alice.id, 'alice'],
    [bob.id, 'bob'],
  ]);

  // Register the service as ZITADEL's operators do (`register --type webhook`): a target, bound to the two responses.
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}${WEBHOOK_PATH}`;
  const target = await register(new ActionApi({ baseUrl: zitadelUrl, token: ADMIN_TOKEN }), {
    name: 'session-limiter',
    endpoint,
    timeout: '10s',
    kind: 'restWebhook',
    interruptOnError: false,
    payloadType,
  });
  const service = startService({
    ZITADEL_PAYLOAD_TYPE: payloadType,
    // jwe: the private key register generated, handed to the service as the value of ZITADEL_PAYLOAD_KEYS.
    ...(target.privateKeyPem ? { ZITADEL_PAYLOAD_KEYS: target.privateKeyPem } : {}),
    ZITADEL_URL: zitadelUrl,
    ZITADEL_TOKEN: LIMITER_TOKEN,
    ZITADEL_SIGNING_KEYS: target.signingKey!,
    SESSION_LIMIT: String(LIMIT),
    EVENTS_URL: eventsUrl,
    EVENTS_SECRET: eventsSecret,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
  });
  const transport = createServerTransport(LOGIN_TOKEN, { baseUrl: zitadelUrl });
  const login = createSessionServiceClient(transport);
  const steps: DemoStep[] = [];
  const deviceOf = new Map<string, string>();
  const tokens = new Map<string, string>();

  const activeOf = (userId: string) =>
    state
      .activeSessionsOf(userId)
      .sort((a, b) => lastAuthenticated(b) - lastAuthenticated(a))
      .map((session) => deviceOf.get(session.id) ?? session.id);

  /** Runs one login call and records what it left: active sessions, evicted ones and why. */
  const step = async (user: string, device: string, call: string, run: () => Promise<unknown>, explain?: string) => {
    const before = new Set(state.sessions.keys());
    let note: string | undefined;
    try {
      await run();
    } catch (error) {
      note = `refused by ZITADEL: ${error instanceof Error ? error.message : String(error)}`;
    }
    const evicted = [...before].filter((id) => !state.sessions.has(id)).map((id) => deviceOf.get(id) ?? id);
    const active = activeOf(user);
    const entry: DemoStep = { step: steps.length + 1, user: names.get(user)!, device, call, active, evicted };
    if (note) entry.note = explain ? `${note}; ${explain}` : note;
    else if (explain) entry.note = explain;
    else if (evicted.length > 0) {
      const seen = active.length + evicted.length;
      entry.note = `evicted ${evicted.join(', ')}: least recently authenticated of ${seen} active sessions, limit ${LIMIT}`;
    }
    steps.push(entry);
  };

  const signIn = async (userId: string, loginName: string, password: string, device: string) => {
    await step(userId, device, 'CreateSession (login name)', async () => {
      const created = await login.createSession({
        checks: { user: { search: { case: 'loginName', value: loginName } } },
        userAgent: { fingerprintId: `fp-${names.get(userId)}-${device}`, description: device },
        lifetime: { seconds: 12n * 3600n },
      });
      deviceOf.set(created.sessionId, device);
      tokens.set(`${userId}/${device}`, created.sessionId);
    });
    const sessionId = tokens.get(`${userId}/${device}`)!;
    await step(userId, device, 'SetSession (password)', () =>
      login.setSession({ sessionId, checks: { password: { password } } }),
    );
  };

  try {
    await service.ready;
    log(`zitadel-session-limiter demo: at most ${LIMIT} active sessions per user\n`);
    log(`  ZITADEL simulator  ${zitadelUrl}  (Session Service over gRPC, v2 Action API)`);
    log(`  session-limiter    ${endpoint}  (restWebhook target on the CreateSession + SetSession responses)`);
    log(`  payload type       ${PAYLOAD_WORDS[payloadType]}`);
    log(`  app receiver       ${eventsUrl}  (EVENTS_URL: signed eviction events, verified as an app would)\n`);
    for (const device of ['laptop', 'phone', 'tablet', 'tv']) await signIn(alice.id, alice.loginName, 'alice-password', device);
    await signIn(bob.id, bob.loginName, 'bob-password', 'laptop');
    const tablet = tokens.get(`${alice.id}/tablet`)!;
    await step(
      alice.id,
      'tablet',
      'SetSession (password re-check)',
      () => login.setSession({ sessionId: tablet, checks: { password: { password: 'alice-password' } } }),
      'the tablet is now the most recently authenticated; still 2 active, nothing to evict',
    );
    const laptop = tokens.get(`${alice.id}/laptop`)!;
    await step(
      alice.id,
      'laptop',
      'SetSession (evicted session goes on)',
      () => login.setSession({ sessionId: laptop, checks: { password: { password: 'alice-password' } } }),
      'the laptop must sign in again',
    );
    const forms = simulator.actions.deliveries.map((delivery) => bodyForm(Buffer.from(delivery.body)));
    // One event per eviction; delivery is off the webhook's answer, so wait for them (not for a time).
    const evictions = steps.flatMap((entry) => entry.evicted);
    const received = await receiver.waitFor(evictions.length, 10_000);
    const notifications = received
      .map((event) => ({
        device: deviceOf.get(String(event.data.sessionId)) ?? String(event.data.sessionId),
        user: names.get(String(event.data.userId)) ?? String(event.data.userId),
        signedInOn: deviceOf.get(String(event.data.causedBySessionId)) ?? String(event.data.causedBySessionId),
        type: event.type,
        reason: String(event.data.reason),
      }))
      .sort((a, b) => evictions.indexOf(a.device) - evictions.indexOf(b.device));
    return {
      limit: LIMIT,
      payloadType,
      webhooks: { count: forms.length, forms: [...new Set(forms)] },
      steps,
      final: { alice: activeOf(alice.id), bob: activeOf(bob.id) },
      notifications,
    };
  } finally {
    service.child.kill('SIGTERM');
    await service.stopped;
    await simulator.close();
    await receiver.close();
  }
}

const PAYLOAD_WORDS: Record<PayloadKind, string> = {
  json: 'JSON (HMAC-signed)',
  jwt: 'JWT (the JSON signed by the simulator\'s web key, checked against /oauth/v2/keys)',
  jwe: 'JWE (that JWT encrypted to the target\'s P-256 key; the service holds the private key)',
};

function printTimeline(outcome: DemoOutcome, log: (line: string) => void): void {
  const rows = outcome.steps.map((s) => [String(s.step), s.user, s.device, s.call, s.active.join(', ') || '-', s.evicted.join(', ') || '-']);
  const header = ['step', 'user', 'device', 'call', 'active sessions of user (newest first)', 'evicted'];
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `  ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ')}`.trimEnd();
  log(line(header));
  outcome.steps.forEach((s, i) => {
    log(line(rows[i]!));
    if (s.note) log(`${' '.repeat(8)}-> ${s.note}`);
  });
  log('');
  if (outcome.notifications.length > 0) {
    // What the demo's receiver got: signed events, verified as an app would.
    for (const n of outcome.notifications) {
      log(
        n.type === 'session.evicted'
          ? `  ${n.device} notified: signed out because ${n.user} signed in on the ${n.signedInOn}`
          : `  ${n.device} notified: ${n.type} (${n.reason})`,
      );
    }
    log('');
  }
  log(`  final: alice is signed in on ${outcome.final.alice?.join(' and ')}; bob on ${outcome.final.bob?.join(', ')}.`);
  log(`  Each login beyond ${outcome.limit} evicted the least recently authenticated session, before ZITADEL answered the login.`);
  const forms = outcome.webhooks.forms.map((form) => (form === 'other' ? 'other' : form.toUpperCase())).join(', ');
  log(
    `  The ${outcome.webhooks.count} webhooks were ${forms}` +
      (outcome.payloadType === 'jwe'
        ? ': encrypted to the target\'s public key, opened by the service alone (no proxy or log in between could read the password).'
        : outcome.payloadType === 'jwt'
          ? ': signed by the instance web key, verified by the service before it acted.'
          : ' (try --payload-type jwe: the same story with encrypted payloads).'),
  );
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { json: { type: 'boolean' }, 'payload-type': { type: 'string', default: 'json' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    console.log(demoHelp);
    return 0;
  }
  const payloadType = values['payload-type'];
  if (!['json', 'jwt', 'jwe'].includes(payloadType)) throw new UsageError(['--payload-type must be json, jwt or jwe']);
  const started = Date.now();
  const outcome = await runDemo(values.json ? () => {} : (line) => console.log(line), payloadType as PayloadKind);
  if (values.json) console.log(JSON.stringify(outcome, null, 2));
  else {
    printTimeline(outcome, (line) => console.log(line));
    console.log(`\n  (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  }
  return 0;
}
