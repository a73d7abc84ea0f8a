/**
 * The ZITADEL simulator in a process of its own for the benchmark, controlled over IPC: the service, the baseline
 * and the floor all talk to it over loopback gRPC, as they would to ZITADEL.
 */
import { ZitadelSimulator } from '../src/simulator/index.js';

export type SimulatorRequest =
  | { op: 'latency'; ms: number }
  | { op: 'seed'; userId: string; active: number; expired?: number }
  /** `users` users `${prefix}-<n>` with `active` sessions each; the reply is each user's newest session id. */
  | { op: 'seedMany'; prefix: string; users: number; active: number }
  | { op: 'count'; userId: string }
  | { op: 'calls' }
  /** The instance's active web key signs each payload as ZITADEL signs a JWT payload (bench/payload-throughput.ts). */
  | { op: 'sign'; payloads: string[] };
export type SimulatorCommand = SimulatorRequest & { id: number };

const simulator = new ZitadelSimulator({ projectionMode: 'until-read' });
const url = await simulator.listen();
const { state } = simulator;
let seq = 0;

process.on('message', (message: SimulatorCommand) => {
  if (message.op === 'sign') {
    void Promise.all(message.payloads.map((payload) => simulator.actions.webKeys.sign(payload))).then((reply) => process.send!({ id: message.id, reply }));
    return;
  }
  let reply: unknown = null;
  if (message.op === 'latency') state.latencyMs['*'] = message.ms;
  else if (message.op === 'seed') {
    const base = Date.now() - 3_600_000;
    for (let i = 0; i < (message.expired ?? 0); i++) {
      state.seedSession({ userId: message.userId, creationDate: new Date(base - 1000 + i), factors: { password: new Date(base) }, expirationDate: new Date(base + 1) });
    }
    const ids: string[] = [];
    for (let i = 0; i < message.active; i++) {
      const at = new Date(Date.now() - 1000 + i + seq++ % 1000);
      ids.push(state.seedSession({ userId: message.userId, creationDate: at, factors: { password: at } }).id);
    }
    reply = ids;
  } else if (message.op === 'seedMany') {
    const newest: string[] = [];
    for (let u = 0; u < message.users; u++) {
      for (let i = 0; i < message.active; i++) {
        const at = new Date(Date.now() - 1000 + i);
        const id = state.seedSession({ userId: `${message.prefix}-${u}`, creationDate: at, factors: { password: at } }).id;
        if (i === message.active - 1) newest.push(id);
      }
    }
    reply = newest;
  } else if (message.op === 'count') reply = state.activeSessionsOf(message.userId).length;
  else if (message.op === 'calls') {
    reply = state.calls.length;
    state.calls.length = 0;
  }
  process.send!({ id: message.id, reply });
});
process.send!({ ready: url });
