/**
 * Runs tasks one after another per key and in parallel across keys (in-process). Enforcement uses the user
 * id as key, so two logins of one user never list and delete at the same time.
 */
export class PerKeyQueue {
  readonly #tails = new Map<string, Promise<void>>();

  /** Number of keys with a task running or waiting. */
  get size(): number {
    return this.#tails.size;
  }

  /**
   * Runs `task` once every earlier task of `key` has settled; `waited` tells whether it had to wait. With `wait`, the
   * caller decides how long to wait for the earlier tasks (e.g. until a deadline): `inTime` is false when it gave
   * up, and the task then runs at once (to fail); later tasks still wait for the earlier ones.
   */
  async run<T>(
    key: string,
    task: (waited: boolean, inTime: boolean) => Promise<T>,
    wait: (previous: Promise<void>) => Promise<boolean> = async (previous) => (await previous, true),
  ): Promise<T> {
    const previous = this.#tails.get(key);
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    const tail = previous ? Promise.all([previous, done]).then(() => undefined) : done;
    this.#tails.set(key, tail);
    let inTime = true;
    try {
      if (previous) inTime = await wait(previous);
      return await task(previous !== undefined, inTime);
    } finally {
      release();
      const forget = () => {
        if (this.#tails.get(key) === tail) this.#tails.delete(key);
      };
      // The earlier tasks settled (we waited for them): forget the key now; else once they have.
      if (inTime) forget();
      else void tail.then(forget);
    }
  }
}
