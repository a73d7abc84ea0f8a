import { createHash, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { fromJson, toJson, type DescMessage, type JsonValue, type MessageShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { CompactEncrypt } from 'jose';
import { parseDuration } from '../duration.js';
import { fetchFailureReason } from '../net-failure.js';
import { signPayload } from '../signature/sign.js';
import { goJsonStringify } from './go-json.js';
import type { SimulatorState } from './state.js';
import { WebKeys } from './web-keys.js';

/**
 * ZITADEL's Actions v2 as far as response executions go: targets, executions bound to conditions, and the
 * executor that POSTs a signed payload to each target after a successful API call (docs/zitadel-behaviour.md#actions-v2-targets-and-target-types).
 */

export type TargetType = 'restWebhook' | 'restCall' | 'restAsync';

/** `zitadel.action.v2.PayloadType` (ZITADEL v4.8 and later); unspecified means JSON. */
export type PayloadType = 'PAYLOAD_TYPE_UNSPECIFIED' | 'PAYLOAD_TYPE_JSON' | 'PAYLOAD_TYPE_JWT' | 'PAYLOAD_TYPE_JWE';
export const PAYLOAD_TYPES: readonly PayloadType[] = ['PAYLOAD_TYPE_UNSPECIFIED', 'PAYLOAD_TYPE_JSON', 'PAYLOAD_TYPE_JWT', 'PAYLOAD_TYPE_JWE'];

/** A public key of a JWE target (`AddPublicKey`); its id is the JWE's `kid`. */
export interface SimPublicKey {
  keyId: string;
  /** The PEM bytes as added (`PUBLIC KEY`, PKIX). */
  pem: Buffer;
  key: KeyObject;
  /** `SHA256:` + unpadded base64 of SHA-256 over the DER. */
  fingerprint: string;
  /** As stored; `isActive` also checks the expiration. */
  active: boolean;
  expirationDate?: Date | undefined;
  creationDate: Date;
  changeDate: Date;
}

/** The `SHA256:<base64 raw>` fingerprint ZITADEL gives a public key, from its PEM; undefined when it is not an RSA or EC PKIX key. */
export function publicKeyFingerprint(pem: Buffer | string): { key: KeyObject; fingerprint: string } | undefined {
  const text = Buffer.from(pem).toString('utf8');
  const match = /-----BEGIN PUBLIC KEY-----([\s\S]*?)-----END PUBLIC KEY-----/.exec(text);
  if (!match) return undefined;
  const der = Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: der, format: 'der', type: 'spki' });
  } catch {
    return undefined;
  }
  if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'ec') return undefined;
  return { key, fingerprint: `SHA256:${createHash('sha256').update(der).digest('base64').replace(/=+$/, '')}` };
}

export interface SimTarget {
  id: string;
  name: string;
  endpoint: string;
  /** A protobuf JSON duration, e.g. `"10s"`. */
  timeout: string;
  type: TargetType;
  interruptOnError: boolean;
  signingKey: string;
  /** What ZITADEL v4.8+ stores; a simulator acting as an older ZITADEL keeps it unspecified. */
  payloadType: PayloadType;
  /** The JWE target's public keys (at most one active). */
  publicKeys: SimPublicKey[];
  creationDate: Date;
  changeDate: Date;
}

/** An execution condition as the v2 Action API spells it in JSON. */
export type Condition =
  | { request: { method?: string; service?: string; all?: boolean } }
  | { response: { method?: string; service?: string; all?: boolean } }
  | { function: { name: string } }
  | { event: { event?: string; group?: string; all?: boolean } };

export interface SimExecution {
  condition: Condition;
  targets: string[];
  creationDate: Date;
  changeDate: Date;
}

export interface Delivery {
  targetId: string;
  /** Where the executor POSTed (the target's endpoint at the time). */
  endpoint: string;
  fullMethod: string;
  async: boolean;
  /** The target's payload type at the time (`PAYLOAD_TYPE_UNSPECIFIED` is JSON). */
  payloadType: PayloadType;
  /** The JSON payload before signing or encryption (for JSON targets, the body itself). */
  payload: string;
  /**
   * The exact bytes POSTed (the JSON, or the compact JWS or JWE) and their signature header (test double: kept so
   * that tests can check them); empty when the body could not be built (no active encryption key).
   */
  body: string;
  signature: string;
  status?: number;
  /** Why the call counts as failed, if it does: the error ZITADEL would return with interruptOnError. */
  failure?: ConnectError;
  /** Milliseconds from the POST to the target's answer (or the failure), once finished. */
  latencyMs?: number;
}

/**
 * One line for a finished delivery: method, target, status, latency and outcome, never the body (it holds the
 * password of the login and the session token) nor the signature.
 */
export function describeDelivery(delivery: Delivery): string {
  const kind = delivery.async ? 'restAsync' : 'restWebhook';
  const status = delivery.status === undefined ? 'no answer' : String(delivery.status);
  const latency = delivery.latencyMs === undefined ? '' : ` in ${delivery.latencyMs} ms`;
  const outcome = delivery.failure ? `failed: ${delivery.failure.rawMessage}` : 'ok';
  return `webhook POST ${delivery.endpoint} (${delivery.fullMethod.split('/').at(-1)} response, ${kind}) -> ${status}${latency}: ${outcome}`;
}

/** A new signing key like ZITADEL's: 36 letters and digits. */
export function newSigningKey(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return [...randomBytes(36)].map((byte) => alphabet[byte % alphabet.length]).join('');
}

export function conditionKey(condition: Condition): string {
  return JSON.stringify(condition);
}

/** A protobuf JSON duration (`"10s"`, `"1.5s"`) in milliseconds, or undefined when it is not one. */
export function parseProtoDuration(value: string): number | undefined {
  return parseDuration(value, ['s'], { fractions: true });
}

/**
 * A forwarded status → the gRPC code ZITADEL answers the API caller with (`HTTPStatusCodeToZitadelError`):
 * known 4xx map to their codes, other 4xx to Unknown, anything else to FailedPrecondition.
 */
export function grpcCodeForForwardedStatus(status: number): Code {
  const known: Record<number, Code> = {
    400: Code.InvalidArgument,
    401: Code.Unauthenticated,
    403: Code.PermissionDenied,
    404: Code.NotFound,
    409: Code.AlreadyExists,
    429: Code.ResourceExhausted,
  };
  if (status >= 400 && status <= 499) return known[status] ?? Code.Unknown;
  return Code.FailedPrecondition;
}

export interface ResponseCall<Req extends DescMessage, Res extends DescMessage> {
  /** The caller's bearer token (its owner is the payload's `userID`). */
  token: string;
  fullMethod: string;
  request: { schema: Req; message: MessageShape<Req> };
  response: { schema: Res; message: MessageShape<Res> };
  orgId?: string | undefined;
  /** The forwarded request headers (`{"Name": ["value"]}`), if any. */
  headers?: Record<string, string[]> | undefined;
}

export interface ResponseExecutor {
  afterResponse<Req extends DescMessage, Res extends DescMessage>(call: ResponseCall<Req, Res>): Promise<MessageShape<Res>>;
}

/** Targets, executions and the executor. */
export class ActionsRegistry implements ResponseExecutor {
  readonly targets = new Map<string, SimTarget>();
  readonly executions = new Map<string, SimExecution>();
  readonly deliveries: Delivery[] = [];
  readonly #state: SimulatorState;
  readonly #pending = new Set<Promise<void>>();
  readonly #onDelivery: ((delivery: Delivery) => void) | undefined;
  /** The instance's web keys: the active one signs JWT and JWE payloads. */
  readonly webKeys: WebKeys;
  /** false: act as a ZITADEL older than v4.8 (no payload types, no public keys: every target gets JSON). */
  readonly payloadTypes: boolean;

  /**
   * `onDelivery`: called once per webhook when it finished (answered, failed or timed out). `webKeys`: the instance's
   * web keys (default: one RS256 key). `payloadTypes: false`: a ZITADEL older than v4.8.
   */
  constructor(state: SimulatorState, onDelivery?: (delivery: Delivery) => void, options: { webKeys?: WebKeys; payloadTypes?: boolean } = {}) {
    this.#state = state;
    this.#onDelivery = onDelivery;
    this.webKeys = options.webKeys ?? new WebKeys(() => state.newId());
    this.payloadTypes = options.payloadTypes ?? true;
  }

  createTarget(init: { name: string; endpoint: string; timeout?: string; type?: TargetType; interruptOnError?: boolean; payloadType?: PayloadType }): SimTarget {
    if ([...this.targets.values()].some((target) => target.name === init.name)) {
      throw new ConnectError(`a target named ${init.name} exists already (Errors.Target.AlreadyExists)`, Code.AlreadyExists);
    }
    const now = this.#state.now();
    const target: SimTarget = {
      id: this.#state.newId(),
      name: init.name,
      endpoint: init.endpoint,
      timeout: init.timeout ?? '10s',
      type: init.type ?? 'restWebhook',
      interruptOnError: init.interruptOnError ?? false,
      signingKey: newSigningKey(),
      payloadType: this.payloadTypes ? (init.payloadType ?? 'PAYLOAD_TYPE_UNSPECIFIED') : 'PAYLOAD_TYPE_UNSPECIFIED',
      publicKeys: [],
      creationDate: now,
      changeDate: now,
    };
    this.targets.set(target.id, target);
    return target;
  }

  /** A new signing key, effective at once (ZITADEL's `expirationSigningKey: "0s"`). */
  rotateSigningKey(target: SimTarget): string {
    target.signingKey = newSigningKey();
    return target.signingKey;
  }

  #target(id: string): SimTarget {
    const target = this.targets.get(id);
    // ZITADEL's key commands answer PreconditionFailed for an unknown target.
    if (!target) throw new ConnectError('Errors.Target.NotFound (COMMAND-nd3fsd)', Code.FailedPrecondition);
    return target;
  }

  /** Whether a key encrypts payloads now: active and not expired (an expired key is deactivated on its own). */
  isActive(key: SimPublicKey): boolean {
    return key.active && (key.expirationDate === undefined || key.expirationDate.getTime() > this.#state.now().getTime());
  }

  /** The key the executor encrypts to, if any. */
  activePublicKey(target: SimTarget): SimPublicKey | undefined {
    return target.publicKeys.find((key) => this.isActive(key));
  }

  /** `AddPublicKey`: a PEM `PUBLIC KEY` (RSA or EC), inactive; the new key's id. */
  addPublicKey(targetId: string, pem: Buffer | string, expirationDate?: Date): SimPublicKey {
    const target = this.#target(targetId);
    const now = this.#state.now();
    if (expirationDate && expirationDate.getTime() < now.getTime()) {
      throw new ConnectError('Errors.Target.InvalidExpirationDate (ErrExpirationDateBeforeNow)', Code.InvalidArgument);
    }
    const parsed = publicKeyFingerprint(pem);
    if (!parsed) throw new ConnectError('Errors.Target.InvalidPublicKey (ErrPublicKeyFormat)', Code.InvalidArgument);
    const key: SimPublicKey = { keyId: this.#state.newId(), pem: Buffer.from(pem), ...parsed, active: false, expirationDate, creationDate: now, changeDate: now };
    target.publicKeys.push(key);
    return key;
  }

  #publicKey(target: SimTarget, keyId: string): SimPublicKey {
    const key = target.publicKeys.find((candidate) => candidate.keyId === keyId);
    if (!key) throw new ConnectError('Errors.Target.PublicKeyNotFound', Code.NotFound);
    return key;
  }

  /** `ActivatePublicKey`: this key encrypts from now on; the previously active one is deactivated. */
  activatePublicKey(targetId: string, keyId: string): Date {
    const target = this.#target(targetId);
    const key = this.#publicKey(target, keyId);
    const now = this.#state.now();
    if (key.expirationDate && key.expirationDate.getTime() <= now.getTime()) {
      throw new ConnectError('Errors.Target.PublicKeyExpired', Code.FailedPrecondition);
    }
    if (key.active) return key.changeDate;
    for (const other of target.publicKeys) {
      if (other.active) Object.assign(other, { active: false, changeDate: now });
    }
    Object.assign(key, { active: true, changeDate: now });
    return now;
  }

  /** `DeactivatePublicKey`: the key no longer encrypts (a JWE target without an active key fails its calls). */
  deactivatePublicKey(targetId: string, keyId: string): Date {
    const key = this.#publicKey(this.#target(targetId), keyId);
    if (!key.active) return key.changeDate;
    Object.assign(key, { active: false, changeDate: this.#state.now() });
    return key.changeDate;
  }

  /** `RemovePublicKey`: idempotent (unknown target or key: nothing to do); the active key cannot be removed. */
  removePublicKey(targetId: string, keyId: string): Date | undefined {
    const target = this.targets.get(targetId);
    const index = target?.publicKeys.findIndex((key) => key.keyId === keyId) ?? -1;
    if (!target || index < 0) return undefined;
    if (target.publicKeys[index]!.active) {
      throw new ConnectError('Errors.Target.PublicKeyActive (ErrPublicKeyDeleteActiveKey)', Code.FailedPrecondition);
    }
    target.publicKeys.splice(index, 1);
    return this.#state.now();
  }

  /** Deletes a target and removes it from every execution; false when there was none. */
  deleteTarget(id: string): boolean {
    if (!this.targets.delete(id)) return false;
    for (const [key, execution] of this.executions) {
      execution.targets = execution.targets.filter((target) => target !== id);
      if (execution.targets.length === 0) this.executions.delete(key);
    }
    return true;
  }

  /** Binds targets to a condition; replaces the list (like ZITADEL); an empty list removes the execution. */
  setExecution(condition: Condition, targets: string[]): SimExecution | undefined {
    for (const id of targets) {
      if (!this.targets.has(id)) throw new ConnectError(`target ${id} not found (Errors.Target.NotFound)`, Code.NotFound);
    }
    const key = conditionKey(condition);
    const now = this.#state.now();
    if (targets.length === 0) {
      this.executions.delete(key);
      return undefined;
    }
    const execution: SimExecution = {
      condition,
      targets: [...targets],
      creationDate: this.executions.get(key)?.creationDate ?? now,
      changeDate: now,
    };
    this.executions.set(key, execution);
    return execution;
  }

  /** The targets bound to the response of `fullMethod` (method, service and `all` conditions), in order. */
  targetsForResponse(fullMethod: string): SimTarget[] {
    const service = fullMethod.split('/')[1] ?? '';
    const keys = [{ response: { all: true } }, { response: { service } }, { response: { method: fullMethod } }].map(conditionKey);
    const ids = new Set(keys.flatMap((key) => this.executions.get(key)?.targets ?? []));
    return [...ids].flatMap((id) => this.targets.get(id) ?? []);
  }

  async afterResponse<Req extends DescMessage, Res extends DescMessage>(call: ResponseCall<Req, Res>): Promise<MessageShape<Res>> {
    let response = call.response.message;
    for (const target of this.targetsForResponse(call.fullMethod)) {
      const body = goJsonStringify({
        fullMethod: call.fullMethod,
        instanceID: this.#state.instanceId,
        orgID: call.orgId || undefined,
        userID: this.#state.tokenOwners.get(call.token),
        request: toJson(call.request.schema, call.request.message),
        response: toJson(call.response.schema, response),
        headers: call.headers && Object.keys(call.headers).length > 0 ? call.headers : undefined,
      });
      if (target.type === 'restAsync') {
        // Fire and forget, after the API call returned; status and body are ignored.
        const pending = new Promise<void>((resolve) => setImmediate(resolve))
          .then(() => this.#deliver(target, call.fullMethod, body, true))
          .then(() => undefined);
        this.#pending.add(pending);
        void pending.finally(() => this.#pending.delete(pending));
        continue;
      }
      const { delivery, text } = await this.#deliver(target, call.fullMethod, body, false);
      if (delivery.failure) {
        // ZITADEL logs every failure; only an interrupting target fails the API call (the session is written).
        if (target.interruptOnError) throw delivery.failure;
        continue;
      }
      if (target.type === 'restCall' && text.trim() !== '') {
        // restCall: a non-empty 2xx body replaces the API response.
        try {
          response = fromJson(call.response.schema, JSON.parse(text) as JsonValue);
        } catch {
          if (target.interruptOnError) throw new ConnectError('Errors.Execution.Failed: invalid response body', Code.Internal);
        }
      }
    }
    return response;
  }

  /**
   * The body ZITADEL POSTs for `payload` (`payload()` in execution.go): the JSON itself, a compact JWS of its exact
   * bytes signed by the active web key, or a compact JWE of that JWS to the target's active public key.
   */
  async #body(target: SimTarget, payload: string): Promise<string> {
    if (!this.payloadTypes) return payload;
    if (target.payloadType !== 'PAYLOAD_TYPE_JWT' && target.payloadType !== 'PAYLOAD_TYPE_JWE') return payload;
    const jws = await this.webKeys.sign(payload);
    if (target.payloadType === 'PAYLOAD_TYPE_JWT') return jws;
    const key = this.activePublicKey(target);
    if (!key) throw new ConnectError('Errors.Execution.MissingEncryptionKey (EXEC-2n8fhs7g)', Code.Internal);
    const alg = key.key.asymmetricKeyType === 'rsa' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW';
    return new CompactEncrypt(Buffer.from(jws, 'utf8'))
      .setProtectedHeader({ alg, cty: 'JWT', enc: 'A256GCM', kid: key.keyId, typ: 'JWT' })
      .encrypt(key.key);
  }

  async #deliver(target: SimTarget, fullMethod: string, payload: string, async: boolean): Promise<{ delivery: Delivery; text: string }> {
    const payloadType = target.payloadType;
    let body: string;
    try {
      body = await this.#body(target, payload);
    } catch (error) {
      // The body cannot be built: ZITADEL fails the call before any request (logged; with interruptOnError the API call fails).
      const failure = ConnectError.from(error);
      const delivery: Delivery = { targetId: target.id, endpoint: target.endpoint, fullMethod, async, payloadType, payload, body: '', signature: '', failure, latencyMs: 0 };
      this.deliveries.push(delivery);
      this.#onDelivery?.(delivery);
      return { delivery, text: '' };
    }
    const signature = signPayload(body, target.signingKey);
    const delivery: Delivery = { targetId: target.id, endpoint: target.endpoint, fullMethod, async, payloadType, payload, body, signature };
    this.deliveries.push(delivery);
    let text = '';
    const started = performance.now();
    try {
      const response = await fetch(target.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'zitadel-signature': signature },
        body,
        signal: AbortSignal.timeout(parseProtoDuration(target.timeout) ?? 10_000),
      });
      delivery.status = response.status;
      text = await response.text();
      if (response.status < 200 || response.status > 299) {
        delivery.failure = new ConnectError('Errors.Execution.Failed (EXEC-dra6yamk98)', Code.FailedPrecondition);
      } else {
        const forwarded = parseForwarded(text);
        if (forwarded) delivery.failure = new ConnectError(forwarded.message, grpcCodeForForwardedStatus(forwarded.status));
      }
    } catch (error) {
      // A timeout or connection error is a plain Go error in ZITADEL: the caller sees Unknown.
      delivery.failure = new ConnectError(fetchFailureReason(error, target.endpoint), Code.Unknown);
    }
    delivery.latencyMs = Math.round(performance.now() - started);
    this.#onDelivery?.(delivery);
    return { delivery, text };
  }

  /** Resolves once every async delivery started so far has finished (tests use it instead of sleeping). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }
}

/**
 * A 2xx body `{"forwardedStatusCode": N, "forwardedErrorMessage": "..."}` (either field set) turns into an error;
 * a body that is not JSON, or sets neither, is a success.
 */
export function parseForwarded(text: string): { status: number; message: string } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { forwardedStatusCode: status, forwardedErrorMessage: message } = parsed as Record<string, unknown>;
  const code = typeof status === 'number' && Number.isInteger(status) ? status : 0;
  const text_ = typeof message === 'string' ? message : '';
  if (code === 0 && text_ === '') return undefined;
  return { status: code, message: text_ };
}
