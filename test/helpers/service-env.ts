import { DEFAULT_SIMULATOR_TOKEN } from '../../src/simulator/index.js';
import { SIGNING_KEY } from './stack.js';

/** The environment of the built service (`dist/main.js`) against a simulator at `url`, on a free loopback port. */
export function serviceEnv(url: string, more: Record<string, string> = {}): Record<string, string> {
  return { ZITADEL_URL: url, ZITADEL_TOKEN: DEFAULT_SIMULATOR_TOKEN, ZITADEL_SIGNING_KEYS: SIGNING_KEY, HOST: '127.0.0.1', PORT: '0', ...more };
}
