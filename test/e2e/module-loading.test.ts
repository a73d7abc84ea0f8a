import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';
import { DEFAULT_SIMULATOR_TOKEN, ZitadelSimulator } from '../../src/simulator/index.js';
import { ROOT } from '../helpers/processes.js';
import { SIGNING_KEY } from '../helpers/stack.js';

/**
 * The production entry points, run as users run them (the built files, plain node), must not load the ZITADEL
 * simulator (an HTTP/2 server and five services' descriptors), and `replay` must not load the enforcer
 * (issue 11, section 3). A module-loading hook records every ES module URL each process loads.
 */

const RECORDER = path.join(ROOT, 'test/helpers/record-modules.mjs');
const DIST = pathToFileURL(path.join(ROOT, 'dist/')).href;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The dist/ modules the process loaded, relative to dist/ (e.g. `cli/index.js`). */
  loaded: string[];
  /** The npm packages whose ES modules the process loaded (e.g. `jose`, `@zitadel/proto`). */
  packages: string[];
  /** Node's internal modules the process loaded (e.g. `internal/deps/undici/undici`). */
  builtins: string[];
}

/**
 * Runs `node --import record-modules.mjs ARGS` in the project with only PATH, HOME and `env`. `until`: a line of
 * standard output after which the process is sent SIGTERM (for the long-running service).
 */
async function runRecorded(t: Test, args: string[], env: Record<string, string>, until?: RegExp): Promise<Run> {
  const dir = await mkdtemp(path.join(tmpdir(), 'modules-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const log = path.join(dir, 'modules.txt');
  const child = spawn(process.execPath, ['--import', RECORDER, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', RECORD_MODULES_TO: log, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (until?.test(stdout) && child.exitCode === null) child.kill('SIGTERM');
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (exit) => resolve(exit)));
  const urls = (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  const loaded = [...new Set(urls.filter((url) => url.startsWith(DIST)).map((url) => url.slice(DIST.length)))];
  const packages = [...new Set(urls.map((url) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1]).filter((name) => name !== undefined))];
  const builtins = urls.filter((url) => url.startsWith('builtin:')).map((url) => url.slice('builtin:'.length));
  return { code, stdout, stderr, loaded, packages, builtins };
}

async function simulator(t: Test): Promise<Record<string, string>> {
  const zitadel = new ZitadelSimulator();
  await zitadel.listen();
  t.teardown(() => zitadel.close());
  return { ZITADEL_URL: zitadel.url, ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN, SESSION_LIMIT: '2' };
}

const simulatorModules = (run: Run) => run.loaded.filter((file) => file.startsWith('simulator/'));
const eventsModules = (run: Run) => run.loaded.filter((file) => file.startsWith('events/'));

t.test('npm start (node dist/main.js) and `serve` do not load the simulator', async (t) => {
  const env = { ...(await simulator(t)), ZITADEL_SIGNING_KEYS: SIGNING_KEY, PORT: '0', HOST: '127.0.0.1' };
  for (const entry of [['dist/main.js'], ['dist/cli/index.js', 'serve']]) {
    const run = await runRecorded(t, entry, env, /Server listening at/);
    t.match(run.stdout, /Server listening at/, `${entry.join(' ')} served`, { stderr: run.stderr });
    t.ok(run.loaded.includes('service.js') && run.loaded.some((file) => file.startsWith('enforcement/')), 'the recorder sees dist modules');
    t.same(simulatorModules(run), [], `${entry.join(' ')} loads no simulator module`);
    t.same(eventsModules(run), [], `${entry.join(' ')} without EVENTS_URL loads no events module`);
  }
});

t.test('the service loads at start only what its configuration uses (issue 15: idle memory)', async (t) => {
  // A personal access token, no REDIS_URL, no LIMIT_METADATA_KEY: no jose (JWT profile keys), no ioredis, no metadata
  // client, no Action API client, and not Node's bundled undici (19 MB; src/lean-import.ts), for both entry points.
  const env = { ...(await simulator(t)), ZITADEL_SIGNING_KEYS: SIGNING_KEY, PORT: '0', HOST: '127.0.0.1' };
  for (const entry of [['dist/main.js'], ['dist/cli/index.js', 'serve']]) {
    const run = await runRecorded(t, entry, env, /Server listening at/);
    const name = entry.join(' ');
    t.match(run.stdout, /Server listening at/, `${name} served`, { stderr: run.stderr });
    t.ok(run.packages.includes('@zitadel/proto') && run.builtins.includes('http'), 'the recorder sees packages and builtins');
    t.same(run.packages.filter((name) => ['jose', 'ioredis', 'undici'].includes(name)), [], `${name}: no jose, ioredis or undici package`);
    t.same(run.loaded.filter((file) => ['enforcement/redis-lock.js', 'enforcement/redis-admissions.js', 'zitadel/metadata.js', 'zitadel/action-api.js'].includes(file)), [], `${name}: no Redis, metadata or Action API module`);
    t.same(run.builtins.filter((id) => id.includes('undici')), [], `${name}: Node's bundled undici is not loaded`);
  }
});

t.test('doctor and enforce do not load the simulator', async (t) => {
  const env = await simulator(t);
  const doctor = await runRecorded(t, ['dist/cli/index.js', 'doctor'], { ...env, ZITADEL_ADMIN_TOKEN: DEFAULT_SIMULATOR_TOKEN });
  t.match(doctor.stdout, /^PASS {2}session\.read: /m, 'doctor ran its checks', { stderr: doctor.stderr });
  t.ok(doctor.loaded.includes('admin/doctor.js'), 'the recorder sees dist modules');
  t.same(simulatorModules(doctor), [], 'doctor loads no simulator module');
  t.same(eventsModules(doctor), [], 'doctor without EVENTS_URL loads no events module');

  const enforce = await runRecorded(t, ['dist/cli/index.js', 'enforce', '--user', 'x'], env);
  t.equal(enforce.code, 0, 'enforce ran', { stderr: enforce.stderr });
  t.match(enforce.stdout, /^no sessions found for user x/m);
  t.same(simulatorModules(enforce), [], 'enforce loads no simulator module');
});

t.test('replay loads neither the simulator nor the enforcer', async (t) => {
  const server = http.createServer((request, response) => {
    request.resume();
    request.once('end', () => response.writeHead(204).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const run = await runRecorded(t, ['dist/cli/index.js', 'replay', 'test/fixtures/payloads/02-password.set-session.json', '--url', url, '--key', SIGNING_KEY], {});
  t.equal(run.code, 0, 'replay got its 204', { stdout: run.stdout, stderr: run.stderr });
  t.ok(run.loaded.includes('cli/replay.js'), 'the recorder sees dist modules');
  t.same(simulatorModules(run), [], 'replay loads no simulator module');
  t.same(run.loaded.filter((file) => file.startsWith('enforcement/')), [], 'replay loads no enforcement module');
});
