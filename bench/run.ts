/**
 * npm run bench: the service, the ZITADEL simulator, and the references (a bare node:http baseline, a bare
 * @zitadel/client loop for the floor), each in its own process, measured side by side in one run on loopback.
 * Prints one table and writes bench/result.json. Bounded: about 90 seconds on a 2-core machine.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServerTransport } from '@zitadel/client/node';
import { createSessionServiceClient } from '@zitadel/client/v2';
import { SessionFieldName } from '@zitadel/proto/zitadel/session/v2/session_pb.js';
import { freePort } from '../src/cli/free-port.js';
import { signPayload } from '../src/signature/sign.js';
import { DEFAULT_SIMULATOR_TOKEN } from '../src/simulator/index.js';
import { fixtureFor } from '../test/helpers/payloads.js';
import { cpuMs, hwmMb, load, percentile, ROOT, rssMb, startService, stop, type LoadResult, type Shot } from './lib.js';
import { memoryRows } from './memory.js';
import type { SimulatorRequest } from './simulator-process.js';
import { measurePayloadOpen } from './payload-open.js';
import { measurePayloadThroughput } from './payload-throughput.js';

const KEY = 'BenchBenchBenchBenchBenchBenchBench1';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const DELAY_MS = Number(process.env.BENCH_DELAY_MS ?? 5);
const LATENCY_SAMPLES = Number(process.env.BENCH_SAMPLES ?? 300);
const MEMORY_DELAY_MS = Number(process.env.BENCH_MEMORY_DELAY_MS ?? 20);
/** `npm run bench -- --only memory,common`: only these rows (rejections, ignored, latency, common, throughput, big, memory). */
const ROWS = ['rejections', 'ignored', 'latency', 'common', 'throughput', 'big', 'payload', 'memory'] as const;
const onlyIndex = process.argv.indexOf('--only');
const only = onlyIndex >= 0 ? new Set((process.argv[onlyIndex + 1] ?? '').split(',')) : new Set<string>(ROWS);
for (const row of only) if (!(ROWS as readonly string[]).includes(row)) throw new Error(`--only ${row}: not a row; the rows are ${ROWS.join(', ')}`);
const runs = (row: (typeof ROWS)[number]) => only.has(row);

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

async function startBaseline(mode: 'reject' | 'enforce' | 'fastify'): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', PORT: String(port), KEY, LIMIT: '2' };
  if (mode === 'enforce') Object.assign(env, { ZITADEL_URL: simulatorUrl, ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN });
  const script = mode === 'fastify' ? 'bench/fastify-reference.ts' : 'bench/baseline.ts';
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, env, stdio: 'inherit' });
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
const fastifyReference = await startBaseline('fastify');
const enforceBaseline = await startBaseline('enforce');
await new Promise((resolve) => setTimeout(resolve, 1000));
const idleRss = rssMb(pid);
const rows: Record<string, unknown> = { machine: { cores: (await import('node:os')).cpus().length, node: process.version }, delayMs: DELAY_MS };

// --- 1. rejections: a valid 2 KB JSON body with a wrong signature ---------------------------------------------
// Ours, a bare node:http handler and an empty Fastify route doing the same check, same run: CPU per request of each
// server process (issue 15: the forged request).
const twoKb = JSON.stringify({ fullMethod: '/zitadel.session.v2.SessionService/SetSession', padding: 'x'.repeat(1950) });
const rejection = (url: string): Shot => ({ url, headers: { 'content-type': 'application/json', 'zitadel-signature': signPayload(twoKb, 'wrong-key') }, body: twoKb });
let ours: Awaited<ReturnType<typeof measured>> | undefined;
if (runs('rejections')) {
  const rejectShot = rejection(`${service.url}/webhooks/zitadel`);
  await load({ connections: 16, seconds: 2, next: () => rejectShot }); // warm-up
  ours = await measured(pid, () => load({ connections: 32, seconds: SECONDS, next: () => rejectShot }));
  const bare = await measured(rejectBaseline.child.pid!, () => load({ connections: 32, seconds: SECONDS, next: () => rejection(rejectBaseline.url) }));
  const fastifyShot = rejection(`${fastifyReference.url}/`);
  await load({ connections: 16, seconds: 2, next: () => fastifyShot });
  const fastify = await measured(fastifyReference.child.pid!, () => load({ connections: 32, seconds: SECONDS, next: () => fastifyShot }));
  const summary = (r: typeof ours) => ({ perSecond: r!.perSecond, cpuMsPerRequest: r!.cpuMsPerRequest, p50: percentile(r!.latenciesMs, 50), statuses: r!.statuses });
  rows.rejections = {
    ours: summary(ours),
    baseline: summary(bare),
    fastify: summary(fastify),
    throughputRatio: Math.round((ours.perSecond / bare.perSecond) * 100) / 100,
    cpuRatio: Math.round((ours.cpuMsPerRequest / bare.cpuMsPerRequest) * 100) / 100,
    fastifyCpuRatio: Math.round((fastify.cpuMsPerRequest / bare.cpuMsPerRequest) * 100) / 100,
    oursToFastifyCpuRatio: Math.round((ours.cpuMsPerRequest / fastify.cpuMsPerRequest) * 100) / 100,
  };
}

// --- 2. ignored: signed login-name-only CreateSession (no ZITADEL call may happen) --------------------------
if (runs('ignored')) {
  await control({ op: 'calls' });
  const ignoredShot = signed(service.url, fixtureFor('01-login-name.create-session', '300000000000000100'));
  const ignored = await measured(pid, () => load({ connections: 32, seconds: SECONDS, next: () => ignoredShot }));
  rows.ignored = {
    perSecond: ignored.perSecond,
    cpuMsPerRequest: ignored.cpuMsPerRequest,
    statuses: ignored.statuses,
    zitadelCalls: await control<number>({ op: 'calls' }),
    ratioToRejections: ours ? Math.round((ignored.perSecond / ours.perSecond) * 100) / 100 : undefined,
  };
}

// --- 3. enforcement latency with a delay D per ZITADEL call, next to the floor -----------------------------
const client = createSessionServiceClient(createServerTransport(DEFAULT_SIMULATOR_TOKEN, { baseUrl: simulatorUrl }));
const stats = (values: number[]) => {
  values.sort((a, b) => a - b);
  return { p50: percentile(values, 50), p95: percentile(values, 95), p99: percentile(values, 99) };
};
const minus = (a: { p50: number; p99: number }, b: { p50: number; p99: number }) => ({ p50: Math.round((a.p50 - b.p50) * 100) / 100, p99: Math.round((a.p99 - b.p99) * 100) / 100 });
/** One login at a time. `evicting`: the user holds 2 sessions (the limit) before each login; else none. */
async function latencyRun(url: string, userId: string, samples: number, evicting: boolean) {
  if (evicting) await control({ op: 'seed', userId, active: 2 });
  await control({ op: 'calls' });
  const latencies: number[] = [];
  for (let i = 0; i < samples; i++) {
    const [fresh] = await control<string[]>({ op: 'seed', userId: evicting ? userId : `${userId}-${i}`, active: 1 });
    const shot = signed(url, fixtureFor('02-password.set-session', fresh!));
    const result = await load({ connections: 1, seconds: 30, maxRequests: 1, next: () => shot });
    latencies.push(result.latenciesMs[0]!);
  }
  const callsPerLogin = Math.round(((await control<number>({ op: 'calls' })) / samples) * 100) / 100;
  return { ...stats(latencies), callsPerLogin, activeAfter: await control<number>({ op: 'count', userId: evicting ? userId : `${userId}-0` }) };
}
/**
 * The floor: the calls that must happen in sequence, made by a bare @zitadel/client loop against the same simulator
 * with the same delay. `calls` 2: GetSession, ListSessions (the common login); 3: and DeleteSession; 4: and the re-read
 * of the session to evict before DeleteSession.
 */
async function floorRun(userId: string, calls: 2 | 3 | 4) {
  const floor: number[] = [];
  if (calls > 2) await control({ op: 'seed', userId, active: 2 });
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const owner = calls > 2 ? userId : `${userId}-${i}`;
    const [fresh] = await control<string[]>({ op: 'seed', userId: owner, active: 1 });
    const t0 = process.hrtime.bigint();
    await client.getSession({ sessionId: fresh! });
    const { sessions } = await client.listSessions({
      query: { limit: 1000, asc: true },
      queries: [{ query: { case: 'userIdQuery', value: { id: owner } } }],
      sortingColumn: SessionFieldName.CREATION_DATE,
    });
    if (calls === 4) await client.getSession({ sessionId: sessions[0]!.id });
    if (calls > 2) await client.deleteSession({ sessionId: sessions[0]!.id });
    floor.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return stats(floor);
}
if (runs('latency') || runs('common')) await control({ op: 'latency', ms: DELAY_MS });
if (runs('common')) {
  const commonOurs = await latencyRun(service.url, `common-${Date.now()}`, LATENCY_SAMPLES, false);
  const floor2 = await floorRun(`floor2-${Date.now()}`, 2);
  rows.commonLogin = { ours: commonOurs, floor: floor2, oursMinusFloor: minus(commonOurs, floor2) };
}
let rssUnderLatency: number | undefined;
if (runs('latency')) {
  const serviceLatency = await latencyRun(service.url, 'latency-ours', LATENCY_SAMPLES, true);
  rssUnderLatency = rssMb(pid);
  const baselineLatency = await latencyRun(enforceBaseline.url, 'latency-baseline', LATENCY_SAMPLES, true);
  const floorStats = await floorRun('floor', 3);
  const floor4Stats = await floorRun('floor4', 4);
  rows.enforcementLatency = {
    ours: serviceLatency,
    baseline: baselineLatency,
    floor: floorStats,
    floorWithVerification: floor4Stats,
    oursMinusFloorWithVerification: minus(serviceLatency, floor4Stats),
    oursMinusFloor: minus(serviceLatency, floorStats),
    ratioToFloor: { p50: Math.round((serviceLatency.p50 / floorStats.p50) * 100) / 100, p99: Math.round((serviceLatency.p99 / floorStats.p99) * 100) / 100 },
  };
}

// --- 4. enforcement throughput for many distinct users --------------------------------------------------------
let rssUnderThroughput: number | undefined;
if (runs('throughput')) {
  await control({ op: 'latency', ms: DELAY_MS });
  const throughputRun = async (url: string, prefix: string, targetPid: number) => {
    const users = 4000;
    const fresh = await control<string[]>({ op: 'seedMany', prefix, users, active: 3 });
    return measured(targetPid, () =>
      load({ connections: 32, seconds: SECONDS, maxRequests: users, next: (i) => signed(url, fixtureFor('02-password.set-session', fresh[i]!)) }),
    );
  };
  const throughput = await throughputRun(service.url, 'tp-ours', pid);
  rssUnderThroughput = rssMb(pid);
  const throughputBaseline = await throughputRun(enforceBaseline.url, 'tp-base', enforceBaseline.child.pid!);
  rows.enforcementThroughput = {
    ours: { perSecond: throughput.perSecond, p50: percentile(throughput.latenciesMs, 50), p99: percentile(throughput.latenciesMs, 99), statuses: throughput.statuses },
    baseline: { perSecond: throughputBaseline.perSecond, p50: percentile(throughputBaseline.latenciesMs, 50), p99: percentile(throughputBaseline.latenciesMs, 99), statuses: throughputBaseline.statuses },
    ratio: Math.round((throughput.perSecond / throughputBaseline.perSecond) * 100) / 100,
    workers: 'one process (the service has no cluster mode; run more machines, with REDIS_URL)',
  };
}

// --- 5. big user: 20,000 expired and 5 active sessions, in a fresh service process -------------------------
await control({ op: 'latency', ms: 0 });
if (runs('big')) {
  const bigService = await startService({ ZITADEL_URL: simulatorUrl, ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN, ZITADEL_SIGNING_KEYS: KEY, SESSION_LIMIT: '2' });
  const bigIds = await control<string[]>({ op: 'seed', userId: 'big', active: 6, expired: 20_000 });
  const bigBefore = hwmMb(bigService.child.pid!);
  const big = await load({ connections: 1, seconds: 60, maxRequests: 1, next: () => signed(bigService.url, fixtureFor('02-password.set-session', bigIds.at(-1)!)) });
  rows.bigUser = {
    ms: Math.round(big.latenciesMs[0]!),
    status: Object.keys(big.statuses)[0],
    activeAfter: await control<number>({ op: 'count', userId: 'big' }),
    peakRssMb: hwmMb(bigService.child.pid!),
    peakRssBeforeMb: bigBefore,
  };
  await bigService.stop();
}

rows.memory = { idleRssMb: idleRss, underLatencyLoadMb: rssUnderLatency, underThroughputLoadMb: rssUnderThroughput };

// --- 8. JWT/JWE payloads: CPU per webhook to open one (decrypt + verify), in this process --------------------
if (runs('payload')) rows.payloadOpen = await measurePayloadOpen();
// --- 9. JWE against JSON: enforcement and rejection throughput, fresh services (bench/payload-throughput.ts) ---
if (runs('payload')) rows.payloadThroughput = await measurePayloadThroughput({ simulatorUrl, control, seconds: SECONDS });

await service.stop();
await stop(rejectBaseline.child);
await stop(fastifyReference.child);
await stop(enforceBaseline.child);

// --- 6. memory at fly.toml's hard_limit, each phase in a fresh service process with fly.toml's memory settings --
if (runs('memory')) rows.hardLimitMemory = await memoryRows({ control, simulatorUrl, key: KEY, seconds: SECONDS, delayMs: MEMORY_DELAY_MS });
simulator.kill();

writeFileSync(new URL(only.size === ROWS.length ? './result.json' : './result-partial.json', import.meta.url), `${JSON.stringify(rows, null, 2)}\n`);
const r = rows as any;
const table: unknown[][] = [['row', 'ours', 'reference', 'ratio']];
if (r.rejections) {
  table.push(
    ['1. rejections/s (wrong signature, 2 KB)', r.rejections.ours.perSecond, `${r.rejections.baseline.perSecond} bare node:http / ${r.rejections.fastify.perSecond} empty Fastify`, r.rejections.throughputRatio],
    ['   CPU ms per rejection', r.rejections.ours.cpuMsPerRequest, `${r.rejections.baseline.cpuMsPerRequest} bare / ${r.rejections.fastify.cpuMsPerRequest} Fastify`, `${r.rejections.cpuRatio} (Fastify ${r.rejections.fastifyCpuRatio})`],
  );
}
if (r.ignored) table.push(['2. ignored/s (login name only)', r.ignored.perSecond, 'our rejections/s', r.ignored.ratioToRejections ?? ''], ['   ZITADEL calls while ignoring', r.ignored.zitadelCalls, '0', '']);
if (r.commonLogin) {
  const c = r.commonLogin;
  table.push([`3a. common login (no eviction) p50 / p99 ms (D=${DELAY_MS} ms)`, `${c.ours.p50} / ${c.ours.p99}`, `${c.floor.p50} / ${c.floor.p99} 2-call floor`, `+${c.oursMinusFloor.p50} / +${c.oursMinusFloor.p99}`]);
  table.push(['    ZITADEL calls per common login', c.ours.callsPerLogin, '2', '']);
}
if (r.enforcementLatency) {
  const e = r.enforcementLatency;
  table.push(
    [`3. evicting login p50 ms (D=${DELAY_MS} ms)`, e.ours.p50, `${e.floor.p50} 3-call floor / ${e.baseline.p50} baseline`, e.ratioToFloor.p50],
    ['   evicting login p99 ms', e.ours.p99, `${e.floor.p99} 3-call floor / ${e.baseline.p99} baseline`, e.ratioToFloor.p99],
    ['   4-call floor p50 / p99, ours above it', `+${e.oursMinusFloorWithVerification.p50} / +${e.oursMinusFloorWithVerification.p99}`, `${e.floorWithVerification.p50} / ${e.floorWithVerification.p99}`, ''],
    ['   ZITADEL calls per evicting login', e.ours.callsPerLogin, '4', ''],
  );
}
if (r.enforcementThroughput) table.push(['4. enforcements/s, distinct users', r.enforcementThroughput.ours.perSecond, `${r.enforcementThroughput.baseline.perSecond} (bare node:http)`, r.enforcementThroughput.ratio]);
if (r.bigUser) table.push(['5. big user (20k expired + 6 active) ms', r.bigUser.ms, '', ''], ['   peak RSS MB (fresh process)', r.bigUser.peakRssMb, `${r.bigUser.peakRssBeforeMb} before`, '']);
if (r.hardLimitMemory) {
  for (const m of [r.hardLimitMemory.mixed, r.hardLimitMemory.forged]) {
    table.push([`6. RSS MB at ${r.hardLimitMemory.hardLimit} concurrent, ${m.phase}: idle / peak / idle after`, `${m.idleBeforeMb} / ${m.peakMb} / ${m.idleAfterMb}`, `goal <= 85 idle, <= 180 peak`, `${m.perSecond}/s`]);
  }
}
table.push(['7. RSS MB idle / after latency row / after throughput row', `${r.memory.idleRssMb} / ${r.memory.underLatencyLoadMb ?? '-'} / ${r.memory.underThroughputLoadMb ?? '-'}`, '(default Node flags)', '']);
if (r.payloadOpen) {
  const o = r.payloadOpen;
  table.push(['8. CPU µs to open a payload: JWT RS256 / JWE RSA / JWE EC', `${o.jwtRs256Us} / ${o.jweRsaUs} / ${o.jweEcUs}`, `${o.jsonParseUs} (JSON.parse)`, '']);
}
if (r.payloadThroughput) {
  const p = r.payloadThroughput;
  table.push(
    ['9. enforcements/s, JWE vs JSON', p.enforcement.jwe.perSecond, `${p.enforcement.json.perSecond} JSON`, p.enforcement.throughputRatioJweToJson],
    ['   extra CPU ms per JWE enforcement', p.jweExtraCpuMsPerEnforcement, '', ''],
    ['   refusals/s: JWE to a foreign key vs JSON wrong HMAC', p.rejections.jweUndecryptable.perSecond, `${p.rejections.jsonWrongHmac.perSecond} JSON`, p.rejections.throughputRatioJweToJson],
  );
}
for (const line of table) console.log(line.map((cell, i) => String(cell).padEnd([60, 22, 44, 6][i]!)).join(' '));
console.log(`\nwritten to bench/${only.size === ROWS.length ? 'result.json' : 'result-partial.json'}`);
