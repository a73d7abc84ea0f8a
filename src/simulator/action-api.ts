import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { Code, ConnectError } from '@connectrpc/connect';
import {
  conditionKey,
  parseProtoDuration,
  PAYLOAD_TYPES,
  type ActionsRegistry,
  type Condition,
  type PayloadType,
  type SimExecution,
  type SimPublicKey,
  type SimTarget,
  type TargetType,
} from './actions.js';
import { authorize } from './calls.js';
import type { Permission, SimulatorState } from './state.js';

/**
 * The v2 Action API as ZITADEL's REST gateway serves it (JSON, lowerCamelCase, zero values omitted, uint64 as
 * strings, errors as `{"code","message","details"}`), over the simulator's `ActionsRegistry`.
 */

type Json = Record<string, unknown>;

/** grpc-gateway's mapping of gRPC codes to HTTP statuses. */
const HTTP_STATUS: Partial<Record<Code, number>> = {
  [Code.InvalidArgument]: 400,
  [Code.FailedPrecondition]: 400,
  [Code.OutOfRange]: 400,
  [Code.Unauthenticated]: 401,
  [Code.PermissionDenied]: 403,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.Aborted]: 409,
  [Code.ResourceExhausted]: 429,
  [Code.Unimplemented]: 501,
  [Code.Unavailable]: 503,
  [Code.DeadlineExceeded]: 504,
};

const MAX_TIMEOUT_MS = 270_000;
const MAX_LIMIT = 1000;
const invalid = (message: string) => new ConnectError(message, Code.InvalidArgument);

/** One Action API request the simulator answered. */
export interface ActionApiRequest {
  method: string;
  path: string;
  status: number;
}

/** A target as ZITADEL answers it; `payloadType` only from v4.8 on, and omitted when unspecified (protobuf JSON omits zero enums). */
function targetJson(target: SimTarget, payloadTypes: boolean): Json {
  const type = target.type === 'restAsync' ? {} : target.interruptOnError ? { interruptOnError: true } : {};
  return {
    id: target.id,
    creationDate: target.creationDate.toISOString(),
    changeDate: target.changeDate.toISOString(),
    name: target.name,
    [target.type]: type,
    timeout: target.timeout,
    endpoint: target.endpoint,
    signingKey: target.signingKey,
    ...(payloadTypes && target.payloadType !== 'PAYLOAD_TYPE_UNSPECIFIED' ? { payloadType: target.payloadType } : {}),
  };
}

/** `zitadel.action.v2.PublicKey` in protobuf JSON: bytes as base64, `active` omitted when false. */
function publicKeyJson(key: SimPublicKey, active: boolean): Json {
  return {
    keyId: key.keyId,
    ...(active ? { active: true } : {}),
    publicKey: key.pem.toString('base64'),
    fingerprint: key.fingerprint,
    ...(key.expirationDate ? { expirationDate: key.expirationDate.toISOString() } : {}),
    creationDate: key.creationDate.toISOString(),
    changeDate: key.changeDate.toISOString(),
  };
}

/** A protobuf JSON enum: its name or its number; unknown values are refused as protojson does. */
function readPayloadType(value: unknown): PayloadType | undefined {
  if (value === undefined || value === null) return undefined;
  const name = typeof value === 'number' ? PAYLOAD_TYPES[value] : PAYLOAD_TYPES.find((type) => type === value);
  if (!name) throw invalid(`invalid value for enum field payloadType: ${JSON.stringify(value)}`);
  return name;
}

/** A protobuf JSON `bytes` field: standard or URL-safe base64, padding optional. */
function readBytes(value: unknown, field: string, max: number): Buffer {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(value)) throw invalid(`${field} must be base64 (protobuf JSON bytes)`);
  const bytes = Buffer.from(value, 'base64');
  if (bytes.length < 1 || bytes.length > max) throw invalid(`${field} must be 1..${max} bytes`);
  return bytes;
}

function readTimestamp(value: unknown, field: string): Date | undefined {
  if (value === undefined || value === null) return undefined;
  const date = typeof value === 'string' && /^\d{4}-\d\d-\d\dT/.test(value) ? new Date(value) : undefined;
  if (!date || Number.isNaN(date.getTime())) throw invalid(`${field} must be an RFC 3339 timestamp`);
  return date;
}

function executionJson(execution: SimExecution): Json {
  return {
    condition: execution.condition,
    creationDate: execution.creationDate.toISOString(),
    changeDate: execution.changeDate.toISOString(),
    targets: execution.targets,
  };
}

function readTargetType(body: Json): { type: TargetType; interruptOnError: boolean } | undefined {
  const types = (['restWebhook', 'restCall', 'restAsync'] as const).filter((name) => body[name] !== undefined && body[name] !== null);
  if (types.length > 1) throw invalid('only one of restWebhook, restCall, restAsync may be set');
  const type = types[0];
  if (!type) return undefined;
  const options = body[type] as Json;
  return { type, interruptOnError: type !== 'restAsync' && options?.interruptOnError === true };
}

function readTimeout(value: unknown): string {
  const ms = typeof value === 'string' ? parseProtoDuration(value) : undefined;
  if (ms === undefined) throw invalid('timeout must be a duration such as "10s"');
  if (ms === 0) throw invalid('Errors.Target.NoTimeout');
  if (ms > MAX_TIMEOUT_MS) throw invalid('timeout must be at most 270s');
  return value as string;
}

function readEndpoint(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048) throw invalid('endpoint must be 1..2048 characters');
  try {
    new URL(value);
  } catch {
    throw invalid('Errors.Target.InvalidURL');
  }
  return value;
}

function readName(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 1000) throw invalid('name must be 1..1000 characters');
  return value;
}

function readCondition(value: unknown): Condition {
  const condition = value as Json | undefined;
  const kinds = ['request', 'response', 'function', 'event'].filter((kind) => condition?.[kind] !== undefined);
  if (kinds.length !== 1) throw invalid('condition needs exactly one of request, response, function, event');
  const kind = kinds[0]!;
  const inner = condition![kind] as Json;
  if (kind === 'request' || kind === 'response') {
    const set = ['method', 'service', 'all'].filter((key) => inner?.[key] !== undefined);
    if (set.length !== 1) throw invalid(`condition.${kind} needs exactly one of method, service, all`);
    if (inner.method !== undefined && !/^\/[\w.]+\/\w+$/.test(asText(inner.method))) {
      throw new ConnectError('Errors.Execution.ConditionInvalid', Code.NotFound);
    }
    if (inner.all !== undefined && inner.all !== true) throw invalid('all must be true');
  }
  return { [kind]: inner } as Condition;
}

function paginate<T>(items: T[], body: Json): { page: T[]; pagination: Json } {
  const pagination = (body.pagination ?? {}) as Json;
  const limit = Number(pagination.limit ?? 0) || 100;
  if (limit > MAX_LIMIT) throw invalid('Errors.Query.LimitExceeded');
  const offset = Number(pagination.offset ?? 0);
  const ordered = pagination.asc === true ? items : [...items].reverse();
  return { page: ordered.slice(offset, offset + limit), pagination: { totalResult: String(items.length), appliedLimit: String(limit) } };
}

const textMatchers: Record<string, (value: string, wanted: string) => boolean> = {
  TEXT_FILTER_METHOD_EQUALS: (v, w) => v === w,
  TEXT_FILTER_METHOD_EQUALS_IGNORE_CASE: (v, w) => v.toLowerCase() === w.toLowerCase(),
  TEXT_FILTER_METHOD_STARTS_WITH: (v, w) => v.startsWith(w),
  TEXT_FILTER_METHOD_STARTS_WITH_IGNORE_CASE: (v, w) => v.toLowerCase().startsWith(w.toLowerCase()),
  TEXT_FILTER_METHOD_CONTAINS: (v, w) => v.includes(w),
  TEXT_FILTER_METHOD_CONTAINS_IGNORE_CASE: (v, w) => v.toLowerCase().includes(w.toLowerCase()),
  TEXT_FILTER_METHOD_ENDS_WITH: (v, w) => v.endsWith(w),
  TEXT_FILTER_METHOD_ENDS_WITH_IGNORE_CASE: (v, w) => v.toLowerCase().endsWith(w.toLowerCase()),
};
const TEXT_METHODS = Object.keys(textMatchers);

/** A JSON value read as text: strings as they are, anything else (absent, a number, an object) as ''. */
const asText = (value: unknown): string => (typeof value === 'string' ? value : '');

function targetFilter(filter: Json): (target: SimTarget) => boolean {
  if (filter.targetNameFilter) {
    const { targetName, method } = filter.targetNameFilter as Json;
    const name = typeof method === 'number' ? TEXT_METHODS[method] : (method ?? 'TEXT_FILTER_METHOD_EQUALS');
    const match = textMatchers[asText(name)];
    if (!match) throw invalid('unknown TextFilterMethod');
    return (target) => match(target.name, asText(targetName));
  }
  if (filter.inTargetIdsFilter) {
    const ids = new Set(((filter.inTargetIdsFilter as Json).targetIds as string[] | undefined) ?? []);
    return (target) => ids.has(target.id);
  }
  throw invalid('a filter needs targetNameFilter or inTargetIdsFilter');
}

function executionFilter(filter: Json): (execution: SimExecution) => boolean {
  if (filter.inConditionsFilter) {
    const keys = new Set((((filter.inConditionsFilter as Json).conditions as unknown[]) ?? []).map((c) => conditionKey(readCondition(c))));
    return (execution) => keys.has(conditionKey(execution.condition));
  }
  if (filter.executionTypeFilter) {
    const type = asText((filter.executionTypeFilter as Json).executionType).replace('EXECUTION_TYPE_', '').toLowerCase();
    return (execution) => Object.keys(execution.condition)[0] === type;
  }
  if (filter.targetFilter) {
    const id = (filter.targetFilter as Json).targetId;
    return (execution) => execution.targets.includes(String(id));
  }
  throw invalid('a filter needs inConditionsFilter, executionTypeFilter or targetFilter');
}

interface Route {
  method: string;
  pattern: RegExp;
  permission: Permission;
  /** Only on ZITADEL v4.8 and later (the simulator's `payloadTypes` option). */
  since48?: boolean;
  handle(actions: ActionsRegistry, body: Json, id: string | undefined, now: Date, keyId?: string): Json;
}

const routes: Route[] = [
  {
    method: 'POST',
    pattern: /^\/v2\/actions\/targets\/search$/,
    permission: 'action.target.read',
    handle(actions, body) {
      const filters = ((body.filters as Json[] | undefined) ?? []).map(targetFilter);
      const matching = [...actions.targets.values()].filter((target) => filters.every((match) => match(target)));
      const { page, pagination } = paginate(matching, body);
      return { pagination, targets: page.map((target) => targetJson(target, actions.payloadTypes)) };
    },
  },
  {
    method: 'POST',
    pattern: /^\/v2\/actions\/targets$/,
    permission: 'action.target.write',
    handle(actions, body) {
      const type = readTargetType(body);
      if (!type) throw invalid('one of restWebhook, restCall, restAsync is required');
      const target = actions.createTarget({
        name: readName(body.name),
        endpoint: readEndpoint(body.endpoint),
        timeout: readTimeout(body.timeout),
        ...type,
        // An older ZITADEL's gateway discards unknown fields (DiscardUnknown): the field is ignored, not refused.
        ...(actions.payloadTypes ? { payloadType: readPayloadType(body.payloadType) } : {}),
      });
      return { id: target.id, creationDate: target.creationDate.toISOString(), signingKey: target.signingKey };
    },
  },
  {
    method: 'GET',
    pattern: /^\/v2\/actions\/targets\/([^/]+)$/,
    permission: 'action.target.read',
    handle(actions, _body, id) {
      const target = actions.targets.get(id!);
      if (!target) throw new ConnectError('Errors.Target.NotFound', Code.NotFound);
      return { target: targetJson(target, actions.payloadTypes) };
    },
  },
  {
    method: 'POST',
    pattern: /^\/v2\/actions\/targets\/([^/]+)$/,
    permission: 'action.target.write',
    handle(actions, body, id, now) {
      const target = actions.targets.get(id!);
      if (!target) throw new ConnectError('Errors.Target.NotFound', Code.NotFound);
      const next: SimTarget = { ...target };
      if (body.name !== undefined) next.name = readName(body.name);
      if (body.endpoint !== undefined) next.endpoint = readEndpoint(body.endpoint);
      if (body.timeout !== undefined) next.timeout = readTimeout(body.timeout);
      Object.assign(next, readTargetType(body) ?? {});
      const payloadType = actions.payloadTypes ? readPayloadType(body.payloadType) : undefined;
      if (payloadType && payloadType !== 'PAYLOAD_TYPE_UNSPECIFIED') next.payloadType = payloadType;
      let rotated: string | undefined;
      if (body.expirationSigningKey !== undefined) {
        if (body.expirationSigningKey !== '0s') throw invalid('expirationSigningKey must be "0s" (immediate rotation)');
        rotated = actions.rotateSigningKey(next);
      }
      const changed = JSON.stringify(targetJson(next, true)) !== JSON.stringify(targetJson(target, true));
      if (changed) next.changeDate = now;
      actions.targets.set(next.id, next);
      return { changeDate: next.changeDate.toISOString(), ...(rotated ? { signingKey: rotated } : {}) };
    },
  },
  {
    method: 'DELETE',
    pattern: /^\/v2\/actions\/targets\/([^/]+)$/,
    permission: 'action.target.delete',
    handle(actions, _body, id, now) {
      // Idempotent in current ZITADEL; removing a target also removes it from every execution.
      if (!actions.deleteTarget(id!)) return {};
      return { deletionDate: now.toISOString() };
    },
  },
  // The public keys of a JWE target (v4.8+), as action_service.proto maps them: activate and deactivate are POSTs.
  {
    method: 'POST',
    pattern: /^\/v2\/actions\/targets\/([^/]+)\/publickeys\/search$/,
    permission: 'action.target.read',
    since48: true,
    handle(actions, _body, id) {
      const keys = actions.targets.get(id!)?.publicKeys ?? [];
      return { publicKeys: keys.map((key) => publicKeyJson(key, actions.isActive(key))) };
    },
  },
  {
    method: 'POST',
    pattern: /^\/v2\/actions\/targets\/([^/]+)\/publickeys$/,
    permission: 'action.target.write',
    since48: true,
    handle(actions, body, id) {
      const key = actions.addPublicKey(id!, readBytes(body.publicKey, 'publicKey', 8192), readTimestamp(body.expirationDate, 'expirationDate'));
      return { keyId: key.keyId, creationDate: key.creationDate.toISOString() };
    },
  },
  {
    method: 'POST',
    pattern: /^\/v2\/actions\/targets\/([^/]+)\/publickeys\/([^/]+)\/activate$/,
    permission: 'action.target.write',
    since48: true,
    handle(actions, _body, id, _now, keyId) {
      return { changeDate: actions.activatePublicKey(id!, keyId!).toISOString() };
    },
  },
  {
    method: 'POST',
    pattern: /^\/v2\/actions\/targets\/([^/]+)\/publickeys\/([^/]+)\/deactivate$/,
    permission: 'action.target.write',
    since48: true,
    handle(actions, _body, id, _now, keyId) {
      return { changeDate: actions.deactivatePublicKey(id!, keyId!).toISOString() };
    },
  },
  {
    method: 'DELETE',
    pattern: /^\/v2\/actions\/targets\/([^/]+)\/publickeys\/([^/]+)$/,
    permission: 'action.target.write',
    since48: true,
    handle(actions, _body, id, _now, keyId) {
      const deleted = actions.removePublicKey(id!, keyId!);
      return deleted ? { deletionDate: deleted.toISOString() } : {};
    },
  },
  {
    method: 'PUT',
    pattern: /^\/v2\/actions\/executions$/,
    permission: 'action.execution.write',
    handle(actions, body, _id, now) {
      const targets = (body.targets as unknown[] | undefined) ?? [];
      if (!targets.every((target) => typeof target === 'string')) throw invalid('targets must be a list of target ids');
      actions.setExecution(readCondition(body.condition), targets);
      return { setDate: now.toISOString() };
    },
  },
  {
    method: 'POST',
    pattern: /^\/v2\/actions\/executions\/search$/,
    permission: 'action.execution.read',
    handle(actions, body) {
      const filters = ((body.filters as Json[] | undefined) ?? []).map(executionFilter);
      const matching = [...actions.executions.values()].filter((execution) => filters.every((match) => match(execution)));
      const { page, pagination } = paginate(matching, body);
      return { pagination, executions: page.map(executionJson) };
    },
  },
];

async function readJson(request: IncomingMessage): Promise<Json> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Json;
  } catch {
    throw invalid('the body is not a JSON object');
  }
}

/** The HTTP/1.1 handler for the Action API routes; every request is recorded in `requests`. */
export function actionApiHandler(state: SimulatorState, actions: ActionsRegistry, requests: ActionApiRequest[]): RequestListener {
  // Every failure is answered inside (the catch below): the promise never rejects.
  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const path = new URL(request.url ?? '/', 'http://simulator').pathname;
    const send = (status: number, body: Json) => {
      requests.push({ method: request.method ?? '', path, status });
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    try {
      const candidates = routes.filter((route) => route.pattern.test(path) && (actions.payloadTypes || !route.since48));
      const route = candidates.find((candidate) => candidate.method === request.method);
      if (!route) {
        send(candidates.length > 0 ? 405 : 404, { code: Code.Unimplemented, message: `no route ${request.method} ${path}`, details: [] });
        return;
      }
      authorize(state, request.headers.authorization, route.permission);
      const body = await readJson(request);
      const [, id, keyId] = route.pattern.exec(path) ?? [];
      send(200, route.handle(actions, body, id && decodeURIComponent(id), state.now(), keyId && decodeURIComponent(keyId)));
    } catch (error) {
      const connectError = ConnectError.from(error);
      send(HTTP_STATUS[connectError.code] ?? 500, { code: connectError.code, message: connectError.rawMessage, details: [] });
    }
  };
  return (request, response) => void handle(request, response);
}
