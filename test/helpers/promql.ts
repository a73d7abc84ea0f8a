import { parser } from '@prometheus-io/lezer-promql';
import { Counter, Gauge, Histogram, Summary, type Registry } from 'prom-client';

/**
 * The metric names a PromQL expression selects, read with Prometheus's own grammar (the parser of its web UI), not
 * with a regular expression: function names, label names, keywords and durations are never taken for metrics.
 * Grafana's variables (`$__rate_interval`, `${DS_PROMETHEUS}`) are replaced by values first. Throws on a syntax error.
 */
export function metricNames(expression: string): string[] {
  const query = expression
    .replace(/\$__(?:rate_)?interval|\$__range/g, '5m')
    .replace(/\$\{?\w+\}?/g, 'x');
  const tree = parser.parse(query);
  const names = new Set<string>();
  const cursor = tree.cursor();
  do {
    if (cursor.type.isError) throw new Error(`not valid PromQL at ${cursor.from}: ${JSON.stringify(query.slice(Math.max(0, cursor.from - 20), cursor.from + 20))} in ${query}`);
    if (cursor.name === 'Identifier' && cursor.node.parent?.name === 'VectorSelector') names.add(query.slice(cursor.from, cursor.to));
    if (cursor.name === 'LabelName' && query.slice(cursor.from, cursor.to) === '__name__') throw new Error(`select metrics by name, not by __name__: ${query}`);
  } while (cursor.next());
  return [...names];
}

/**
 * The series names a registry exposes, without collecting (no collect callback runs): a counter or gauge under its
 * name, a histogram as `_bucket`, `_sum` and `_count`, a summary as its name, `_sum` and `_count`.
 */
export function exposedNames(registry: Registry): Set<string> {
  const names = new Set<string>();
  for (const metric of registry.getMetricsAsArray()) {
    const { name } = metric as unknown as { name: string };
    if (metric instanceof Histogram) for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    else if (metric instanceof Summary) for (const suffix of ['', '_sum', '_count']) names.add(name + suffix);
    else if (metric instanceof Counter || metric instanceof Gauge) names.add(name);
    else throw new Error(`a metric of an unknown kind: ${name}`);
  }
  return names;
}
