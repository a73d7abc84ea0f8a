import type { IncomingMessage } from 'node:http';
import { errorCodes, type FastifyRequest } from 'fastify';

type Done = (error: Error | null, body?: Buffer) => void;

/**
 * Reads a webhook's body into one Buffer of the declared Content-Length, copying each chunk in as it arrives.
 * Fastify's `parseAs: 'buffer'` keeps the chunks and joins them into a second copy at the end, so at the hard limit
 * (400 requests at once, issue 15) every body is held twice while it is joined. The answers stay Fastify's: a
 * declared or received length over `limit` is FST_ERR_CTP_BODY_TOO_LARGE (413), a body shorter than declared
 * FST_ERR_CTP_INVALID_CONTENT_LENGTH. A chunked body (no Content-Length) goes into one buffer of the limit.
 */
export function bodyReader(limit: number) {
  return (request: FastifyRequest, payload: IncomingMessage, done: Done): void => {
    const header = request.headers['content-length'];
    // Node's parser has refused a malformed Content-Length already; a chunked body has none.
    const declared = header === undefined || !/^\d+$/.test(header) ? undefined : Number(header);
    if (declared !== undefined && declared > limit) return done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
    let body: Buffer | undefined;
    let received = 0;

    const finish = (error: Error | null, result?: Buffer) => {
      payload.removeListener('data', onData);
      payload.removeListener('end', onEnd);
      payload.removeListener('error', onError);
      done(error, result);
    };
    const onData = (chunk: Buffer | string) => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const at = received;
      received += bytes.length;
      if (received > limit || (declared !== undefined && received > declared)) {
        return finish(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
      }
      // Chunked (no Content-Length): one buffer of the limit, filled as the chunks come, instead of chunks and a join.
      bytes.copy((body ??= Buffer.allocUnsafe(declared ?? limit)), at);
    };
    const onEnd = () => {
      if (declared !== undefined && received !== declared) {
        return finish(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
      }
      finish(null, body === undefined ? Buffer.alloc(0) : body.subarray(0, received));
    };
    const onError = (error: Error & { statusCode?: number }) => {
      if (!(typeof error.statusCode === 'number' && error.statusCode >= 400)) error.statusCode = 400;
      finish(error);
    };
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', onError);
    payload.resume();
  };
}
