import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { composeService } from '../../src/service.js';
import { ROOT } from '../helpers/processes.js';
import { exposedNames, metricNames } from '../helpers/promql.js';

// Every metric the alert rules and the dashboard name exists in the registry the service builds, so that a renamed
// metric cannot leave an alert silent for ever or a panel empty.

/** Series Prometheus writes itself for every target. */
const FROM_PROMETHEUS = ['up'];

const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

/** The registry exactly as `serve` builds it (default process metrics included); nothing is started or called. */
async function serviceRegistryNames(): Promise<Set<string>> {
  const { config } = loadConfig({ ZITADEL_URL: 'http://127.0.0.1:1', ZITADEL_TOKEN: 'unused', ZITADEL_SIGNING_KEYS: 'unused' });
  const service = await composeService(config, createLogger('silent'));
  try {
    return exposedNames(service.metrics.registry);
  } finally {
    await service.close();
  }
}

function ruleExpressions(): { where: string; expr: string }[] {
  const file = parse(read('deploy/prometheus/alerts.yml')) as { groups: { rules: { alert?: string; record?: string; expr: string }[] }[] };
  return file.groups.flatMap((group) => group.rules.map((rule) => ({ where: `alerts.yml ${rule.alert ?? rule.record}`, expr: rule.expr })));
}

interface Panel {
  title?: string;
  type: string;
  datasource?: { type?: string; uid?: string };
  targets?: { expr?: string; datasource?: { type?: string; uid?: string } }[];
  panels?: Panel[];
}
const dashboard = JSON.parse(read('deploy/grafana/dashboard.json')) as {
  uid?: unknown;
  id?: unknown;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string }[] };
  __inputs?: unknown;
};
const allPanels = (panels: Panel[]): Panel[] => panels.flatMap((panel) => [panel, ...allPanels(panel.panels ?? [])]);

function dashboardExpressions(): { where: string; expr: string }[] {
  return allPanels(dashboard.panels).flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({ where: `dashboard.json "${panel.title}"`, expr: target.expr ?? '' })),
  );
}

/** `where: name` for each metric an expression names that is neither in `known` nor allowed. */
function unknownMetrics(expressions: { where: string; expr: string }[], known: Set<string>): string[] {
  return expressions.flatMap(({ where, expr }) =>
    metricNames(expr)
      .filter((name) => !known.has(name) && !FROM_PROMETHEUS.includes(name))
      .map((name) => `${where}: ${name}`),
  );
}

t.test('metric names are read with the PromQL grammar', async (t) => {
  t.same(
    metricNames('sum by (code) (rate(a_total{outcome="failed", code!="x"}[5m])) / on (job) group_left sum(rate(b_total[$__rate_interval])) > 0.1'),
    ['a_total', 'b_total'],
    'functions, aggregations, label names, values and Grafana variables are not metrics',
  );
  t.same(metricNames('up{job="j"} == 0 or absent(up{job="j"})'), ['up']);
  t.same(metricNames('histogram_quantile(0.95, sum by (le) (rate(h_bucket[5m])))'), ['h_bucket']);
  t.same(metricNames('max by (job) (time() - process_start_time_seconds) > 6 * 3600'), ['process_start_time_seconds']);
  t.throws(() => metricNames('sum(rate(a_total[5m])'), /not valid PromQL/, 'a syntax error is an error, not an empty list');
  t.throws(() => metricNames('{__name__="a_total"}'), /__name__/);
});

t.test('every metric named in the alert rules and the dashboard exists in the service registry', async (t) => {
  const known = await serviceRegistryNames();
  t.ok(known.has('session_limiter_webhook_requests_total') && known.has('process_start_time_seconds'), 'the registry is the service one, default metrics included');
  const expressions = [...ruleExpressions(), ...dashboardExpressions()];
  t.ok(expressions.length > 20, `expressions were found (${expressions.length})`);
  t.same(unknownMetrics(expressions, known), [], 'no rule or panel names a metric the service does not have');
  // The check can fail: a misspelt metric is reported with where it is.
  t.same(unknownMetrics([{ where: 'x', expr: 'rate(session_limiter_webhook_request_total[5m])' }], known), ['x: session_limiter_webhook_request_total']);
});

t.test('the dashboard imports as is: Prometheus as a variable, no fixed data source uid, a current schema', async (t) => {
  t.equal(dashboard.id ?? null, null, 'no numeric id (Grafana assigns one)');
  t.equal(dashboard.uid ?? null, null, 'no dashboard uid (Grafana assigns one; no clash on import)');
  t.ok(dashboard.schemaVersion >= 39, `schemaVersion ${dashboard.schemaVersion} (Grafana 11 or later)`);
  t.match(dashboard.templating.list, [{ name: 'DS_PROMETHEUS', type: 'datasource', query: 'prometheus' }]);
  const uids = [...JSON.stringify(dashboard).matchAll(/"uid":\s*("[^"]*"|null)/g)].map((match) => match[1]);
  t.ok(uids.length > 0);
  t.same([...new Set(uids)], ['"${DS_PROMETHEUS}"'], 'every data source reference is the variable');
  for (const panel of allPanels(dashboard.panels).filter((panel) => panel.type !== 'row')) {
    t.same(panel.datasource, { type: 'prometheus', uid: '${DS_PROMETHEUS}' }, `"${panel.title}" uses the variable`);
    t.ok((panel.targets ?? []).length > 0, `"${panel.title}" has a query`);
  }
});

t.test('the dashboard shows what the issue lists', async (t) => {
  const queries = dashboardExpressions().map(({ expr }) => expr).join('\n');
  for (const [what, pattern] of [
    ['logins enforced', /outcome="enforced"/],
    ['logins denied', /session_limiter_logins_denied_total/],
    ['sessions evicted', /session_limiter_sessions_evicted_total/],
    ['outcomes', /sum by \(outcome\) \(rate\(session_limiter_webhook_requests_total/],
    ['error codes', /by \(outcome, code\)/],
    ['enforcement latency', /histogram_quantile\([^\n]*session_limiter_enforcement_duration_seconds_bucket/],
    ['ZITADEL latency', /histogram_quantile\([^\n]*session_limiter_zitadel_call_duration_seconds_bucket/],
    ['retries', /session_limiter_zitadel_retries_total/],
    ['lock fallbacks', /session_limiter_lock_fallbacks_total/],
    ['event delivery', /session_limiter_events_total/],
  ] as const) {
    t.match(queries, pattern, what);
  }
});
