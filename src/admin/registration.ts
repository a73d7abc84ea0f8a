import { CREATE_SESSION, SET_SESSION } from '../payload.js';
import { ActionApiError, type ActionApi, type PayloadKind, type Target, type TargetPublicKey, type TargetSpec } from '../zitadel/action-api.js';
import { checkEndpoint } from './endpoint-check.js';
import { checkPayloadKey, generatePayloadKey, publicKeyFingerprint, publicKeyType, type KeyType } from './payload-keys.js';

/** The two response executions the service must be bound to. */
export const METHODS = [CREATE_SESSION, SET_SESSION] as const;

/** A full method name's last part, e.g. `CreateSession`, for what people read. */
export const shortMethod = (method: string) => method.split('/').at(-1);

export const NEXT_SUFFIX = '-next';

export interface ExecutionChange {
  method: string;
  /** The target list after the change (others' targets kept, in their order). */
  targets: string[];
  changed: boolean;
}

export interface RegisterResult {
  targetId: string;
  name: string;
  created: boolean;
  updated: boolean;
  /** Only when the target was created: ZITADEL shows the key once. */
  signingKey?: string;
  /** The target's payload type after the run (json also for a ZITADEL older than v4.8, which has no other). */
  payloadType: PayloadKind;
  /** jwe: the target's active public key; `created` when this run generated it (then `privateKeyPem` is set). */
  payloadKey?: { keyId: string; fingerprint: string; created: boolean };
  /** jwe, only when this run generated the key pair: the private key (PKCS#8 PEM), to hand over once. */
  privateKeyPem?: string;
  executions: ExecutionChange[];
}

/** A ZITADEL older than v4.8: it has no payload types (its gateway silently drops `payloadType`). */
export class PayloadTypesUnsupportedError extends Error {
  constructor(what: string) {
    super(
      `this ZITADEL does not know payload types (it is older than v4.8): ${what}. Upgrade ZITADEL to v4.8 or later for ` +
        '--payload-type jwt|jwe, or keep the JSON payload (--payload-type json, ZITADEL_PAYLOAD_TYPE=json)',
    );
    this.name = 'PayloadTypesUnsupportedError';
  }
}

const typeOf = (target: Target): PayloadKind => target.payloadType ?? 'json';

function sameSettings(target: Target, spec: TargetSpec): boolean {
  return (
    target.endpoint === spec.endpoint &&
    target.kind === spec.kind &&
    target.interruptOnError === (spec.kind === 'restAsync' ? false : spec.interruptOnError) &&
    target.timeout === spec.timeout &&
    (spec.payloadType === undefined || typeOf(target) === spec.payloadType)
  );
}

/** The target's public keys; a 404 of the key routes means a ZITADEL older than v4.8. */
async function publicKeys(api: ActionApi, targetId: string): Promise<TargetPublicKey[]> {
  try {
    return await api.listPublicKeys(targetId);
  } catch (error) {
    if (error instanceof ActionApiError && error.status === 404) throw new PayloadTypesUnsupportedError('it has no public-key API (404)');
    throw error;
  }
}

/**
 * A JWE target needs an active public key before ZITADEL calls it (else every call fails with MissingEncryptionKey):
 * keeps the active one, or generates a key pair, adds the public half and activates it.
 */
async function ensureActiveKey(
  api: ActionApi,
  targetId: string,
  keyType: KeyType,
  beforeNewKey: () => void | Promise<void>,
): Promise<{ keyId: string; fingerprint: string; created: boolean; privateKeyPem?: string }> {
  const active = (await publicKeys(api, targetId)).find((key) => key.active);
  if (active) return { keyId: active.keyId, fingerprint: publicKeyFingerprint(active.publicKeyPem) ?? active.fingerprint, created: false };
  await beforeNewKey();
  const generated = generatePayloadKey(keyType);
  const { keyId } = await api.addPublicKey(targetId, generated.publicKeyPem);
  await api.activatePublicKey(targetId, keyId);
  return { keyId, fingerprint: generated.fingerprint, created: true, privateKeyPem: generated.privateKeyPem };
}

/** Adds `targetId` to a method's response execution, keeping every target already bound there. */
async function bind(api: ActionApi, method: string, targetId: string, replacing?: string): Promise<ExecutionChange> {
  const current = await api.responseTargets(method);
  if (current.includes(targetId) && !(replacing && current.includes(replacing))) return { method, targets: current, changed: false };
  let targets = replacing ? current.map((id) => (id === replacing ? targetId : id)) : [...current];
  if (!targets.includes(targetId)) targets.push(targetId);
  targets = [...new Set(targets)];
  await api.setResponseTargets(method, targets);
  return { method, targets, changed: true };
}

/**
 * Creates the target or brings the one with that name to `spec`, and binds it to the response executions of
 * CreateSession and SetSession next to whatever else is bound there. Running it twice changes nothing.
 *
 * `spec.payloadType` undefined keeps an existing target's type (json for a new one). jwt/jwe: the type is read back
 * after the write, because a ZITADEL older than v4.8 drops the field silently; then a target this run created is
 * deleted again, nothing is bound, and `PayloadTypesUnsupportedError` says so. jwe: the target gets an active public
 * key BEFORE it becomes (or is bound as) a JWE target; a key already active is kept (rotate with rotate-key
 * --payload-key).
 *
 * `beforeNewKey`: called once, before anything is changed for it, when this run is about to generate a key pair (a
 * new jwe target, or an existing one without an active key), never when the active key is kept; the CLI opens the
 * private key's file there. If it throws, register stops: a new target is not created yet, an existing one is
 * unchanged.
 */
export async function register(
  api: ActionApi,
  spec: TargetSpec,
  options: { keyType?: KeyType; beforeNewKey?: () => void | Promise<void> } = {},
): Promise<RegisterResult> {
  const keyType = options.keyType ?? 'ec';
  const beforeNewKey = options.beforeNewKey ?? (() => undefined);
  const wanted = spec.payloadType;
  const existing = await api.findTarget(spec.name);
  let targetId: string;
  let signingKey: string | undefined;
  let updated = false;
  let key: Awaited<ReturnType<typeof ensureActiveKey>> | undefined;
  if (existing) {
    targetId = existing.id;
    // An existing target switches to jwe only once it has an active key: ZITADEL encrypts its next call.
    if (wanted === 'jwe') key = await ensureActiveKey(api, targetId, keyType, beforeNewKey);
    if (!sameSettings(existing, spec)) {
      await api.updateTarget(existing.id, spec);
      updated = true;
    }
  } else {
    // A new jwe target always gets a new key: ask first, before the target exists.
    if (wanted === 'jwe') await beforeNewKey();
    ({ id: targetId, signingKey } = await api.createTarget(spec));
  }
  if (wanted !== undefined && wanted !== 'json' && (!existing || updated)) {
    const readBack = await api.getTarget(targetId);
    if (readBack?.payloadType !== wanted) {
      if (!existing) await api.deleteTarget(targetId);
      throw new PayloadTypesUnsupportedError(
        `asked for a ${wanted} target, it ${existing ? 'kept the target JSON' : 'created a JSON target (deleted again)'}; nothing was bound`,
      );
    }
  }
  if (wanted === 'jwe' && !existing) key = await ensureActiveKey(api, targetId, keyType, () => undefined);
  const executions: ExecutionChange[] = [];
  for (const method of METHODS) executions.push(await bind(api, method, targetId));
  const payloadType = wanted ?? (existing ? typeOf(existing) : 'json');
  const result: RegisterResult = { targetId, name: spec.name, created: !existing, updated, signingKey, payloadType, executions };
  if (key) {
    result.payloadKey = { keyId: key.keyId, fingerprint: key.fingerprint, created: key.created };
    if (key.privateKeyPem) result.privateKeyPem = key.privateKeyPem;
  }
  return result;
}

export interface UnregisterResult {
  targetId?: string;
  executions: ExecutionChange[];
  deleted: boolean;
}

/** Removes the target from both executions (keeping the others) and deletes it. Nothing to do: no error. */
export async function unregister(api: ActionApi, name: string): Promise<UnregisterResult> {
  const target = await api.findTarget(name);
  if (!target) return { executions: [], deleted: false };
  const executions: ExecutionChange[] = [];
  for (const method of METHODS) {
    const current = await api.responseTargets(method);
    if (!current.includes(target.id)) {
      executions.push({ method, targets: current, changed: false });
      continue;
    }
    const targets = current.filter((id) => id !== target.id);
    await api.setResponseTargets(method, targets);
    executions.push({ method, targets, changed: true });
  }
  await api.deleteTarget(target.id);
  return { targetId: target.id, executions, deleted: true };
}

export type RotationResult =
  | { phase: 'started'; currentId: string; nextId: string; nextName: string; signingKey: string }
  | { phase: 'already-started'; currentId: string; nextId: string; nextName: string }
  | { phase: 'finished'; oldId: string; newId: string; executions: ExecutionChange[] };

/**
 * A key rotation without lost webhooks. ZITADEL replaces a target's key at once, so instead: (1) create a second
 * target "<name>-next" with a fresh key, not yet bound; the operator adds its key to ZITADEL_SIGNING_KEYS and
 * deploys; (2) `finish` swaps the executions over to it (every receiver already accepts both keys), deletes the
 * old target and gives the new one the old name; the operator then drops the old key.
 */
export async function rotateKey(api: ActionApi, name: string, finish: boolean, options: { endpoint?: string } = {}): Promise<RotationResult> {
  const nextName = `${name}${NEXT_SUFFIX}`;
  const current = await api.findTarget(name);
  const next = await api.findTarget(nextName);
  if (!finish) {
    if (!current) throw new Error(`no target named "${name}": run register first`);
    if (next) return { phase: 'already-started', currentId: current.id, nextId: next.id, nextName };
    const payloadType = typeOf(current);
    // The next target sends what the current one sends: the same payload type and, for jwe, the same active key
    // (the service holds its private key); else every webhook would fail after the switch.
    const active = payloadType === 'jwe' ? (await publicKeys(api, current.id)).find((key) => key.active) : undefined;
    if (payloadType === 'jwe' && !active) {
      throw new Error(`target "${name}" is a jwe target without an active public key: run register --payload-type jwe first`);
    }
    const created = await api.createTarget({
      name: nextName,
      endpoint: current.endpoint,
      timeout: current.timeout,
      kind: current.kind === 'restAsync' ? 'restAsync' : 'restWebhook',
      interruptOnError: current.interruptOnError,
      ...(payloadType === 'json' ? {} : { payloadType }),
    });
    if (active) {
      const { keyId } = await api.addPublicKey(created.id, active.publicKeyPem);
      await api.activatePublicKey(created.id, keyId);
    }
    return { phase: 'started', currentId: current.id, nextId: created.id, nextName, signingKey: created.signingKey };
  }
  if (!next) throw new Error(`no target named "${nextName}": start the rotation with "rotate-key --name ${name}" first`);
  await proveServiceHoldsKey(options.endpoint ?? next.endpoint, next.signingKey, typeOf(next));
  const executions: ExecutionChange[] = [];
  for (const method of METHODS) executions.push(await bind(api, method, next.id, current?.id));
  if (current) await api.deleteTarget(current.id);
  await api.updateTarget(next.id, { name });
  return { phase: 'finished', oldId: current?.id ?? '', newId: next.id, executions };
}

/**
 * Before ZITADEL signs with the new key, the service must accept it: a request signed with it, as `doctor` sends
 * one, must be answered 204. Otherwise every webhook would be refused after the switch, so nothing is changed.
 */
async function proveServiceHoldsKey(endpoint: string, key: string | undefined, payloadType: PayloadKind): Promise<void> {
  const refuse = (why: string) =>
    new Error(
      `refusing to finish the rotation: ${why}. Nothing was changed: ZITADEL still signs with the current key. Add the ` +
        'new key to ZITADEL_SIGNING_KEYS (next to the current one), deploy, and run --finish again ' +
        '(--endpoint URL checks the service at another address).',
    );
  if (key === undefined) throw refuse('ZITADEL did not show the new target\'s signing key, so the service cannot be checked');
  const check = await checkEndpoint(endpoint, key, payloadType);
  if (check.status !== 'PASS') throw refuse(`the service did not accept a request signed with the new key (${check.detail})`);
}

export type PayloadRotationResult =
  | { phase: 'started'; targetId: string; keyId: string; fingerprint: string; privateKeyPem: string }
  | { phase: 'already-started'; targetId: string; keyId: string; fingerprint: string }
  | { phase: 'finished'; targetId: string; keyId: string; fingerprint: string; removed: string[]; proof: string };

/**
 * Rotates a JWE target's public key without a lost webhook: (1) adds a new key pair's public half, inactive (ZITADEL
 * still encrypts to the current key); the operator sets both private keys in ZITADEL_PAYLOAD_KEYS and deploys;
 * (2) `finish` first proves that the service opens a payload encrypted to the new key (src/admin/payload-keys.ts),
 * and only then activates it and removes the old one. Refused, nothing changed, otherwise. `beforeNewKey`: as for
 * `register`, called only when step 1 is about to generate the key pair.
 */
export async function rotatePayloadKey(
  api: ActionApi,
  name: string,
  finish: boolean,
  options: { endpoint?: string; keyType?: KeyType; beforeNewKey?: () => void | Promise<void> } = {},
): Promise<PayloadRotationResult> {
  const target = await api.findTarget(name);
  if (!target) throw new Error(`no target named "${name}": run register --payload-type jwe first`);
  const keys = await publicKeys(api, target.id);
  if (typeOf(target) !== 'jwe') {
    throw new Error(
      `target "${name}" sends ${typeOf(target).toUpperCase()} payloads: --payload-key rotates the key of a jwe target ` +
        '(register --payload-type jwe); rotate-key without --payload-key rotates the signing key',
    );
  }
  const current = keys.find((key) => key.active);
  // The newest inactive key is the one a started rotation added.
  const pending = keys.filter((key) => !key.active).at(-1);
  const fingerprintOf = (key: TargetPublicKey) => publicKeyFingerprint(key.publicKeyPem) ?? key.fingerprint;
  if (!finish) {
    if (pending) return { phase: 'already-started', targetId: target.id, keyId: pending.keyId, fingerprint: fingerprintOf(pending) };
    await options.beforeNewKey?.();
    const generated = generatePayloadKey(options.keyType ?? (current ? publicKeyType(current.publicKeyPem) : undefined) ?? 'ec');
    const { keyId } = await api.addPublicKey(target.id, generated.publicKeyPem);
    return { phase: 'started', targetId: target.id, keyId, fingerprint: generated.fingerprint, privateKeyPem: generated.privateKeyPem };
  }
  if (!pending) throw new Error(`no new public key waits on target "${name}": start the rotation with "rotate-key --payload-key --name ${name}" first`);
  const refuse = (why: string) =>
    new Error(
      `refusing to finish the payload key rotation: ${why}. Nothing was changed: ZITADEL still encrypts to the current key. ` +
        'Set ZITADEL_PAYLOAD_KEYS to both private keys (the current one and the new one), deploy, and run --finish again ' +
        '(--endpoint URL checks the service at another address).',
    );
  if (!target.signingKey) throw refuse("ZITADEL did not show the target's signing key, so the service cannot be checked");
  const proof = await checkPayloadKey(options.endpoint ?? target.endpoint, target.signingKey, pending.publicKeyPem, pending.keyId);
  if (proof.status !== 'PASS') throw refuse(proof.detail);
  await api.activatePublicKey(target.id, pending.keyId);
  const removed: string[] = [];
  for (const key of keys) {
    if (key.keyId === pending.keyId) continue;
    await api.removePublicKey(target.id, key.keyId);
    removed.push(key.keyId);
  }
  return { phase: 'finished', targetId: target.id, keyId: pending.keyId, fingerprint: fingerprintOf(pending), removed, proof: proof.detail };
}
