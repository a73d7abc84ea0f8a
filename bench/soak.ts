/**
 * A bounded soak run (not part of `npm test`): a mix of valid, invalid and ignored webhooks against the service
 * (a child process) and a ZITADEL simulator, on loopback, for SOAK_SECONDS (default 60). Reports p50/p99 latency
 * and the service's RSS at the start and the end.  Run: npm run soak
 */
import { writeFileSync } from 'node:fs';
import { signPayload } from '../src/signature/sign.js';
import { DEFAULT_SIMULATOR_TOKEN, ZitadelSimulator } from '../src/simulator/index.js';
import { fixtureFor } from '../test/helpers/payloads.js';
import { load, percentile, rssMb, startService, type Shot } from './lib.js';

const KEY = 'SoakSoakSoakSoakSoakSoakSoakSoak1234';
const seconds = Number(process.env.SOAK_SECONDS ?? 60);

const simulator = new ZitadelSimulator();
await simulator.listen();
const { state } = simulator;
state.latencyMs['*'] = 2;
const service = await startService({ ZITADEL_URL: simulator.url, ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN, ZITADEL_SIGNING_KEYS: KEY, SESSION_LIMIT: '2' });
const pid = service.child.pid!;
const endpoint = `${service.url}/webhooks/zitadel`;
const signed = (body: string, key = KEY): Shot => ({
  url: endpoint,
  headers: { 'content-type': 'application/json', 'zitadel-signature': signPayload(body, key) },
  body,
});

// Warm up, then measure the start RSS.
await load({ connections: 4, seconds: 2, next: () => signed(fixtureFor('01-login-name.create-session', '1')) });
const rssStart = rssMb(pid);
const samples: { at: number; rssMb: number }[] = [];
const sampler = setInterval(() => samples.push({ at: Math.round(performance.now()), rssMb: rssMb(pid) }), 5000);

const result = await load({
  connections: 16,
  seconds,
  next: (i) => {
    const kind = i % 10;
    if (kind < 5) return signed(fixtureFor('01-login-name.create-session', String(i))); // ignored: no credential
    if (kind < 7) return signed(fixtureFor('02-password.set-session', String(i)), 'wrong-key'); // rejected
    if (kind < 8) return { url: endpoint, headers: { 'content-type': 'text/plain' }, body: 'x' }; // rejected: 415
    // Enforced: a password login of one of 500 users, who keep signing in on new devices.
    const userId = `soak-${i % 500}`;
    const id = state.seedSession({ userId, factors: { password: new Date() } }).id;
    return signed(fixtureFor('02-password.set-session', id));
  },
});
clearInterval(sampler);
const rssEnd = rssMb(pid);
await service.stop();
await simulator.close();

const report = {
  seconds: Math.round(result.seconds),
  requests: result.requests,
  perSecond: result.perSecond,
  statuses: result.statuses,
  latencyMs: { p50: percentile(result.latenciesMs, 50), p99: percentile(result.latenciesMs, 99), max: percentile(result.latenciesMs, 100) },
  rssMb: { start: rssStart, end: rssEnd, samples: samples.map((s) => s.rssMb) },
  sessionsLeft: state.sessions.size,
};
console.log(JSON.stringify(report, null, 2));
writeFileSync(new URL('./soak-result.json', import.meta.url), `${JSON.stringify(report, null, 2)}\n`);
if (Object.keys(result.statuses).some((status) => Number(status) >= 500)) {
  console.error('5xx answers during the soak');
  process.exit(1);
}
