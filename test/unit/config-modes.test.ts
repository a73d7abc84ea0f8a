import t from 'tap';
import { ConfigError, loadConfig } from '../../src/config.js';

/** The environment of a cron job or an operator's shell: ZITADEL credentials, no webhook secret. */
const withoutKeys = { ZITADEL_URL: 'https://example.zitadel.cloud', ZITADEL_TOKEN: 'SECRET-token-value' };

const problemsOf = (run: () => unknown): string[] => {
  try {
    run();
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
};

t.test('the service (the default) still requires ZITADEL_SIGNING_KEYS', async (t) => {
  t.match(problemsOf(() => loadConfig(withoutKeys)), [/^ZITADEL_SIGNING_KEYS is required/]);
  t.match(problemsOf(() => loadConfig(withoutKeys, { servesWebhooks: true })), [/^ZITADEL_SIGNING_KEYS is required/]);
  t.match(problemsOf(() => loadConfig({ ...withoutKeys, ZITADEL_SIGNING_KEYS: '  ' })), [/^ZITADEL_SIGNING_KEYS is required/], 'blank is unset');
});

t.test('commands that serve no webhook (enforce, doctor) load without ZITADEL_SIGNING_KEYS', async (t) => {
  const { config, warnings } = loadConfig(withoutKeys, { servesWebhooks: false });
  t.same(config.signingKeys, [], 'no keys');
  t.same(warnings, [], 'and no warning about them');
  t.same(loadConfig({ ...withoutKeys, ZITADEL_SIGNING_KEYS: '' }, { servesWebhooks: false }).config.signingKeys, []);
});

t.test('keys given to such a command are still read and checked (doctor compares them with the target)', async (t) => {
  const keys = 'SECRETkeyone0123456789abcdefghijklmn,SECRETkeytwo0123456789abcdefghijklmn';
  t.same(loadConfig({ ...withoutKeys, ZITADEL_SIGNING_KEYS: keys }, { servesWebhooks: false }).config.signingKeys, keys.split(','));
  const problems = problemsOf(() => loadConfig({ ...withoutKeys, ZITADEL_SIGNING_KEYS: 'SECRET-a,,SECRET-b' }, { servesWebhooks: false }));
  t.match(problems, [/^ZITADEL_SIGNING_KEYS must be one key or several/]);
  t.notMatch(problems.join('\n'), /SECRET/, 'never echoing a key');
});

t.test('the other variables are as required as ever', async (t) => {
  t.match(problemsOf(() => loadConfig({}, { servesWebhooks: false })).sort(), [/^ZITADEL_TOKEN is required/, /^ZITADEL_URL is required/]);
});
