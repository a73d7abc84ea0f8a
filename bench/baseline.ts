/**
 * The references of the benchmark (bench/ only, never shipped): a bare node:http handler with no framework and no
 * logging. BASELINE_MODE=reject reads the body and checks the HMAC; BASELINE_MODE=enforce also makes the same
 * ZITADEL calls as the service (GetSession, ListSessions, DeleteSession) with the same client.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { createServerTransport } from '@zitadel/client/node';
import { createSessionServiceClient } from '@zitadel/client/v2';
import { SessionFieldName } from '@zitadel/proto/zitadel/session/v2/session_pb.js';

const key = process.env.KEY!;
const limit = Number(process.env.LIMIT ?? 2);
const client = process.env.ZITADEL_URL
  ? createSessionServiceClient(createServerTransport(process.env.ZITADEL_TOKEN!, { baseUrl: process.env.ZITADEL_URL }))
  : undefined;

function valid(header: string | undefined, body: Buffer): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!match) return false;
  const expected = createHmac('sha256', key).update(`${match[1]}.`).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(match[2]!, 'hex'));
}

const server = http.createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => void (async () => {
    const body = Buffer.concat(chunks);
    if (!valid(request.headers['zitadel-signature'] as string | undefined, body)) return void response.writeHead(401).end();
    if (!client) return void response.writeHead(204).end();
    const payload = JSON.parse(body.toString('utf8'));
    const { session } = await client.getSession({ sessionId: payload.request.sessionId });
    const userId = session!.factors!.user!.id;
    const { sessions } = await client.listSessions({
      query: { limit: 1000, asc: true },
      queries: [{ query: { case: 'userIdQuery', value: { id: userId } } }],
      sortingColumn: SessionFieldName.CREATION_DATE,
    });
    const ranked = sessions.filter((s) => s.factors?.password).sort((a, b) => Number(b.factors!.password!.verifiedAt!.seconds - a.factors!.password!.verifiedAt!.seconds) || b.factors!.password!.verifiedAt!.nanos - a.factors!.password!.verifiedAt!.nanos);
    await Promise.all(ranked.slice(limit).map((s) => client.deleteSession({ sessionId: s.id })));
    response.writeHead(204).end();
  })());
});
server.listen(Number(process.env.PORT), '127.0.0.1');
