import { readFileSync } from 'node:fs';
import t from 'tap';
import { errorCatalog } from '../../src/errors.js';

t.test("README's error table lists exactly the catalogue's codes, with their statuses", async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('### Error codes'));
  const table = section.slice(0, section.indexOf('\n\n', section.indexOf('| code |')));
  const rows = [...table.matchAll(/^\| `(ERR_\w+)` \| (\d{3}) \|/gm)].map((match) => [match[1], Number(match[2])]);
  t.ok(rows.length > 0, 'the table was found');
  t.same(
    rows.sort(),
    Object.entries(errorCatalog)
      .map(([code, entry]) => [code, entry.status])
      .sort(),
  );
});
