import { readFileSync } from 'node:fs';
import { parse } from 'smol-toml';
import t from 'tap';
import { loadConfig } from '../../src/config.js';

const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
const fly = parse(read('fly.toml')) as Record<string, any>;
const dockerfile = read('Dockerfile');
const pkg = JSON.parse(read('package.json'));

t.test('fly.toml, Dockerfile and the start command agree', async (t) => {
  const cmd = /^CMD \["node", "([^"]+)"\]$/m.exec(dockerfile)?.[1];
  // `exec`: the shell npm starts is replaced by node, so a SIGTERM to npm reaches the service (test/e2e/service-process).
  t.equal(pkg.scripts.start, `exec node ${cmd}`, 'the container runs what npm start runs (without the build step)');
  t.match(pkg.scripts.prestart, /build/, 'npm start builds first on a fresh clone');

  const port = Number(fly.env.PORT);
  t.equal(fly.http_service.internal_port, port, 'Fly routes to the port the service listens on');
  t.match(dockerfile, new RegExp(`^EXPOSE .*\\b${port}\\b`, 'm'));
  t.equal(fly.metrics.port, Number(fly.env.METRICS_PORT), 'Fly scrapes the metrics port');
  t.match(dockerfile, new RegExp(`^EXPOSE .*\\b${fly.metrics.port}\\b`, 'm'));
  t.equal(fly.metrics.path, '/metrics');
  t.equal(fly.http_service.checks[0].path, '/healthz');
  t.equal(fly.http_service.force_https, true);
  t.equal(fly.http_service.min_machines_running, 1, 'no cold start on the login path');
  t.equal(fly.kill_signal, 'SIGTERM', 'the signal the service shuts down on');
  const killSeconds = Number(/^(\d+)s$/.exec(fly.kill_timeout)?.[1]);
  t.ok(killSeconds * 1000 > Number(fly.env.SHUTDOWN_TIMEOUT_MS), 'Fly waits longer than the shutdown bound');
});

t.test('the fly.toml environment is a valid configuration once the secrets are set', async (t) => {
  const { config } = loadConfig({ ...fly.env, ZITADEL_URL: 'https://example.zitadel.cloud', ZITADEL_TOKEN: 't', ZITADEL_SIGNING_KEYS: 'k' });
  t.equal(config.port, 8080);
  t.equal(config.metricsPort, 9091);
  t.ok(config.shutdownTimeoutMs < Number(/^(\d+)s$/.exec(fly.kill_timeout)?.[1]) * 1000);
});

t.test('the image runs as a non-root user with production dependencies only', async (t) => {
  const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  t.match(finalStage, /^USER node$/m);
  t.match(dockerfile, /npm ci --omit=dev/);
  t.match(finalStage, /COPY --from=deps \/app\/node_modules/);
  t.match(finalStage, /^FROM node:\d+\.\d+\.\d+-bookworm-slim$/m, 'the base image is pinned to one Node release');
});

t.test('the image, CI and engines.node name one Node release line', async (t) => {
  const images = [...dockerfile.matchAll(/^FROM node:(\S+?)-bookworm-slim\b/gm)].map((m) => m[1]);
  t.equal(images.length, 3, 'build, deps and the final stage');
  t.same(new Set(images).size, 1, `every stage on one Node: ${images.join(', ')}`);
  const ci = /^NODE_VERSION=(\S+)$/m.exec(read('.ci/run'))?.[1];
  t.equal(images[0], ci, 'CI tests on the Node the image runs');
  const major = ci?.split('.')[0];
  t.equal(pkg.engines.node, `>=${major}`, 'engines.node admits that line and nothing older');
  t.equal(pkg.devDependencies['@types/node'].replace(/^\^/, '').split('.')[0], major, '@types/node describes that Node');
});

/**
 * Whether .dockerignore keeps `path` out of the build context: its last matching line wins, `!` lets a path back in.
 * Enough for the plain paths and `*` this file uses (Docker's own matching is Go's filepath.Match per segment).
 */
function dockerIgnores(path: string): boolean {
  let ignored = false;
  for (const raw of read('.dockerignore').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const negated = line.startsWith('!');
    const pattern = new RegExp(`^${(negated ? line.slice(1) : line).replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/|$)`);
    if (pattern.test(path)) ignored = !negated;
  }
  return ignored;
}

t.test('the image holds the payloads that replay --help points at (#13)', async (t) => {
  const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  const fixtures = 'test/fixtures/payloads';
  t.ok(pkg.files.includes(fixtures), 'the npm package ships them');
  t.match(finalStage, new RegExp(`^COPY ${fixtures} \\./${fixtures}$`, 'm'), 'the final stage copies them where replay looks');
  t.notOk(dockerIgnores(`${fixtures}/02-password.set-session.json`), '.dockerignore lets them into the build context');
  t.ok(dockerIgnores('test/unit/deploy.test.ts'), 'the other tests stay out of it');
  t.ok(dockerIgnores('node_modules/fastify/package.json'));
});

t.test('the V8 heap is bounded from the VM size in fly.toml (issue 15, docs/performance.md#memory)', async (t) => {
  const memoryMb = Number(/^(\d+)mb$/i.exec(fly.vm[0].memory)?.[1]);
  t.ok(memoryMb > 0, `the VM size: ${fly.vm[0].memory}`);
  const options = String(fly.env.NODE_OPTIONS ?? '');
  const flag = (name: string) => Number(new RegExp(`(?:^|\\s)--${name}=(\\d+)(?:\\s|$)`).exec(options)?.[1]);
  // Old space: 3/8 of the VM (96 MB of 256); the young generation: 3 semi-spaces of 2 MB; the rest is Node's binary
  // (about 50 MB of mapped code), buffers outside the heap (bodies in flight) and the kernel.
  t.equal(flag('max-old-space-size'), (memoryMb * 3) / 8, 'NODE_OPTIONS --max-old-space-size is 3/8 of the VM memory');
  t.equal(flag('max-semi-space-size'), 2, 'NODE_OPTIONS --max-semi-space-size is 2 (MB)');
  t.equal(fly.env.MALLOC_ARENA_MAX, '2', 'glibc keeps two malloc arenas, not one per thread');
  t.ok(flag('max-old-space-size') + 3 * flag('max-semi-space-size') + 64 <= memoryMb * 0.7, 'heap and the non-heap floor leave 30% of the VM');
});
