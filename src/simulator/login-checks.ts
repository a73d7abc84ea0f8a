import { Code, ConnectError } from '@connectrpc/connect';
import type { Checks } from '@zitadel/proto/zitadel/session/v2/session_service_pb.js';
import type { CredentialFactor } from '../enforcement/decision.js';
import type { SimUser, SimulatorState } from './state.js';

/**
 * Verifies the checks of a CreateSession / SetSession the way ZITADEL does for what the simulator knows: each
 * credential against the user's simulated secret. Returns the factors that became verified; throws like ZITADEL
 * when a check fails (nothing is written then).
 */
export function verifyChecks(
  state: SimulatorState,
  user: SimUser | undefined,
  sessionId: string | undefined,
  checks: Checks | undefined,
): CredentialFactor[] {
  if (!checks) return [];
  const verified: CredentialFactor[] = [];
  const needUser = (): SimUser => {
    if (!user) throw new ConnectError('a credential check needs a user check first (Errors.User.NotFound)', Code.InvalidArgument);
    return user;
  };
  const invalid = (what: string) => new ConnectError(what, Code.InvalidArgument);

  if (checks.password) {
    if (needUser().password !== checks.password.password) throw invalid('Errors.User.Password.Invalid');
    verified.push('password');
  }
  if (checks.webAuthN) {
    if (!needUser().passkey) throw invalid('Errors.User.WebAuthN.NotFound');
    if (!sessionId || !state.webAuthNChallenges.has(sessionId)) throw invalid('Errors.Session.WebAuthN.NoChallenge');
    if (!checks.webAuthN.credentialAssertionData) throw invalid('Errors.User.WebAuthN.ValidateLoginFailed');
    state.webAuthNChallenges.delete(sessionId);
    verified.push('webAuthN');
  }
  if (checks.idpIntent) {
    const intent = state.idpIntents.get(checks.idpIntent.idpIntentId);
    if (!intent || intent.token !== checks.idpIntent.idpIntentToken || intent.userId !== needUser().id) {
      throw invalid('Errors.Intent.InvalidToken');
    }
    verified.push('intent');
  }
  if (checks.totp) {
    if (!needUser().totpCode || needUser().totpCode !== checks.totp.code) throw invalid('Errors.User.MFA.OTP.InvalidCode');
    verified.push('totp');
  }
  for (const name of ['otpSms', 'otpEmail'] as const) {
    const check = checks[name];
    if (!check) continue;
    if (!needUser().otpCode || needUser().otpCode !== check.code) throw invalid('Errors.User.Code.Invalid');
    verified.push(name);
  }
  return verified;
}

/** The user a `checks.user` names; NotFound like ZITADEL when there is none. */
export function resolveUser(state: SimulatorState, checks: Checks | undefined): SimUser | undefined {
  const search = checks?.user?.search;
  if (!search || search.case === undefined) return undefined;
  const user = state.findUser(search.case === 'userId' ? { userId: search.value } : { loginName: search.value });
  if (!user) throw new ConnectError('User could not be found (Errors.User.NotFound)', Code.NotFound);
  return user;
}
