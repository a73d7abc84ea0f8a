import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { JWT_BEARER_GRANT } from '../zitadel/credentials.js';
import type { Permission, SimulatorState } from './state.js';

/**
 * Service-account keys and ZITADEL's token endpoint for the JWT profile grant (/oauth/v2/token), enough for the
 * service's ZITADEL_KEY_FILE: the JWT is verified against the key's public half, and the access token issued
 * carries the service user's permissions and expires.
 */

export interface ServiceKeyFile {
  type: 'serviceaccount';
  keyId: string;
  key: string;
  userId: string;
}

/** Adds a key for a service user with `permissions`; returns the key file ZITADEL would let you download. */
export function addServiceAccountKey(state: SimulatorState, permissions: Iterable<Permission>, userId = state.newId()): ServiceKeyFile {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyId = state.newId();
  state.serviceKeys.set(keyId, { userId, publicKey, permissions: new Set(permissions) });
  // ZITADEL's key files hold the private key in PKCS#1.
  return { type: 'serviceaccount', keyId, key: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(), userId };
}

function send(response: ServerResponse, status: number, body: Record<string, unknown>) {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

export async function tokenEndpoint(state: SimulatorState, issuer: string, request: IncomingMessage, response: ServerResponse) {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  state.tokenRequests += 1;
  if (request.method !== 'POST' || form.get('grant_type') !== JWT_BEARER_GRANT) {
    return send(response, 400, { error: 'unsupported_grant_type' });
  }
  const assertion = form.get('assertion') ?? '';
  try {
    const { kid } = decodeProtectedHeader(assertion);
    const key = kid === undefined ? undefined : state.serviceKeys.get(kid);
    if (!key) throw new Error('unknown key');
    await jwtVerify(assertion, key.publicKey, {
      audience: issuer,
      issuer: key.userId,
      subject: key.userId,
      algorithms: ['RS256'],
      currentDate: state.now(),
    });
    const token = randomBytes(24).toString('base64url');
    state.addToken(token, key.permissions, key.userId);
    state.tokenExpiry.set(token, state.now().getTime() + state.accessTokenLifetimeSeconds * 1000);
    return send(response, 200, { access_token: token, token_type: 'Bearer', expires_in: state.accessTokenLifetimeSeconds });
  } catch {
    return send(response, 400, { error: 'invalid_grant', error_description: 'assertion invalid' });
  }
}
