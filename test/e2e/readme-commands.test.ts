import { readFileSync } from 'node:fs';
import t from 'tap';
import { freePort } from '../../src/cli/free-port.js';
import { runProcess, startProcess, type Finished, type Started } from '../helpers/processes.js';

/**
 * Every command in the README's shell blocks, walked in the README's order, the way a newcomer pastes them (issue
 * #13: "every command in the README runs as written on a fresh clone"). Commands that need a real ZITADEL run against
 * the simulator: the README's placeholders (the instance URL, the tokens, the service's public URL, the key) are
 * replaced by the simulator's and the local service's. Commands that cannot run here (Docker, Fly, installing the
 * clone itself) are listed with the reason. A new README command that no rule covers fails the test, so the README
 * cannot grow a command nobody runs.
 */

interface Command {
  line: number;
  text: string;
  /** The `export ...` lines before it in its block. */
  exports: string[];
}

function readmeCommands(): Command[] {
  const lines = readFileSync(new URL('../../README.md', import.meta.url), 'utf8').split('\n');
  const commands: Command[] = [];
  let inBlock = false;
  let exports: string[] = [];
  let pending: { line: number; text: string } | undefined;
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (line.startsWith('```')) {
      inBlock = !inBlock && line === '```sh';
      exports = [];
      return;
    }
    if (!inBlock) return;
    const text = line.replace(/\s+#\s.*$/, '').replace(/^#.*$/, '');
    if (pending) pending.text += ` ${text.replace(/\\$/, '').trim()}`;
    else if (text) pending = { line: index + 1, text: text.replace(/\\$/, '').trim() };
    if (pending && !text.endsWith('\\')) {
      const command = pending.text.replace(/\s+/g, ' ');
      if (command.startsWith('export ')) exports.push(command);
      else commands.push({ line: pending.line, text: command, exports: [...exports] });
      pending = undefined;
    }
  });
  return commands;
}

type Rule = { match: RegExp; skip: string } | { match: RegExp; run: 'once' | 'start-simulator' | 'start-service' };

/** How each README command is walked; the first rule that matches decides. */
const RULES: Rule[] = [
  { match: /^npm ci$/, skip: 'installs the clone: the suite runs in an installed clone' },
  { match: /^npm test$/, skip: 'the suite itself' },
  { match: /^npm run build$/, skip: 'the suite builds before the tests run (npm test)' },
  { match: /^docker /, skip: 'needs a Docker engine; the Dockerfile is checked by test/unit/deploy.test.ts' },
  { match: /^fly /, skip: "needs Fly.io; fly.toml is checked by test/unit/deploy.test.ts" },
  { match: /^npm run -s cli -- simulate$/, run: 'start-simulator' },
  { match: /npm run -s cli -- serve$/, run: 'start-service' },
  { match: /^npm run demo$/, run: 'once' },
  {
    match: /npm run -s cli -- (register --payload-type|rotate-key --payload-key)/,
    skip: 'writes a private key file into the clone and turns the walk\'s target into a JWE one; the same commands run in test/e2e/payload-type-commands.test.ts',
  },
  { match: /npm run -s cli -- (register|doctor|enforce|simulate login) /, run: 'once' },
  { match: /npm run -s cli -- doctor$/, run: 'once' },
  { match: /^curl -s https:\/\/session-limiter\.example\.com\//, run: 'once' },
];

async function waitFor(what: string, probe: () => boolean, process_: Started, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (process_.child.exitCode !== null) throw new Error(`exited before ${what}: ${process_.stdout()}${process_.stderr()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

t.test("every command in the README's shell blocks runs as written (against the simulator where ZITADEL is needed)", async (t) => {
  const commands = readmeCommands();
  t.ok(commands.length >= 20, `found the README's commands (${commands.length})`);
  const uncovered = commands.filter((command) => !RULES.some((rule) => rule.match.test(command.text)));
  t.same(uncovered.map((c) => `README.md:${c.line}: ${c.text}`), [], 'every README command is walked or skipped with a reason');

  const simulatorPort = await freePort();
  const servicePort = await freePort();
  const simulatorUrl = `http://127.0.0.1:${simulatorPort}`;
  const serviceUrl = `http://127.0.0.1:${servicePort}`;
  let key: string | undefined;
  const started: Started[] = [];
  t.teardown(() => {
    for (const process_ of started) if (process_.child.exitCode === null) process.kill(-process_.child.pid!, 'SIGKILL');
  });

  /** The README's placeholders, replaced by this machine's simulator, service and key. */
  const localise = (command: string) =>
    command
      .replaceAll('https://my-instance.zitadel.cloud', simulatorUrl)
      .replaceAll('http://127.0.0.1:8081', simulatorUrl)
      .replaceAll(/https:\/\/(session-limiter\.example\.com|<app>\.fly\.dev)/g, serviceUrl)
      .replaceAll('127.0.0.1:8080', `127.0.0.1:${servicePort}`)
      .replaceAll('PORT=8080', `PORT=${servicePort}`)
      .replaceAll(/<IAM_OWNER token>|<the service's PAT>|<PAT of [^>]*>/g, 'simulator-token')
      .replaceAll('ZITADEL_ADMIN_TOKEN=...', 'ZITADEL_ADMIN_TOKEN=simulator-token')
      .replaceAll(/<the key register printed>|<key>/g, key ?? '<no key yet>')
      // The simulator and `simulate login` default to port 8081, which may be taken here.
      .replace(/ simulate$/, ` simulate --port ${simulatorPort}`)
      .replace(/ simulate login (\S+) (.*)$/, ` simulate login $1 $2 --url ${simulatorUrl}`);
  const shell = (script: string): Promise<Finished> => runProcess('sh', ['-c', script]);

  const walked: string[] = [];
  let logins = 0;
  for (const command of commands) {
    const rule = RULES.find((r) => r.match.test(command.text))!;
    if ('skip' in rule) {
      t.pass(`README.md:${command.line} skipped (${rule.skip}): ${command.text}`);
      continue;
    }
    const script = [...command.exports, command.text].map(localise).join('; ');
    walked.push(command.text);
    if (rule.run === 'start-simulator') {
      const simulator = startProcess('sh', ['-c', script], {}, true);
      started.push(simulator);
      await waitFor('the simulator', () => simulator.stdout().includes(`listening at ${simulatorUrl}`), simulator);
      continue;
    }
    if (rule.run === 'start-service') {
      t.ok(key, `README.md:${command.line}: register ran before serve and printed the key`);
      const service = startProcess('sh', ['-c', script], {}, true);
      started.push(service);
      await waitFor('the service', () => service.stdout().includes('zitadel-session-limiter ready'), service);
      continue;
    }
    const run = await shell(script);
    t.equal(run.code, 0, `README.md:${command.line} exits 0: ${command.text}`, { stdout: run.stdout, stderr: run.stderr });
    if (/ register /.test(command.text)) {
      key ??= /signing key \(shown once\): (\S+)/.exec(run.stdout)?.[1];
      t.match(run.stdout, /target "session-limiter" \(\d+\): (created|unchanged)/, `README.md:${command.line}: register`);
    }
    if (/ simulate login /.test(command.text)) {
      logins += 1;
      t.match(run.stdout, /is signed in on/, `README.md:${command.line}: the login went through`);
    }
    if (/ doctor$/.test(command.text)) t.notMatch(run.stdout, /^FAIL/m, `README.md:${command.line}: doctor, everything PASS`);
    if (/ enforce --all --dry-run$/.test(command.text)) {
      t.match(run.stdout, /users checked: 1, sessions seen: \d+, sessions that would be evicted: \d+/, 'the sweep finds the user');
    }
    if (command.text.startsWith('curl ')) t.match(run.stdout, /session_limiter_webhook_requests_total\{outcome="enforced"/, 'the metric counts the logins');
    if (command.text === 'npm run demo') t.match(run.stdout, /evicted laptop/, 'the demo shows the eviction');
  }
  t.ok(logins >= 3, 'the playground signs alice in on three devices');
  t.ok(walked.some((c) => / doctor$/.test(c)) && walked.some((c) => / serve$/.test(c)), 'serve and doctor were walked');
});
