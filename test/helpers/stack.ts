import { Writable } from 'node:stream';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/app.js';
import { SessionLimitEnforcer } from '../../src/enforcement/enforcer.js';
import { createLogger } from '../../src/logger.js';
import { signPayload } from '../../src/signature/sign.js';
import { DEFAULT_SIMULATOR_TOKEN, ZitadelSimulator, type SimulatorOptions } from '../../src/simulator/index.js';
import { ZitadelSessionDirectory } from '../../src/zitadel/session-directory.js';

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
  directory: ZitadelSessionDirectory;
  /** POSTs a payload to the webhook, signed with `key` (default: the configured one) at the current time. */
  send(body: string, options?: { key?: string; timestamp?: number; headers?: Record<string, string> }): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export interface StackOptions {
  limit?: number;
  simulator?: SimulatorOptions;
  token?: string;
  pageSize?: number;
  logLevel?: 'info' | 'debug' | 'trace';
}

/** The service wired to a simulated ZITADEL over real gRPC on loopback; requests go through `app.inject`. */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const simulator = new ZitadelSimulator(options.simulator);
  await simulator.listen();
  const logs = new LogCapture();
  const logger = createLogger(options.logLevel ?? 'info', logs);
  const directory = new ZitadelSessionDirectory({
    baseUrl: simulator.url,
    token: options.token ?? DEFAULT_SIMULATOR_TOKEN,
    pageSize: options.pageSize,
  });
  const enforcer = new SessionLimitEnforcer({ directory, limit: options.limit ?? 2, logger });
  const app = buildApp({ logger, enforcer, signingKeys: [SIGNING_KEY], signatureToleranceSeconds: 300 });
  await app.ready();
  return {
    simulator,
    app,
    logs,
    directory,
    send(body, { key = SIGNING_KEY, timestamp, headers = {} } = {}) {
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
      await app.close();
      directory.close();
      await simulator.close();
    },
  };
}

/** Minutes ago, as a Date. */
export function minutesAgo(minutes: number): Date {
  return new Date(Date.now() - minutes * 60_000);
}
