import { Code, ConnectError, type Client, type Transport } from '@connectrpc/connect';
import type { Timestamp } from '@bufbuild/protobuf/wkt';
import { TimestampQueryMethod } from '@zitadel/proto/zitadel/object/v2/object_pb.js';
// `createClientFor` with the one descriptor we need: '@zitadel/client/v2' would load every v2 service's protos
// (about 18 MB of resident memory) for nothing.
import { createClientFor } from '@zitadel/client';
import { SessionFieldName, type Session } from '@zitadel/proto/zitadel/session/v2/session_pb.js';
import { SessionService } from '@zitadel/proto/zitadel/session/v2/session_service_pb.js';
import { CREDENTIAL_FACTORS, type SessionRecord } from '../enforcement/decision.js';
import { runOnce, type CallRunner, type SessionDirectory } from '../enforcement/ports.js';
import { ZitadelCallError } from './failures.js';
import { compareTimestamps, timestampToMs } from './timestamps.js';

const MAX_PAGES = 1000;

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
    userAgentDescription: session.userAgent?.description || undefined,
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
