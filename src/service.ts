import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { SessionLimitEnforcer } from './enforcement/enforcer.js';
import { createLogger } from './logger.js';
import { ZitadelSessionDirectory } from './zitadel/session-directory.js';

/**
 * Starts the service from the environment, the way `npm start`, `zitadel-session-limiter serve` and the container
 * do. A bad configuration ends the process with exit code 1 and one line per problem.
 */
export async function runService(env: Record<string, string | undefined> = process.env): Promise<void> {
  let loaded;
  try {
    loaded = loadConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) process.stderr.write(`config error: ${problem}\n`);
    process.stderr.write('See the configuration table in README.md.\n');
    process.exit(1);
  }
  const { config, warnings } = loaded;
  const logger = createLogger(config.logLevel);
  for (const warning of warnings) logger.warn(warning);

  const directory = new ZitadelSessionDirectory({ baseUrl: config.zitadelUrl, token: config.zitadelToken });
  const enforcer = new SessionLimitEnforcer({ directory, limit: config.sessionLimit, logger });
  const app = buildApp({
    logger,
    enforcer,
    signingKeys: config.signingKeys,
    signatureToleranceSeconds: config.signatureToleranceSeconds,
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing requests in flight');
    try {
      await app.close();
    } finally {
      directory.close();
    }
    logger.info('stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));

  await app.listen({ port: config.port, host: config.host });
  logger.info(
    { limit: config.sessionLimit, zitadel: config.zitadelUrl.origin, keys: config.signingKeys.length },
    'zitadel-session-limiter ready',
  );
}
