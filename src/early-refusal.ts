import type { preParsingHookHandler, RouteOptions } from 'fastify';
import { signatureRefusal } from './error-map.js';
import { LARGE_BODY_MAX_BYTES, WEBHOOK_PATH } from './routes.js';
import { checkSignatureHeader } from './signature/verify.js';

export interface EarlyRefusalOptions {
  signatureToleranceSeconds: number;
  now: () => number;
}

/** `type/subtype` with well-formed parameters: only then is the content type judged here (Fastify judges the rest). */
const CONTENT_TYPE = /^\s*([\w!#$&^.+-]+\/[\w!#$&^.+-]+)\s*(?:;\s*[\w!#$&^.+-]+=(?:"[^"]*"|[\w!#$&^.+-]+)\s*)*$/;

/**
 * Issue 15: refuses a webhook whose ZITADEL-Signature header alone condemns it (missing, malformed, stale, from the
 * future) before its body is buffered, so that a flood of large forged bodies holds no memory. It is a preParsing hook
 * of the webhook route, added from app.ts when the route is declared (onRoute).
 *
 * The answers keep their codes and their order: the request is left to the usual path (body read, then the same
 * refusal) unless the content type has a parser on the route (else 415 comes first) and the Content-Length, when
 * declared, is within LARGE_BODY_MAX_BYTES (else 413 comes first). A chunked body (no Content-Length) with a condemned
 * header is refused at once, whatever its size would have been: only the body could say so. The refusal is
 * passed to the route's error handler, which counts, logs and answers it like the refusals after the body, and the
 * connection is closed after the answer (as for the other routes that leave a body unread, app.ts).
 */
export function earlyRefusal(options: EarlyRefusalOptions) {
  const preParsing: preParsingHookHandler = (request, reply, payload, done) => {
    const { headers } = request;
    const length = headers['content-length'];
    // A declared size over the limit is answered 413 first; without one (chunked) the size is only known from the
    // body, so a header that fails on its own is answered at once rather than after reading up to the limit.
    if (length !== undefined && !(Number(length) <= LARGE_BODY_MAX_BYTES)) return void done(null, payload);
    const mediaType = CONTENT_TYPE.exec(headers['content-type'] ?? '')?.[1]?.toLowerCase();
    if (mediaType === undefined || !request.server.hasContentTypeParser(mediaType)) return void done(null, payload);
    const header = headers['zitadel-signature'];
    const verdict = checkSignatureHeader({
      header: Array.isArray(header) ? header.join(',') : header,
      toleranceSeconds: options.signatureToleranceSeconds,
      now: options.now(),
    });
    if (!('valid' in verdict)) return void done(null, payload);
    // The body is left unread: close the connection after the answer rather than read (and wait for) the rest of it.
    reply.header('connection', 'close');
    done(signatureRefusal(verdict));
  };

  return function onRoute(route: RouteOptions): void {
    if (route.url !== WEBHOOK_PATH || route.method !== 'POST') return;
    const existing = route.preParsing === undefined ? [] : Array.isArray(route.preParsing) ? route.preParsing : [route.preParsing];
    route.preParsing = [...existing, preParsing];
  };
}
