/**
 * A bounded soak run (not part of `npm test`): a mix of valid, invalid and ignored webhooks against the service
 * (a child process, with fly.toml's NODE_OPTIONS and MALLOC_ARENA_MAX) and a ZITADEL simulator, on loopback, at
 * fly.toml's hard_limit (SOAK_CONNECTIONS, default 400 at once) for SOAK_SECONDS (default 60). Samples the service's
 * RSS every second and reports min / median / max of the samples and the slope of the last 10 s (MB/s), next to the
 * peak goal (180 MB, issue 15), and p50/p99 latency.  Run: npm run soak
 */
import { writeFileSync } from 'node:fs';
import { signPayload } from '../src/signature/sign.js';
import { DEFAULT_SIMULATOR_TOKEN, ZitadelSimulator } from '../src/simulator/index.js';
import { fixtureFor } from '../test/helpers/payloads.js';
import { flyMemoryEnv, hwmMb, load, median, percentile, rssMb, startService, type Shot } from './lib.js';

const KEY = 'SoakSoakSoakSoakSoakSoakSoakSoak1234';
const seconds = Number(process.env.SOAK_SECONDS ?? 60);
const connections = Number(process.env.SOAK_CONNECTIONS ?? 400);
const PEAK_GOAL_MB = 180;

const simulator = new ZitadelSimulator();
await simulator.listen();
const { state } = simulator;
state.latencyMs['*'] = 2;
const service = await startService({ ZITADEL_URL: simulator.url, ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN, ZITADEL_SIGNING_KEYS: KEY, SESSION_LIMIT: '2', ...flyMemoryEnv() });
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
const sampler = setInterval(() => samples.push({ at: Math.round(performance.now()), rssMb: rssMb(pid) }), 1000);

const result = await load({
  connections,
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
const peak = hwmMb(pid);
await service.stop();
const values = samples.map((sample) => sample.rssMb);
// Least-squares slope of the samples of the last 10 s, in MB per second: a plateau is near 0.
const last = samples.slice(-10);
const meanX = last.reduce((sum, p) => sum + p.at, 0) / last.length;
const meanY = last.reduce((sum, p) => sum + p.rssMb, 0) / last.length;
const slope = last.reduce((sum, p) => sum + (p.at - meanX) * (p.rssMb - meanY), 0) / last.reduce((sum, p) => sum + (p.at - meanX) ** 2, 0);
await simulator.close();

const report = {
  seconds: Math.round(result.seconds),
  requests: result.requests,
  perSecond: result.perSecond,
  statuses: result.statuses,
  latencyMs: { p50: percentile(result.latenciesMs, 50), p99: percentile(result.latenciesMs, 99), max: percentile(result.latenciesMs, 100) },
  connections,
  rssMb: {
    start: rssStart,
    end: rssEnd,
    min: Math.min(...values),
    median: median(values),
    max: Math.max(...values),
    peakHwm: peak,
    goalPeak: PEAK_GOAL_MB,
    last10sSlopeMbPerSecond: Math.round(slope * 1000 * 1000) / 1000,
    samples: values,
  },
  sessionsLeft: state.sessions.size,
};
console.log(JSON.stringify(report, null, 2));
writeFileSync(new URL('./soak-result.json', import.meta.url), `${JSON.stringify(report, null, 2)}\n`);
if (Object.keys(result.statuses).some((status) => Number(status) >= 500)) {
  console.error('5xx answers during the soak');
  process.exit(1);
}
