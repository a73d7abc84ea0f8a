import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConnectError } from '@connectrpc/connect';
import { createServerTransport } from '@zitadel/client/node';
import { createSessionServiceClient } from '@zitadel/client/v2';
import { describeFetchFailure } from '../net-failure.js';
import { DEFAULT_SIMULATOR_TOKEN, WEBHOOK_LOG_PATH, ZitadelSimulator, describeDelivery, type WebhookLogEntry } from '../simulator/index.js';
import { UsageError } from './usage-error.js';

const DEFAULT_PORT = '8081';
const DEFAULT_SERVICE_PORT = 8080;
const DEFAULT_USER = 'alice@example.com:password';
const DEFAULT_URL = `http://127.0.0.1:${DEFAULT_PORT}`;

export const simulateHelp = `Usage: zitadel-session-limiter simulate [--port ${DEFAULT_PORT}] [--host 127.0.0.1] [--user LOGIN:PASSWORD ...]
                                      [--projection-lag MS|until-read] [--latency MS] [--seed N]
       zitadel-session-limiter simulate login LOGIN_NAME [--password PASSWORD] [--device NAME]
                                      [--url http://127.0.0.1:${DEFAULT_PORT}] [--token ${DEFAULT_SIMULATOR_TOKEN}]

Runs a ZITADEL simulator on one port, until interrupted: the Session Service over gRPC (h2c) with ZITADEL's
semantics, the v2 Action API as JSON (targets, executions) and the Actions v2 executor that calls your targets.
It prints the next steps (register, run the service against it, sign a user in) and logs every webhook it
sends: method, target, status, latency, never the body.
Point the service at it with ZITADEL_URL=http://HOST:PORT and ZITADEL_TOKEN=${DEFAULT_SIMULATOR_TOKEN}.

  --port PORT            listen port (0: any free port)           default ${DEFAULT_PORT}
  --host HOST            listen address                           default 127.0.0.1
  --user LOGIN:PASSWORD  a user the login can sign in; repeatable default ${DEFAULT_USER}
  --projection-lag MS    ListSessions sees a write MS ms after it (as ZITADEL's projection catches up within
                         moments), or at once after a GetSession; until-read: only after a GetSession  default 100
  --latency MS           delay every call by MS ms
  --seed N               the seed of the order of ties in ListSessions (printed at start), to reproduce a run

simulate login: signs LOGIN_NAME in on a running simulator as Login V2 does, through the real @zitadel/client:
CreateSession with the user, then SetSession with the password. For each call it shows ZITADEL's answer and
each webhook the executor sent (target, size, status, latency, outcome), never a body (it holds the password
and the session token). Exit code 0 when both calls succeeded, 1 when ZITADEL refused one (wrong password, a
login denied by the limit, a webhook failing with interruptOnError).

  --password PASSWORD    the user's password                      default password
  --device NAME          the device's name (user agent description and fingerprint)  default laptop
  --url URL              the simulator                            default http://127.0.0.1:${DEFAULT_PORT}
  --token TOKEN          the login client's bearer token          default ${DEFAULT_SIMULATOR_TOKEN}`;

/** How to run this CLI again, as the user ran it: `npm run -s cli --` in a clone, the command when installed. */
function cliPrefix(): string {
  if (process.env.npm_lifecycle_event === 'cli') return 'npm run -s cli --';
  const script = process.argv[1] ?? 'zitadel-session-limiter';
  if (path.basename(script) === 'zitadel-session-limiter') return 'zitadel-session-limiter';
  return `node ${path.relative(process.cwd(), script) || script}`;
}

/** What to run next against the simulator at `url`: one step a line, each command as it can be pasted. */
export function nextSteps(url: string, loginName: string, password: string, cli = cliPrefix()): string[] {
  const endpoint = `http://127.0.0.1:${DEFAULT_SERVICE_PORT}/webhooks/zitadel`;
  return [
    'Next, in another terminal:',
    '  1. Register the service as a restWebhook target on CreateSession and SetSession. Here the simulator token',
    '     serves as ZITADEL_ADMIN_TOKEN (in production: a separate IAM_OWNER token). It prints the signing key once:',
    `       ZITADEL_URL=${url} ZITADEL_ADMIN_TOKEN=${DEFAULT_SIMULATOR_TOKEN} ${cli} register --type webhook --endpoint ${endpoint}`,
    '  2. Run the service against this simulator, with that key as ZITADEL_SIGNING_KEYS:',
    `       ZITADEL_URL=${url} ZITADEL_TOKEN=${DEFAULT_SIMULATOR_TOKEN} ZITADEL_SIGNING_KEYS=<the key register printed> SESSION_LIMIT=2 HOST=127.0.0.1 PORT=${DEFAULT_SERVICE_PORT} ${cli} serve`,
    '  3. Sign a user in (Login V2: CreateSession with the user, SetSession with the password), one device at a time:',
    `       ${cli} simulate login ${loginName} --password ${password} --device phone${url === DEFAULT_URL ? '' : ` --url ${url}`}`,
    '     A third device evicts the least recently authenticated session: the service logs "enforced".',
    '  4. The repair sweep finds users over the limit (here, limit 1):',
    `       ZITADEL_URL=${url} ZITADEL_TOKEN=${DEFAULT_SIMULATOR_TOKEN} SESSION_LIMIT=1 ${cli} enforce --all --dry-run`,
    'Every webhook the simulator sends is logged below (method, target, status, latency; never the body).',
  ];
}

export async function simulateCommand(argv: string[]): Promise<number> {
  if (argv[0] === 'login') return loginCommand(argv.slice(1));
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: DEFAULT_PORT },
      host: { type: 'string', default: '127.0.0.1' },
      user: { type: 'string', multiple: true },
      'projection-lag': { type: 'string' },
      latency: { type: 'string' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(simulateHelp);
    return 0;
  }
  const lag = values['projection-lag'] === 'until-read' ? undefined : values['projection-lag'];
  const numbers = { port: values.port, 'projection-lag': lag, latency: values.latency, seed: values.seed };
  for (const [name, value] of Object.entries(numbers)) {
    if (value !== undefined && !/^\d+$/.test(value)) throw new UsageError([`--${name} must be a whole number`]);
  }
  const simulator = new ZitadelSimulator({
    projectionMode: values['projection-lag'] === 'until-read' ? 'until-read' : lag === undefined ? undefined : Number(lag),
    seed: values.seed === undefined ? undefined : Number(values.seed),
    onDelivery: (delivery) => console.log(`${new Date().toISOString()} ${describeDelivery(delivery)}`),
  });
  if (values.latency) simulator.state.latencyMs['*'] = Number(values.latency);
  const users = (values.user ?? [DEFAULT_USER]).map((spec) => {
    const [loginName, ...password] = spec.split(':');
    const user = simulator.state.addUser({ loginName: loginName!, password: password.join(':') });
    console.log(`user ${user.loginName} (id ${user.id})`);
    return { loginName: user.loginName, password: password.join(':') };
  });
  const url = await simulator.listen(Number(values.port), values.host);
  console.log(`ZITADEL simulator listening at ${url}`);
  console.log(`bearer token: ${DEFAULT_SIMULATOR_TOKEN} (every permission)`);
  console.log(`seed of the order of ties: ${simulator.state.seed}`);
  console.log('');
  for (const line of nextSteps(url, users[0]!.loginName, users[0]!.password)) console.log(line);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await simulator.close();
  return 0;
}

/** The simulator's webhook log after position `after` (no bodies), or why it could not be read. */
async function webhooksAfter(url: string, token: string, after: number): Promise<WebhookLogEntry[]> {
  const log = `${url}${WEBHOOK_LOG_PATH}?after=${after}`;
  const response = await fetch(log, { headers: { authorization: `Bearer ${token}` } }).catch((error: unknown) => {
    throw new Error(`${describeFetchFailure(log, error)}; is "zitadel-session-limiter simulate" running there?`, { cause: error });
  });
  if (!response.ok) throw new Error(`the simulator's webhook log answered ${response.status}: is ${url} a zitadel-session-limiter simulator?`);
  return ((await response.json()) as { webhooks: WebhookLogEntry[] }).webhooks;
}

function describeWebhook(entry: WebhookLogEntry): string {
  const kind = entry.async ? 'restAsync' : 'restWebhook';
  const status = entry.status === undefined ? 'no answer' : String(entry.status);
  const latency = entry.latencyMs === undefined ? '' : ` in ${entry.latencyMs} ms`;
  const method = entry.fullMethod.split('/').at(-1);
  return `    webhook POST ${entry.endpoint} (${method} response, ${kind}, ${entry.bytes} bytes${entry.signed ? ', signed' : ''}) -> ${status}${latency}: ${entry.outcome}`;
}

async function loginCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      password: { type: 'string', default: 'password' },
      device: { type: 'string', default: 'laptop' },
      url: { type: 'string', default: DEFAULT_URL },
      token: { type: 'string', default: DEFAULT_SIMULATOR_TOKEN },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(simulateHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(['give exactly one LOGIN_NAME, e.g. simulate login alice@example.com --device phone']);
  const loginName = positionals[0]!;
  let url: URL;
  try {
    url = new URL(values.url);
  } catch {
    throw new UsageError([`--url must be the simulator's URL, e.g. http://127.0.0.1:${DEFAULT_PORT}`]);
  }
  const base = url.origin;
  let seen: number;
  try {
    seen = (await webhooksAfter(base, values.token, 0)).length;
  } catch (error) {
    // webhooksAfter wraps fetch's TypeError, whose own cause holds the system's code.
    const fetchError = (error as { cause?: { code?: string; cause?: { code?: string } } }).cause;
    const cause = fetchError?.code ?? fetchError?.cause?.code;
    console.error(
      `error: cannot reach the simulator at ${base}${cause ? ` (${cause})` : ''}: ` +
        `start it with "simulate" in another terminal, or pass its address with --url`,
    );
    return 1;
  }
  const client = createSessionServiceClient(createServerTransport(values.token, { baseUrl: base }));
  console.log(`${loginName} signs in on "${values.device}" at ${base} (Login V2 through @zitadel/client)`);

  /** Runs one Login V2 call, then prints ZITADEL's answer and the webhooks it caused. */
  const call = async <T>(title: string, run: () => Promise<T>, ok: (result: T) => string): Promise<T | undefined> => {
    let result: T | undefined;
    let answer: string;
    try {
      result = await run();
      answer = `ok${ok(result) ? `: ${ok(result)}` : ''}`;
    } catch (error) {
      const connectError = ConnectError.from(error);
      answer = `refused: ${connectError.message}`;
    }
    console.log(`  ${title} -> ${answer}`);
    const webhooks = await webhooksAfter(base, values.token, seen);
    seen += webhooks.length;
    if (webhooks.length === 0) {
      console.log(
        result === undefined
          ? '    no webhook sent: response executions run only after a successful call'
          : '    no webhook sent: no target is bound to this response (run "register" first)',
      );
    }
    for (const entry of webhooks) console.log(describeWebhook(entry));
    return result;
  };

  const created = await call(
    `CreateSession (user ${loginName})`,
    () =>
      client.createSession({
        checks: { user: { search: { case: 'loginName', value: loginName } } },
        userAgent: { fingerprintId: `fp-${loginName}-${values.device}`, description: values.device },
        lifetime: { seconds: 12n * 3600n },
      }),
    (response) => `session ${response.sessionId}`,
  );
  if (!created) return 1;
  const set = await call(
    'SetSession (password)',
    () => client.setSession({ sessionId: created.sessionId, checks: { password: { password: values.password } } }),
    () => '',
  );
  if (!set) return 1;
  console.log(`${loginName} is signed in on "${values.device}" (session ${created.sessionId})`);
  return 0;
}
