import type { Timestamp } from '@bufbuild/protobuf/wkt';
import pLimit from 'p-limit';
import type { EnforcementResult, SessionLimitEnforcer } from '../enforcement/enforcer.js';
import { Budget, withRetries } from '../enforcement/retry.js';
import { timestampFromMs, ZitadelCallError, type CallRunner, type ZitadelSessionDirectory } from '../zitadel/session-directory.js';

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
  dryRun: boolean;
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

const sameTime = (a: Timestamp | undefined, b: Timestamp | undefined) =>
  a !== undefined && b !== undefined && a.seconds === b.seconds && a.nanos === b.nanos;

export async function repairAll(options: RepairOptions): Promise<RepairSummary> {
  const summary: RepairSummary = { usersChecked: 0, sessionsSeen: 0, evicted: 0, pruned: 0, failures: [], dryRun: options.dryRun ?? false };
  const seen = new Set<string>();
  const parallel = pLimit(options.concurrency ?? 4);
  const record = (result: EnforcementResult) => {
    summary.usersChecked += 1;
    summary.evicted += result.evicted.length;
    summary.pruned += result.pruned.length;
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
        codeOf: (error) => (error instanceof ZitadelCallError ? error.grpcCode : undefined),
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
      // A whole page at one instant (thousands of sessions in one microsecond): step over it by offset.
      for (const id of atLast) seenAtCursor.add(id);
      offset = seenAtCursor.size;
    } else {
      seenAtCursor = new Set(atLast);
      offset = 0;
    }
    cursor = last;
  }
}
