import { spawn } from 'node:child_process';
import { ROOT, type Finished } from './processes.js';

/** What a machine without promtool is told, in one line, instead of a `spawn promtool ENOENT` stack. */
export const PROMTOOL_MISSING =
  'promtool is not installed (not on PATH): the alert rule tests run it. ' +
  'Install it (Debian/Ubuntu: sudo apt-get install prometheus; macOS: brew install prometheus), then run the tests again';

/** Runs `promtool ARGS` in the project; a missing promtool rejects with PROMTOOL_MISSING. `env`: a test sets PATH. */
export function runPromtool(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', args, { cwd: ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', (error: NodeJS.ErrnoException) => {
      const reason = error.code === 'ENOENT' ? PROMTOOL_MISSING : `promtool could not be started: ${error.message}`;
      const failure = new Error(reason);
      failure.stack = reason; // one line in the test report, not a stack of spawn internals
      reject(failure);
    });
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
