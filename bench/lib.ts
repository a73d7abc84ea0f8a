/**
 * Shared pieces of the benchmark and the soak run: the service as a child process (as in production), RSS of a
 * process, percentiles, and a bounded closed-loop load generator on loopback.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseToml } from 'smol-toml';
import { Agent, request } from 'undici';
import { freePort } from '../src/cli/free-port.js';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));

export interface ChildService {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * `node dist/main.js` with `env` (production defaults: LOG_LEVEL info, logs to /dev/null so that the benchmark
 * process does not pay for reading them), resolved once /healthz answers.
 */
export async function startService(env: Record<string, string>, extraArgs: string[] = []): Promise<ChildService> {
  const port = await freePort();
  // To compare Node flags for the service alone (e.g. fly.toml's): BENCH_SERVICE_NODE_ARGS='--max-semi-space-size=2'.
  const nodeArgs = process.env.BENCH_SERVICE_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, ...extraArgs, 'dist/main.js'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}`);
    const up = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
    if (up) return { url, child, stop: () => stop(child) };
    if (attempt > 200) throw new Error('service did not start');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** Resident set size of a process in MB (Linux /proc). */
export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  return Math.round((kb / 1024) * 10) / 10;
}

/** CPU time (user + system) of a process in ms (Linux /proc; clock ticks of 10 ms). */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round(sorted[index]! * 100) / 100;
}

export interface LoadResult {
  requests: number;
  seconds: number;
  perSecond: number;
  statuses: Record<number, number>;
  latenciesMs: number[];
}

export interface Shot {
  url: string;
  headers: Record<string, string>;
  /** Without a body: a GET (health checks). */
  body?: Buffer | string;
}

/**
 * A closed loop of `connections` workers, each sending `next()` until `seconds` pass or `maxRequests` are sent.
 * Bounded in count and time; loopback only.
 */
export async function load(options: { connections: number; seconds: number; maxRequests?: number; next: (i: number) => Shot | Promise<Shot> }): Promise<LoadResult> {
  const agent = new Agent({ connections: options.connections, pipelining: 1, keepAliveTimeout: 10_000 });
  const statuses: Record<number, number> = {};
  const latencies: number[] = [];
  let sent = 0;
  const started = process.hrtime.bigint();
  const deadline = Date.now() + options.seconds * 1000;
  const max = options.maxRequests ?? Number.POSITIVE_INFINITY;
  const worker = async () => {
    while (Date.now() < deadline && sent < max) {
      const i = sent++;
      const shot = await options.next(i);
      const t0 = process.hrtime.bigint();
      const response = await request(shot.url, { method: shot.body === undefined ? 'GET' : 'POST', headers: shot.headers, body: shot.body, dispatcher: agent });
      await response.body.dump();
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      statuses[response.statusCode] = (statuses[response.statusCode] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: options.connections }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await agent.close();
  latencies.sort((a, b) => a - b);
  return { requests: latencies.length, seconds, perSecond: Math.round(latencies.length / seconds), statuses, latenciesMs: latencies };
}

/** Peak resident set size of a process in MB (Linux /proc VmHWM). */
export function hwmMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Math.round((Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024) * 10) / 10;
}

/** The memory settings fly.toml gives the service (NODE_OPTIONS, MALLOC_ARENA_MAX), so that runs measure them. */
export function flyMemoryEnv(): Record<string, string> {
  const fly = parseToml(readFileSync(new URL('../fly.toml', import.meta.url), 'utf8')) as { env?: Record<string, string> };
  const result: Record<string, string> = {};
  for (const name of ['NODE_OPTIONS', 'MALLOC_ARENA_MAX']) if (fly.env?.[name] !== undefined) result[name] = fly.env[name];
  return result;
}

/** Samples `pid`'s RSS every `everyMs` until stopped; returns the samples in MB. */
export function sampleRss(pid: number, everyMs: number): { stop(): number[] } {
  const samples: number[] = [];
  const timer = setInterval(() => {
    try {
      samples.push(rssMb(pid));
    } catch {
      // the process ended
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return samples;
    },
  };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : sorted[Math.floor(sorted.length / 2)]!;
}
