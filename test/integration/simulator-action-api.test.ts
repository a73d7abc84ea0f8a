import t, { type Test } from 'tap';
import { ZitadelSimulator } from '../../src/simulator/index.js';
import { restCaller } from '../helpers/simulator-rest.js';

const CREATE = '/zitadel.session.v2.SessionService/CreateSession';

async function setup(t: Test) {
  const simulator = new ZitadelSimulator({ tokens: { owner: ['action.target.read', 'action.target.write', 'action.target.delete', 'action.execution.read', 'action.execution.write'], reader: ['action.target.read'] } });
  await simulator.listen();
  t.teardown(() => simulator.close());
  const call = restCaller(simulator.url);
  return { simulator, call };
}

t.test('targets: create, get, search, update, rotate, delete (ZITADEL\'s JSON shapes)', async (t) => {
  const { call, simulator } = await setup(t);
  const created = await call('POST', '/v2/actions/targets', { name: 'limiter', endpoint: 'https://limiter.example.com/webhooks/zitadel', timeout: '10s', restAsync: {} });
  t.equal(created.status, 200);
  t.same(Object.keys(created.json).sort(), ['creationDate', 'id', 'signingKey']);
  t.match(created.json.signingKey, /^[A-Za-z0-9]{36}$/, 'a 36-character key');
  const id = created.json.id as string;

  const got = await call('GET', `/v2/actions/targets/${id}`);
  t.same(got.json.target, {
    id,
    creationDate: created.json.creationDate,
    changeDate: created.json.creationDate,
    name: 'limiter',
    restAsync: {},
    timeout: '10s',
    endpoint: 'https://limiter.example.com/webhooks/zitadel',
    signingKey: created.json.signingKey,
  });
  t.equal((await call('POST', '/v2/actions/targets', { name: 'limiter', endpoint: 'https://x', timeout: '1s', restAsync: {} })).status, 409, 'names are unique');

  const search = await call('POST', '/v2/actions/targets/search', { filters: [{ targetNameFilter: { targetName: 'limiter' } }] });
  t.same(search.json.pagination, { totalResult: '1', appliedLimit: '100' }, 'uint64 as strings');
  t.equal(search.json.targets[0].id, id);
  t.equal((await call('POST', '/v2/actions/targets/search', { filters: [{ targetNameFilter: { targetName: 'LIM', method: 'TEXT_FILTER_METHOD_STARTS_WITH_IGNORE_CASE' } }] })).json.targets.length, 1);

  const updated = await call('POST', `/v2/actions/targets/${id}`, { restWebhook: { interruptOnError: true }, timeout: '5s' });
  t.equal(updated.status, 200);
  t.notOk('signingKey' in updated.json, 'no key unless rotated');
  t.same((await call('GET', `/v2/actions/targets/${id}`)).json.target.restWebhook, { interruptOnError: true });
  const rotated = await call('POST', `/v2/actions/targets/${id}`, { expirationSigningKey: '0s' });
  t.match(rotated.json.signingKey, /^[A-Za-z0-9]{36}$/);
  t.not(rotated.json.signingKey, created.json.signingKey, 'rotated at once');
  t.equal(simulator.actions.targets.get(id)!.signingKey, rotated.json.signingKey);

  t.equal((await call('DELETE', `/v2/actions/targets/${id}`)).status, 200);
  t.equal((await call('GET', `/v2/actions/targets/${id}`)).status, 404);
  t.equal((await call('DELETE', `/v2/actions/targets/${id}`)).status, 200, 'delete is idempotent');
});

t.test('validation and permissions answer like ZITADEL\'s gateway', async (t) => {
  const { call } = await setup(t);
  const bad = await call('POST', '/v2/actions/targets', { name: 'x', endpoint: 'https://x', timeout: '0s', restAsync: {} });
  t.equal(bad.status, 400);
  t.match(bad.json.message, /NoTimeout/);
  t.equal((await call('POST', '/v2/actions/targets', { name: 'x', endpoint: 'https://x', timeout: '271s', restAsync: {} })).status, 400);
  t.equal((await call('POST', '/v2/actions/targets', { name: 'x', endpoint: 'https://x', timeout: '1s' })).status, 400, 'a type is required');
  t.equal((await call('POST', '/v2/actions/targets', { name: 'x', endpoint: 'https://x', timeout: '1s', restAsync: {} }, 'reader')).status, 403);
  t.equal((await call('POST', '/v2/actions/targets/search', {}, 'nobody')).status, 401);
  t.equal((await call('PUT', '/v2/actions/executions', { condition: { response: { method: CREATE } }, targets: ['missing'] })).status, 404);
  t.equal((await call('POST', '/v2/actions/targets/search', { pagination: { limit: 1001 } })).status, 400);
});

t.test('executions: set replaces the list, search filters, deleting a target unbinds it', async (t) => {
  const { call, simulator } = await setup(t);
  const a = (await call('POST', '/v2/actions/targets', { name: 'a', endpoint: 'https://a', timeout: '1s', restAsync: {} })).json.id;
  const b = (await call('POST', '/v2/actions/targets', { name: 'b', endpoint: 'https://b', timeout: '1s', restAsync: {} })).json.id;
  const condition = { response: { method: CREATE } };
  t.equal((await call('PUT', '/v2/actions/executions', { condition, targets: [a, b] })).status, 200);
  t.equal((await call('PUT', '/v2/actions/executions', { condition, targets: [b] })).status, 200);
  const found = await call('POST', '/v2/actions/executions/search', { filters: [{ inConditionsFilter: { conditions: [condition] } }] });
  t.same(found.json.executions.map((e: any) => [e.condition, e.targets]), [[condition, [b]]], 'the list was replaced');
  t.equal((await call('POST', '/v2/actions/executions/search', { filters: [{ targetFilter: { targetId: a } }] })).json.executions.length, 0);
  t.equal((await call('POST', '/v2/actions/executions/search', { filters: [{ executionTypeFilter: { executionType: 'EXECUTION_TYPE_RESPONSE' } }] })).json.executions.length, 1);
  await call('DELETE', `/v2/actions/targets/${b}`);
  t.equal(simulator.actions.executions.size, 0, 'an execution without targets is gone');
  t.same(simulator.actionApiRequests.map((r) => r.method), ['POST', 'POST', 'PUT', 'PUT', 'POST', 'POST', 'POST', 'DELETE'], 'every request is recorded');
});
