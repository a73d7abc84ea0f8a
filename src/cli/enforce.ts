import { parseArgs } from 'node:util';
import { repairAll, type RepairSummary } from '../admin/repair.js';
import { ConfigError, loadConfig } from '../config.js';
import { parseDuration } from '../duration.js';
import { createLogger } from '../logger.js';
import { composeService } from '../service.js';
import { UsageError } from './usage-error.js';

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

It reads the service's environment but not ZITADEL_SIGNING_KEYS (it serves no webhook). DRY_RUN=true makes it a
dry run too. With REDIS_URL set, it takes the same per-user lock as the running replicas.

Output: the summary (or --json) on standard output; on standard error the log lines as JSON, like the service's
(LOG_LEVEL, default info): one audit line per eviction and prune ("event":"session.evicted" / "session.pruned"),
and progress (a status line on a terminal, a JSON line every 5 s elsewhere).
Exit code: 0 when done (also when --user finds no session: an unknown id, or a user with none), 1 when an
enforcement failed, 2 for a usage or configuration error.
Run it as a Fly scheduled machine or from cron, e.g. hourly with --created-since 2h.`;

function parseCreatedSince(value: string): number {
  const ms = parseDuration(value, ['m', 'h', 'd']);
  if (ms === undefined) throw new UsageError(['--created-since must be a duration such as 30m, 24h or 7d']);
  return ms;
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
  const since = values['created-since'] === undefined ? undefined : Date.now() - parseCreatedSince(values['created-since']);

  let loaded;
  try {
    // No webhook is served here: a cron job has no business holding ZITADEL_SIGNING_KEYS.
    loaded = loadConfig(process.env, { servesWebhooks: false });
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.problems);
    throw error;
  }
  const { config, warnings } = loaded;
  const dryRunBy = values['dry-run'] ? '--dry-run' : config.policy.dryRun ? 'DRY_RUN=true' : undefined;
  const output = standardError(process.stderr);
  // The service's log lines, at the service's level: every eviction and prune writes its audit line here as it does
  // in the service (the SIEM trail has no hole where repairs happen).
  const logger = createLogger(config.logLevel, output);
  for (const warning of warnings) logger.warn(warning);
  // The service's own composition (credentials, metadata limits, Redis lock, policies), with a longer budget for
  // the sweep, the --dry-run switch and paced ZITADEL calls; its HTTP app is built but never listens.
  const { directory, enforcer, lock, close } = await composeService(
    { ...config, enforceBudgetMs: Math.max(config.enforceBudgetMs, 30_000), policy: { ...config.policy, dryRun: dryRunBy !== undefined } },
    logger,
    { defaultMetrics: false, maxCallsPerSecond: rate },
  );
  if (lock && !(await lock.ready(5000))) logger.warn('Redis is not reachable: enforcing without the cross-replica lock');
  const dryRunNote = dryRunBy ? `dry run (${dryRunBy}), nothing deleted: ` : '';
  try {
    if (values.user) {
      const userId = values.user;
      const result = await enforcer.enforceUser(userId);
      // Nothing active: say whether ZITADEL knows any session of this id (a typo and a user with none look alike).
      const nothing = (result.active ?? 0) === 0 && result.evicted.length === 0 && result.pruned.length === 0;
      const sessionsFound = nothing ? (await directory.listUserSessions(userId)).length : undefined;
      if (values.json) console.log(JSON.stringify({ ...result, ...(sessionsFound === undefined ? {} : { sessionsFound }) }, null, 2));
      else if (sessionsFound === 0) console.log(`no sessions found for user ${userId} (an unknown id, or a user with no sessions): nothing to do`);
      else {
        const verb = result.dryRun ? 'would evict' : 'evicted';
        const pruned = result.dryRun ? 'would prune' : 'pruned';
        console.log(`${dryRunNote}user ${userId}: ${result.active ?? 0} active; ${verb} ${result.evicted.length}, ${pruned} ${result.pruned.length}`);
      }
      return 0;
    }
    const summary = await repairAll({
      directory,
      enforcer,
      createdSince: since,
      concurrency,
      dryRun: dryRunBy !== undefined,
      onProgress: (s) => output.progress(s, logger),
    });
    output.done();
    if (values.json) console.log(JSON.stringify(summary, null, 2));
    else {
      const [evicted, pruned] = summary.dryRun ? ['sessions that would be evicted', 'that would be pruned'] : ['sessions evicted', 'pruned'];
      console.log(
        `${dryRunNote}users checked: ${summary.usersChecked}, sessions seen: ${summary.sessionsSeen}, ${evicted}: ${summary.evicted}, ` +
          `${pruned}: ${summary.pruned}, failures: ${summary.failures.length}`,
      );
      for (const failure of summary.failures.slice(0, 20)) console.log(`  failed: user ${failure.userId}: ${failure.error}`);
      for (const warning of summary.warnings) console.log(`  warning: ${warning}`);
    }
    return summary.failures.length > 0 ? 1 : 0;
  } finally {
    await close();
  }
}

const progressLine = (s: RepairSummary) => `users checked: ${s.usersChecked}, evicted: ${s.evicted}, failures: ${s.failures.length}`;

/**
 * Standard error, shared by the log lines (JSON, one per line: the pino destination) and the progress. On a
 * terminal, progress is one status line rewritten in place, cleared before each log line and drawn again after it,
 * so that neither garbles the other; elsewhere (cron, a scheduled machine) progress is a JSON log line every 5 s,
 * so that the stream stays JSON lines only.
 */
function standardError(stderr: NodeJS.WriteStream) {
  const tty = stderr.isTTY === true;
  let status = '';
  // Elsewhere than on a terminal, the first progress line comes after 5 s: a short sweep prints none.
  let last = tty ? 0 : Date.now();
  return {
    write(line: string) {
      if (status) stderr.write('\r\x1b[K');
      stderr.write(line);
      if (status) stderr.write(status);
    },
    progress(summary: RepairSummary, logger: { info(object: object, message: string): void }) {
      const now = Date.now();
      if (tty && now - last > 100) {
        status = progressLine(summary);
        stderr.write(`\r\x1b[K${status}`);
      } else if (!tty && now - last > 5000) {
        const { usersChecked, sessionsSeen, evicted, pruned } = summary;
        logger.info({ usersChecked, sessionsSeen, evicted, pruned, failures: summary.failures.length }, 'enforce --all: progress');
      } else return;
      last = now;
    },
    done() {
      if (status) stderr.write('\n');
      status = '';
    },
  };
}
