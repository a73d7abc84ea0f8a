import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ROOT, type Finished } from '../helpers/processes.js';

/**
 * What a user gets from the registry: `npm pack` (the tarball `npm publish` would upload), installed globally into
 * a temporary prefix, and the command run from outside the clone (issue 13, section 4).
 */

const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };

function run(command: string, args: string[], cwd: string): Promise<Finished> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('npm pack, then a global install, gives a working zitadel-session-limiter', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'zsl-pack-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const prefix = path.join(dir, 'prefix');
  const home = path.join(dir, 'home'); // the installed command runs where nothing of the clone is

  // prepack builds dist/ first: the tarball never holds a stale or missing build.
  const packed = await run('npm', ['pack', '--json', '--pack-destination', dir], ROOT);
  t.equal(packed.code, 0, 'npm pack', { stderr: packed.stderr });
  const [tarball] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  const files = new Set(tarball!.files.map((file) => file.path));

  t.ok(files.has('LICENSE'), 'ships LICENSE');
  t.ok(files.has('CHANGELOG.md'), 'ships CHANGELOG.md');
  t.match(readFileSync(path.join(ROOT, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0, January 2004/, 'the Apache-2.0 text');
  t.ok(files.has('dist/cli/index.js'), 'ships the built CLI');
  t.notOk([...files].some((file) => file.endsWith('.tsbuildinfo')), 'no .tsbuildinfo');
  t.ok(files.has('test/fixtures/payloads/02-password.set-session.json'), "ships the payloads replay's help names");
  const maps = [...files].filter((file) => file.endsWith('.map'));
  const dangling = maps.flatMap((map) => {
    const { sources } = JSON.parse(readFileSync(path.join(ROOT, map), 'utf8')) as { sources: string[] };
    return sources.map((source) => path.posix.join(path.posix.dirname(map), source)).filter((source) => !files.has(source));
  });
  t.same(dangling, [], 'every source map points at a shipped source');

  const installed = await run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', path.join(dir, tarball!.filename)], dir);
  t.equal(installed.code, 0, 'npm install -g', { stderr: installed.stderr });
  await mkdir(home);
  const bin = path.join(prefix, 'bin', 'zitadel-session-limiter');

  const version = await run(bin, ['--version'], home);
  t.equal(version.code, 0, '--version', { stderr: version.stderr });
  t.equal(version.stdout, `${pkg.version}\n`);

  const help = await run(bin, ['--help'], home);
  t.equal(help.code, 0, '--help', { stderr: help.stderr });
  t.match(help.stdout, /^Usage: zitadel-session-limiter <command>/);

  const replayHelp = await run(bin, ['replay', '--help'], home);
  const fixtures = /^Payloads for every Login V2 step .*: (\S+)$/m.exec(replayHelp.stdout)?.[1];
  t.ok(fixtures && existsSync(path.join(fixtures, '02-password.set-session.json')), 'replay --help names payloads that exist', { fixtures });

  const demo = await run(bin, ['demo', '--json'], home);
  t.equal(demo.code, 0, 'demo --json', { stderr: demo.stderr });
  t.doesNotThrow(() => JSON.parse(demo.stdout), 'prints JSON');
});
