/**
 * The CPU cost of opening one JWT/JWE payload (the pure pipeline of src/payload-type: decrypt, verify), per webhook,
 * measured with process.cpuUsage over N iterations in this process: the web keys come from memory (a fetch is once
 * per cache lifetime, not per webhook). Used by bench/run.ts (row 8); `node --import tsx bench/payload-open.ts` alone.
 */
import { parsePayloadKeys } from '../src/payload-type/keys.js';
import { PayloadOpener } from '../src/payload-type/open.js';
import { fixtureFor } from '../test/helpers/payloads.js';
import { encryptedBody, signedBody, targetKey, webKey } from '../test/helpers/payload-types.js';

export interface OpenCost {
  jsonParseUs: number;
  jwtRs256Us: number;
  jweRsaUs: number;
  jweEcUs: number;
}

export async function measurePayloadOpen(iterations = 500): Promise<OpenCost> {
  const json = fixtureFor('02-password.set-session', 'bench-session');
  const rsaWeb = await webKey('web-rsa', 'RS256');
  const ecWeb = await webKey('web-ec', 'ES256');
  const rsa = targetKey('rsa');
  const ec = targetKey('ec');
  const webKeys = { webKey: (kid: string) => Promise.resolve([rsaWeb.jwk, ecWeb.jwk].find((key) => key.kid === kid)) };
  const jwt = new PayloadOpener({ type: 'jwt', webKeys });
  const jwe = new PayloadOpener({ type: 'jwe', keys: parsePayloadKeys(`${rsa.privatePem}${ec.privatePem}`), webKeys });
  const far = Date.now() + 3_600_000;
  const jwtBody = await signedBody(json, rsaWeb);
  const jweRsaBody = await encryptedBody(jwtBody, rsa.publicKey, 'target-rsa');
  const jweEcBody = await encryptedBody(await signedBody(json, ecWeb), ec.publicKey, 'target-ec');

  const cpuUs = async (run: () => unknown) => {
    for (let i = 0; i < 20; i++) await run(); // warm-up: imports, key caches
    const start = process.cpuUsage();
    for (let i = 0; i < iterations; i++) await run();
    const used = process.cpuUsage(start);
    return Math.round(((used.user + used.system) / iterations) * 10) / 10;
  };
  return {
    jsonParseUs: await cpuUs(() => JSON.parse(json)),
    jwtRs256Us: await cpuUs(() => jwt.open(jwtBody, far)),
    jweRsaUs: await cpuUs(() => jwe.open(jweRsaBody, far)),
    jweEcUs: await cpuUs(() => jwe.open(jweEcBody, far)),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await measurePayloadOpen(Number(process.env.BENCH_ITERATIONS ?? 500)));
