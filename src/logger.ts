import pino, { type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config.js';

/**
 * Paths that must never be written even if some code passes them by mistake: the payload carries plaintext
 * passwords and session tokens, and requests carry the signature and (to ZITADEL) the access token.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["zitadel-signature"]',
  'headers.authorization',
  'headers["zitadel-signature"]',
  'body',
  'payload',
  'request.checks',
  'sessionToken',
  'password',
  'token',
  'signingKeys',
];

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'zitadel-session-limiter' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    },
    destination,
  );
}
