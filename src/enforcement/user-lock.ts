import { PerKeyQueue } from './per-key-queue.js';

/**
 * Serialises the enforcements of one user: the list and the decision happen inside the turn, so two logins of
 * one user never decide on the same stale list.
 */
export interface UserLock {
  /** Runs `task` in the user's turn; `waited` tells whether another enforcement of the user ran first. */
  run<T>(userId: string, budgetMs: number, task: (waited: boolean) => Promise<T>): Promise<T>;
}

/** One process (the default): a queue per user in memory. */
export class InProcessUserLock implements UserLock {
  readonly #queue = new PerKeyQueue();
  run<T>(userId: string, _budgetMs: number, task: (waited: boolean) => Promise<T>): Promise<T> {
    return this.#queue.run(userId, task);
  }
}
