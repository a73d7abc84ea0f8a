import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../helpers/processes.js';

/**
 * The simulator's own structure (issue 11, section 3): no import cycles between its files, the state (the truth
 * tests assert on) imports from no service or transport file, and the registry of targets and executions knows
 * nothing of the HTTP layer. Type-only imports count: they tie the files together just the same.
 */

const DIR = path.join(ROOT, 'src/simulator');
const files = readdirSync(DIR).filter((file) => file.endsWith('.ts'));

/** The simulator files each file imports (relative `./x.js` imports, `import type` included). */
const imports = new Map(
  files.map((file) => {
    const source = readFileSync(path.join(DIR, file), 'utf8');
    const local = [...source.matchAll(/^(?:import|export)\b[^;]*?\bfrom '\.\/([\w-]+)\.js';/gms)].map((match) => `${match[1]}.ts`);
    return [file, [...new Set(local)]];
  }),
);

t.test('no import cycles between the simulator files', async (t) => {
  const cycles: string[] = [];
  const visit = (file: string, trail: string[]) => {
    if (trail.includes(file)) {
      cycles.push([...trail.slice(trail.indexOf(file)), file].join(' > '));
      return;
    }
    for (const next of imports.get(file) ?? []) visit(next, [...trail, file]);
  };
  for (const file of files) visit(file, []);
  t.same([...new Set(cycles)], []);
});

t.test('state.ts imports from no service or transport file; the actions registry not from the HTTP layer', async (t) => {
  t.same(imports.get('state.ts'), [], 'state.ts imports no other simulator file');
  t.notOk(imports.get('actions.ts')!.includes('action-api.ts'), 'actions.ts does not import the Action API HTTP handler');
});
