import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import t from 'tap';

// `npm ci` warns EBADENGINE when a package in the tree declares an engines.node that excludes the Node.js we claim
// (issue 10: fastify's light-my-request pulled cookie@2, Node >= 22). Every package must admit our floor.

// semver ships no types; the two functions used here.
const semver = createRequire(import.meta.url)('semver') as {
  minVersion(range: string): { version: string } | null;
  satisfies(version: string, range: string): boolean;
};

const read = (file: string) => JSON.parse(readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8'));
const pkg = read('package.json') as { engines: { node: string } };
const lock = read('package-lock.json') as { packages: Record<string, { version?: string; engines?: unknown }> };

t.test('every package in package-lock.json admits our engines.node floor', async (t) => {
  const floor = semver.minVersion(pkg.engines.node)?.version;
  t.ok(floor, `engines.node ${pkg.engines.node} has a lowest version`);
  const excluding = Object.entries(lock.packages)
    .filter(([path]) => path !== '')
    .flatMap(([path, entry]) => {
      // A few old packages declare engines as an array of strings; only the object form names node.
      const node = entry.engines && !Array.isArray(entry.engines) ? (entry.engines as { node?: string }).node : undefined;
      return node && !semver.satisfies(floor!, node) ? [`${path.replace(/^.*node_modules\//, '')}@${entry.version}: node ${node}`] : [];
    });
  t.same(excluding, [], `packages that exclude Node ${floor} (npm ci would warn EBADENGINE)`);
});

t.test('the check can fail: a range that excludes the floor is caught', async (t) => {
  const floor = semver.minVersion(pkg.engines.node)!.version;
  const major = Number(floor.split('.')[0]);
  t.notOk(semver.satisfies(floor, `>=${major + 1}`));
  t.ok(semver.satisfies(floor, `${major} || >=${major + 1}`));
});
