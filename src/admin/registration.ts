import { CREATE_SESSION, SET_SESSION } from '../payload.js';
import type { ActionApi, Target, TargetSpec } from '../zitadel/action-api.js';
import { checkEndpoint } from './endpoint-check.js';

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
  executions: ExecutionChange[];
}

function sameSettings(target: Target, spec: TargetSpec): boolean {
  return (
    target.endpoint === spec.endpoint &&
    target.kind === spec.kind &&
    target.interruptOnError === (spec.kind === 'restAsync' ? false : spec.interruptOnError) &&
    target.timeout === spec.timeout
  );
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
 */
export async function register(api: ActionApi, spec: TargetSpec): Promise<RegisterResult> {
  const existing = await api.findTarget(spec.name);
  let targetId: string;
  let signingKey: string | undefined;
  let updated = false;
  if (existing) {
    targetId = existing.id;
    if (!sameSettings(existing, spec)) {
      await api.updateTarget(existing.id, spec);
      updated = true;
    }
  } else {
    ({ id: targetId, signingKey } = await api.createTarget(spec));
  }
  const executions: ExecutionChange[] = [];
  for (const method of METHODS) executions.push(await bind(api, method, targetId));
  return { targetId, name: spec.name, created: !existing, updated, signingKey, executions };
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
    const created = await api.createTarget({
      name: nextName,
      endpoint: current.endpoint,
      timeout: current.timeout,
      kind: current.kind === 'restAsync' ? 'restAsync' : 'restWebhook',
      interruptOnError: current.interruptOnError,
    });
    return { phase: 'started', currentId: current.id, nextId: created.id, nextName, signingKey: created.signingKey };
  }
  if (!next) throw new Error(`no target named "${nextName}": start the rotation with "rotate-key --name ${name}" first`);
  await proveServiceHoldsKey(options.endpoint ?? next.endpoint, next.signingKey);
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
async function proveServiceHoldsKey(endpoint: string, key: string | undefined): Promise<void> {
  const refuse = (why: string) =>
    new Error(
      `refusing to finish the rotation: ${why}. Nothing was changed: ZITADEL still signs with the current key. Add the ` +
        'new key to ZITADEL_SIGNING_KEYS (next to the current one), deploy, and run --finish again ' +
        '(--endpoint URL checks the service at another address).',
    );
  if (key === undefined) throw refuse('ZITADEL did not show the new target\'s signing key, so the service cannot be checked');
  const check = await checkEndpoint(endpoint, key);
  if (check.status !== 'PASS') throw refuse(`the service did not accept a request signed with the new key (${check.detail})`);
}
