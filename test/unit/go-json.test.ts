import { readFileSync } from 'node:fs';
import t from 'tap';
import { goJsonStringify } from '../../src/simulator/go-json.js';

const vectors = JSON.parse(readFileSync(new URL('../fixtures/zitadel-signature-vectors.json', import.meta.url), 'utf8'));

t.test('reproduces the bytes of ZITADEL\'s Go encoder', async (t) => {
  const raw = Buffer.from(vectors[0].bodyBase64, 'base64').toString('utf8');
  t.equal(goJsonStringify(JSON.parse(raw)), raw, 'the first vector\'s body, byte for byte');
});

t.test('escapes <, >, & and the JavaScript line separators; keeps other UTF-8', async (t) => {
  t.equal(goJsonStringify({ a: '<b> & \u2028\u2029 Zürich "q" \n' }), '{"a":"\\u003cb\\u003e \\u0026 \\u2028\\u2029 Zürich \\"q\\" \\n"}');
  t.throws(() => goJsonStringify(undefined), TypeError);
});
