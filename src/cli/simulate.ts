import { parseArgs } from 'node:util';
import { DEFAULT_SIMULATOR_TOKEN, ZitadelSimulator } from '../simulator/index.js';

export const simulateHelp = `Usage: zitadel-session-limiter simulate [--port 8081] [--host 127.0.0.1] [--user LOGIN:PASSWORD ...]
                                      [--projection-lag MS|until-read] [--latency MS] [--seed N]

Runs a ZITADEL simulator on one port, until interrupted: the Session Service over gRPC (h2c) with ZITADEL's
semantics, the v2 Action API as JSON (targets, executions) and the Actions v2 executor that calls your targets.
Point the service at it with ZITADEL_URL=http://HOST:PORT and ZITADEL_TOKEN=${DEFAULT_SIMULATOR_TOKEN}.

  --port PORT            listen port (0: any free port)           default 8081
  --host HOST            listen address                           default 127.0.0.1
  --user LOGIN:PASSWORD  a user the login can sign in; repeatable default alice@example.com:password
  --projection-lag MS    ListSessions sees a write MS ms after it (as ZITADEL's projection catches up within
                         moments), or at once after a GetSession; until-read: only after a GetSession  default 100
  --latency MS           delay every call by MS ms
  --seed N               the seed of the order of ties in ListSessions (printed at start), to reproduce a run`;

export async function simulateCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '8081' },
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
    if (value !== undefined && !/^\d+$/.test(value)) {
      console.error(`simulate: --${name} must be a whole number`);
      return 2;
    }
  }
  const simulator = new ZitadelSimulator({
    projectionMode: values['projection-lag'] === 'until-read' ? 'until-read' : lag === undefined ? undefined : Number(lag),
    seed: values.seed === undefined ? undefined : Number(values.seed),
  });
  if (values.latency) simulator.state.latencyMs['*'] = Number(values.latency);
  for (const spec of values.user ?? ['alice@example.com:password']) {
    const [loginName, ...password] = spec.split(':');
    const user = simulator.state.addUser({ loginName: loginName!, password: password.join(':') });
    console.log(`user ${user.loginName} (id ${user.id})`);
  }
  const url = await simulator.listen(Number(values.port), values.host);
  console.log(`ZITADEL simulator listening at ${url}`);
  console.log(`bearer token: ${DEFAULT_SIMULATOR_TOKEN} (every permission)`);
  console.log(`seed of the order of ties: ${simulator.state.seed}`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await simulator.close();
  return 0;
}
