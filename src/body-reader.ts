import type { IncomingMessage } from 'node:http';
import { errorCodes, type FastifyRequest } from 'fastify';
import { signatureRefusal } from './error-map.js';
import { startVerifying } from './signature/verify.js';

type Done = (error: Error | null, body?: Buffer) => void;

export interface BodyLimits {
  /** Read for any request (chunked included): BODY_LIMIT_BYTES. */
  admitted: number;
  /** A declared length up to this is read while the pool has room: LARGE_BODY_MAX_BYTES. */
  max: number;
  /** What the bodies over `admitted` may hold together: LARGE_BODY_POOL_BYTES. */
  pool: number;
}

export interface StreamedSignature {
  /** The webhook's signing keys (ZITADEL_SIGNING_KEYS). */
  keys: readonly string[];
  toleranceSeconds: number;
  now: () => number;
  /** The bodies whose signature the reader verified: the handler verifies every other body itself. */
  verified: WeakSet<Buffer>;
}

/**
 * Reads a webhook's body, keeping the socket's chunks as they arrive (no copy) and, with `signature`, feeding them to
 * the ZITADEL-Signature HMACs as they stream in (issue 15). A body no `v1` matches is refused with the signature's
 * own answer (ERR_SIGNATURE_MISMATCH, or stale/future when its time ran out meanwhile) without ever being joined, so a
 * flood of forged bodies at the limit allocates each body once (the socket's chunks) rather than twice. A body that
 * verifies is joined once and added to `signature.verified`; a body the reader could not verify (its header does not
 * parse, or no `signature`) is joined and left to the handler, which verifies every body not in that set.
 *
 * A declared length over `admitted` and up to `max` is read only while the large bodies being read fit in `pool`: a real payload swollen by escaped headers gets through, and a flood of
 * large forged bodies holds at most `pool` more. The answers stay Fastify's: too large is FST_ERR_CTP_BODY_TOO_LARGE
 * (413), a body shorter than declared FST_ERR_CTP_INVALID_CONTENT_LENGTH. A chunked body (no Content-Length) is read
 * up to `admitted`.
 */
export function bodyReader(limits: BodyLimits, signature?: StreamedSignature) {
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
    const signatureHeader = request.headers['zitadel-signature'];
    const started = signature
      ? startVerifying({
          header: Array.isArray(signatureHeader) ? signatureHeader.join(',') : signatureHeader,
          keys: signature.keys,
          toleranceSeconds: signature.toleranceSeconds,
        })
      : undefined;
    // A header that does not parse: the body is read as is and the handler refuses it (the early refusal has already
    // answered such a header unless the body came first, e.g. 413).
    const verifier = started !== undefined && !('valid' in started) ? started : undefined;
    const chunks: Buffer[] = [];
    let received = 0;

    const finish = (error: Error | null, result?: Buffer) => {
      payload.removeListener('data', onData);
      payload.removeListener('end', onEnd);
      payload.removeListener('error', onError);
      done(error, result);
    };
    const onData = (chunk: Buffer | string) => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      received += bytes.length;
      if (received > limit) return finish(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
      chunks.push(bytes);
      verifier?.update(bytes);
    };
    const onEnd = () => {
      if (declared !== undefined && received !== declared) {
        return finish(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
      }
      const verdict = verifier?.verdict(signature!.now());
      if (verdict !== undefined && !verdict.valid) return finish(signatureRefusal(verdict));
      const body = Buffer.concat(chunks, received);
      if (verdict !== undefined) signature!.verified.add(body);
      finish(null, body);
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
