import fc from 'fast-check';
import type { OnLimit, Scenario, Step } from './harness.js';

/** What happens in the world: steps are weighted towards logins and checks, the things that trigger enforcement. */
export const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('begin' as const),
      user: fc.nat(2),
      device: fc.nat(3),
      withPassword: fc.boolean(),
      lifetimeS: fc.option(fc.integer({ min: 5, max: 60 }), { nil: undefined }),
    }),
  },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('check' as const), pick: fc.nat(20), factor: fc.constantFrom('password' as const, 'password' as const, 'totp' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('logout' as const), pick: fc.nat(20) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('tick' as const), seconds: fc.integer({ min: 1, max: 40 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('catch-up' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('redeliver' as const), pick: fc.nat(20) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('fault' as const),
      method: fc.constantFrom('GetSession' as const, 'ListSessions' as const, 'DeleteSession' as const),
      times: fc.integer({ min: 1, max: 3 }),
    }),
  },
);

export const scenario = (onLimit: OnLimit, maxSteps = 16): fc.Arbitrary<Scenario> =>
  fc.record({
    onLimit: fc.constant(onLimit),
    limit: fc.integer({ min: 1, max: 3 }),
    users: fc.integer({ min: 1, max: 2 }),
    steps: fc.array(step, { minLength: 3, maxLength: maxSteps }),
    route: fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
  });
