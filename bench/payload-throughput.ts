/**
 * Row 9 (issue #12): enforcement and rejection THROUGHPUT with JWE payloads against JSON, in the same run, each
 * against a fresh service process (node dist/main.js) and the benchmark's simulator process. The JWE bodies are
 * built before the load as ZITADEL builds them: the JSON payload signed by the simulator's active web key (the
 * service verifies it against <ZITADEL_URL>/oauth/v2/keys, fetched once and cached), encrypted with ECDH-ES+A256KW
 * and A256GCM to the target's P-256 key; so the load generator pays nothing per request but the HTTP call.
 * Rejections: JSON with a wrong HMAC (row 1's shot), and a JWE with a valid HMAC encrypted to a foreign key
 * (401 ERR_PAYLOAD_UNDECRYPTABLE: the dearest refusal, one decryption attempt per configured key).
 */
import { CompactEncrypt } from 'jose';
import { createPublicKey } from 'node:crypto';
import { generatePayloadKey } from '../src/admin/payload-keys.js';
import { signPayload } from '../src/signature/sign.js';
import { DEFAULT_SIMULATOR_TOKEN } from '../src/simulator/index.js';
import { fixtureFor } from '../test/helpers/payloads.js';
import { cpuMs, load, percentile, startService, type LoadResult, type Shot } from './lib.js';
import type { SimulatorRequest } from './simulator-process.js';

export interface PayloadThroughputOptions {
  simulatorUrl: string;
  control: <T>(command: SimulatorRequest) => Promise<T>;
  seconds: number;
  /** Distinct users per enforcement run (each seeded with three active sessions). */
  users?: number;
}

const KEY = 'BenchBenchBenchBenchBenchBenchBench9';

async function measured(pid: number, run: () => Promise<LoadResult>) {
  const before = cpuMs(pid);
  const result = await run();
  return {
    perSecond: result.perSecond,
    cpuMsPerRequest: Math.round(((cpuMs(pid) - before) / result.requests) * 1000) / 1000,
    p50: percentile(result.latenciesMs, 50),
    p99: percentile(result.latenciesMs, 99),
    statuses: result.statuses,
  };
}

const shot = (url: string, body: string, key = KEY): Shot => ({
  url: `${url}/webhooks/zitadel`,
  headers: { 'content-type': 'application/json', 'zitadel-signature': signPayload(body, key) },
  body,
});

async function encrypt(jws: string, publicKeyPem: string, kid: string): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(jws))
    .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid, typ: 'JWT', cty: 'JWT' })
    .encrypt(createPublicKey(publicKeyPem));
}

export async function measurePayloadThroughput(options: PayloadThroughputOptions) {
  const { simulatorUrl, control, seconds } = options;
  const users = options.users ?? 1000;
  const target = generatePayloadKey('ec');
  const foreign = generatePayloadKey('ec');
  const base = { ZITADEL_URL: simulatorUrl, ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN, ZITADEL_SIGNING_KEYS: KEY, SESSION_LIMIT: '2' };
  const services = {
    json: await startService({ ...base, ZITADEL_PAYLOAD_TYPE: 'json' }),
    jwe: await startService({ ...base, ZITADEL_PAYLOAD_TYPE: 'jwe', ZITADEL_PAYLOAD_KEYS: target.privateKeyPem }),
  };
  try {
    /** The bodies of `users` SetSession webhooks with a password check, one per fresh user over the limit. */
    const bodies = async (prefix: string, type: 'json' | 'jwe') => {
      const json: string[] = [];
      for (let u = 0; u < users; u++) {
        const fresh = (await control<string[]>({ op: 'seed', userId: `${prefix}-${u}`, active: 3 })).at(-1)!;
        json.push(fixtureFor('02-password.set-session', fresh));
      }
      if (type === 'json') return json;
      const signed = await control<string[]>({ op: 'sign', payloads: json });
      return Promise.all(signed.map((jws) => encrypt(jws, target.publicKeyPem, 'bench-target-key')));
    };
    const enforce = async (type: 'json' | 'jwe') => {
      const service = services[type];
      const prepared = (await bodies(`pt-${type}`, type)).map((body) => shot(service.url, body));
      // One webhook first, so that the JWKS fetch is not in the measured run.
      await load({ connections: 1, seconds: 10, maxRequests: 1, next: () => prepared[0]! });
      return measured(service.child.pid!, () => load({ connections: 32, seconds, maxRequests: users - 1, next: (i) => prepared[i + 1]! }));
    };
    const enforcement = { json: await enforce('json'), jwe: await enforce('jwe') };

    const twoKb = JSON.stringify({ fullMethod: '/zitadel.session.v2.SessionService/SetSession', padding: 'x'.repeat(1950) });
    const wrongHmac = shot(services.json.url, twoKb, 'wrong-key');
    const [jws] = await control<string[]>({ op: 'sign', payloads: [fixtureFor('02-password.set-session', 'bench-foreign')] });
    const undecryptable = shot(services.jwe.url, await encrypt(jws!, foreign.publicKeyPem, 'bench-foreign-key'));
    const reject = (pid: number, next: Shot) => measured(pid, () => load({ connections: 32, seconds, next: () => next }));
    await load({ connections: 16, seconds: 1, next: () => undecryptable }); // warm-up
    const rejections = {
      jsonWrongHmac: await reject(services.json.child.pid!, wrongHmac),
      jweUndecryptable: await reject(services.jwe.child.pid!, undecryptable),
    };
    const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
    return {
      users,
      enforcement: { ...enforcement, throughputRatioJweToJson: ratio(enforcement.jwe.perSecond, enforcement.json.perSecond) },
      rejections: { ...rejections, throughputRatioJweToJson: ratio(rejections.jweUndecryptable.perSecond, rejections.jsonWrongHmac.perSecond) },
      jweExtraCpuMsPerEnforcement: Math.round((enforcement.jwe.cpuMsPerRequest - enforcement.json.cpuMsPerRequest) * 1000) / 1000,
    };
  } finally {
    await services.json.stop();
    await services.jwe.stop();
  }
}
