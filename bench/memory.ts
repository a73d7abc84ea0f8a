/**
 * The memory rows of `npm run bench` (issue 15): the service (`node dist/main.js` with fly.toml's NODE_OPTIONS and
 * MALLOC_ARENA_MAX, as it runs on Fly) driven at fly.toml's hard_limit, 400 requests at once, with
 *  (a) a realistic mix: 40% password logins that enforce against the simulator (D ms per ZITADEL call), 30% forged
 *      (2 KB, wrong key), 20% login-name steps (no ZITADEL call), 10% GET /healthz;
 *  (b) forged requests at the body limit with a fresh, well-formed signature header (the worst case: the HMAC needs the
 *      whole body, so each is buffered);
 * each in a fresh service process: idle RSS before, peak (VmHWM) and idle RSS after. Goals: peak <= 180 MB, idle <= 85 MB.
 */
import { BODY_LIMIT_BYTES } from '../src/routes.js';
import { signPayload } from '../src/signature/sign.js';
import { DEFAULT_SIMULATOR_TOKEN } from '../src/simulator/index.js';
import { fixtureFor } from '../test/helpers/payloads.js';
import { flyMemoryEnv, hwmMb, load, median, rssMb, sampleRss, startService, type Shot } from './lib.js';
import type { SimulatorRequest } from './simulator-process.js';

export const HARD_LIMIT = 400;

export interface MemoryContext {
  control: <T>(command: SimulatorRequest) => Promise<T>;
  simulatorUrl: string;
  key: string;
  seconds: number;
  delayMs: number;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 1000));

async function phase(context: MemoryContext, name: string, next: (url: string) => (i: number) => Shot) {
  const env = flyMemoryEnv();
  const service = await startService({
    ZITADEL_URL: context.simulatorUrl,
    ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN,
    ZITADEL_SIGNING_KEYS: context.key,
    SESSION_LIMIT: '2',
    ...env,
  });
  const pid = service.child.pid!;
  await settle();
  const idleBefore = rssMb(pid);
  const sampler = sampleRss(pid, 100);
  const result = await load({ connections: HARD_LIMIT, seconds: context.seconds, next: next(`${service.url}`) });
  const samples = sampler.stop();
  await settle();
  const row = {
    phase: name,
    env,
    idleBeforeMb: idleBefore,
    peakMb: hwmMb(pid),
    medianUnderLoadMb: median(samples),
    idleAfterMb: rssMb(pid),
    perSecond: result.perSecond,
    statuses: result.statuses,
  };
  await service.stop();
  return row;
}

export async function memoryRows(context: MemoryContext) {
  const { key } = context;
  const signed = (url: string, body: string, signingKey = key): Shot => ({
    url: `${url}/webhooks/zitadel`,
    headers: { 'content-type': 'application/json', 'zitadel-signature': signPayload(body, signingKey) },
    body,
  });
  const twoKb = JSON.stringify({ fullMethod: '/zitadel.session.v2.SessionService/SetSession', padding: 'x'.repeat(1950) });
  const users = 4000;

  await context.control({ op: 'latency', ms: context.delayMs });
  const fresh = await context.control<string[]>({ op: 'seedMany', prefix: `mem-${Date.now()}`, users, active: 3 });
  let nextUser = 0;
  const mixed = await phase(context, 'mixed', (url) => (i) => {
    const kind = i % 10;
    if (kind < 4) return signed(url, fixtureFor('02-password.set-session', fresh[nextUser++ % users]!));
    if (kind < 7) return signed(url, twoKb, 'wrong-key');
    if (kind < 9) return signed(url, fixtureFor('01-login-name.create-session', String(i)));
    return { url: `${url}/healthz`, headers: {} };
  });

  const big = JSON.stringify({ fullMethod: '/zitadel.session.v2.SessionService/SetSession', padding: 'x'.repeat(BODY_LIMIT_BYTES - 100) });
  const forged = await phase(context, 'forged at the body limit', (url) => {
    const shot = signed(url, big, 'wrong-key');
    return () => shot;
  });
  await context.control({ op: 'latency', ms: 0 });
  return { hardLimit: HARD_LIMIT, delayMs: context.delayMs, bodyBytes: big.length, mixed, forged };
}
