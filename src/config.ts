import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import type { PolicyOptions } from './enforcement/policy.js';
import { PAYLOAD_TYPES, type PayloadType } from './payload-type/form.js';
import { looksLikePem, parsePayloadKeys, PayloadKeyError, type PayloadKey } from './payload-type/keys.js';
import { readSmallTextFile, SmallFileError } from './small-file.js';
import { readServiceAccountKey, type ServiceAccountKey } from './zitadel/credentials.js';
import { parseDuration } from './duration.js';

/**
 * The service's configuration, read from the environment and validated at start-up. A bad value stops the
 * process with one line per problem; no line ever contains a secret's value.
 */
/** How the service authenticates to ZITADEL: a personal access token, or a service account key (JWT profile). */
export type ZitadelCredentials =
  | { kind: 'personal-access-token'; token: string }
  | { kind: 'key-file'; key: ServiceAccountKey; privateKey: KeyObject };

export interface Config {
  zitadelUrl: URL;
  credentials: ZitadelCredentials;
  /** Deadline of every ZITADEL call. */
  zitadelTimeoutMs: number;
  /** ZITADEL_SIGNING_KEYS; empty only for commands that serve no webhook (`servesWebhooks: false`). */
  signingKeys: string[];
  /** ZITADEL_PAYLOAD_TYPE: the target's payload type (json, jwt, jwe). */
  payloadType: PayloadType;
  /** ZITADEL_PAYLOAD_KEYS: the private keys that open JWE payloads (jwe only; empty otherwise). */
  payloadKeys: PayloadKey[];
  sessionLimit: number;
  signatureToleranceSeconds: number;
  port: number;
  host: string;
  logLevel: LogLevel;
  /** How long a shutdown waits for enforcements in flight. */
  shutdownTimeoutMs: number;
  /** Serve /metrics on this port only (not on the public one); undefined: on the main port. */
  metricsPort: number | undefined;
  /** Policies: device counting, deny mode, dry run, pruning. */
  policy: PolicyOptions;
  /** Read per-user / per-organisation limits from this metadata key; undefined: never read metadata. */
  limitMetadataKey: string | undefined;
  limitCacheSeconds: number;
  /** The message a denied login shows (ON_LIMIT=deny-new). */
  denyMessage: string;
  /** Total time one enforcement may take, retries included. */
  enforceBudgetMs: number;
  /** Enforcements running or waiting at once; beyond, 503. */
  maxConcurrentEnforcements: number;
  /** ZITADEL calls in flight at once, for the whole process. */
  maxZitadelCalls: number;
  /** Several replicas: the cross-replica per-user lock. Undefined: in-process serialisation only. */
  redisUrl: string | undefined;
  /** The HTTP server's bounds on slow clients and open connections. */
  server: ServerLimits;
  /** Signed eviction events to the applications (EVENTS_URL); undefined: none are sent and nothing is loaded. */
  events: EventsConfig | undefined;
}

export const EVENT_TYPES = ['session.evicted', 'session.denied', 'session.pruned'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Where and how eviction events are delivered (EVENTS_*). */
export interface EventsConfig {
  url: URL;
  /** EVENTS_SECRET, the Standard Webhooks secret (`whsec_` + base64). Never logged. */
  secret: string;
  types: ReadonlySet<EventType>;
  /** How long an event is retried before it is given up (EVENTS_RETRY_FOR). */
  retryForMs: number;
  /** Events waiting for delivery at most; beyond, new ones are dropped and counted (EVENTS_QUEUE_MAX). */
  queueMax: number;
}

/** What a slow or greedy client may hold of the HTTP server. */
export interface ServerLimits {
  /** A request (headers and body) not received whole within this is answered 408 and its connection closed. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** Connections open at once; more are closed as soon as they are accepted. */
  maxConnections: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  requestTimeoutMs: 30_000,
  // Longer than the idle timeout of common HTTP clients and proxies (60 s), so that it is always the client that
  // closes an idle connection: a server closing one while the client reuses it fails a webhook.
  keepAliveTimeoutMs: 72_000,
  maxConnections: 1000,
};

export const DEFAULT_DENY_MESSAGE =
  'You are signed in on too many devices. Sign out on another device, then try again.';

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof logLevels)[number];

/** An unset variable and an empty one mean the same: use the default, or complain when it is required. */
const blankToUndefined = (value: unknown) => (typeof value === 'string' && value.trim() === '' ? undefined : value);

function integer(name: string, min: number, max: number, fallback: number) {
  return z.preprocess(
    blankToUndefined,
    z
      .string()
      .regex(/^\s*\d+\s*$/, { error: `${name} must be a whole number between ${min} and ${max}` })
      .transform(Number)
      .refine((n) => n >= min && n <= max, { error: `${name} must be a whole number between ${min} and ${max}` })
      .default(fallback),
  );
}

function boolean(name: string) {
  return z.preprocess(
    (value) => (typeof value === 'string' ? blankToUndefined(value.trim().toLowerCase()) : value),
    z.enum(['true', 'false'], { error: `${name} must be true or false` }).default('false').transform((value) => value === 'true'),
  );
}

function oneOf<const T extends readonly [string, ...string[]]>(name: string, values: T, fallback: T[number]) {
  return z.preprocess(
    (value) => (typeof value === 'string' ? blankToUndefined(value.trim().toLowerCase()) : value),
    z.enum(values, { error: `${name} must be one of ${values.join(', ')}` }).default(fallback as never),
  );
}

function required(name: string, what: string) {
  return z.preprocess(
    blankToUndefined,
    z.string({ error: `${name} is required: ${what}` }),
  );
}

/** ZITADEL_SIGNING_KEYS, once given: one key or several separated by commas. */
const signingKeysValue = z
  .string()
  .transform((value) => value.split(',').map((key) => key.trim()))
  .refine((keys) => keys.every((key) => key.length > 0), {
    error: 'ZITADEL_SIGNING_KEYS must be one key or several separated by single commas, with no empty entry',
  })
  .refine((keys) => keys.every((key) => !/\s/.test(key)), {
    error: 'ZITADEL_SIGNING_KEYS: a key must not contain whitespace',
  });

const ZITADEL_URL_PROBLEM = 'ZITADEL_URL must be an https:// (or, for a local ZITADEL, http://) URL without credentials';

/**
 * ZITADEL_URL as the service accepts it (the admin commands use the same rule): an http(s) URL without
 * `user:password@`; undefined otherwise. The value is never echoed: it may hold credentials.
 */
export function parseZitadelUrl(value: string): URL | undefined {
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.username === '' && url.password === '' ? url : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads ZITADEL_URL for a command that sends a token to it: the URL, or a ConfigError whose message says what is
 * wrong without the value. `required`: what to say when it is unset.
 */
export function readZitadelUrl(value: string | undefined, required: string): URL {
  const trimmed = value?.trim();
  if (!trimmed) throw new ConfigError([`ZITADEL_URL is required: ${required}`]);
  const url = parseZitadelUrl(trimmed);
  if (!url) throw new ConfigError([ZITADEL_URL_PROBLEM]);
  return url;
}

/**
 * The warning for a token sent over plain http:// to a host that is not loopback; undefined when there is none.
 * `what`: which token travels (the access token, the admin token).
 */
export function plainHttpWarning(url: URL, what: string): string | undefined {
  if (url.protocol !== 'http:' || isLoopback(url.hostname)) return undefined;
  return (
    `ZITADEL_URL uses plain http:// to ${url.hostname}, which is not a loopback address: ${what} ` +
    'travels unencrypted. Use https:// outside local development.'
  );
}

const EVENTS_URL_PROBLEM = 'EVENTS_URL must be an https:// URL without credentials (http:// only to a loopback address, for local tests)';
const EVENTS_SECRET_PROBLEM =
  'EVENTS_SECRET must be a Standard Webhooks secret: whsec_ followed by the base64 of 24 to 64 random bytes ' +
  '(e.g. "whsec_$(openssl rand -base64 32)")';

/** EVENTS_URL as accepted: https, or http to loopback; no credentials. The value is never echoed. */
export function parseEventsUrl(value: string): URL | undefined {
  try {
    const url = new URL(value);
    if (url.username !== '' || url.password !== '') return undefined;
    if (url.protocol === 'https:' || (url.protocol === 'http:' && isLoopback(url.hostname))) return url;
    return undefined;
  } catch {
    return undefined;
  }
}

/** Whether EVENTS_SECRET has the Standard Webhooks form (`whsec_` + base64 of 24..64 bytes). */
export function isEventsSecret(value: string): boolean {
  const match = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(value);
  if (!match || match[1]!.length % 4 !== 0) return false;
  const bytes = Buffer.from(match[1]!, 'base64').length;
  return bytes >= 24 && bytes <= 64;
}

const schema = z.object({
  ZITADEL_URL: required('ZITADEL_URL', 'the base URL of your ZITADEL instance, e.g. https://my-instance.zitadel.cloud').pipe(
    z.string().refine((value) => parseZitadelUrl(value) !== undefined, { error: ZITADEL_URL_PROBLEM }),
  ),
  ZITADEL_TOKEN: z.preprocess(
    blankToUndefined,
    z.string().regex(/^\S+$/, { error: 'ZITADEL_TOKEN must not contain whitespace' }).optional(),
  ),
  ZITADEL_KEY_FILE: z.preprocess(blankToUndefined, z.string().optional()),
  ZITADEL_TIMEOUT_MS: integer('ZITADEL_TIMEOUT_MS', 100, 60_000, 5000),
  SHUTDOWN_TIMEOUT_MS: integer('SHUTDOWN_TIMEOUT_MS', 1000, 300_000, 10_000),
  SESSION_LIMIT_METADATA_KEY: z.preprocess(
    blankToUndefined,
    z
      .string()
      .regex(/^[\w.:-]{1,200}$/, { error: 'SESSION_LIMIT_METADATA_KEY must be a metadata key: letters, digits, _ . : -, at most 200' })
      .optional(),
  ),
  LIMIT_CACHE_SECONDS: integer('LIMIT_CACHE_SECONDS', 0, 3600, 60),
  COUNT_BY: oneOf('COUNT_BY', ['session', 'device'], 'session'),
  ON_LIMIT: oneOf('ON_LIMIT', ['evict-oldest', 'deny-new'], 'evict-oldest'),
  DENY_MESSAGE: z.preprocess(
    blankToUndefined,
    z.string().max(500, { error: 'DENY_MESSAGE must be at most 500 characters' }).default(DEFAULT_DENY_MESSAGE),
  ),
  DRY_RUN: boolean('DRY_RUN'),
  ENFORCE_BUDGET_MS: integer('ENFORCE_BUDGET_MS', 100, 120_000, 5000),
  MAX_CONCURRENT_ENFORCEMENTS: integer('MAX_CONCURRENT_ENFORCEMENTS', 1, 100_000, 256),
  MAX_ZITADEL_CALLS: integer('MAX_ZITADEL_CALLS', 1, 10_000, 64),
  REQUEST_TIMEOUT_MS: integer('REQUEST_TIMEOUT_MS', 1000, 600_000, DEFAULT_SERVER_LIMITS.requestTimeoutMs),
  KEEP_ALIVE_TIMEOUT_MS: integer('KEEP_ALIVE_TIMEOUT_MS', 1000, 600_000, DEFAULT_SERVER_LIMITS.keepAliveTimeoutMs),
  MAX_CONNECTIONS: integer('MAX_CONNECTIONS', 1, 1_000_000, DEFAULT_SERVER_LIMITS.maxConnections),
  REDIS_URL: z.preprocess(
    blankToUndefined,
    z
      .string()
      .refine((value) => /^rediss?:\/\//.test(value), { error: 'REDIS_URL must be a redis:// or rediss:// URL' })
      .optional(),
  ),
  PRUNE_EXPIRED: boolean('PRUNE_EXPIRED'),
  EVENTS_URL: z.preprocess(
    blankToUndefined,
    z.string().refine((value) => parseEventsUrl(value.trim()) !== undefined, { error: EVENTS_URL_PROBLEM }).optional(),
  ),
  EVENTS_SECRET: z.preprocess(
    blankToUndefined,
    z.string().refine((value) => isEventsSecret(value.trim()), { error: EVENTS_SECRET_PROBLEM }).optional(),
  ),
  EVENTS_TYPES: z.preprocess(
    blankToUndefined,
    z
      .string()
      .transform((value) => value.split(',').map((type) => type.trim()))
      .refine((types) => types.every((type) => (EVENT_TYPES as readonly string[]).includes(type)), {
        error: `EVENTS_TYPES must be a comma-separated list of ${EVENT_TYPES.join(', ')}`,
      })
      .transform((types) => new Set(types as EventType[]))
      .optional(),
  ),
  EVENTS_RETRY_FOR: z.preprocess(
    blankToUndefined,
    z
      .string()
      .transform((value) => parseDuration(value.trim(), ['s', 'm', 'h', 'd']))
      .refine((ms) => ms !== undefined && ms >= 10_000 && ms <= 7 * 86_400_000, {
        error: 'EVENTS_RETRY_FOR must be a duration between 10s and 7d, such as 30m or 24h',
      })
      .transform((ms) => ms!)
      .default(86_400_000),
  ),
  EVENTS_QUEUE_MAX: integer('EVENTS_QUEUE_MAX', 1, 1_000_000, 10_000),
  METRICS_PORT: z.preprocess(
    blankToUndefined,
    z
      .string()
      .regex(/^\d+$/, { error: 'METRICS_PORT must be a port number (1..65535), or unset to serve /metrics on PORT' })
      .transform(Number)
      .refine((n) => n >= 1 && n <= 65_535, { error: 'METRICS_PORT must be a port number (1..65535), or unset to serve /metrics on PORT' })
      .optional(),
  ),
  ZITADEL_SIGNING_KEYS: required(
    'ZITADEL_SIGNING_KEYS',
    "the target's signing key from ZITADEL; during a rotation several, separated by commas",
  ).pipe(signingKeysValue),
  ZITADEL_PAYLOAD_TYPE: oneOf('ZITADEL_PAYLOAD_TYPE', PAYLOAD_TYPES, 'json'),
  ZITADEL_PAYLOAD_KEYS: z.preprocess(blankToUndefined, z.string().optional()),
  SESSION_LIMIT: integer('SESSION_LIMIT', 1, 10_000, 2),
  SIGNATURE_TOLERANCE_SECONDS: integer('SIGNATURE_TOLERANCE_SECONDS', 1, 3600, 300),
  PORT: integer('PORT', 0, 65_535, 8080),
  HOST: z.preprocess(blankToUndefined, z.string().default('0.0.0.0')),
  LOG_LEVEL: z.preprocess(
    (value) => (typeof value === 'string' ? blankToUndefined(value.toLowerCase()) : value),
    z.enum(logLevels, { error: `LOG_LEVEL must be one of ${logLevels.join(', ')}` }).default('info'),
  ),
});

/**
 * For commands that serve no webhook (`enforce`, `doctor`): the signing keys are optional. A cron job has no
 * business holding the webhook secret; keys that are given are still checked (doctor compares them).
 */
const schemaWithoutWebhooks = schema.extend({
  ZITADEL_SIGNING_KEYS: z.preprocess(blankToUndefined, signingKeysValue.optional()).transform((keys) => keys ?? []),
});

export interface LoadOptions {
  /** `true` (default): the service, which verifies webhooks and needs ZITADEL_SIGNING_KEYS; `false`: other commands. */
  servesWebhooks?: boolean;
}

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export interface LoadedConfig {
  config: Config;
  /** Things worth telling the operator at start-up that do not stop it. */
  warnings: string[];
}

/** Reads and validates the configuration; throws `ConfigError` listing every problem, one line each. */
export function loadConfig(env: Record<string, string | undefined>, options: LoadOptions = {}): LoadedConfig {
  const result = (options.servesWebhooks === false ? schemaWithoutWebhooks : schema).safeParse(env);
  // Our own messages name the variable; zod's defaults never echo the input, so no secret can leak here.
  const problems = result.success
    ? []
    : result.error.issues.map((issue) => {
        const variable = String(issue.path[0] ?? 'environment');
        return issue.message.startsWith(variable) ? issue.message : `${variable}: ${issue.message}`;
      });
  let credentials: ZitadelCredentials | undefined;
  try {
    credentials = readCredentials(blankToUndefined(env.ZITADEL_TOKEN) as string | undefined, blankToUndefined(env.ZITADEL_KEY_FILE) as string | undefined);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.problems);
  }
  let payloadKeys: PayloadKey[] = [];
  try {
    payloadKeys = readPayloadKeys(
      result.data?.ZITADEL_PAYLOAD_TYPE,
      blankToUndefined(env.ZITADEL_PAYLOAD_KEYS) as string | undefined,
      options.servesWebhooks !== false,
    );
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.problems);
  }
  // One variable of the pair without the other: say which is missing (never the value of the one that is set).
  const eventsUrl = blankToUndefined(env.EVENTS_URL);
  const eventsSecret = blankToUndefined(env.EVENTS_SECRET);
  if (eventsUrl !== undefined && eventsSecret === undefined) {
    problems.push('EVENTS_SECRET is required with EVENTS_URL: the Standard Webhooks secret the receiver verifies events with (whsec_...)');
  } else if (eventsSecret !== undefined && eventsUrl === undefined) {
    problems.push('EVENTS_URL is required with EVENTS_SECRET: the https:// endpoint of the application that receives eviction events');
  }
  if (!result.success || !credentials || problems.length > 0) throw new ConfigError([...new Set(problems)]);
  const env_ = result.data;
  const zitadelUrl = new URL(env_.ZITADEL_URL);
  const warnings: string[] = [];
  const unusual = env_.ZITADEL_SIGNING_KEYS.filter((key) => !/^[A-Za-z0-9]{36}$/.test(key)).length;
  if (unusual > 0) {
    warnings.push(
      `${unusual} of ZITADEL_SIGNING_KEYS do not look like a ZITADEL signing key (36 letters and digits): ` +
        'check that the target\'s key was copied whole, not a placeholder',
    );
  }
  const plainHttp = plainHttpWarning(zitadelUrl, 'the access token');
  if (plainHttp) warnings.push(plainHttp);
  return {
    config: {
      zitadelUrl,
      credentials,
      zitadelTimeoutMs: env_.ZITADEL_TIMEOUT_MS,
      signingKeys: env_.ZITADEL_SIGNING_KEYS,
      payloadType: env_.ZITADEL_PAYLOAD_TYPE,
      payloadKeys,
      sessionLimit: env_.SESSION_LIMIT,
      signatureToleranceSeconds: env_.SIGNATURE_TOLERANCE_SECONDS,
      port: env_.PORT,
      host: env_.HOST,
      logLevel: env_.LOG_LEVEL,
      shutdownTimeoutMs: env_.SHUTDOWN_TIMEOUT_MS,
      metricsPort: env_.METRICS_PORT,
      policy: {
        countBy: env_.COUNT_BY,
        onLimit: env_.ON_LIMIT,
        dryRun: env_.DRY_RUN,
        pruneExpired: env_.PRUNE_EXPIRED,
      },
      limitMetadataKey: env_.SESSION_LIMIT_METADATA_KEY,
      limitCacheSeconds: env_.LIMIT_CACHE_SECONDS,
      denyMessage: env_.DENY_MESSAGE,
      enforceBudgetMs: env_.ENFORCE_BUDGET_MS,
      maxConcurrentEnforcements: env_.MAX_CONCURRENT_ENFORCEMENTS,
      maxZitadelCalls: env_.MAX_ZITADEL_CALLS,
      redisUrl: env_.REDIS_URL,
      server: {
        requestTimeoutMs: env_.REQUEST_TIMEOUT_MS,
        keepAliveTimeoutMs: env_.KEEP_ALIVE_TIMEOUT_MS,
        maxConnections: env_.MAX_CONNECTIONS,
      },
      events:
        env_.EVENTS_URL && env_.EVENTS_SECRET
          ? {
              url: parseEventsUrl(env_.EVENTS_URL.trim())!,
              secret: env_.EVENTS_SECRET.trim(),
              types: env_.EVENTS_TYPES ?? new Set(EVENT_TYPES),
              retryForMs: env_.EVENTS_RETRY_FOR,
              queueMax: env_.EVENTS_QUEUE_MAX,
            }
          : undefined,
    },
    warnings,
  };
}

/**
 * ZITADEL_PAYLOAD_KEYS for ZITADEL_PAYLOAD_TYPE `type` (undefined: the type itself is invalid, already reported):
 * PEM in the value itself, or the path of a file holding it. Required with jwe when the command serves webhooks;
 * refused with json and jwt. Problems name the variable and never quote the value or the file's content.
 */
function readPayloadKeys(type: PayloadType | undefined, value: string | undefined, servesWebhooks: boolean): PayloadKey[] {
  if (type === undefined) return [];
  if (value === undefined) {
    if (type === 'jwe' && servesWebhooks) {
      throw new ConfigError([
        "ZITADEL_PAYLOAD_KEYS is required with ZITADEL_PAYLOAD_TYPE=jwe: the private key (PEM) of the target's public key, " +
          'or the path of a file holding it (register --payload-type jwe writes one)',
      ]);
    }
    return [];
  }
  if (type !== 'jwe') {
    throw new ConfigError([`ZITADEL_PAYLOAD_KEYS is for jwe only (ZITADEL_PAYLOAD_TYPE is ${type}): unset it, or set ZITADEL_PAYLOAD_TYPE=jwe`]);
  }
  let text = value;
  if (!looksLikePem(value)) {
    try {
      text = readSmallTextFile(value.trim());
    } catch (error) {
      if (!(error instanceof SmallFileError)) throw error;
      const what = error.code === undefined ? error.message : `is neither PEM nor a readable file (${error.code})`;
      throw new ConfigError([
        `ZITADEL_PAYLOAD_KEYS ${what}: give the private key itself (-----BEGIN PRIVATE KEY-----...) or the path of a file holding it`,
      ]);
    }
  }
  try {
    return parsePayloadKeys(text);
  } catch (error) {
    if (!(error instanceof PayloadKeyError)) throw error;
    throw new ConfigError([`ZITADEL_PAYLOAD_KEYS${looksLikePem(value) ? '' : ' (the file)'}: ${error.message}`]);
  }
}

const CREDENTIALS_NEEDED =
  'set ZITADEL_TOKEN (a personal access token of a service user holding session.read and session.delete, ' +
  'e.g. IAM_USER_MANAGER) or ZITADEL_KEY_FILE (that service user\'s JSON key)';

function readCredentials(token: string | undefined, keyFile: string | undefined): ZitadelCredentials {
  if (token && keyFile) throw new ConfigError(['ZITADEL_TOKEN and ZITADEL_KEY_FILE are both set: keep one']);
  if (token) return { kind: 'personal-access-token', token };
  if (!keyFile) throw new ConfigError([`ZITADEL_TOKEN is required: ${CREDENTIALS_NEEDED}`]);
  try {
    return { kind: 'key-file', ...readServiceAccountKey(keyFile) };
  } catch (error) {
    throw new ConfigError([`ZITADEL_KEY_FILE ${(error as Error).message}`]);
  }
}

export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127(?:\.\d{1,3}){3}$/.test(host);
}
