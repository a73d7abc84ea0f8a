import { Code, ConnectError, type Client, type Transport } from '@connectrpc/connect';
import { create } from '@bufbuild/protobuf';
import { TimestampSchema, type Timestamp } from '@bufbuild/protobuf/wkt';
import { TimestampQueryMethod } from '@zitadel/proto/zitadel/object/v2/object_pb.js';
// `createClientFor` with the one descriptor we need: '@zitadel/client/v2' would load every v2 service's protos
// (about 18 MB of resident memory) for nothing.
import { createClientFor } from '@zitadel/client';
import { SessionFieldName, type Session } from '@zitadel/proto/zitadel/session/v2/session_pb.js';
import { SessionService } from '@zitadel/proto/zitadel/session/v2/session_service_pb.js';
import { CREDENTIAL_FACTORS, type SessionRecord } from '../enforcement/decision.js';

/**
 * How each ZITADEL call is run: the runner gets the call and gives it its deadline (undefined: the connection's
 * default). The enforcer's runner retries within its budget; the default runs the call once.
 */
export type CallRunner = <T>(what: ZitadelMethod, call: (timeoutMs: number | undefined) => Promise<T>) => Promise<T>;
export const runOnce: CallRunner = (_what, call) => call(undefined);

/** The three Session API calls enforcement needs, in plain data. The seam between the logic and ZITADEL. */
export interface SessionDirectory {
  /** Reads one session (and brings ZITADEL's session projection up to date); undefined when it does not exist. */
  getSession(sessionId: string, run?: CallRunner): Promise<SessionRecord | undefined>;
  /** Every session of the user, all pages (each page one call). */
  listUserSessions(userId: string, run?: CallRunner): Promise<SessionRecord[]>;
  /** Terminates a session; succeeds for an unknown or already terminated one (ZITADEL's delete is idempotent). */
  deleteSession(sessionId: string, run?: CallRunner): Promise<void>;
}

const MAX_PAGES = 1000;

export type ZitadelMethod = 'GetSession' | 'ListSessions' | 'DeleteSession' | 'ListUserMetadata' | 'ListOrganizationMetadata';

/**
 * Codes that mean ZITADEL could not be reached or was overloaded, rather than refusing the call. `Unknown` is what a
 * broken connection surfaces as (it carries no answer from ZITADEL).
 */
export const UNAVAILABLE_CODES: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
  Code.Aborted,
  Code.Canceled,
  Code.Unknown,
]);

/** A failed ZITADEL call: which call, and gRPC's verdict. Carries no request data. */
export class ZitadelCallError extends Error {
  readonly method: ZitadelMethod;
  readonly grpcCode: Code;

  constructor(method: ZitadelMethod, cause: unknown) {
    const error = ConnectError.from(cause);
    super(`ZITADEL ${method} failed: ${Code[error.code]}: ${error.rawMessage}`);
    this.name = 'ZitadelCallError';
    this.method = method;
    this.grpcCode = error.code;
  }

  /** True when ZITADEL could not be reached or was overloaded, rather than refusing the call. */
  get unavailable(): boolean {
    return UNAVAILABLE_CODES.has(this.grpcCode);
  }
}

export function timestampFromMs(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return create(TimestampSchema, { seconds: BigInt(seconds), nanos: Math.round((ms - seconds * 1000) * 1e6) });
}

/** Orders two protobuf timestamps exactly (no float milliseconds); a missing one comes first. */
export function compareTimestamps(a: Timestamp | undefined, b: Timestamp | undefined): number {
  if (!a || !b) return (a ? 1 : 0) - (b ? 1 : 0);
  return a.seconds !== b.seconds ? (a.seconds < b.seconds ? -1 : 1) : a.nanos - b.nanos;
}

export function timestampToMs(timestamp: Timestamp | undefined): number | undefined {
  if (!timestamp) return undefined;
  return Number(timestamp.seconds) * 1000 + timestamp.nanos / 1e6;
}

/** Converts the proto session to the decision's plain record; reads nothing secret (sessions hold no token). */
export function toSessionRecord(session: Session): SessionRecord {
  const factors = session.factors;
  const verifiedAt: SessionRecord['verifiedAt'] = {};
  for (const factor of CREDENTIAL_FACTORS) {
    const at = timestampToMs(factors?.[factor]?.verifiedAt);
    if (at !== undefined) verifiedAt[factor] = at;
  }
  return {
    id: session.id,
    userId: factors?.user?.id || undefined,
    organizationId: factors?.user?.organizationId || undefined,
    createdAt: timestampToMs(session.creationDate),
    changedAt: timestampToMs(session.changeDate),
    expiresAt: timestampToMs(session.expirationDate),
    verifiedAt,
    fingerprintId: session.userAgent?.fingerprintId || undefined,
  };
}

export interface ZitadelSessionDirectoryOptions {
  /** ListSessions page size, 1..1000 (ZITADEL rejects more). */
  pageSize?: number;
}

/** `SessionDirectory` over `@zitadel/client`'s SessionService client (gRPC). */
export class ZitadelSessionDirectory implements SessionDirectory {
  readonly #client: Client<typeof SessionService>;
  readonly #pageSize: number;

  get pageSize(): number {
    return this.#pageSize;
  }

  constructor(transport: Transport, options: ZitadelSessionDirectoryOptions = {}) {
    this.#pageSize = options.pageSize ?? 1000;
    if (!Number.isInteger(this.#pageSize) || this.#pageSize < 1 || this.#pageSize > 1000) {
      throw new RangeError('pageSize must be an integer between 1 and 1000');
    }
    this.#client = createClientFor(SessionService)(transport);
  }

  async getSession(sessionId: string, run: CallRunner = runOnce): Promise<SessionRecord | undefined> {
    return run('GetSession', async (timeoutMs) => {
      try {
        const { session } = await this.#client.getSession({ sessionId }, { timeoutMs });
        return session ? toSessionRecord(session) : undefined;
      } catch (error) {
        if (ConnectError.from(error).code === Code.NotFound) return undefined;
        throw new ZitadelCallError('GetSession', error);
      }
    });
  }

  /**
   * Keyset paging by creation date (then dropping ids already seen): a session deleted or created while paging
   * never shifts another out of view, as offset paging would. ZITADEL's order of sessions created in the same
   * instant is undefined, so a page full of one instant that brings nothing new cannot be paged past: that is an
   * error rather than a silent gap (it needs more sessions in one microsecond than a page holds).
   */
  async listUserSessions(userId: string, run: CallRunner = runOnce): Promise<SessionRecord[]> {
    const records = new Map<string, SessionRecord>();
    const created = new Map<string, Timestamp | undefined>();
    let from: Timestamp | undefined;
    // Bounded: a server that ignored the query would otherwise be paged for ever.
    for (let page = 0; page < MAX_PAGES; page++) {
      const cursor = from;
      const result = await run('ListSessions', async (timeoutMs) => {
        try {
          return await this.#client.listSessions(
            {
              query: { offset: 0n, limit: this.#pageSize, asc: true },
              queries: [
                { query: { case: 'userIdQuery', value: { id: userId } } },
                ...(cursor
                  ? [{ query: { case: 'creationDateQuery' as const, value: { creationDate: cursor, method: TimestampQueryMethod.GREATER_OR_EQUALS } } }]
                  : []),
              ],
              sortingColumn: SessionFieldName.CREATION_DATE,
            },
            { timeoutMs },
          );
        } catch (error) {
          throw new ZitadelCallError('ListSessions', error);
        }
      });
      let fresh = 0;
      for (const session of result.sessions) {
        if (records.has(session.id)) continue;
        records.set(session.id, toSessionRecord(session));
        created.set(session.id, session.creationDate);
        fresh += 1;
      }
      if (result.sessions.length < this.#pageSize) return [...records.values()];
      // Everything the query matches (created at or after the cursor) has been seen.
      const total = result.details?.totalResult;
      const seenSinceCursor = [...created.values()].filter((at) => !cursor || compareTimestamps(at, cursor) >= 0).length;
      if (total !== undefined && BigInt(seenSinceCursor) >= total) return [...records.values()];
      if (fresh === 0) {
        throw new ZitadelCallError(
          'ListSessions',
          new ConnectError(`more than ${this.#pageSize} sessions of user ${userId} share one creation time: they cannot be paged through`, Code.OutOfRange),
        );
      }
      from = result.sessions.at(-1)!.creationDate;
    }
    throw new ZitadelCallError('ListSessions', new ConnectError(`more than ${MAX_PAGES} pages of sessions for one user`, Code.OutOfRange));
  }

  /**
   * One page of the whole instance's sessions, oldest first, created at or after `from` (keyset paging: robust
   * against deletions made while paging), after skipping `offset` of them. Each record comes with its creation
   * time exactly as ZITADEL sent it (microseconds do not survive a round trip through float milliseconds).
   */
  async listInstancePage(
    from: Timestamp | undefined,
    offset: number,
    run: CallRunner = runOnce,
  ): Promise<{ session: SessionRecord; created: Timestamp | undefined }[]> {
    return run('ListSessions', async (timeoutMs) => {
      try {
        const { sessions } = await this.#client.listSessions(
          {
            query: { offset: BigInt(offset), limit: this.#pageSize, asc: true },
            queries: from
              ? [{ query: { case: 'creationDateQuery', value: { creationDate: from, method: TimestampQueryMethod.GREATER_OR_EQUALS } } }]
              : [],
            sortingColumn: SessionFieldName.CREATION_DATE,
          },
          { timeoutMs },
        );
        return sessions.map((session) => ({ session: toSessionRecord(session), created: session.creationDate }));
      } catch (error) {
        throw new ZitadelCallError('ListSessions', error);
      }
    });
  }

  async deleteSession(sessionId: string, run: CallRunner = runOnce): Promise<void> {
    await run('DeleteSession', async (timeoutMs) => {
      try {
        await this.#client.deleteSession({ sessionId }, { timeoutMs });
      } catch (error) {
        throw new ZitadelCallError('DeleteSession', error);
      }
    });
  }
}
