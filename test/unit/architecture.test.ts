import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';

/**
 * Dependencies point inward: the core (src/enforcement: the decision, the enforcer, its ports and locks) and the
 * signature check import nothing of the edge (HTTP, CLI, config, the error catalogue) nor of an adapter (ZITADEL,
 * the simulator); adapters never import the edge. Read from the source, so a new import that breaks it fails here.
 */
const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

function importsOf(dir: string): { file: string; target: string }[] {
  return readdirSync(`${SRC}${dir}`, { recursive: true })
    .map(String)
    .filter((name) => name.endsWith('.ts'))
    .flatMap((name) => {
      const text = readFileSync(`${SRC}${dir}/${name}`, 'utf8');
      const targets = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)].map((m) => m[1]!);
      return targets.map((target) => ({ file: `${dir}/${name}`, target: new URL(target, `file:///${dir}/${name}`).pathname.slice(1) }));
    });
}

t.test('the core imports only itself', async (t) => {
  t.ok(importsOf('enforcement').some(({ target }) => target === 'enforcement/decision.js'), 'the scan sees the core\'s imports');
  const outside = importsOf('enforcement').filter(({ target }) => !target.startsWith('enforcement/'));
  t.same(outside, [], 'src/enforcement imports nothing outside src/enforcement');
});

t.test('the signature check knows no HTTP and no catalogue', async (t) => {
  const outside = importsOf('signature').filter(({ target }) => !target.startsWith('signature/'));
  t.same(outside, [], 'src/signature imports nothing outside itself');
});

t.test('adapters depend on the core, never on the edge', async (t) => {
  const edge = /^(app|webhook|error-map|errors|service|main|config|cli\/|admin\/|http-client-errors|metrics-server|listen)/;
  const wrong = importsOf('zitadel').filter(({ target }) => edge.test(target) || target.startsWith('simulator/'));
  t.same(wrong, [], 'src/zitadel imports no edge module and not the simulator');
});

t.test('the payload-type opener is pure: it imports nothing outside itself, and no network module', async (t) => {
  const outside = importsOf('payload-type').filter(({ target }) => !target.startsWith('payload-type/'));
  t.same(outside, [], 'src/payload-type imports nothing outside itself');
  const dir = `${SRC}payload-type`;
  const text = readdirSync(dir).map((name) => readFileSync(`${dir}/${name}`, 'utf8')).join('\n');
  t.notMatch(text, /from 'node:(?:http|https|net|fs|fs\/promises)'|\bfetch\(/, 'no I/O: the web keys come through the WebKeySource port');
});
