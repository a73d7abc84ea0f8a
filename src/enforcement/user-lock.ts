import { PerKeyQueue } from './per-key-queue.js';
import type { Budget } from './retry.js';

/**
 * Serialises the enforcements of one user: the list and the decision happen inside the turn, so two logins of
 * one user never decide on the same stale list.
 */
export interface UserLock {
  /**
   * Runs `task` in the user's turn, waiting for it at most until the budget's deadline (then rejects with
   * `UserBusyError`); `waited` tells whether another enforcement of the user ran first. The turn is held at most
   * for what is left of the budget when it is taken.
   */
  run<T>(userId: string, budget: Budget, task: (waited: boolean) => Promise<T>): Promise<T>;
}

/** The time ran out while waiting for the user's turn: another enforcement of the same user held it. */
export class UserBusyError extends Error {
  /** Where the turn was held: in this process, or by another replica (Redis). */
  readonly heldBy: 'this process' | 'another replica';
  constructor(heldBy: UserBusyError['heldBy']) {
    super(`the user's turn was held by ${heldBy} until the enforcement budget ran out`);
    this.name = 'UserBusyError';
    this.heldBy = heldBy;
  }
}

/** One process (the default): a queue per user in memory, waited for at most until the deadline. */
export class InProcessUserLock implements UserLock {
  readonly #queue = new PerKeyQueue();
  run<T>(userId: string, budget: Budget, task: (waited: boolean) => Promise<T>): Promise<T> {
    return this.#queue.run(
      userId,
      async (waited, inTime) => {
        if (!inTime) throw new UserBusyError('this process');
        return task(waited);
      },
      (previous) => budget.within(previous),
    );
  }
}
