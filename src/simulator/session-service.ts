import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import { SessionFieldName, SessionSchema, type Session } from '@zitadel/proto/zitadel/session/v2/session_pb.js';
import type { SessionService } from '@zitadel/proto/zitadel/session/v2/session_service_pb.js';
import type { Permission, SimMethod, SimSession, SimulatorState } from './state.js';

const MAX_LIST_LIMIT = 1000;
const DEFAULT_LIST_LIMIT = 100;

export function toProtoSession(session: SimSession): Session {
  const at = (date: Date) => timestampFromDate(date);
  const { factors } = session;
  return create(SessionSchema, {
    id: session.id,
    creationDate: at(session.creationDate),
    changeDate: at(session.changeDate),
    sequence: session.sequence,
    factors: {
      user: {
        id: session.userId,
        loginName: session.loginName,
        displayName: session.loginName,
        organizationId: session.organizationId,
        verifiedAt: at(session.userVerifiedAt),
      },
      password: factors.password && { verifiedAt: at(factors.password) },
      webAuthN: factors.webAuthN && { verifiedAt: at(factors.webAuthN), userVerified: true },
      intent: factors.intent && { verifiedAt: at(factors.intent) },
      totp: factors.totp && { verifiedAt: at(factors.totp) },
      otpSms: factors.otpSms && { verifiedAt: at(factors.otpSms) },
      otpEmail: factors.otpEmail && { verifiedAt: at(factors.otpEmail) },
    },
    userAgent:
      session.fingerprintId || session.description
        ? { fingerprintId: session.fingerprintId, description: session.description }
        : undefined,
    expirationDate: session.expirationDate && at(session.expirationDate),
  });
}

/**
 * Runs one simulated call: latency, the bearer token and permission, injected faults, then the handler; every
 * call is recorded with its result so tests can assert which calls happened.
 */
export async function simulateCall<T>(
  state: SimulatorState,
  context: HandlerContext,
  call: { method: SimMethod; permission: Permission; sessionId?: string; userId?: string; limit?: number; offset?: number },
  handler: () => T,
): Promise<T> {
  const { method, permission, ...details } = call;
  const delay = state.latencyMs[method] ?? state.latencyMs['*'] ?? 0;
  if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
  const record = (code: Code | 'ok') => state.calls.push({ method, ...details, code });
  try {
    const authorization = context.requestHeader.get('authorization') ?? '';
    const token = /^Bearer (.+)$/.exec(authorization)?.[1];
    const granted = token === undefined ? undefined : state.tokens.get(token);
    if (!granted) throw new ConnectError('Errors.Token.Invalid (AUTH-7fs1e)', Code.Unauthenticated);
    if (!granted.has(permission)) throw new ConnectError('No matching permissions found (AUTH-5mWD2)', Code.PermissionDenied);
    const fault = state.takeFault(method);
    if (fault) throw new ConnectError(fault.message ?? `simulated ${Code[fault.code]}`, fault.code);
    const result = handler();
    record('ok');
    return result;
  } catch (error) {
    record(ConnectError.from(error).code);
    throw error;
  }
}

/** The subset of `zitadel.session.v2.SessionService` this project uses, with ZITADEL's semantics. */
export function sessionServiceImpl(state: SimulatorState): Partial<ServiceImpl<typeof SessionService>> {
  return {
    getSession: (request, context) =>
      simulateCall(state, context, { method: 'GetSession', permission: 'session.read', sessionId: request.sessionId }, () => {
        // ZITADEL's GetSession first brings the session projection up to date.
        state.updateProjection();
        const session = state.sessions.get(request.sessionId);
        if (!session) throw new ConnectError('Session does not exist (QUERY-SDgh2)', Code.NotFound);
        return { session: toProtoSession(session) };
      }),

    listSessions: (request, context) => {
      const limit = request.query?.limit || DEFAULT_LIST_LIMIT;
      const offset = Number(request.query?.offset ?? 0n);
      const userQuery = request.queries.find((q) => q.query.case === 'userIdQuery');
      const userId = userQuery?.query.case === 'userIdQuery' ? userQuery.query.value.id : undefined;
      return simulateCall(state, context, { method: 'ListSessions', permission: 'session.read', userId, limit, offset }, () => {
        if (limit > MAX_LIST_LIMIT) throw new ConnectError('Errors.Query.LimitExceeded', Code.InvalidArgument);
        let sessions = state.projectedSessions();
        for (const { query } of request.queries) {
          switch (query.case) {
            case 'userIdQuery':
              sessions = sessions.filter((s) => s.userId === query.value.id);
              break;
            case 'idsQuery': {
              const ids = new Set(query.value.ids);
              sessions = sessions.filter((s) => ids.has(s.id));
              break;
            }
            case 'userAgentQuery':
              sessions = sessions.filter((s) => s.fingerprintId === query.value.fingerprintId);
              break;
            default:
              throw new ConnectError(`the simulator does not implement ${query.case ?? 'an empty'} query`, Code.Unimplemented);
          }
        }
        if (request.sortingColumn === SessionFieldName.CREATION_DATE) {
          const direction = request.query?.asc ? 1 : -1;
          sessions.sort((a, b) => direction * (a.creationDate.getTime() - b.creationDate.getTime() || (a.id < b.id ? -1 : 1)));
        } else {
          // Unspecified order in ZITADEL; newest writes first here, so that nothing may rely on it.
          sessions.reverse();
        }
        return {
          details: { totalResult: BigInt(sessions.length), timestamp: timestampFromDate(state.now()) },
          sessions: sessions.slice(offset, offset + limit).map(toProtoSession),
        };
      });
    },

    deleteSession: (request, context) =>
      simulateCall(state, context, { method: 'DeleteSession', permission: 'session.delete', sessionId: request.sessionId }, () => {
        // Idempotent: deleting an unknown or already terminated session succeeds.
        state.terminate(request.sessionId);
        return { details: { sequence: state.nextSequence(), changeDate: timestampFromDate(state.now()) } };
      }),
  };
}
