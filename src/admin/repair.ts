import pLimit from 'p-limit';
import type { EnforcementResult, SessionLimitEnforcer } from '../enforcement/enforcer.js';
import type { ZitadelSessionDirectory } from '../zitadel/session-directory.js';

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
}

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
  // Keyset paging by creation date: deleting sessions while paging cannot make us skip any.
  let from = options.createdSince;
  let skip = 0;
  for (;;) {
    const page = await options.directory.listInstancePage(from, skip);
    summary.sessionsSeen += page.length;
    const fresh: { userId: string; organizationId: string | undefined }[] = [];
    for (const session of page) {
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
    // The next page starts at the last creation date seen, skipping the sessions already seen at exactly that time.
    const last = page.at(-1)!.createdAt ?? 0;
    skip = last === from ? skip + page.length : page.filter((session) => session.createdAt === last).length;
    from = last;
  }
}
