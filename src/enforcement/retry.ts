import { DirectoryError } from './ports.js';

/**
 * Retries of directory calls within one enforcement's time budget: exponential backoff with full jitter on the
 * failures the adapter calls retryable (unreachable, overloaded, timed out), never on the others (a wrong token or
 * permission). No I/O of its own: the clock, the random source and the sleep are given.
 */

/**
 * The time one enforcement may take, from the webhook's arrival to its answer: every wait (the user's turn, the
 * lock, a token fetch, the call queue) and every call takes what is left of it, never a fixed amount of its own.
 */
export class Budget {
  readonly deadline: number;
  readonly #now: () => number;
  #signal: AbortSignal | undefined;
  constructor(ms: number, now: () => number = Date.now, deadline?: number) {
    this.#now = now;
    this.deadline = deadline ?? now() + ms;
  }
  /** A budget that ends at `deadline` (epoch ms by `now`). */
  static until(deadline: number, now: () => number = Date.now): Budget {
    return new Budget(0, now, deadline);
  }
  remaining(): number {
    return Math.max(0, this.deadline - this.#now());
  }
  /** Aborts at the deadline (for waits and calls that take a signal). */
  get signal(): AbortSignal {
    this.#signal ??= AbortSignal.timeout(Math.max(1, this.remaining()));
    return this.#signal;
  }
  /** Waits for `promise` to settle, at most until the deadline: true when it settled in time. Never rejects. */
  within(promise: Promise<unknown>): Promise<boolean> {
    const left = this.remaining();
    if (left <= 0) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), left);
      const settle = () => {
        clearTimeout(timer);
        resolve(true);
      };
      promise.then(settle, settle);
    });
  }
}

/** The budget ran out while a call kept failing with a retryable code. */
export class BudgetExhaustedError extends Error {
  readonly what: string;
  readonly attempts: number;
  readonly lastError: unknown;
  constructor(what: string, attempts: number, lastError: unknown) {
    super(`${what}: the enforcement budget ran out after ${attempts} attempt(s): ${(lastError as Error)?.message ?? String(lastError)}`);
    this.name = 'BudgetExhaustedError';
    this.what = what;
    this.attempts = attempts;
    this.lastError = lastError;
  }
}

export interface RetryPolicy {
  budget: Budget;
  /** The per-call deadline (ZITADEL_TIMEOUT_MS); a call never gets more than what is left of the budget. */
  callTimeoutMs: number;
  /** Whether a failure is worth another try (default: a `DirectoryError` the adapter marked retryable). */
  retryable?: (error: unknown) => boolean;
  baseDelayMs?: number;
  maxDelayMs?: number;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Told about each retry (for logs and metrics). */
  onRetry?: (what: string, attempt: number, delayMs: number, error: unknown) => void;
}

const isRetryable = (error: unknown) => error instanceof DirectoryError && error.retryable;

const sleepFor = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs `call` with the time it may take, retrying retryable failures while the budget allows. */
export async function withRetries<T>(what: string, call: (timeoutMs: number) => Promise<T>, policy: RetryPolicy): Promise<T> {
  const { budget, baseDelayMs = 50, maxDelayMs = 1000, random = Math.random, sleep = sleepFor } = policy;
  for (let attempt = 1; ; attempt++) {
    const left = budget.remaining();
    if (left <= 0) throw new BudgetExhaustedError(what, attempt - 1, new Error('no time left'));
    try {
      return await call(Math.min(policy.callTimeoutMs, left));
    } catch (error) {
      if (!(policy.retryable ?? isRetryable)(error)) throw error;
      // Full jitter: spreads the retries of many enforcements so that they do not hit ZITADEL in step.
      const delay = Math.floor(random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1)));
      if (delay >= budget.remaining()) throw new BudgetExhaustedError(what, attempt, error);
      policy.onRetry?.(what, attempt, delay, error);
      await sleep(delay);
    }
  }
}
