/**
 * A port the service cannot bind (in use, privileged) ends the process with one line that names the setting to
 * change, not an `EADDRINUSE` stack trace.
 */
export class ListenError extends Error {
  readonly setting: string;
  constructor(setting: 'PORT' | 'METRICS_PORT', port: number, host: string, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    const why =
      code === 'EADDRINUSE'
        ? 'is already in use'
        : code === 'EACCES'
          ? 'may not be bound by this user (EACCES)'
          : `cannot be bound (${code ?? (cause as Error | undefined)?.message ?? String(cause)})`;
    super(`${setting} ${port} ${why} on ${host}: stop what listens there or set ${setting} to a free port`, { cause });
    this.name = 'ListenError';
    this.setting = setting;
  }
}

/** True for the errors `listen` fails with when the address cannot be bound. */
export function isBindError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL';
}
