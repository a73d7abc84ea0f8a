import type { CountBy, OnLimit } from './decision.js';

/** The policies that are the same for every user (the limit may come from metadata). */
export interface PolicyOptions {
  countBy: CountBy;
  onLimit: OnLimit;
  dryRun: boolean;
  pruneExpired: boolean;
}

export const DEFAULT_POLICY: PolicyOptions = { countBy: 'session', onLimit: 'evict-oldest', dryRun: false, pruneExpired: false };
