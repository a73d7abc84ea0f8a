import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ConfigError, isLoopback, loadConfig, plainHttpWarning, readZitadelUrl } from '../../src/config.js';
import { problemsOf } from '../helpers/outcomes.js';

const base = {
  ZITADEL_URL: 'https://example.zitadel.cloud',
  ZITADEL_TOKEN: 'SECRET-token-value',
  ZITADEL_SIGNING_KEYS: 'SECRETkeyone0123456789abcdefghijklmn',
};

t.test('defaults', async (t) => {
  const { config, warnings } = loadConfig(base);
  t.same(
    { ...config, zitadelUrl: config.zitadelUrl.href },
    {
      zitadelUrl: 'https://example.zitadel.cloud/',
      credentials: { kind: 'personal-access-token', token: 'SECRET-token-value' },
      zitadelTimeoutMs: 5000,
      shutdownTimeoutMs: 10000,
      metricsPort: undefined,
      policy: { countBy: 'session', onLimit: 'evict-oldest', dryRun: false, pruneExpired: false },
      limitMetadataKey: undefined,
      limitCacheSeconds: 60,
      denyMessage: 'You are signed in on too many devices. Sign out on another device, then try again.',
      enforceBudgetMs: 5000,
      maxConcurrentEnforcements: 256,
      maxZitadelCalls: 64,
      redisUrl: undefined,
      server: { requestTimeoutMs: 30000, keepAliveTimeoutMs: 72000, maxConnections: 1000 },
      events: undefined,
      signingKeys: ['SECRETkeyone0123456789abcdefghijklmn'],
      payloadType: 'json',
      payloadKeys: [],
      sessionLimit: 2,
      signatureToleranceSeconds: 300,
      port: 8080,
      host: '0.0.0.0',
      logLevel: 'info',
    },
  );
  t.same(warnings, []);
});

t.test('every value can be set; keys are split on commas during a rotation', async (t) => {
  const { config } = loadConfig({
    ...base,
    ZITADEL_SIGNING_KEYS: ' new-key , old-key ',
    SESSION_LIMIT: '5',
    SIGNATURE_TOLERANCE_SECONDS: '60',
    PORT: '3000',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'DEBUG',
  });
  t.same(config.signingKeys, ['new-key', 'old-key']);
  t.equal(config.sessionLimit, 5);
  t.equal(config.signatureToleranceSeconds, 60);
  t.equal(config.port, 3000);
  t.equal(config.host, '127.0.0.1');
  t.equal(config.logLevel, 'debug');
  t.equal(loadConfig({ ...base, SESSION_LIMIT: '' }).config.sessionLimit, 2, 'empty means default');
});

t.test('one line per problem, naming the variable, never a secret', async (t) => {
  const problems = problemsOf({
    ZITADEL_URL: 'ftp://user:SECRET-pw@host',
    ZITADEL_SIGNING_KEYS: 'SECRET-a,,SECRET-b',
    SESSION_LIMIT: '0',
    SIGNATURE_TOLERANCE_SECONDS: '0',
    PORT: 'eighty',
    LOG_LEVEL: 'loud',
  });
  t.equal(problems.length, 7, problems.join('\n'));
  for (const variable of ['ZITADEL_URL', 'ZITADEL_TOKEN', 'ZITADEL_SIGNING_KEYS', 'SESSION_LIMIT', 'SIGNATURE_TOLERANCE_SECONDS', 'PORT', 'LOG_LEVEL']) {
    t.ok(problems.some((line) => line.startsWith(variable)), `${variable} is named`);
  }
  t.notMatch(problems.join('\n'), /SECRET/, 'no secret value is printed');
  t.match(problems.join('\n'), /SESSION_LIMIT must be a whole number between 1 and/);
});

t.test('limits and tolerances that would disable protection are refused', async (t) => {
  for (const value of ['0', '-1', '1.5', 'two', '10001']) {
    t.same(problemsOf({ ...base, SESSION_LIMIT: value }).length, 1, `SESSION_LIMIT=${value}`);
  }
  t.same(problemsOf({ ...base, SIGNATURE_TOLERANCE_SECONDS: '0' }).length, 1, 'tolerance 0 is not "no check"');
  t.same(problemsOf({ ...base, ZITADEL_TOKEN: 'has space' }).length, 1);
  t.same(problemsOf({ ...base, ZITADEL_URL: 'not a url' }).length, 1);
});

t.test('policies are validated like the rest', async (t) => {
  const { config } = loadConfig({ ...base, COUNT_BY: 'Device', ON_LIMIT: 'deny-new', DRY_RUN: 'TRUE', PRUNE_EXPIRED: 'false', SESSION_LIMIT_METADATA_KEY: 'session_limit', LIMIT_CACHE_SECONDS: '0' });
  t.same(config.policy, { countBy: 'device', onLimit: 'deny-new', dryRun: true, pruneExpired: false });
  t.equal(config.limitMetadataKey, 'session_limit');
  t.equal(config.limitCacheSeconds, 0);
  const problems = problemsOf({ ...base, COUNT_BY: 'user', ON_LIMIT: 'deny', DRY_RUN: 'yes', SESSION_LIMIT_METADATA_KEY: 'has space', DENY_MESSAGE: 'x'.repeat(501) });
  t.same(problems.map((line) => line.split(' ')[0]).sort(), ['COUNT_BY', 'DENY_MESSAGE', 'DRY_RUN', 'ON_LIMIT', 'SESSION_LIMIT_METADATA_KEY']);
});

t.test('credentials: exactly one of ZITADEL_TOKEN and ZITADEL_KEY_FILE; a key file is checked at start-up', async (t) => {
  const { ZITADEL_TOKEN: _unused, ...noToken } = base;
  t.match(problemsOf(noToken), [/^ZITADEL_TOKEN is required: set ZITADEL_TOKEN .* or ZITADEL_KEY_FILE/]);
  t.match(problemsOf({ ...base, ZITADEL_KEY_FILE: '/nowhere' }), [/both set/]);
  t.match(problemsOf({ ...noToken, ZITADEL_KEY_FILE: '/nowhere/key.json' }), [/^ZITADEL_KEY_FILE cannot be read/]);
  t.match(problemsOf({ ...noToken, ZITADEL_KEY_FILE: '{"keyId":"1","userId":"2","key":"SECRET-not-a-pem"}' }), [/^ZITADEL_KEY_FILE holds no readable private key$/]);
  t.match(problemsOf({ ...noToken, ZITADEL_KEY_FILE: '{"keyId":"1"}' }), [/needs keyId, key and userId/]);
  // The same reader as ZITADEL_PAYLOAD_KEYS: a regular file of at most 1 MiB, else one line and no hang.
  t.same(problemsOf({ ...noToken, ZITADEL_KEY_FILE: '/dev/zero' }), [
    "ZITADEL_KEY_FILE names a character device, not a regular file: give the path of the JSON key file from ZITADEL, or its content",
  ]);
  t.match(problemsOf({ ...noToken, ZITADEL_KEY_FILE: tmpdir() }), [/^ZITADEL_KEY_FILE names a directory, not a regular file: /]);
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pkcs1 = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const { config } = loadConfig({ ...noToken, ZITADEL_KEY_FILE: JSON.stringify({ type: 'serviceaccount', keyId: 'k1', key: pkcs1, userId: 'u1' }) });
  t.equal(config.credentials.kind, 'key-file', 'ZITADEL\'s PKCS#1 key file, given as content');
  t.equal(loadConfig({ ...base, ZITADEL_TIMEOUT_MS: '1500' }).config.zitadelTimeoutMs, 1500);
});

t.test('a signing key that does not look like ZITADEL\'s is a warning, without the key', async (t) => {
  const { warnings } = loadConfig({ ...base, ZITADEL_SIGNING_KEYS: 'SECRET-placeholder' });
  t.match(warnings, [/1 of ZITADEL_SIGNING_KEYS do not look like a ZITADEL signing key/]);
  t.notMatch(warnings.join(), /SECRET/);
});

t.test('http:// is accepted, with a warning unless the host is loopback', async (t) => {
  t.same(loadConfig({ ...base, ZITADEL_URL: 'http://127.0.0.1:8080' }).warnings, []);
  t.same(loadConfig({ ...base, ZITADEL_URL: 'http://localhost:8080', NODE_ENV: 'production' }).warnings, []);
  const [warning] = loadConfig({ ...base, ZITADEL_URL: 'http://zitadel.internal:8080' }).warnings;
  t.match(warning, /zitadel\.internal.*not a loopback/);
  t.ok(isLoopback('[::1]') && isLoopback('127.1.2.3') && !isLoopback('10.0.0.1'));
});

t.test('the HTTP server limits: set, defaulted, and refused out of range', async (t) => {
  const { config } = loadConfig({ ...base, REQUEST_TIMEOUT_MS: '2000', KEEP_ALIVE_TIMEOUT_MS: '5000', MAX_CONNECTIONS: '10' });
  t.same(config.server, { requestTimeoutMs: 2000, keepAliveTimeoutMs: 5000, maxConnections: 10 });
  t.same(problemsOf({ ...base, REQUEST_TIMEOUT_MS: '0', KEEP_ALIVE_TIMEOUT_MS: '1s', MAX_CONNECTIONS: '-1' }), [
    'REQUEST_TIMEOUT_MS must be a whole number between 1000 and 600000',
    'KEEP_ALIVE_TIMEOUT_MS must be a whole number between 1000 and 600000',
    'MAX_CONNECTIONS must be a whole number between 1 and 1000000',
  ]);
});

t.test('ZITADEL_URL with credentials is refused without being echoed; the same rule serves the admin commands', async (t) => {
  const url = 'https://admin:SECRET-url-password@example.zitadel.cloud';
  const problems = problemsOf({ ...base, ZITADEL_URL: url });
  t.same(problems, ['ZITADEL_URL must be an https:// (or, for a local ZITADEL, http://) URL without credentials']);
  const urlProblems = (value: string, required = 'x') => {
    try {
      readZitadelUrl(value, required);
      return [];
    } catch (error) {
      return (error as ConfigError).problems;
    }
  };
  t.same(urlProblems(url), problems);
  t.same(urlProblems('ftp://example.zitadel.cloud'), problems);
  t.same(urlProblems('  ', 'your ZITADEL'), ['ZITADEL_URL is required: your ZITADEL']);
  t.equal(readZitadelUrl(' https://example.zitadel.cloud ', 'x').origin, 'https://example.zitadel.cloud');
  t.equal(plainHttpWarning(new URL('http://127.0.0.1:8080'), 'the admin token'), undefined);
  t.equal(plainHttpWarning(new URL('https://zitadel.example'), 'the admin token'), undefined);
  t.match(plainHttpWarning(new URL('http://zitadel.example'), 'the admin token'), /plain http:\/\/ to zitadel\.example.*the admin token travels unencrypted/);
});

t.test('ZITADEL_PAYLOAD_TYPE and ZITADEL_PAYLOAD_KEYS: jwe keys from the value or a file; one line per problem, no key material', async (t) => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const dir = mkdtempSync(path.join(tmpdir(), 'payload-keys-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'keys.pem');
  writeFileSync(file, `${rsa}\n${ec}`);
  const truncatedFile = path.join(dir, 'truncated.pem');
  writeFileSync(truncatedFile, `${ec}${rsa.slice(0, 150)}`);
  const hugeFile = path.join(dir, 'huge.pem');
  writeFileSync(hugeFile, `${ec}${' '.repeat(1024 * 1024)}`);

  t.equal(loadConfig({ ...base, ZITADEL_PAYLOAD_TYPE: 'JWT' }).config.payloadType, 'jwt', 'case-insensitive');
  t.same(loadConfig({ ...base, ZITADEL_PAYLOAD_TYPE: 'jwe', ZITADEL_PAYLOAD_KEYS: ec }).config.payloadKeys.map((key) => key.type), ['ec'], 'from the value');
  t.same(loadConfig({ ...base, ZITADEL_PAYLOAD_TYPE: 'jwe', ZITADEL_PAYLOAD_KEYS: file }).config.payloadKeys.map((key) => key.type), ['rsa', 'ec'], 'from a file, two keys');
  t.same(loadConfig({ ...base, ZITADEL_PAYLOAD_TYPE: 'jwe' }, { servesWebhooks: false }).config.payloadKeys, [], 'commands that serve no webhook need no key');

  const material = ec.split('\n')[1]!.slice(0, 16);
  const cases: [Record<string, string>, RegExp][] = [
    [{ ZITADEL_PAYLOAD_TYPE: 'jws' }, /^ZITADEL_PAYLOAD_TYPE must be one of json, jwt, jwe$/],
    [{ ZITADEL_PAYLOAD_TYPE: 'jwe' }, /^ZITADEL_PAYLOAD_KEYS is required with ZITADEL_PAYLOAD_TYPE=jwe: /],
    [{ ZITADEL_PAYLOAD_TYPE: 'jwt', ZITADEL_PAYLOAD_KEYS: ec }, /^ZITADEL_PAYLOAD_KEYS is for jwe only \(ZITADEL_PAYLOAD_TYPE is jwt\)/],
    [{ ZITADEL_PAYLOAD_KEYS: ec }, /^ZITADEL_PAYLOAD_KEYS is for jwe only \(ZITADEL_PAYLOAD_TYPE is json\)/],
    [{ ZITADEL_PAYLOAD_TYPE: 'jwe', ZITADEL_PAYLOAD_KEYS: path.join(dir, 'missing.pem') }, /^ZITADEL_PAYLOAD_KEYS is neither PEM nor a readable file \(ENOENT\)/],
    [{ ZITADEL_PAYLOAD_TYPE: 'jwe', ZITADEL_PAYLOAD_KEYS: ec.replace(material, 'x') }, /^ZITADEL_PAYLOAD_KEYS: the PEM block is not a readable private key/],
    [{ ZITADEL_PAYLOAD_TYPE: 'jwe', ZITADEL_PAYLOAD_KEYS: ec.replace(/PRIVATE KEY/g, 'PUBLIC KEY') }, /^ZITADEL_PAYLOAD_KEYS: the PEM block is a PUBLIC KEY/],
    [{ ZITADEL_PAYLOAD_TYPE: 'jwe', ZITADEL_PAYLOAD_KEYS: dir }, /^ZITADEL_PAYLOAD_KEYS names a directory, not a regular file: /],
    // The second key of a rotation cut short: as the value and as a file, never silently dropped.
    [{ ZITADEL_PAYLOAD_TYPE: 'jwe', ZITADEL_PAYLOAD_KEYS: `${ec}${rsa.slice(0, 150)}` }, /^ZITADEL_PAYLOAD_KEYS: the 2nd PEM block has no END line \(-----END RSA PRIVATE KEY-----\): it was cut short/],
    [{ ZITADEL_PAYLOAD_TYPE: 'jwe', ZITADEL_PAYLOAD_KEYS: truncatedFile }, /^ZITADEL_PAYLOAD_KEYS \(the file\): the 2nd PEM block has no END line/],
    // Only a regular file of bounded size is read: a device or an endless file never hangs the start.
    [{ ZITADEL_PAYLOAD_TYPE: 'jwe', ZITADEL_PAYLOAD_KEYS: '/dev/zero' }, /^ZITADEL_PAYLOAD_KEYS names a character device, not a regular file: give the private key itself .* or the path of a file holding it$/],
    [{ ZITADEL_PAYLOAD_TYPE: 'jwe', ZITADEL_PAYLOAD_KEYS: hugeFile }, /^ZITADEL_PAYLOAD_KEYS names a file larger than 1 MiB: /],
  ];
  for (const [env, message] of cases) {
    const problems = problemsOf({ ...base, ...env });
    t.equal(problems.length, 1, `one line: ${problems.join(' | ')}`);
    t.match(problems[0], message);
    t.notMatch(problems.join('\n'), material, 'no key material');
  }
});
