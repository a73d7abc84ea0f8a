import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { describeFetchFailure } from '../net-failure.js';
import { signPayload } from '../signature/sign.js';
import { WEBHOOK_PATH } from '../routes.js';
import { UsageError } from './usage-error.js';

// One realistic payload per Login V2 step ships with the package (package.json "files"), beside dist/.
const FIXTURES = fileURLToPath(new URL('../../test/fixtures/payloads/', import.meta.url));
// From a clone, the short relative path; from an installed package, where the files are.
const fixtures = relative(process.cwd(), FIXTURES).startsWith('..') ? FIXTURES : `${relative(process.cwd(), FIXTURES)}/`;

export const replayHelp = `Usage: zitadel-session-limiter replay FILE --url URL [--key KEY] [--timestamp UNIX_SECONDS]

Signs a payload file exactly as ZITADEL does (ZITADEL-Signature over the raw bytes, at the current time or
--timestamp) and POSTs it to the webhook. Prints the HTTP status and, for an error, its code and message.
FILE "-" reads standard input. The bytes are sent unchanged: edit the file, not a re-serialised copy.

  --url URL          the service, e.g. http://localhost:8080 (${WEBHOOK_PATH} is added when no path is given)
  --key KEY          the signing key; default: the first of ZITADEL_SIGNING_KEYS
  --timestamp SECS   sign at this unix time instead of now (to test the tolerance window)

Exit code 0 for a 2xx answer, 1 otherwise, 2 for bad arguments.
Payloads for every Login V2 step (placeholders, no secrets): ${fixtures}
Example: zitadel-session-limiter replay ${fixtures}02-password.set-session.json --url http://localhost:8080`;

export interface ReplayResult {
  status: number;
  error?: string;
  message?: string;
}

/** Signs `body` with `key` and POSTs it; returns the status and the error code of a JSON error answer. */
export async function replay(body: Buffer, url: string, key: string, timestamp?: number): Promise<ReplayResult> {
  const target = new URL(url);
  if (target.pathname === '/' || target.pathname === '') target.pathname = WEBHOOK_PATH;
  let response: Response;
  try {
    response = await fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'zitadel-signature': signPayload(body, key, { timestamp }) },
      body,
    });
  } catch (error) {
    throw new Error(`${describeFetchFailure(target, error)}; is the service running there (npm start)?`, { cause: error });
  }
  const text = await response.text();
  try {
    const json = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (typeof json.error === 'string') {
      return { status: response.status, error: json.error, message: typeof json.message === 'string' ? json.message : undefined };
    }
  } catch {
    // not a JSON error body
  }
  return { status: response.status };
}

async function readInput(file: string): Promise<Buffer> {
  if (file !== '-') return readFile(file);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function replayCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { url: { type: 'string' }, key: { type: 'string' }, timestamp: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    console.log(replayHelp);
    return 0;
  }
  const key = values.key ?? process.env.ZITADEL_SIGNING_KEYS?.split(',')[0]?.trim();
  const problems = [
    positionals.length !== 1 && 'give exactly one FILE (or - for standard input)',
    !values.url && '--url is required',
    !key && '--key is required (or set ZITADEL_SIGNING_KEYS)',
    values.timestamp !== undefined && !/^\d+$/.test(values.timestamp) && '--timestamp must be unix seconds',
  ].filter((problem) => typeof problem === 'string');
  if (problems.length > 0) throw new UsageError(problems);
  const body = await readInput(positionals[0]!);
  const result = await replay(body, values.url!, key!, values.timestamp === undefined ? undefined : Number(values.timestamp));
  console.log(result.error ? `${result.status} ${result.error}: ${result.message ?? ''}` : String(result.status));
  return result.status >= 200 && result.status <= 299 ? 0 : 1;
}
