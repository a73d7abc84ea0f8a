/**
 * The payload types a ZITADEL target sends (ZITADEL v4.8 and later, docs/zitadel-behaviour.md#payload-types-json-jwt-jwe):
 * `json` (the execution payload itself), `jwt` (a compact JWS whose payload is that JSON) and `jwe` (a compact JWE
 * whose plaintext is that JWS). Pure: no I/O.
 */
export const PAYLOAD_TYPES = ['json', 'jwt', 'jwe'] as const;
export type PayloadType = (typeof PAYLOAD_TYPES)[number];

/** What a body looks like: one of the payload types, or none of them. */
export type BodyForm = PayloadType | 'other';

const OPEN_BRACE = 0x7b;
const DOT = 0x2e;

/** base64url's alphabet (A-Z a-z 0-9 - _), the only bytes besides dots in a compact serialisation. */
function isBase64Url(byte: number): boolean {
  return (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || byte === 0x2d || byte === 0x5f;
}

function isWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

/**
 * The form of a body, from its bytes alone: a JSON object (`{` after optional whitespace), a compact JWS (three
 * base64url parts), a compact JWE (five), or something else. It decides nothing about validity.
 */
export function bodyForm(body: Uint8Array): BodyForm {
  let start = 0;
  while (start < body.length && isWhitespace(body[start]!)) start++;
  if (start < body.length && body[start] === OPEN_BRACE) return 'json';
  if (start > 0 || body.length === 0) return 'other';
  let dots = 0;
  for (const byte of body) {
    if (byte === DOT) dots++;
    else if (!isBase64Url(byte)) return 'other';
  }
  return dots === 2 ? 'jwt' : dots === 4 ? 'jwe' : 'other';
}
