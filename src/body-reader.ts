import type { IncomingMessage } from 'node:http';
import { errorCodes, type FastifyRequest } from 'fastify';

type Done = (error: Error | null, body?: Buffer) => void;

export interface BodyLimits {
  /** Read for any request (chunked included): BODY_LIMIT_BYTES. */
  admitted: number;
  /** A declared length up to this is read while the pool has room: LARGE_BODY_MAX_BYTES. */
  max: number;
  /** What the bodies over `admitted` may hold together: LARGE_BODY_POOL_BYTES. */
  pool: number;
}

/**
 * Reads a webhook's body into one Buffer of the declared Content-Length, copying each chunk in as it arrives.
 * Fastify's `parseAs: 'buffer'` keeps the chunks and joins them into a second copy at the end, so at the hard limit
 * (400 requests at once, issue 15) every body is held twice while it is joined. A chunked body (no Content-Length)
 * goes into one buffer of `admitted` bytes.
 *
 * A declared length over `admitted` and up to `max` is read only while the large bodies being read fit in `pool`: a real payload swollen by escaped headers gets through, and a flood of
 * large forged bodies holds at most `pool` more. The answers stay Fastify's: too large is FST_ERR_CTP_BODY_TOO_LARGE
 * (413), a body shorter than declared FST_ERR_CTP_INVALID_CONTENT_LENGTH.
 */
export function bodyReader(limits: BodyLimits) {
  let pooled = 0;
  return (request: FastifyRequest, payload: IncomingMessage, done: Done): void => {
    const header = request.headers['content-length'];
    // Node's parser has refused a malformed Content-Length already; a chunked body has none.
    const declared = header === undefined || !/^\d+$/.test(header) ? undefined : Number(header);
    const limit = declared === undefined ? limits.admitted : Math.min(declared, limits.max);
    if (declared !== undefined && declared > limits.max) return done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
    if (declared !== undefined && declared > limits.admitted) {
      if (pooled + declared > limits.pool) return done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
      pooled += declared;
      // Returned when the request stream closes: once its body is read (or its connection gone). A forged body is
      // dropped right after the HMAC check; a signed one is held through its enforcement, uncounted by then.
      request.raw.once('close', () => (pooled -= declared));
    }
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
      if (received > limit) return finish(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
      bytes.copy((body ??= Buffer.allocUnsafe(limit)), at);
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
