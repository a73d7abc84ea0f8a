/**
 * Durations as people and ZITADEL write them (`500ms`, `10s`, `30m`, `24h`, `7d`; protobuf's JSON form `1.5s`):
 * the one parser the CLI and the simulator share.
 */

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
export type DurationUnit = keyof typeof UNIT_MS;

/**
 * `text` in milliseconds, or undefined when it is not a whole number followed by one of `units`. With
 * `fractions`, up to nine decimals are accepted too (protobuf's JSON durations, e.g. `"1.5s"`), rounded to the
 * millisecond.
 */
export function parseDuration(text: string, units: readonly DurationUnit[], options: { fractions?: boolean } = {}): number | undefined {
  const match = /^(\d+(?:\.\d{1,9})?)(ms|s|m|h|d)$/.exec(text);
  if (!match) return undefined;
  const [, amount, unit] = match as unknown as [string, string, DurationUnit];
  if (!units.includes(unit) || (!options.fractions && amount.includes('.'))) return undefined;
  return Math.round(Number(amount) * UNIT_MS[unit]);
}
