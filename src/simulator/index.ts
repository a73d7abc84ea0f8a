/**
 * The ZITADEL simulator: the Session Service over gRPC with ZITADEL's semantics, the Actions v2 executor and the
 * v2 Action API, fault injection. For demos, for this project's tests and for yours.
 */
export { ZitadelSimulator, DEFAULT_SIMULATOR_TOKEN, WEBHOOK_LOG_PATH, WEB_KEYS_PATH, type SimulatorOptions, type WebhookLogEntry } from './simulator.js';
export {
  SimulatorState,
  DEFAULT_PROJECTION_LAG_MS,
  ALL_PERMISSIONS,
  LOGIN_CLIENT_PERMISSIONS,
  type Permission,
  type ProjectionMode,
  type SessionSeed,
  type SimSession,
  type SimUser,
  type UserSeed,
  type RecordedCall,
  type Fault,
  type SimApplication,
  type SimOidcApp,
} from './state.js';
export {
  ActionsRegistry,
  newSigningKey,
  describeDelivery,
  publicKeyFingerprint,
  PAYLOAD_TYPES,
  type PayloadType,
  type SimPublicKey,
  type SimTarget,
  type SimExecution,
  type Condition,
  type Delivery,
  type TargetType,
} from './actions.js';
export type { ActionApiRequest } from './action-api.js';
export { WebKeys, type SimWebKey, type WebKeyAlgorithm } from './web-keys.js';
export { goJsonStringify } from './go-json.js';
export { addServiceAccountKey, type ServiceKeyFile } from './oauth.js';
export { EventReceiver, type ReceivedEvent } from './event-receiver.js';
