import type { CallRunner } from './ports.js';
import type { Limit, LimitSource } from './decision.js';

/**
 * Per-user limits from metadata: pure parsing and the order of sources. The look-ups themselves live in
 * src/zitadel/metadata.ts.
 */

/** A metadata value: a positive integer, or `unlimited` (exempt). Anything else is malformed: undefined. */
export function parseLimitValue(value: string): Limit | undefined {
  const text = value.trim().toLowerCase();
  if (text === 'unlimited') return 'unlimited';
  if (!/^\d{1,6}$/.test(text)) return undefined;
  const limit = Number(text);
  return limit >= 1 ? limit : undefined;
}

/** What one source said: nothing (no such key), a usable limit, or a malformed value to warn about. */
export type MetadataLimit = { kind: 'absent' } | { kind: 'limit'; limit: Limit } | { kind: 'malformed' };

export function readMetadataLimit(value: Uint8Array | undefined): MetadataLimit {
  if (value === undefined) return { kind: 'absent' };
  const limit = parseLimitValue(Buffer.from(value).toString('utf8'));
  return limit === undefined ? { kind: 'malformed' } : { kind: 'limit', limit };
}

export interface ResolvedLimit {
  limit: Limit;
  source: LimitSource;
  /** Sources skipped because their value was malformed (to log as warnings). */
  malformed: ('user-metadata' | 'org-metadata')[];
}

/** First match wins: the user's metadata, then the organisation's, then the default. Never 0, never a crash. */
export function resolveLimit(user: MetadataLimit, org: MetadataLimit, fallback: number): ResolvedLimit {
  const malformed: ResolvedLimit['malformed'] = [];
  if (user.kind === 'limit') return { limit: user.limit, source: 'user-metadata', malformed };
  if (user.kind === 'malformed') malformed.push('user-metadata');
  if (org.kind === 'limit') return { limit: org.limit, source: 'org-metadata', malformed };
  if (org.kind === 'malformed') malformed.push('org-metadata');
  return { limit: fallback, source: 'default', malformed };
}

/** Where a user's limit comes from. */
export interface LimitSourceLookup {
  limitFor(userId: string, organizationId: string | undefined, run?: CallRunner): Promise<ResolvedLimit>;
}

/** SESSION_LIMIT for everyone: no metadata is ever read. */
export class FixedLimit implements LimitSourceLookup {
  readonly #limit: number;
  constructor(limit: number) {
    this.#limit = limit;
  }
  limitFor(): Promise<ResolvedLimit> {
    return Promise.resolve({ limit: this.#limit, source: 'default', malformed: [] });
  }
}
