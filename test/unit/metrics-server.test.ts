import type { AddressInfo } from 'node:net';
import { Gauge, Registry } from 'prom-client';
import t, { type Test } from 'tap';
import { createLogger } from '../../src/logger.js';
import { createMetricsServer, listenMetrics } from '../../src/metrics-server.js';
import { LogCapture } from '../helpers/stack.js';

async function serve(t: Test, registry: Registry) {
  const logs = new LogCapture();
  const server = createMetricsServer(registry, createLogger('info', logs));
  await listenMetrics(server, 0, '127.0.0.1');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, logs };
}

t.test('GET /metrics answers the registry; other paths 404', async (t) => {
  const registry = new Registry();
  new Gauge({ name: 'up_here', help: 'a gauge', registers: [registry] }).set(1);
  const { url } = await serve(t, registry);
  const ok = await fetch(`${url}/metrics`);
  t.equal(ok.status, 200);
  t.match(await ok.text(), /^up_here 1$/m);
  t.equal((await fetch(`${url}/other`)).status, 404);
});

t.test('a collection that fails answers 500 and is logged, never an unhandled rejection', async (t) => {
  const registry = new Registry();
  new Gauge({
    name: 'broken',
    help: 'a gauge whose collection fails',
    registers: [registry],
    collect() {
      throw new Error('the collector broke');
    },
  });
  const { url, logs } = await serve(t, registry);
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => void process.off('unhandledRejection', onUnhandled));

  const answers = await Promise.all([fetch(`${url}/metrics`), fetch(`${url}/metrics`)]);
  t.same(answers.map((answer) => answer.status), [500, 500]);
  t.notMatch(await answers[0].text(), /collector broke/, 'the error text stays in the log');
  // Let any stray rejection surface before looking.
  await new Promise((resolve) => setImmediate(resolve));
  t.same(unhandled, [], 'no unhandled rejection');
  const errors = logs.lines.filter((line) => line.level === 50);
  t.equal(errors.length, 1, 'logged once (rate-limited), not once per scrape');
  t.match(errors[0]?.err?.message, /collector broke/);
});
