import { z } from 'zod';
import { describeFetchFailure } from '../net-failure.js';

/**
 * A thin client for ZITADEL's v2 Action API as JSON over HTTPS (the npm proto ships only v2beta). Used by the
 * admin commands (register, unregister, rotate-key, doctor) with an IAM_OWNER token; never by the webhook.
 */

export type TargetKind = 'restWebhook' | 'restCall' | 'restAsync';

/** A target's payload type as ZITADEL_PAYLOAD_TYPE spells it (ZITADEL v4.8 and later). */
export type PayloadKind = 'json' | 'jwt' | 'jwe';
const PAYLOAD_ENUM: Record<PayloadKind, string> = { json: 'PAYLOAD_TYPE_JSON', jwt: 'PAYLOAD_TYPE_JWT', jwe: 'PAYLOAD_TYPE_JWE' };

/** A JWE target's public key as ListPublicKeys answers it. */
export interface TargetPublicKey {
  /** The id ZITADEL gave it: the JWE's `kid`. */
  keyId: string;
  active: boolean;
  publicKeyPem: string;
  /** `SHA256:<unpadded base64 of SHA-256 over the DER>`. */
  fingerprint: string;
  expirationDate?: string | undefined;
}

export interface Target {
  id: string;
  name: string;
  endpoint: string;
  timeout: string;
  kind: TargetKind;
  interruptOnError: boolean;
  signingKey?: string | undefined;
  /**
   * The payload type; undefined when the answer has none: a ZITADEL older than v4.8, or a target whose type is
   * unspecified (which ZITADEL treats as JSON and also omits, protobuf JSON omitting a zero enum).
   */
  payloadType?: PayloadKind | undefined;
}

export interface TargetSpec {
  name: string;
  endpoint: string;
  timeout: string;
  kind: 'restWebhook' | 'restAsync';
  interruptOnError: boolean;
  /** Sent as `payloadType` when set (a ZITADEL older than v4.8 ignores it: read the target back to know). */
  payloadType?: PayloadKind | undefined;
}

export class ActionApiError extends Error {
  /** The HTTP status ZITADEL answered; undefined when nothing answered. */
  readonly status: number | undefined;
  constructor(what: string, status: number | undefined, message: string) {
    const hint =
      status === 401
        ? ' Check ZITADEL_ADMIN_TOKEN.'
        : status === 403
          ? ' The admin token needs IAM_OWNER (action.target.write, action.execution.write).'
          : '';
    super(`${what} failed: ${status === undefined ? '' : `${status} `}${message}.${hint}`);
    this.name = 'ActionApiError';
    this.status = status;
  }
}

type Json = Record<string, unknown>;

// What ZITADEL answers, as far as we read it (protobuf JSON: unset fields are omitted; unknown fields are ignored).
const interrupt = z.object({ interruptOnError: z.boolean().optional() }).optional();
const targetJson = z.object({
  id: z.string(),
  name: z.string(),
  endpoint: z.string().default(''),
  timeout: z.string().default(''),
  signingKey: z.string().optional(),
  restWebhook: interrupt,
  restCall: interrupt,
  restAsync: z.object({}).optional(),
  payloadType: z.string().optional(),
});
const targetResponseJson = z.object({ target: targetJson });
const publicKeyJson = z.object({
  keyId: z.string(),
  active: z.boolean().default(false),
  publicKey: z.string(),
  fingerprint: z.string().default(''),
  expirationDate: z.string().optional(),
});
const publicKeysJson = z.object({ publicKeys: z.array(publicKeyJson).default([]) });
const addedKeyJson = z.object({ keyId: z.string() });
const targetsJson = z.object({ targets: z.array(targetJson).default([]) });
const createdJson = z.object({ id: z.string(), signingKey: z.string() });
const executionsJson = z.object({
  executions: z
    .array(z.object({ condition: z.object({ response: z.object({ method: z.string().optional() }).optional() }).optional(), targets: z.array(z.string()).default([]) }))
    .default([]),
});
const errorJson = z.object({ message: z.string().optional() });

/** Reads an answer with `schema`; an answer of another shape is an error that says which call it was. */
function read<T>(what: string, schema: z.ZodType<T>, json: unknown): T {
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new ActionApiError(what, 200, 'the answer is not what ZITADEL\'s Action API returns; check ZITADEL_URL');
  return parsed.data;
}

function targetFromJson(json: z.infer<typeof targetJson>): Target {
  const kind = (['restWebhook', 'restCall', 'restAsync'] as const).find((name) => json[name] !== undefined) ?? 'restWebhook';
  return {
    id: json.id,
    name: json.name,
    endpoint: json.endpoint,
    timeout: json.timeout,
    kind,
    interruptOnError: kind !== 'restAsync' && json[kind]?.interruptOnError === true,
    signingKey: json.signingKey,
    payloadType: (Object.keys(PAYLOAD_ENUM) as PayloadKind[]).find((kind_) => PAYLOAD_ENUM[kind_] === json.payloadType),
  };
}

export function targetBody(spec: Partial<TargetSpec>): Json {
  const body: Json = {};
  if (spec.name !== undefined) body.name = spec.name;
  if (spec.endpoint !== undefined) body.endpoint = spec.endpoint;
  if (spec.timeout !== undefined) body.timeout = spec.timeout;
  if (spec.kind === 'restAsync') body.restAsync = {};
  if (spec.kind === 'restWebhook') body.restWebhook = { interruptOnError: spec.interruptOnError ?? false };
  if (spec.payloadType !== undefined) body.payloadType = PAYLOAD_ENUM[spec.payloadType];
  return body;
}

export class ActionApi {
  readonly #baseUrl: string;
  readonly #token: string;
  readonly #timeoutMs: number;

  constructor(options: { baseUrl: string | URL; token: string; timeoutMs?: number }) {
    this.#baseUrl = String(options.baseUrl).replace(/\/+$/, '');
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
  }

  async #call(what: string, method: string, path: string, body?: Json): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(`${this.#baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.#token}`, 'content-type': 'application/json', accept: 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      throw new ActionApiError(what, undefined, `${describeFetchFailure(`${this.#baseUrl}${path}`, error)}; check ZITADEL_URL`);
    }
    const json: unknown = await response.json().catch(() => ({}));
    if (!response.ok) throw new ActionApiError(what, response.status, errorJson.safeParse(json).data?.message ?? response.statusText);
    return json;
  }

  async findTarget(name: string): Promise<Target | undefined> {
    const json = await this.#call('ListTargets', 'POST', '/v2/actions/targets/search', {
      filters: [{ targetNameFilter: { targetName: name, method: 'TEXT_FILTER_METHOD_EQUALS' } }],
    });
    const found = read('ListTargets', targetsJson, json).targets.find((target) => target.name === name);
    return found && targetFromJson(found);
  }

  /** The target with this id, or undefined when there is none. */
  async getTarget(id: string): Promise<Target | undefined> {
    try {
      const json = await this.#call('GetTarget', 'GET', `/v2/actions/targets/${encodeURIComponent(id)}`);
      return targetFromJson(read('GetTarget', targetResponseJson, json).target);
    } catch (error) {
      if (error instanceof ActionApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  async createTarget(spec: TargetSpec): Promise<{ id: string; signingKey: string }> {
    const json = await this.#call('CreateTarget', 'POST', '/v2/actions/targets', targetBody(spec));
    return read('CreateTarget', createdJson, json);
  }

  /** Updates fields (the signing key stays: `rotate-key` goes through a second target, see admin/registration.ts). */
  async updateTarget(id: string, patch: Partial<TargetSpec>): Promise<void> {
    await this.#call('UpdateTarget', 'POST', `/v2/actions/targets/${encodeURIComponent(id)}`, targetBody(patch));
  }

  async deleteTarget(id: string): Promise<void> {
    await this.#call('DeleteTarget', 'DELETE', `/v2/actions/targets/${encodeURIComponent(id)}`);
  }

  #keys(targetId: string, keyId?: string, action?: 'activate' | 'deactivate'): string {
    const base = `/v2/actions/targets/${encodeURIComponent(targetId)}/publickeys`;
    return keyId === undefined ? base : `${base}/${encodeURIComponent(keyId)}${action ? `/${action}` : ''}`;
  }

  /**
   * Adds a public key (PEM `PUBLIC KEY`, RSA or EC) to a JWE target, inactive; its id is the JWE's `kid`. A ZITADEL
   * older than v4.8 answers 404.
   */
  async addPublicKey(targetId: string, publicKeyPem: string, expirationDate?: Date): Promise<{ keyId: string }> {
    const body: Json = { publicKey: Buffer.from(publicKeyPem, 'utf8').toString('base64') };
    if (expirationDate) body.expirationDate = expirationDate.toISOString();
    const json = await this.#call('AddPublicKey', 'POST', this.#keys(targetId), body);
    return read('AddPublicKey', addedKeyJson, json);
  }

  /** Makes the key the one payloads are encrypted to (ZITADEL deactivates the previously active one). */
  async activatePublicKey(targetId: string, keyId: string): Promise<void> {
    await this.#call('ActivatePublicKey', 'POST', this.#keys(targetId, keyId, 'activate'));
  }

  /** The key no longer encrypts; a JWE target without an active key fails its calls. */
  async deactivatePublicKey(targetId: string, keyId: string): Promise<void> {
    await this.#call('DeactivatePublicKey', 'POST', this.#keys(targetId, keyId, 'deactivate'));
  }

  /** Removes an inactive key (ZITADEL refuses to remove the active one; an unknown key is no error). */
  async removePublicKey(targetId: string, keyId: string): Promise<void> {
    await this.#call('RemovePublicKey', 'DELETE', this.#keys(targetId, keyId));
  }

  async listPublicKeys(targetId: string): Promise<TargetPublicKey[]> {
    const json = await this.#call('ListPublicKeys', 'POST', `${this.#keys(targetId)}/search`, {});
    return read('ListPublicKeys', publicKeysJson, json).publicKeys.map((key) => ({
      keyId: key.keyId,
      active: key.active,
      publicKeyPem: Buffer.from(key.publicKey, 'base64').toString('utf8'),
      fingerprint: key.fingerprint,
      expirationDate: key.expirationDate,
    }));
  }

  /** The target ids bound to the response execution of `method`, in order. */
  async responseTargets(method: string): Promise<string[]> {
    const json = await this.#call('ListExecutions', 'POST', '/v2/actions/executions/search', {
      filters: [{ inConditionsFilter: { conditions: [{ response: { method } }] } }],
    });
    const execution = read('ListExecutions', executionsJson, json).executions.find((e) => e.condition?.response?.method === method);
    return execution?.targets ?? [];
  }

  /** Replaces the target list of the response execution of `method` (an empty list unbinds every target). */
  async setResponseTargets(method: string, targets: string[]): Promise<void> {
    await this.#call('SetExecution', 'PUT', '/v2/actions/executions', { condition: { response: { method } }, targets });
  }
}
