import { Code, ConnectError } from '@connectrpc/connect';
import type { Permission, RecordedCall, SimMethod, SimulatorState } from './state.js';

/**
 * How the simulator answers a call, whatever the transport (gRPC services, the Action API over HTTP): the bearer
 * token and its permission, checked as ZITADEL does, then latency, injected faults and the record of the call.
 */

/**
 * The bearer token of an `Authorization` header, once it is known, unexpired and holds `permission`; otherwise
 * the error ZITADEL answers with (Unauthenticated, PermissionDenied).
 */
export function authorize(state: SimulatorState, authorization: string | null | undefined, permission: Permission): string {
  const token = /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
  const granted = state.permissionsOf(token);
  if (!granted) throw new ConnectError('Errors.Token.Invalid (AUTH-7fs1e)', Code.Unauthenticated);
  if (!granted.has(permission)) throw new ConnectError('No matching permissions found (AUTH-5mWD2)', Code.PermissionDenied);
  return token!;
}

/**
 * Runs one simulated call: latency, the bearer token and permission, injected faults, then the handler; every
 * call is recorded with its result so tests can assert which calls happened.
 */
export async function simulateCall<T>(
  state: SimulatorState,
  authorization: string | null,
  call: { method: SimMethod; permission: Permission; sessionId?: string; userId?: string; limit?: number; offset?: number },
  handler: (token: string) => T | Promise<T>,
): Promise<T> {
  const { method, permission, ...details } = call;
  await state.simulateLatency(method);
  const record = (code: Code | 'ok') => {
    const entry: RecordedCall = { method, ...details, code };
    state.calls.push(entry);
    return entry;
  };
  try {
    const token = authorize(state, authorization, permission);
    const fault = state.takeFault(method);
    if (fault) throw new ConnectError(fault.message ?? `simulated ${Code[fault.code]}`, fault.code);
    const result = await handler(token);
    const entry = record('ok');
    for (const hook of state.afterCall) await hook(entry);
    return result;
  } catch (error) {
    record(ConnectError.from(error).code);
    throw error;
  }
}
