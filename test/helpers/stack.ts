import { Writable } from 'node:stream';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { composeService, type ComposeOptions, type Service } from '../../src/service.js';
import { signPayload } from '../../src/signature/sign.js';
import { DEFAULT_SIMULATOR_TOKEN, ZitadelSimulator, type SimulatorOptions } from '../../src/simulator/index.js';

export const SIGNING_KEY = 'Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7C';

/** Collects every log line the app writes, as text and parsed. */
export class LogCapture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: string, callback: () => void): void {
    this.text += chunk.toString('utf8');
    callback();
  }
  get lines(): Record<string, any>[] {
    return this.text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line));
  }
}

export interface Stack {
  simulator: ZitadelSimulator;
  app: FastifyInstance;
  logs: LogCapture;
  service: Service;
  /** POSTs a payload to the webhook, signed with `key` (default: the configured one) at the current time. */
  send: (body: string, options?: { key?: string; timestamp?: number; headers?: Record<string, string> }) => Promise<LightMyRequestResponse>;
  close: () => Promise<void>;
}

export interface StackOptions {
  limit?: number;
  simulator?: SimulatorOptions;
  token?: string;
  pageSize?: number;
  logLevel?: 'info' | 'debug' | 'trace';
  /** Use this simulator (already listening) instead of starting one; it is then not closed with the stack. */
  existingSimulator?: ZitadelSimulator;
  /** The keys the service verifies with (ZITADEL_SIGNING_KEYS); default: SIGNING_KEY. */
  signingKeys?: string[];
  /** deny-new: the clock difference tolerated between the simulator and the service (default: the service's). */
  admissionClockSkewMs?: number;
  /** The events delivery's test hooks (scheduler, observer, random source). */
  events?: ComposeOptions['events'];
  /** More environment variables for the service's configuration, given the simulator (e.g. to add a key). */
  env?: (simulator: ZitadelSimulator) => Record<string, string | undefined>;
  /** The service's clock (the HMAC window, the JWKS cache); default Date.now. */
  now?: () => number;
  /** Where the instance web keys are fetched (a test's JWKS server); default `<ZITADEL_URL>/oauth/v2/keys`. */
  webKeysUrl?: URL;
}

/** The service wired to a simulated ZITADEL over real gRPC on loopback; requests go through `app.inject`. */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const simulator = options.existingSimulator ?? new ZitadelSimulator(options.simulator);
  if (!options.existingSimulator) await simulator.listen();
  const logs = new LogCapture();
  const { config } = loadConfig({
    ZITADEL_URL: simulator.url,
    ZITADEL_TOKEN: options.token ?? DEFAULT_SIMULATOR_TOKEN,
    ZITADEL_SIGNING_KEYS: (options.signingKeys ?? [SIGNING_KEY]).join(','),
    SESSION_LIMIT: String(options.limit ?? 2),
    ...options.env?.(simulator),
  });
  const service = await composeService(config, createLogger(options.logLevel ?? 'info', logs), {
    defaultMetrics: false,
    pageSize: options.pageSize,
    admissionClockSkewMs: options.admissionClockSkewMs,
    ...(options.now ? { now: options.now } : {}),
    ...(options.webKeysUrl ? { webKeysUrl: options.webKeysUrl } : {}),
    events: options.events,
  } satisfies ComposeOptions);
  const { app } = service;
  await app.ready();
  return {
    simulator,
    app,
    logs,
    service,
    send(body, { key = SIGNING_KEY, timestamp, headers = {} } = {}) {
      timestamp ??= options.now ? Math.floor(options.now() / 1000) : undefined;
      return app.inject({
        method: 'POST',
        url: '/webhooks/zitadel',
        headers: {
          'content-type': 'application/json',
          'zitadel-signature': signPayload(body, key, { timestamp }),
          ...headers,
        },
        payload: body,
      });
    },
    async close() {
      await service.close();
      if (!options.existingSimulator) await simulator.close();
    },
  };
}

/** Minutes ago, as a Date. */
export function minutesAgo(minutes: number): Date {
  return new Date(Date.now() - minutes * 60_000);
}
