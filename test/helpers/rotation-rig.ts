import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConnectError } from '@connectrpc/connect';
import { createSessionServiceClient } from '@zitadel/client/v2';
import type { Test } from 'tap';
import { ALL_PERMISSIONS, LOGIN_CLIENT_PERMISSIONS, ZitadelSimulator } from '../../src/simulator/index.js';
import { ActionApi } from '../../src/zitadel/action-api.js';
import { ZitadelConnection } from '../../src/zitadel/connection.js';
import { PersonalAccessToken } from '../../src/zitadel/credentials.js';
import { startStack, type Stack } from './stack.js';

export interface Deployment {
  payloadType?: 'json' | 'jwt' | 'jwe';
  signingKeys: string[];
  payloadKeys?: string[];
}

/**
 * A simulator, a login client, and one endpoint for the whole test behind which runs "the deployment of the moment"
 * (a service with the given configuration), as an operator redeploys during a rotation.
 */
export async function rotationRig(t: Test, simulatorOptions: { payloadTypes?: boolean } = {}) {
  const simulator = new ZitadelSimulator({
    tokens: { admin: ALL_PERMISSIONS, 'login-ui': LOGIN_CLIENT_PERMISSIONS, 'simulator-token': ['session.read', 'session.delete'] },
    ...simulatorOptions,
  });
  await simulator.listen();
  const user = simulator.state.addUser({ loginName: 'alice@example.com', password: 'pw' });
  const api = new ActionApi({ baseUrl: simulator.url, token: 'admin' });
  const loginUi = new ZitadelConnection({ baseUrl: simulator.url, credentials: new PersonalAccessToken('login-ui') });
  const sessions = createSessionServiceClient(loginUi.transport);
  let deployment: Stack | undefined;
  const deploy = async (d: Deployment) => {
    await deployment?.service.close();
    deployment = await startStack({
      existingSimulator: simulator,
      signingKeys: d.signingKeys,
      limit: 1,
      env: () => ({ ZITADEL_PAYLOAD_TYPE: d.payloadType ?? 'json', ZITADEL_PAYLOAD_KEYS: d.payloadKeys?.join('\n') }),
    });
    return deployment;
  };
  // eslint-disable-next-line @typescript-eslint/no-misused-promises -- a test endpoint: a throw fails the test
  const endpoint = http.createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const answer = await deployment!.app.inject({ method: 'POST', url: '/webhooks/zitadel', headers: request.headers, payload: Buffer.concat(chunks) });
    response.writeHead(answer.statusCode, { 'content-type': 'application/json' }).end(answer.body);
  });
  await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    endpoint.closeAllConnections();
    endpoint.close();
    await deployment?.service.close();
    loginUi.close();
    await simulator.close();
  });
  const url = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/webhooks/zitadel`;
  /** One login (CreateSession with the password); the target waits and interrupts, so a refused webhook fails it. */
  const login = async () => {
    try {
      await sessions.createSession({ checks: { user: { search: { case: 'userId', value: user.id } }, password: { password: 'pw' } } });
      return 'ok';
    } catch (error) {
      return ConnectError.from(error).rawMessage;
    }
  };
  /** Logs in twice (limit 1): the second login must have evicted the first session, i.e. the service enforced. */
  const enforced = async () => {
    const first = await login();
    const second = await login();
    const active = simulator.state.activeSessionsOf(user.id).length;
    return first === 'ok' && second === 'ok' && active === 1 ? 'enforced' : `${first} / ${second} / ${active} active`;
  };
  return { simulator, api, url, deploy, login, enforced };
}
