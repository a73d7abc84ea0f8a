import { Code, ConnectError } from '@connectrpc/connect';
import { ConfigError, loadConfig } from '../../src/config.js';

/** The start-up problems loadConfig reports for `env` (none: []). */
export function problemsOf(env: Record<string, string | undefined>): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
}

/** 'ok', or the gRPC code name a call failed with. */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    return Code[ConnectError.from(error).code];
  }
}
