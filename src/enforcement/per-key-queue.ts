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

  /** Runs `task` once every earlier task of `key` has settled; `waited` tells whether it had to wait. */
  async run<T>(key: string, task: (waited: boolean) => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key);
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    const tail = previous ? previous.then(() => done) : done;
    this.#tails.set(key, tail);
    try {
      if (previous) await previous;
      return await task(previous !== undefined);
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
