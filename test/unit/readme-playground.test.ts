import { readFileSync } from 'node:fs';
import t from 'tap';
import { nextSteps } from '../../src/cli/simulate.js';

// The README's playground block must be the commands `simulate` prints (which test/e2e/playground.test.ts runs):
// a README edit or a change of the printed steps that drifts apart fails here.
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const section = readme.slice(readme.indexOf('## Local playground'), readme.indexOf('## How it works'));
const commands = [...section.matchAll(/```sh\n([\s\S]*?)```/g)]
  .flatMap(([, block]) => block!.replace(/\\\n\s*/g, '').split('\n'))
  .map((line) => line.replace(/\s+#.*$/, '').trim())
  .filter((line) => line !== '' && !line.startsWith('#'));

t.test("the README's playground runs exactly what simulate prints", async (t) => {
  const printed = nextSteps('http://127.0.0.1:8081', 'alice@example.com', 'password', 'npm run -s cli --')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('ZITADEL_URL=') || line.startsWith('npm '));
  t.equal(printed.length, 4);
  for (const command of printed) t.ok(commands.includes(command), `in the README: ${command}`);
  t.ok(commands.includes('npm run -s cli -- simulate'), 'the README starts the simulator');
});
