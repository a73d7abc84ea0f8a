/** A command's arguments or environment are wrong: each problem is printed on its own line, exit code 2. */
export class UsageError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(problems.join('\n'));
    this.problems = problems;
  }
}
