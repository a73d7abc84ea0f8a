import type { Timestamp } from '@bufbuild/protobuf/wkt';
import pLimit from 'p-limit';
import type { EnforcementResult, SessionLimitEnforcer } from '../enforcement/enforcer.js';
import { Budget, withRetries } from '../enforcement/retry.js';
import type { CallRunner } from '../enforcement/ports.js';
import type { ZitadelSessionDirectory } from '../zitadel/session-directory.js';
import { timestampFromMs } from '../zitadel/timestamps.js';

/**
 * The repair sweep: ZITADEL never retries a webhook, so after downtime some users may hold too many sessions until
 * they sign in again. This pages through the instance's sessions (oldest first, one page in memory at a time) and
 * enforces every user it finds, once.
 */

export interface RepairSummary {
  usersChecked: number;
  sessionsSeen: number;
  evicted: number;
  pruned: number;
  failures: { userId: string; error: string }[];
  /** Nothing was deleted: `--dry-run`, or `DRY_RUN=true` (the enforcer's policy). */
  dryRun: boolean;
  /** What the sweep may have missed, one sentence each (e.g. more sessions at one instant than a page holds). */
  warnings: string[];
}

export interface RepairOptions {
  directory: Pick<ZitadelSessionDirectory, 'listInstancePage' | 'pageSize'>;
  enforcer: Pick<SessionLimitEnforcer, 'enforceUser'>;
  /** Only sessions created at or after this time (epoch ms). */
  createdSince?: number | undefined;
  /** Users enforced at once. */
  concurrency?: number;
  dryRun?: boolean;
  onProgress?: (summary: RepairSummary) => void;
  /** Time one page listing may take, retries included. */
  pageBudgetMs?: number;
}

/** A timestamp as ISO 8601 with its microseconds (what ZITADEL stores). */
function timestampToIso(timestamp: Timestamp | undefined): string {
  if (!timestamp) return '(no creation date)';
  const iso = new Date(Number(timestamp.seconds) * 1000).toISOString().slice(0, 19);
  return `${iso}.${String(Math.floor(timestamp.nanos / 1000)).padStart(6, '0')}Z`;
}

const sameTime = (a: Timestamp | undefined, b: Timestamp | undefined) =>
  a !== undefined && b !== undefined && a.seconds === b.seconds && a.nanos === b.nanos;

export async function repairAll(options: RepairOptions): Promise<RepairSummary> {
  const summary: RepairSummary = { usersChecked: 0, sessionsSeen: 0, evicted: 0, pruned: 0, failures: [], dryRun: options.dryRun ?? false, warnings: [] };
  const seen = new Set<string>();
  const parallel = pLimit(options.concurrency ?? 4);
  const record = (result: EnforcementResult) => {
    summary.usersChecked += 1;
    summary.evicted += result.evicted.length;
    summary.pruned += result.pruned.length;
    // The enforcer's own policy (DRY_RUN=true) makes a dry run too, whatever the caller said.
    if (result.dryRun) summary.dryRun = true;
    options.onProgress?.(summary);
  };
  // Keyset paging by creation date (exact timestamps, as ZITADEL sent them): deleting sessions while paging
  // cannot make us skip any. The sessions already seen at the cursor's exact time are dropped by id.
  let cursor: Timestamp | undefined = options.createdSince === undefined ? undefined : timestampFromMs(options.createdSince);
  let seenAtCursor = new Set<string>();
  let offset = 0;
  for (;;) {
    // A transient error (a 429, a restart) retries within the page's budget instead of ending the sweep.
    const budget = new Budget(options.pageBudgetMs ?? 30_000);
    const run: CallRunner = (what, call) =>
      withRetries(what, call, {
        budget,
        callTimeoutMs: 10_000,
      });
    const page = await options.directory.listInstancePage(cursor, offset, run);
    summary.sessionsSeen += page.filter(({ session }) => !seenAtCursor.has(session.id)).length;
    const fresh: { userId: string; organizationId: string | undefined }[] = [];
    for (const { session } of page) {
      if (seenAtCursor.has(session.id)) continue;
      if (session.userId && !seen.has(session.userId)) {
        seen.add(session.userId);
        fresh.push({ userId: session.userId, organizationId: session.organizationId });
      }
    }
    await Promise.all(
      fresh.map(({ userId, organizationId }) =>
        parallel(async () => {
          try {
            record(await options.enforcer.enforceUser(userId, organizationId));
          } catch (error) {
            summary.usersChecked += 1;
            summary.failures.push({ userId, error: error instanceof Error ? error.message : String(error) });
            options.onProgress?.(summary);
          }
        }),
      ),
    );
    if (page.length < options.directory.pageSize) return summary;
    const last = page.at(-1)!.created;
    const atLast = page.filter((entry) => sameTime(entry.created, last)).map((entry) => entry.session.id);
    if (sameTime(last, cursor)) {
      // A whole page at one instant (more sessions in one microsecond than a page holds, up to 1000): ZITADEL has
      // no second key to page on and orders ties as it happens to, so stepping over them by offset may miss some.
      // Go on, and say so once.
      if (offset === 0) {
        summary.warnings.push(
          `more sessions than a page (${options.directory.pageSize}) were created at ${timestampToIso(last)}: ` +
            'ZITADEL orders them arbitrarily, so users with sessions only at that instant may have been missed; run the sweep again',
        );
      }
      for (const id of atLast) seenAtCursor.add(id);
      offset = seenAtCursor.size;
    } else {
      seenAtCursor = new Set(atLast);
      offset = 0;
    }
    cursor = last;
  }
}
