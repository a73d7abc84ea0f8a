import pino, { type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config.js';

/**
 * A second line of defence only: the code never logs a payload, a header or a key (a test checks every value of
 * every line for them). These paths are censored if some future code passes such an object by mistake; pino's
 * redaction matches these exact paths (one wildcard level), not every depth.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["zitadel-signature"]',
  'headers.authorization',
  'headers["zitadel-signature"]',
  'body',
  'payload',
  'request',
  'response',
  'checks',
  '*.checks',
  'sessionToken',
  '*.sessionToken',
  'password',
  '*.password',
  'token',
  'signingKey',
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
