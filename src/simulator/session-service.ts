import { randomBytes } from 'node:crypto';
import { create, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { timestampFromDate, TimestampSchema, type Timestamp } from '@bufbuild/protobuf/wkt';
import { TimestampQueryMethod } from '@zitadel/proto/zitadel/object/v2/object_pb.js';
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import { SessionFieldName, SessionSchema, type Session } from '@zitadel/proto/zitadel/session/v2/session_pb.js';
import {
  CreateSessionRequestSchema,
  CreateSessionResponseSchema,
  SetSessionRequestSchema,
  SetSessionResponseSchema,
  type CreateSessionRequest,
  type SessionService,
  type SetSessionRequest,
} from '@zitadel/proto/zitadel/session/v2/session_service_pb.js';
import type { RequestChallenges } from '@zitadel/proto/zitadel/session/v2/challenge_pb.js';
import type { Duration } from '@bufbuild/protobuf/wkt';
import { resolveUser, verifyChecks } from './login-checks.js';
import type { ResponseCall, ResponseExecutor } from './actions.js';
import { simulateCall } from './calls.js';
import type { SimSession, SimUser, SimulatorState } from './state.js';

const MAX_LIST_LIMIT = 1000;

const TIMESTAMP_METHODS: Record<number, (value: number, at: number) => boolean> = {
  [TimestampQueryMethod.EQUALS]: (value, at) => value === at,
  [TimestampQueryMethod.GREATER]: (value, at) => value > at,
  [TimestampQueryMethod.GREATER_OR_EQUALS]: (value, at) => value >= at,
  [TimestampQueryMethod.LESS]: (value, at) => value < at,
  [TimestampQueryMethod.LESS_OR_EQUALS]: (value, at) => value <= at,
};
const DEFAULT_LIST_LIMIT = 100;

/** A session's creation time in epoch microseconds (ZITADEL's precision; below 2^53 for dates until year 2255). */
const creationMicrosOf = (session: SimSession) => session.creationDate.getTime() * 1000 + session.creationMicros;

/** A query's timestamp in epoch microseconds: PostgreSQL keeps microseconds and cuts the nanoseconds below them. */
const microsOf = (timestamp: Timestamp) => Number(timestamp.seconds) * 1_000_000 + Math.floor(timestamp.nanos / 1000);

function creationTimestamp(session: SimSession): Timestamp {
  const ms = session.creationDate.getTime();
  const seconds = Math.floor(ms / 1000);
  return create(TimestampSchema, { seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1_000_000 + session.creationMicros * 1000 });
}

export function toProtoSession(session: SimSession): Session {
  const at = (date: Date) => timestampFromDate(date);
  const { factors } = session;
  return create(SessionSchema, {
    id: session.id,
    creationDate: creationTimestamp(session),
    changeDate: at(session.changeDate),
    sequence: session.sequence,
    factors: {
      user: session.userId === '' ? undefined : {
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
      session.fingerprintId || session.description || session.ip
        ? { fingerprintId: session.fingerprintId, description: session.description, ip: session.ip }
        : undefined,
    expirationDate: session.expirationDate && at(session.expirationDate),
  });
}

/** The request headers ZITADEL forwards in execution payloads, in Go's canonical spelling. */
const FORWARDED_HEADERS = ['Content-Type', 'X-Forwarded-For', 'X-Forwarded-Host', 'Host', 'Origin'];
function forwardedHeaders(context: HandlerContext): Record<string, string[]> {
  const headers: Record<string, string[]> = {};
  for (const name of FORWARDED_HEADERS) {
    const value = context.requestHeader.get(name);
    if (value) headers[name] = [value];
  }
  return headers;
}

const addDuration = (from: Date, duration: Duration | undefined) =>
  duration ? new Date(from.getTime() + Number(duration.seconds) * 1000 + duration.nanos / 1e6) : undefined;

function challengesFor(state: SimulatorState, session: SimSession, user: SimUser | undefined, requested: RequestChallenges | undefined) {
  if (!requested?.webAuthN) return undefined;
  if (!user?.passkey) throw new ConnectError('Errors.User.WebAuthN.NotFound', Code.InvalidArgument);
  state.webAuthNChallenges.add(session.id);
  return {
    webAuthN: {
      publicKeyCredentialRequestOptions: {
        publicKey: {
          challenge: randomBytes(32).toString('base64url'),
          rpId: requested.webAuthN.domain,
          timeout: 300000,
          userVerification: 'required',
        },
      },
    },
  };
}

/** The subset of `zitadel.session.v2.SessionService` this project uses, with ZITADEL's semantics. */
export function sessionServiceImpl(
  state: SimulatorState,
  executor?: ResponseExecutor,
): Partial<ServiceImpl<typeof SessionService>> {
  const details = (session: SimSession) => ({
    sequence: session.sequence,
    changeDate: timestampFromDate(session.changeDate),
    resourceOwner: state.instanceId,
  });
  /** Makes the write visible, then runs the response executions (which may fail the call, or replace the answer). */
  const respond = <Req extends DescMessage, Res extends DescMessage>(
    session: SimSession,
    user: SimUser | undefined,
    token: string,
    context: HandlerContext,
    method: 'CreateSession' | 'SetSession',
    request: ResponseCall<Req, Res>['request'],
    response: ResponseCall<Req, Res>['response'],
  ): Promise<MessageShape<Res>> | MessageShape<Res> => {
    state.written(session.id);
    if (!executor) return response.message;
    return executor.afterResponse({
      token,
      fullMethod: `/zitadel.session.v2.SessionService/${method}`,
      request,
      response,
      orgId: user?.organizationId,
      headers: forwardedHeaders(context),
    });
  };

  return {
    createSession: (request: CreateSessionRequest, context) =>
      simulateCall(state, context.requestHeader.get('authorization'), { method: 'CreateSession', permission: 'session.write' }, async (token) => {
        const user = resolveUser(state, request.checks);
        const verified = verifyChecks(state, user, undefined, request.checks);
        const session = state.seedSession({
          userId: user?.id ?? '',
          loginName: user?.loginName,
          organizationId: user?.organizationId,
          fingerprintId: request.userAgent?.fingerprintId,
          description: request.userAgent?.description,
          ip: request.userAgent?.ip,
        });
        state.verify(session, verified, addDuration(state.now(), request.lifetime));
        const response = create(CreateSessionResponseSchema, {
          details: details(session),
          sessionId: session.id,
          sessionToken: session.token,
          challenges: challengesFor(state, session, user, request.challenges),
        });
        return respond(session, user, token, context, 'CreateSession', { schema: CreateSessionRequestSchema, message: request }, {
          schema: CreateSessionResponseSchema,
          message: response,
        });
      }),

    setSession: (request: SetSessionRequest, context) =>
      simulateCall(state, context.requestHeader.get('authorization'), { method: 'SetSession', permission: 'session.write', sessionId: request.sessionId }, async (token) => {
        const session = state.sessions.get(request.sessionId);
        if (!session) throw new ConnectError('Session does not exist (Errors.Session.NotExisting)', Code.NotFound);
        if (request.sessionToken && request.sessionToken !== session.token) {
          throw new ConnectError('Errors.Session.Token.Invalid', Code.PermissionDenied);
        }
        const user = state.users.get(session.userId) ?? resolveUser(state, request.checks);
        const named = resolveUser(state, request.checks);
        if (named && session.userId && named.id !== session.userId) {
          throw new ConnectError('Errors.Session.User.Changed', Code.InvalidArgument);
        }
        const verified = verifyChecks(state, user, session.id, request.checks);
        if (!session.userId && user) Object.assign(session, { userId: user.id, loginName: user.loginName, organizationId: user.organizationId });
        state.verify(session, verified, addDuration(state.now(), request.lifetime));
        const response = create(SetSessionResponseSchema, {
          details: details(session),
          sessionToken: session.token,
          challenges: challengesFor(state, session, user, request.challenges),
        });
        return respond(session, user, token, context, 'SetSession', { schema: SetSessionRequestSchema, message: request }, {
          schema: SetSessionResponseSchema,
          message: response,
        });
      }),

    getSession: (request, context) =>
      simulateCall(state, context.requestHeader.get('authorization'), { method: 'GetSession', permission: 'session.read', sessionId: request.sessionId }, () => {
        // ZITADEL's GetSession first brings the session projection up to date.
        state.syncProjection();
        const session = state.sessions.get(request.sessionId);
        if (!session) throw new ConnectError('Session does not exist (QUERY-SDgh2)', Code.NotFound);
        return { session: toProtoSession(session) };
      }),

    listSessions: (request, context) => {
      const limit = request.query?.limit || DEFAULT_LIST_LIMIT;
      const offset = Number(request.query?.offset ?? 0n);
      const userQuery = request.queries.find((q) => q.query.case === 'userIdQuery');
      const userId = userQuery?.query.case === 'userIdQuery' ? userQuery.query.value.id : undefined;
      return simulateCall(state, context.requestHeader.get('authorization'), { method: 'ListSessions', permission: 'session.read', userId, limit, offset }, () => {
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
            case 'creationDateQuery': {
              const at = query.value.creationDate ? microsOf(query.value.creationDate) : 0;
              const compare = TIMESTAMP_METHODS[query.value.method];
              if (!compare) throw new ConnectError('unknown TimestampQueryMethod', Code.InvalidArgument);
              sessions = sessions.filter((s) => compare(creationMicrosOf(s), at));
              break;
            }
            default:
              throw new ConnectError(`the simulator does not implement ${query.case ?? 'an empty'} query`, Code.Unimplemented);
          }
        }
        if (request.sortingColumn === SessionFieldName.CREATION_DATE) {
          // ZITADEL (PostgreSQL) orders ties, sessions created in the same microsecond, as it happens to: here in a
          // seeded random order that changes from call to call, so that nothing may rely on it (state.seed
          // reproduces a run).
          const direction = request.query?.asc ? 1 : -1;
          const keyed = sessions.map((session) => ({ session, key: creationMicrosOf(session), tie: state.random() }));
          keyed.sort((a, b) => direction * (a.key - b.key) || a.tie - b.tie);
          sessions = keyed.map(({ session }) => session);
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
      simulateCall(state, context.requestHeader.get('authorization'), { method: 'DeleteSession', permission: 'session.delete', sessionId: request.sessionId }, () => {
        // Idempotent: deleting an unknown or already terminated session succeeds.
        state.terminate(request.sessionId);
        return { details: { sequence: state.nextSequence(), changeDate: timestampFromDate(state.now()) } };
      }),
  };
}
