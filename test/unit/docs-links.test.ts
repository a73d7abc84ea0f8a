import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { anchors, prose, slug } from '../helpers/markdown.js';

/**
 * Every relative link and #anchor in the README, CONTRIBUTING.md and docs/*.md resolves: the file exists, and the
 * anchor is a heading of that file (GitHub's slugs) or an explicit `id`/`name`. The pages move and get split; a
 * link that points nowhere is found here, not by a reader.
 */
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const docsDir = join(root, 'docs');
const pages = [
  join(root, 'README.md'),
  join(root, 'CONTRIBUTING.md'),
  ...(existsSync(docsDir) ? readdirSync(docsDir).filter((name) => name.endsWith('.md')).map((name) => join(docsDir, name)) : []),
];

/** Markdown links `[text](target)` of a page, with their line numbers; absolute URLs and mailto: left out. */
function links(markdown: string): { target: string; line: number }[] {
  const result: { target: string; line: number }[] = [];
  prose(markdown).forEach((line, index) => {
    for (const match of line.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = match[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
      result.push({ target, line: index + 1 });
    }
  });
  return result;
}

t.test('the slug rules match GitHub on the headings we use', async (t) => {
  t.equal(slug('Check a deployment: doctor'), 'check-a-deployment-doctor');
  t.equal(slug('Repair after downtime (scheduled)'), 'repair-after-downtime-scheduled');
  t.equal(slug('See it work: npm run demo'), 'see-it-work-npm-run-demo');
  t.equal(slug('Readiness: /readyz'), 'readiness-readyz');
  t.equal(slug('ListSessions: lag, expired sessions, order, limit'), 'listsessions-lag-expired-sessions-order-limit');
  t.equal(slug('snake_case and-dash'), 'snake_case-and-dash');
  t.same([...anchors('# A\n## A\n```\n# not a heading\n```\n<a id="x"></a>\n')], ['a', 'a-1', 'x']);
});

t.test('the README links the documentation pages and CONTRIBUTING.md', async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  t.ok(existsSync(join(root, 'CONTRIBUTING.md')), 'CONTRIBUTING.md exists');
  t.ok(existsSync(join(docsDir, 'zitadel-behaviour.md')), 'docs/zitadel-behaviour.md exists');
  const linked = new Set(links(readme).map(({ target }) => target.split('#')[0]));
  for (const page of pages.filter((page) => page !== join(root, 'README.md'))) {
    t.ok(linked.has(relative(root, page)), `README.md links ${relative(root, page)}`);
  }
});

t.test('every relative link and anchor in the documentation resolves', async (t) => {
  const anchorsOf = new Map<string, Set<string>>();
  const anchorsIn = (file: string) => {
    let set = anchorsOf.get(file);
    if (!set) anchorsOf.set(file, (set = anchors(readFileSync(file, 'utf8'))));
    return set;
  };
  const broken: string[] = [];
  let checked = 0;
  for (const page of pages.filter((page) => existsSync(page))) {
    for (const { target, line } of links(readFileSync(page, 'utf8'))) {
      checked++;
      const [path = '', anchor] = target.split('#');
      const file = path === '' ? page : resolve(dirname(page), decodeURIComponent(path));
      const where = `${relative(root, page)}:${line} → ${target}`;
      if (!existsSync(file)) {
        broken.push(`${where}: no such file`);
        continue;
      }
      if (anchor === undefined || anchor === '') continue;
      if (!file.endsWith('.md') || statSync(file).isDirectory()) {
        broken.push(`${where}: an anchor into a file that is not Markdown`);
      } else if (!anchorsIn(file).has(anchor)) {
        broken.push(`${where}: no heading with that anchor in ${relative(root, file)}`);
      }
    }
  }
  t.ok(checked > 20, `links were found (${checked})`);
  t.same(broken, [], 'no broken link');
});

t.test('source comments point at docs/zitadel-behaviour.md anchors that exist, not at files outside the repository', async (t) => {
  const behaviour = join(docsDir, 'zitadel-behaviour.md');
  const known = existsSync(behaviour) ? anchors(readFileSync(behaviour, 'utf8')) : new Set<string>();
  const offenders: string[] = [];
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory() ? walk(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
    );
  let pointers = 0;
  for (const file of [...walk(join(root, 'src')), ...walk(join(root, 'test'))]) {
    const text = readFileSync(file, 'utf8');
    if (file.endsWith('docs-links.test.ts')) continue;
    if (/shared\/ZITADEL\.md/.test(text)) offenders.push(`${relative(root, file)}: points at shared/ZITADEL.md`);
    for (const match of text.matchAll(/docs\/zitadel-behaviour\.md#([\w-]+)/g)) {
      pointers++;
      if (!known.has(match[1]!)) offenders.push(`${relative(root, file)}: no anchor #${match[1]}`);
    }
  }
  t.ok(pointers > 0, 'the source points at docs/zitadel-behaviour.md');
  t.same(offenders, []);
});
