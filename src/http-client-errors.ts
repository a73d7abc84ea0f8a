import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { toServiceError } from './error-map.js';
import type { ErrorCode } from './errors.js';

/**
 * Node's 'clientError': a request the HTTP parser refused (a bad header byte, a Content-Length shorter than the
 * body, headers too large) or one that did not arrive within REQUEST_TIMEOUT_MS. There is no request object; the
 * answer is written to the socket, which is then closed.
 *
 * The error is never logged: Node attaches the bytes it could not parse (`rawPacket`), which is the request itself,
 * a ZITADEL payload with its password and session tokens. Only its code is (HPE_INVALID_HEADER_TOKEN, ...).
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Duplex, logger: Logger): void {
  // A reset connection has nobody to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  // Anything the parser refused that the catalogue does not name otherwise is a bad request.
  const serviceError = toServiceError(error, 'ERR_BAD_REQUEST');
  const { code } = serviceError;
  // Node's codes are fixed identifiers; anything else is not echoed.
  const reason = typeof error.code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(error.code) ? error.code : 'unknown';
  logger.debug({ code, reason }, 'client error: the request was refused before it reached a route');
  // When the request reached a route (its headers were complete) and that route already answered, the answer stands.
  const response = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (socket.writable && !response?.headersSent) {
    const body = serviceError.body();
    socket.write(
      `HTTP/1.1 ${serviceError.statusCode} ${statusText[code]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

const statusText: Partial<Record<ErrorCode, string>> = {
  ERR_BAD_REQUEST: 'Bad Request',
  ERR_REQUEST_TIMEOUT: 'Request Timeout',
  ERR_HEADERS_TOO_LARGE: 'Request Header Fields Too Large',
};
