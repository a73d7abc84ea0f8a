/**
 * Serialises like Go's `encoding/json` (which ZITADEL uses for the outer execution payload): compact, with `<`,
 * `>` and `&` escaped as `\u003c`, `\u003e`, `\u0026`, and U+2028 / U+2029 escaped too. Other UTF-8 stays as is.
 * JSON.stringify already escapes control characters the way Go 1.22+ does.
 */
export function goJsonStringify(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError('value cannot be serialised as JSON');
  return json.replace(/[<>&\u2028\u2029]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
