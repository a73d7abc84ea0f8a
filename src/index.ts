/** The public API: the signing helpers for your own tests, and the building blocks of the service. */
export { signPayload, computeSignature, type SignOptions } from './signature/sign.js';
export { verifySignature, checkSignature, parseSignatureHeader, type VerifyOptions } from './signature/verify.js';
export { interpretPayload, CREATE_SESSION, SET_SESSION, type WebhookAction } from './payload.js';
export {
  chooseEvictions,
  lastAuthenticatedAt,
  type SessionRecord,
  type EvictionDecision,
  type DecisionInput,
} from './enforcement/decision.js';
export { SessionLimitEnforcer, type EnforcementResult } from './enforcement/enforcer.js';
export { ZitadelSessionDirectory } from './zitadel/session-directory.js';
export { DirectoryError, type SessionDirectory, type FailureKind } from './enforcement/ports.js';
export { loadConfig, ConfigError, type Config } from './config.js';
export { buildApp, type AppOptions } from './app.js';
export { errorCatalog, ServiceError, type ErrorCode } from './errors.js';
