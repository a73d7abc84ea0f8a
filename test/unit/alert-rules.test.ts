import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { anchors } from '../helpers/markdown.js';
import { ROOT } from '../helpers/processes.js';
import { PROMTOOL_MISSING, runPromtool } from '../helpers/promtool.js';

// deploy/prometheus/alerts.yml: valid for Prometheus, unit-tested with promtool, every alert documented in
// docs/runbook.md. Which metrics the rules may name: test/unit/metric-names.test.ts.

const RULES = 'deploy/prometheus/alerts.yml';
const RULE_TESTS = 'deploy/prometheus/alerts.test.yml';
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = (parse(read(RULES)) as { groups: { rules: Rule[] }[] }).groups.flatMap((group) => group.rules);
const alerts = rules.filter((rule) => rule.alert !== undefined);

t.test('promtool check rules: the file is valid for Prometheus', async (t) => {
  const run = await runPromtool(['check', 'rules', RULES]);
  t.equal(run.code, 0, run.stdout + run.stderr);
  t.match(run.stdout, `SUCCESS: ${rules.length} rules found`);
});

t.test('promtool test rules: each alert fires on its series and stays silent otherwise', async (t) => {
  const run = await runPromtool(['test', 'rules', RULE_TESTS]);
  t.equal(run.code, 0, run.stdout + run.stderr);
  t.match(run.stdout, /SUCCESS/);
});

t.test('without promtool, the rule tests fail with a one-line reason that names it and says how to install it', async (t) => {
  const emptyPath = mkdtempSync(path.join(tmpdir(), 'no-promtool-'));
  t.teardown(() => rmSync(emptyPath, { recursive: true, force: true }));
  const error = await runPromtool(['--version'], { env: { PATH: emptyPath } }).then(
    () => undefined,
    (failure: unknown) => failure as Error,
  );
  t.equal(error?.message, PROMTOOL_MISSING);
  t.equal(error?.stack, PROMTOOL_MISSING, 'no stack of spawn internals');
  t.match(PROMTOOL_MISSING, /^promtool is not installed .*apt-get install prometheus/);
  t.notMatch(PROMTOOL_MISSING, /\n/);
});

t.test('the alerts the issue asks for are there, each with a severity, a summary, a description and a runbook link', async (t) => {
  t.same(
    alerts.map((rule) => rule.alert).sort(),
    [
      'SessionLimiterDown',
      'SessionLimiterEventsDropped',
      'SessionLimiterEventsStuck',
      'SessionLimiterLockFallback',
      'SessionLimiterNoWebhooks',
      'SessionLimiterNotReady',
      'SessionLimiterSignatureMismatch',
      'SessionLimiterWebhooksFailing',
      'SessionLimiterZitadelRefusing',
    ],
  );
  const runbook = anchors(read('docs/runbook.md'));
  for (const rule of alerts) {
    t.match(rule.labels?.severity, /^(critical|warning)$/, `${rule.alert}: severity`);
    t.ok(rule.annotations?.summary, `${rule.alert}: summary`);
    t.ok(rule.annotations?.description, `${rule.alert}: description`);
    const anchor = /^docs\/runbook\.md#([\w-]+)$/.exec(rule.annotations?.runbook_url ?? '')?.[1];
    t.equal(anchor, rule.alert!.toLowerCase(), `${rule.alert}: runbook_url is docs/runbook.md#<its name>`);
    t.ok(anchor !== undefined && runbook.has(anchor), `${rule.alert}: docs/runbook.md has a section #${anchor}`);
  }
  t.equal(alerts.find((rule) => rule.alert === 'SessionLimiterNoWebhooks')?.labels?.severity, 'warning', 'no webhooks is a warning');
});

t.test('every alert has a promtool case where it fires and one where it stays silent', async (t) => {
  interface Case {
    alertname: string;
    exp_alerts?: unknown[];
  }
  const cases = (parse(read(RULE_TESTS)) as { tests: { alert_rule_test?: Case[] }[] }).tests.flatMap((test) => test.alert_rule_test ?? []);
  for (const { alert } of alerts) {
    const mine = cases.filter((c) => c.alertname === alert);
    t.ok(mine.some((c) => (c.exp_alerts ?? []).length > 0), `${alert} fires in a test`);
    t.ok(mine.some((c) => (c.exp_alerts ?? []).length === 0), `${alert} stays silent in a test`);
  }
});
