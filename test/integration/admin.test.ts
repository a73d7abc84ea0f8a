import t, { type Test } from 'tap';
import { runDoctor } from '../../src/admin/doctor.js';
import { METHODS, register, rotateKey, unregister } from '../../src/admin/registration.js';
import { ALL_PERMISSIONS, ZitadelSimulator } from '../../src/simulator/index.js';
import { ActionApi, type TargetSpec } from '../../src/zitadel/action-api.js';
import { ZitadelConnection } from '../../src/zitadel/connection.js';
import { PersonalAccessToken } from '../../src/zitadel/credentials.js';
import { rotationRig } from '../helpers/rotation-rig.js';
import { startStack } from '../helpers/stack.js';

const [CREATE, SET] = METHODS;
const spec: TargetSpec = { name: 'session-limiter', endpoint: 'https://limiter.example.com/webhooks/zitadel', timeout: '10s', kind: 'restAsync', interruptOnError: false };

async function simulatorWithAdmin(t: Test, tokens: Record<string, readonly (typeof ALL_PERMISSIONS)[number][]> = {}) {
  const simulator = new ZitadelSimulator({ tokens: { admin: ALL_PERMISSIONS, ...tokens } });
  await simulator.listen();
  t.teardown(() => simulator.close());
  return { simulator, api: new ActionApi({ baseUrl: simulator.url, token: 'admin' }) };
}

t.test('register twice: one target bound to both executions, beside a foreign target, and the second run changes nothing', async (t) => {
  const { simulator, api } = await simulatorWithAdmin(t);
  const { actions, actionApiRequests } = simulator;
  const foreign = actions.createTarget({ name: 'audit-log', endpoint: 'https://audit.example.com', type: 'restAsync' });
  actions.setExecution({ response: { method: CREATE } }, [foreign.id]);

  const first = await register(api, spec);
  t.equal(first.created, true);
  t.match(first.signingKey, /^[A-Za-z0-9]{36}$/, 'the key is returned on creation');
  t.same(
    actionApiRequests.map((r) => `${r.method} ${r.path}`),
    [
      'POST /v2/actions/targets/search',
      'POST /v2/actions/targets',
      'POST /v2/actions/executions/search',
      'PUT /v2/actions/executions',
      'POST /v2/actions/executions/search',
      'PUT /v2/actions/executions',
    ],
    'search, create, then read-merge-write each execution',
  );
  actionApiRequests.length = 0;

  const second = await register(api, spec);
  t.same({ ...second, executions: second.executions.map((e) => e.changed) }, {
    targetId: first.targetId,
    name: 'session-limiter',
    created: false,
    updated: false,
    signingKey: undefined,
    payloadType: 'json',
    executions: [false, false],
  });
  t.same(
    actionApiRequests.map((r) => r.method),
    ['POST', 'POST', 'POST'],
    'the second run only reads: one target search and two execution searches',
  );
  t.equal(actions.targets.size, 2, 'one target of ours, next to the foreign one');
  t.same(actions.executions.get(JSON.stringify({ response: { method: CREATE } }))!.targets, [foreign.id, first.targetId], 'the foreign target stays first');
  t.same(actions.executions.get(JSON.stringify({ response: { method: SET } }))!.targets, [first.targetId]);

  const changed = await register(api, { ...spec, kind: 'restWebhook', interruptOnError: true });
  t.equal(changed.updated, true, 'changed settings update the target in place');
  t.equal(actions.targets.get(first.targetId)!.type, 'restWebhook');
  t.equal(actions.targets.get(first.targetId)!.interruptOnError, true);
});

t.test('unregister keeps other targets and deletes ours; nothing to do is fine', async (t) => {
  const { simulator, api } = await simulatorWithAdmin(t);
  const { actions } = simulator;
  const foreign = actions.createTarget({ name: 'audit-log', endpoint: 'https://audit.example.com', type: 'restAsync' });
  actions.setExecution({ response: { method: SET } }, [foreign.id]);
  const { targetId } = await register(api, spec);
  const result = await unregister(api, spec.name);
  t.equal(result.deleted, true);
  t.notOk(actions.targets.has(targetId));
  t.same(actions.executions.get(JSON.stringify({ response: { method: SET } }))!.targets, [foreign.id]);
  t.notOk(actions.executions.has(JSON.stringify({ response: { method: CREATE } })), 'an execution left empty is gone');
  t.same(await unregister(api, spec.name), { executions: [], deleted: false });
});

t.test('rotate-key: no login fails at any point of the rotation', async (t) => {
  // One endpoint for the whole rotation; behind it, the deployment of the moment (a service with its keys).
  const { simulator, api, url, deploy: deployment, login } = await rotationRig(t);
  const deploy = (keys: string[]) => deployment({ signingKeys: keys });

  const { signingKey: oldKey } = await register(api, { ...spec, endpoint: url, kind: 'restWebhook', interruptOnError: true });
  await deploy([oldKey!]);
  t.equal(await login(), 'ok', 'before the rotation');

  const step1 = await rotateKey(api, spec.name, false);
  if (step1.phase !== 'started') return t.fail('step 1 did not start');
  t.equal(await login(), 'ok', 'after step 1, before the redeploy: ZITADEL still signs with the old key');
  t.equal((await rotateKey(api, spec.name, false)).phase, 'already-started', 'step 1 twice is safe');
  // Finishing before the service holds the new key would make ZITADEL sign with a key every receiver refuses (#12).
  const executionsBefore = METHODS.map((method) => simulator.actions.executions.get(JSON.stringify({ response: { method } }))!.targets);
  await t.rejects(rotateKey(api, spec.name, true), /refusing to finish.*401 ERR_SIGNATURE_MISMATCH.*ZITADEL_SIGNING_KEYS/s, 'step 2 refused');
  t.same(
    METHODS.map((method) => simulator.actions.executions.get(JSON.stringify({ response: { method } }))!.targets),
    executionsBefore,
    'nothing changed',
  );
  t.equal(simulator.actions.targets.size, 2, 'both targets still there');
  t.equal(await login(), 'ok', 'logins go on with the old key');
  await deploy([oldKey!, step1.signingKey]);
  t.equal(await login(), 'ok', 'with both keys deployed');

  const finished = await rotateKey(api, spec.name, true);
  t.equal(finished.phase, 'finished');
  t.equal(await login(), 'ok', 'ZITADEL now signs with the new key; both are accepted');
  await deploy([step1.signingKey]);
  t.equal(await login(), 'ok', 'the old key dropped');

  const [only] = [...simulator.actions.targets.values()];
  t.equal(simulator.actions.targets.size, 1);
  t.equal(only!.name, 'session-limiter', 'the new target took the old name');
  for (const method of METHODS) {
    t.same(simulator.actions.executions.get(JSON.stringify({ response: { method } }))!.targets, [only!.id]);
  }
  await t.rejects(rotateKey(api, spec.name, true), /start the rotation/);

  // The control: had the operator skipped adding the new key, logins would have failed.
  await deploy([oldKey!]);
  t.match(await login(), /No v1 signature matches|Errors\.Execution\.Failed/, 'a refused signature does fail the login');
});

t.test('doctor: all PASS with the right tokens; a token without session.delete FAILs with a clear line', async (t) => {
  const { simulator, api } = await simulatorWithAdmin(t, { runtime: ['session.read', 'session.delete'], reader: ['session.read'] });
  const stack = await startStack({ token: 'simulator-token' });
  t.teardown(() => stack.close());
  const address = await stack.app.listen({ port: 0, host: '127.0.0.1' });
  const { signingKey } = await register(api, { ...spec, endpoint: `${address}/webhooks/zitadel` });
  const connection = (token: string) => {
    const c = new ZitadelConnection({ baseUrl: simulator.url, credentials: new PersonalAccessToken(token) });
    t.teardown(() => c.close());
    return c.transport;
  };
  // The service in `stack` verifies with the helper's key: make the target's key that one for the endpoint check.
  simulator.actions.targets.forEach((target) => (target.signingKey = 'Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7C'));
  simulator.state.addApplication({ projectName: 'shop', name: 'web', oidc: { backChannelLogoutUri: 'https://shop/logout' } });
  simulator.state.addApplication({ projectName: 'shop', name: 'mobile', oidc: { accessTokenType: 'jwt', grantTypes: ['authorization_code', 'refresh_token'] } });

  const healthy = await runDoctor({
    zitadelUrl: simulator.url,
    runtime: connection('runtime'),
    signingKeys: ['Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7C'],
    admin: { api, transport: connection('admin') },
    targetName: spec.name,
  });
  const line = (check: RegExp) => healthy.find((r) => check.test(r.check));
  t.same(healthy.filter((r) => r.status === 'FAIL'), [], 'no FAIL');
  for (const check of [/reachable/, /session\.read/, /session\.delete/, /^target$/, /CreateSession/, /SetSession/, /signing key/, /endpoint/]) {
    t.equal(line(check)?.status, 'PASS', String(check));
  }
  const warnings = healthy.filter((r) => r.status === 'WARN').map((r) => `${r.check}: ${r.detail}`);
  t.equal(warnings.length, 3, warnings.join('\n'));
  t.match(warnings.join('\n'), /app "mobile".*JWT access tokens[\s\S]*app "mobile".*refresh tokens granted/);
  t.notMatch(warnings.join('\n'), /app "web"/, 'the web app is configured well');
  t.not(signingKey, undefined);

  const noDelete = await runDoctor({ zitadelUrl: simulator.url, runtime: connection('reader'), signingKeys: ['x'], targetName: spec.name, limitMetadataKey: 'session_limit' });
  const failed = noDelete.filter((r) => r.status === 'FAIL');
  t.same(failed.map((r) => r.check), ['session.delete', 'metadata read']);
  t.match(failed[1]!.detail, /PermissionDenied: SESSION_LIMIT_METADATA_KEY needs user\.read/);
  t.match(failed[0]!.detail, /PermissionDenied: grant the service user IAM_USER_MANAGER/);
  t.match(noDelete.find((r) => r.check === 'target and executions')?.status, 'SKIP', 'without an admin token the target is skipped');

  const wrongKey = await runDoctor({ zitadelUrl: simulator.url, runtime: connection('runtime'), signingKeys: ['old-key'], admin: { api, transport: connection('admin') }, targetName: spec.name });
  t.match(wrongKey.find((r) => r.check === 'signing key'), { status: 'FAIL', detail: /does not hold the target's current key/ });

  const badToken = await runDoctor({ zitadelUrl: simulator.url, runtime: connection('nope'), signingKeys: ['x'], targetName: 'x' });
  t.match(badToken[0], { status: 'FAIL', detail: /rejected the token/ });
});

t.test('doctor: an admin token that cannot read applications says so and skips that part', async (t) => {
  const limited = ['action.target.read', 'action.execution.read', 'session.read', 'session.delete'] as const;
  const { simulator } = await simulatorWithAdmin(t, { limited });
  const transport = new ZitadelConnection({ baseUrl: simulator.url, credentials: new PersonalAccessToken('limited') });
  t.teardown(() => transport.close());
  const results = await runDoctor({
    zitadelUrl: simulator.url,
    runtime: transport.transport,
    signingKeys: ['x'],
    admin: { api: new ActionApi({ baseUrl: simulator.url, token: 'limited' }), transport: transport.transport },
    targetName: 'missing',
  });
  t.match(results.find((r) => r.check === 'applications'), { status: 'WARN', detail: /cannot read applications \(PermissionDenied\): skipped/ });
  t.match(results.find((r) => r.check === 'target'), { status: 'FAIL', detail: /run "zitadel-session-limiter register/ });
});

t.test('doctor warns when ON_LIMIT=deny-new but the target does not wait and interrupt', async (t) => {
  const { simulator, api } = await simulatorWithAdmin(t);
  const connection = new ZitadelConnection({ baseUrl: simulator.url, credentials: new PersonalAccessToken('admin') });
  t.teardown(() => connection.close());
  const run = () =>
    runDoctor({ zitadelUrl: simulator.url, runtime: connection.transport, signingKeys: ['x'], admin: { api, transport: connection.transport }, targetName: spec.name, onLimit: 'deny-new' });
  await register(api, spec);
  t.match((await run()).find((r) => r.check === 'deny-new'), { status: 'WARN', detail: /target is restAsync.*register --deny-new/ });
  await register(api, { ...spec, kind: 'restWebhook', interruptOnError: true });
  t.equal((await run()).find((r) => r.check === 'deny-new'), undefined, 'a waiting, interrupting webhook is right');
});
