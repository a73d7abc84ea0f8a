// The webhook's answer time with eviction events off, and on with a receiver that holds every answer for 5 s
// (slow) or refuses connections (down): each run signs in a user on a third device, so every webhook evicts one
// session and queues one event. In-process (the service over the gRPC simulator, requests through app.inject), to
// compare the three on the same machine. `node --import tsx bench/events.ts [logins]`.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fixtureFor } from '../test/helpers/payloads.js';
import { minutesAgo, startStack } from '../test/helpers/stack.js';

const LOGINS = Number(process.argv[2] ?? 300);
const SECRET = `whsec_${randomBytes(32).toString('base64')}`;

async function slowReceiver(): Promise<{ url: string; close: () => void }> {
  const server = http.createServer((request, response) => {
    request.resume();
    setTimeout(() => response.writeHead(204).end(), 5000).unref();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, close: () => server.closeAllConnections() };
}

async function run(label: string, env: Record<string, string>): Promise<void> {
  const stack = await startStack({ limit: 2, env: () => env });
  const { state } = stack.simulator;
  const times: number[] = [];
  for (let i = 0; i < LOGINS; i++) {
    const user = `user-${i}`;
    state.seedSession({ userId: user, creationDate: minutesAgo(30), factors: { password: minutesAgo(30) } });
    state.seedSession({ userId: user, creationDate: minutesAgo(20), factors: { password: minutesAgo(20) } });
    const fresh = state.seedSession({ userId: user, factors: { password: new Date() } }).id;
    const body = fixtureFor('03-password.create-session', fresh);
    const start = performance.now();
    const response = await stack.send(body);
    times.push(performance.now() - start);
    if (response.statusCode !== 204) throw new Error(`${label}: ${response.statusCode} ${response.body}`);
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!.toFixed(2);
  const depth = stack.service.events?.depth ?? 0;
  console.log(`${label.padEnd(44)} p50 ${at(0.5)} ms  p90 ${at(0.9)} ms  p99 ${at(0.99)} ms  (events pending: ${depth})`);
  stack.service.metrics.registry.resetMetrics();
  stack.service.events?.shutdown(Date.now()).catch(() => undefined);
  await stack.close();
}

const slow = await slowReceiver();
// Warm-up (JIT, gRPC connection), not reported.
await run('warm-up', {}).catch(() => undefined);
console.log(`${LOGINS} logins, each evicting one session`);
await run('events off', {});
await run('events on, receiver holds its answer 5 s', { EVENTS_URL: slow.url, EVENTS_SECRET: SECRET, LOG_LEVEL: 'error' });
await run('events on, receiver down (connection refused)', { EVENTS_URL: 'http://127.0.0.1:9/hook', EVENTS_SECRET: SECRET, LOG_LEVEL: 'error' });
await run('events off (again)', {});
slow.close();
process.exit(0);
