/**
 * npm run bench: the service, the ZITADEL simulator, and the references (a bare node:http baseline, a bare
 * @zitadel/client loop for the floor), each in its own process, measured side by side in one run on loopback.
 * Prints one table and writes bench/result.json. Bounded: about 90 seconds on a 2-core machine.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServerTransport } from '@zitadel/client/node';
import { createSessionServiceClient } from '@zitadel/client/v2';
import { SessionFieldName } from '@zitadel/proto/zitadel/session/v2/session_pb.js';
import { freePort } from '../src/cli/free-port.js';
import { signPayload } from '../src/signature/sign.js';
import { DEFAULT_SIMULATOR_TOKEN } from '../src/simulator/index.js';
import { fixtureFor } from '../test/helpers/payloads.js';
import { cpuMs, load, percentile, ROOT, rssMb, startService, stop, type LoadResult, type Shot } from './lib.js';
import type { SimulatorRequest } from './simulator-process.js';
import { measurePayloadOpen } from './payload-open.js';
import { measurePayloadThroughput } from './payload-throughput.js';

const KEY = 'BenchBenchBenchBenchBenchBenchBench1';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const DELAY_MS = Number(process.env.BENCH_DELAY_MS ?? 5);
const LATENCY_SAMPLES = Number(process.env.BENCH_SAMPLES ?? 300);

// --- the simulator process and its control channel ------------------------------------------------------------
const simulator = fork(new URL('./simulator-process.ts', import.meta.url), { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
const simulatorUrl = await new Promise<string>((resolve) => simulator.once('message', (m: { ready: string }) => resolve(m.ready)));
let commandId = 0;
const pending = new Map<number, (reply: unknown) => void>();
simulator.on('message', (m: { id?: number; reply?: unknown }) => {
  if (m.id === undefined) return;
  pending.get(m.id)?.(m.reply);
  pending.delete(m.id);
});
function control<T>(command: SimulatorRequest): Promise<T> {
  const id = ++commandId;
  return new Promise((resolve) => {
    pending.set(id, resolve as (reply: unknown) => void);
    simulator.send({ ...command, id });
  });
}

async function startBaseline(mode: 'reject' | 'enforce'): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', PORT: String(port), KEY, LIMIT: '2' };
  if (mode === 'enforce') Object.assign(env, { ZITADEL_URL: simulatorUrl, ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN });
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/baseline.ts'], { cwd: ROOT, env, stdio: 'inherit' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    const up = await fetch(url, { method: 'POST', body: '{}' }).then(() => true, () => false);
    if (up) return { url, child };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('baseline did not start');
}

const signed = (url: string, body: string, key = KEY): Shot => ({
  url: `${url}/webhooks/zitadel`,
  headers: { 'content-type': 'application/json', 'zitadel-signature': signPayload(body, key) },
  body,
});

/** Runs a load against a process and measures its CPU time per request. */
async function measured(pid: number, run: () => Promise<LoadResult>) {
  const cpuBefore = cpuMs(pid);
  const result = await run();
  return { ...result, cpuMsPerRequest: Math.round(((cpuMs(pid) - cpuBefore) / result.requests) * 1000) / 1000 };
}

const service = await startService({
  ZITADEL_URL: simulatorUrl,
  ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN,
  ZITADEL_SIGNING_KEYS: KEY,
  SESSION_LIMIT: '2',
});
const pid = service.child.pid!;
const rejectBaseline = await startBaseline('reject');
const enforceBaseline = await startBaseline('enforce');
await new Promise((resolve) => setTimeout(resolve, 1000));
const idleRss = rssMb(pid);
const rows: Record<string, unknown> = { machine: { cores: (await import('node:os')).cpus().length, node: process.version }, delayMs: DELAY_MS };

// --- 1. rejections: a valid 2 KB JSON body with a wrong signature ---------------------------------------------
const twoKb = JSON.stringify({ fullMethod: '/zitadel.session.v2.SessionService/SetSession', padding: 'x'.repeat(1950) });
const rejection = (url: string) => ({ url: url.endsWith('/webhooks/zitadel') ? url : url, headers: { 'content-type': 'application/json', 'zitadel-signature': signPayload(twoKb, 'wrong-key') }, body: twoKb });
const rejectShot = rejection(`${service.url}/webhooks/zitadel`);
const baselineRejectShot = { ...rejection(rejectBaseline.url) };
await load({ connections: 16, seconds: 2, next: () => rejectShot }); // warm-up
const ours = await measured(pid, () => load({ connections: 32, seconds: SECONDS, next: () => rejectShot }));
const bare = await measured(rejectBaseline.child.pid!, () => load({ connections: 32, seconds: SECONDS, next: () => baselineRejectShot }));
rows.rejections = {
  ours: { perSecond: ours.perSecond, cpuMsPerRequest: ours.cpuMsPerRequest, p50: percentile(ours.latenciesMs, 50), statuses: ours.statuses },
  baseline: { perSecond: bare.perSecond, cpuMsPerRequest: bare.cpuMsPerRequest, p50: percentile(bare.latenciesMs, 50), statuses: bare.statuses },
  throughputRatio: Math.round((ours.perSecond / bare.perSecond) * 100) / 100,
  cpuRatio: Math.round((ours.cpuMsPerRequest / bare.cpuMsPerRequest) * 100) / 100,
};

// --- 2. ignored: signed login-name-only CreateSession (no ZITADEL call may happen) --------------------------
await control({ op: 'calls' });
const ignoredBody = fixtureFor('01-login-name.create-session', '300000000000000100');
const ignoredShot = signed(service.url, ignoredBody);
const ignored = await measured(pid, () => load({ connections: 32, seconds: SECONDS, next: () => ignoredShot }));
rows.ignored = {
  perSecond: ignored.perSecond,
  cpuMsPerRequest: ignored.cpuMsPerRequest,
  statuses: ignored.statuses,
  zitadelCalls: await control<number>({ op: 'calls' }),
  ratioToRejections: Math.round((ignored.perSecond / ours.perSecond) * 100) / 100,
};

// --- 3. enforcement latency with a delay D per ZITADEL call, next to the floor -----------------------------
await control({ op: 'latency', ms: DELAY_MS });
async function latencyRun(url: string, userId: string, samples: number) {
  await control({ op: 'seed', userId, active: 2 });
  const latencies: number[] = [];
  for (let i = 0; i < samples; i++) {
    const [fresh] = await control<string[]>({ op: 'seed', userId, active: 1 });
    const shot = signed(url, fixtureFor('02-password.set-session', fresh!));
    const result = await load({ connections: 1, seconds: 30, maxRequests: 1, next: () => shot });
    latencies.push(result.latenciesMs[0]!);
  }
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99), activeAfter: await control<number>({ op: 'count', userId }) };
}
const serviceLatency = await latencyRun(service.url, 'latency-ours', LATENCY_SAMPLES);
const rssUnderLatency = rssMb(pid);
const baselineLatency = await latencyRun(enforceBaseline.url, 'latency-baseline', LATENCY_SAMPLES);

// The floor: the calls that must happen in sequence, made by a bare @zitadel/client loop (GetSession, ListSessions,
// DeleteSession), against the same simulator with the same delay.
const client = createSessionServiceClient(createServerTransport(DEFAULT_SIMULATOR_TOKEN, { baseUrl: simulatorUrl }));
/** `verify`: also the re-read of the session about to be deleted, the fourth call our enforcement makes. */
async function floorRun(userId: string, verify: boolean) {
  const floor: number[] = [];
  await control({ op: 'seed', userId, active: 2 });
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const [fresh] = await control<string[]>({ op: 'seed', userId, active: 1 });
    const t0 = process.hrtime.bigint();
    await client.getSession({ sessionId: fresh! });
    const { sessions } = await client.listSessions({
      query: { limit: 1000, asc: true },
      queries: [{ query: { case: 'userIdQuery', value: { id: userId } } }],
      sortingColumn: SessionFieldName.CREATION_DATE,
    });
    if (verify) await client.getSession({ sessionId: sessions[0]!.id });
    await client.deleteSession({ sessionId: sessions[0]!.id });
    floor.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  floor.sort((a, b) => a - b);
  return { p50: percentile(floor, 50), p95: percentile(floor, 95), p99: percentile(floor, 99) };
}
const floorStats = await floorRun('floor', false);
const floor4Stats = await floorRun('floor4', true);
rows.enforcementLatency = {
  ours: serviceLatency,
  baseline: baselineLatency,
  floor: floorStats,
  floorWithVerification: floor4Stats,
  oursMinusFloorWithVerification: { p50: Math.round((serviceLatency.p50 - floor4Stats.p50) * 100) / 100, p99: Math.round((serviceLatency.p99 - floor4Stats.p99) * 100) / 100 },
  oursMinusFloor: { p50: Math.round((serviceLatency.p50 - floorStats.p50) * 100) / 100, p99: Math.round((serviceLatency.p99 - floorStats.p99) * 100) / 100 },
  ratioToFloor: { p50: Math.round((serviceLatency.p50 / floorStats.p50) * 100) / 100, p99: Math.round((serviceLatency.p99 / floorStats.p99) * 100) / 100 },
};

// --- 4. enforcement throughput for many distinct users --------------------------------------------------------
async function throughputRun(url: string, prefix: string, targetPid: number) {
  const users = 4000;
  const fresh: string[] = [];
  for (let u = 0; u < users; u++) fresh.push((await control<string[]>({ op: 'seed', userId: `${prefix}-${u}`, active: 3 })).at(-1)!);
  return measured(targetPid, () =>
    load({ connections: 32, seconds: SECONDS, maxRequests: users, next: (i) => signed(url, fixtureFor('02-password.set-session', fresh[i]!)) }),
  );
}
const throughput = await throughputRun(service.url, 'tp-ours', pid);
const rssUnderThroughput = rssMb(pid);
const throughputBaseline = await throughputRun(enforceBaseline.url, 'tp-base', enforceBaseline.child.pid!);
rows.enforcementThroughput = {
  ours: { perSecond: throughput.perSecond, p50: percentile(throughput.latenciesMs, 50), p99: percentile(throughput.latenciesMs, 99), statuses: throughput.statuses },
  baseline: { perSecond: throughputBaseline.perSecond, p50: percentile(throughputBaseline.latenciesMs, 50), p99: percentile(throughputBaseline.latenciesMs, 99), statuses: throughputBaseline.statuses },
  ratio: Math.round((throughput.perSecond / throughputBaseline.perSecond) * 100) / 100,
  workers: 'one process (the service has no cluster mode; run more machines, with REDIS_URL)',
};

// --- 5. big user: 20,000 expired and 5 active sessions, in a fresh service process -------------------------
await control({ op: 'latency', ms: 0 });
const bigService = await startService({ ZITADEL_URL: simulatorUrl, ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN, ZITADEL_SIGNING_KEYS: KEY, SESSION_LIMIT: '2' });
const hwm = (target: number) => Math.round(Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${target}/status`, 'utf8'))?.[1]) / 1024);
const bigIds = await control<string[]>({ op: 'seed', userId: 'big', active: 6, expired: 20_000 });
const bigBefore = hwm(bigService.child.pid!);
const big = await load({ connections: 1, seconds: 60, maxRequests: 1, next: () => signed(bigService.url, fixtureFor('02-password.set-session', bigIds.at(-1)!)) });
rows.bigUser = {
  ms: Math.round(big.latenciesMs[0]!),
  status: Object.keys(big.statuses)[0],
  activeAfter: await control<number>({ op: 'count', userId: 'big' }),
  peakRssMb: hwm(bigService.child.pid!),
  peakRssBeforeMb: bigBefore,
};
await bigService.stop();

rows.memory = { idleRssMb: idleRss, underLatencyLoadMb: rssUnderLatency, underThroughputLoadMb: rssUnderThroughput };

// --- 8. JWT/JWE payloads: CPU per webhook to open one (decrypt + verify), in this process --------------------
rows.payloadOpen = await measurePayloadOpen();
// --- 9. JWE against JSON: enforcement and rejection throughput, fresh services (bench/payload-throughput.ts) ---
rows.payloadThroughput = await measurePayloadThroughput({ simulatorUrl, control, seconds: SECONDS });

await service.stop();
await stop(rejectBaseline.child);
await stop(enforceBaseline.child);
simulator.kill();

writeFileSync(new URL('./result.json', import.meta.url), `${JSON.stringify(rows, null, 2)}\n`);
const r = rows as any;
const table = [
  ['row', 'ours', 'reference', 'ratio'],
  ['1. rejections/s (wrong signature, 2 KB)', r.rejections.ours.perSecond, `${r.rejections.baseline.perSecond} (bare node:http)`, r.rejections.throughputRatio],
  ['   CPU ms per rejection', r.rejections.ours.cpuMsPerRequest, r.rejections.baseline.cpuMsPerRequest, r.rejections.cpuRatio],
  ['2. ignored/s (login name only)', r.ignored.perSecond, `${r.rejections.ours.perSecond} (our rejections/s)`, r.ignored.ratioToRejections],
  ['   ZITADEL calls while ignoring', r.ignored.zitadelCalls, '0', ''],
  [`3. enforcement p50 ms (D=${DELAY_MS} ms)`, r.enforcementLatency.ours.p50, `${r.enforcementLatency.floor.p50} floor / ${r.enforcementLatency.baseline.p50} baseline`, r.enforcementLatency.ratioToFloor.p50],
  ['   enforcement p95 ms', r.enforcementLatency.ours.p95, `${r.enforcementLatency.floor.p95} floor / ${r.enforcementLatency.baseline.p95} baseline`, ''],
  ['   enforcement p99 ms', r.enforcementLatency.ours.p99, `${r.enforcementLatency.floor.p99} floor / ${r.enforcementLatency.baseline.p99} baseline`, r.enforcementLatency.ratioToFloor.p99],
  ['   4-call floor (with the re-read) p50 / p99', `${r.enforcementLatency.oursMinusFloorWithVerification.p50} / ${r.enforcementLatency.oursMinusFloorWithVerification.p99} ms above`, `${r.enforcementLatency.floorWithVerification.p50} / ${r.enforcementLatency.floorWithVerification.p99}`, ''],
  ['4. enforcements/s, distinct users', r.enforcementThroughput.ours.perSecond, `${r.enforcementThroughput.baseline.perSecond} (bare node:http)`, r.enforcementThroughput.ratio],
  ['5. big user (20k expired + 6 active) ms', r.bigUser.ms, '', ''],
  ['   peak RSS MB (fresh process)', r.bigUser.peakRssMb, `${r.bigUser.peakRssBeforeMb} before`, ''],
  ['7. RSS MB idle / after latency row / after throughput row', `${r.memory.idleRssMb} / ${r.memory.underLatencyLoadMb} / ${r.memory.underThroughputLoadMb}`, '', ''],
  ['8. CPU µs to open a payload: JWT RS256 / JWE RSA / JWE EC', `${r.payloadOpen.jwtRs256Us} / ${r.payloadOpen.jweRsaUs} / ${r.payloadOpen.jweEcUs}`, `${r.payloadOpen.jsonParseUs} (JSON.parse)`, ''],
];
for (const line of table) console.log(line.map((cell, i) => String(cell).padEnd([44, 22, 34, 6][i]!)).join(' '));
console.log('\nwritten to bench/result.json');
