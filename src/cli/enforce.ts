import { parseArgs } from 'node:util';
import { repairAll, type RepairSummary } from '../admin/repair.js';
import { ConfigError, loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { composeService } from '../service.js';
import { UsageError } from './admin.js';

export const enforceHelp = `Usage: zitadel-session-limiter enforce --user ID [--dry-run] [--json]
       zitadel-session-limiter enforce --all [--created-since 24h] [--concurrency 4] [--rate 40] [--dry-run] [--json]

Enforces the limit now, with the service's own configuration (environment) and policies. ZITADEL never retries a
webhook: after downtime or failures, some users may hold too many sessions until they sign in again.

  --user ID            one user
  --all                every user with a session: pages through the instance's sessions (oldest first, one page
                       in memory at a time) and enforces each user once
  --created-since D    only sessions created in the last D (e.g. 30m, 24h, 7d): the users of a downtime window
  --concurrency N      users enforced at once                                 default 4
  --rate N             ZITADEL calls per second at most (ZITADEL Cloud: 50)   default 40
  --dry-run            decide and report, delete nothing
  --json               print the summary as JSON

With REDIS_URL set, it takes the same per-user lock as the running replicas. Progress goes to standard error,
the summary to standard output; the exit code is 1 when an enforcement failed.
Run it as a Fly scheduled machine or from cron, e.g. hourly with --created-since 2h.`;

function parseDuration(value: string): number {
  const match = /^(\d+)([mhd])$/.exec(value);
  if (!match) throw new UsageError(['--created-since must be a duration such as 30m, 24h or 7d']);
  return Number(match[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 'm' | 'h' | 'd'];
}

function positive(name: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError([`--${name} must be a whole number >= 1`]);
  return Number(value);
}

export async function enforceCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      user: { type: 'string' },
      all: { type: 'boolean', default: false },
      'created-since': { type: 'string' },
      concurrency: { type: 'string', default: '4' },
      rate: { type: 'string', default: '40' },
      'dry-run': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(enforceHelp);
    return 0;
  }
  if (Boolean(values.user) === values.all) throw new UsageError(['give either --user ID or --all']);
  const concurrency = positive('concurrency', values.concurrency);
  const rate = positive('rate', values.rate);
  const since = values['created-since'] === undefined ? undefined : Date.now() - parseDuration(values['created-since']);

  let config;
  try {
    ({ config } = loadConfig(process.env));
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.problems);
    throw error;
  }
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, process.stderr);
  // The service's own composition (credentials, metadata limits, Redis lock, policies), with a longer budget for
  // the sweep, the --dry-run switch and paced ZITADEL calls; its HTTP app is built but never listens.
  const { directory, enforcer, lock, close } = await composeService(
    { ...config, enforceBudgetMs: Math.max(config.enforceBudgetMs, 30_000), policy: { ...config.policy, dryRun: config.policy.dryRun || values['dry-run'] } },
    logger,
    { defaultMetrics: false, maxCallsPerSecond: rate },
  );
  if (lock && !(await lock.ready(5000))) logger.warn('Redis is not reachable: enforcing without the cross-replica lock');
  try {
    if (values.user) {
      const result = await enforcer.enforceUser(values.user);
      if (values.json) console.log(JSON.stringify(result, null, 2));
      else {
        const verb = result.dryRun ? 'would evict' : 'evicted';
        console.log(`user ${values.user}: ${result.active ?? 0} active; ${verb} ${result.evicted.length}, pruned ${result.pruned.length}`);
      }
      return 0;
    }
    const progress = progressPrinter();
    const summary = await repairAll({ directory, enforcer, createdSince: since, concurrency, dryRun: values['dry-run'], onProgress: progress.update });
    progress.done();
    if (values.json) console.log(JSON.stringify(summary, null, 2));
    else {
      const verb = summary.dryRun ? 'would be evicted' : 'evicted';
      console.log(
        `users checked: ${summary.usersChecked}, sessions seen: ${summary.sessionsSeen}, sessions ${verb}: ${summary.evicted}, ` +
          `pruned: ${summary.pruned}, failures: ${summary.failures.length}`,
      );
      for (const failure of summary.failures.slice(0, 20)) console.log(`  failed: user ${failure.userId}: ${failure.error}`);
    }
    return summary.failures.length > 0 ? 1 : 0;
  } finally {
    await close();
  }
}

/** On a terminal, one line rewritten in place; elsewhere, a line every 5 seconds. */
function progressPrinter() {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  const line = (s: RepairSummary) => `users checked: ${s.usersChecked}, evicted: ${s.evicted}, failures: ${s.failures.length}`;
  return {
    update(summary: RepairSummary) {
      const now = Date.now();
      if (tty && now - last > 100) process.stderr.write(`\r${line(summary)}`);
      else if (!tty && now - last > 5000) process.stderr.write(`${line(summary)}\n`);
      else return;
      last = now;
    },
    done() {
      if (tty) process.stderr.write('\n');
    },
  };
}
