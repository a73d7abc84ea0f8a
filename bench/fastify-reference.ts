/**
 * A reference of the benchmark (bench/ only, never shipped): an empty Fastify route doing what bench/baseline.ts does
 * in reject mode (read the body, check the HMAC, answer an empty 401), with Fastify's defaults and no logger, so that
 * the rejection row can tell Fastify's own cost from ours.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import Fastify from 'fastify';

const key = process.env.KEY!;
const app = Fastify({ logger: false });
app.removeAllContentTypeParsers();
app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
app.post('/', (request, reply) => {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec((request.headers['zitadel-signature'] as string | undefined) ?? '');
  const valid = match && timingSafeEqual(createHmac('sha256', key).update(`${match[1]}.`).update(request.body as Buffer).digest(), Buffer.from(match[2]!, 'hex'));
  return reply.code(valid ? 204 : 401).send();
});
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
