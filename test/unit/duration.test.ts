import t from 'tap';
import { parseDuration } from '../../src/duration.js';

t.test('whole numbers with the units asked for', async (t) => {
  t.equal(parseDuration('10s', ['ms', 's', 'm']), 10_000);
  t.equal(parseDuration('250ms', ['ms', 's', 'm']), 250);
  t.equal(parseDuration('2m', ['ms', 's', 'm']), 120_000);
  t.equal(parseDuration('24h', ['m', 'h', 'd']), 86_400_000);
  t.equal(parseDuration('7d', ['m', 'h', 'd']), 7 * 86_400_000);
  t.equal(parseDuration('0m', ['m', 'h', 'd']), 0);
});

t.test('anything else is undefined: other units, fractions unless asked for, signs, spaces, no unit', async (t) => {
  for (const text of ['10h', '1.5s', '-1s', ' 1s', '1s ', '1 s', '10', 's', '', '1S', '1e3ms']) {
    t.equal(parseDuration(text, ['ms', 's', 'm']), undefined, JSON.stringify(text));
  }
  t.equal(parseDuration('10s', ['m', 'h', 'd']), undefined, 'seconds where only m, h, d are read');
});

t.test("protobuf's JSON durations: seconds with up to nine decimals, rounded to the millisecond", async (t) => {
  const proto = (text: string) => parseDuration(text, ['s'], { fractions: true });
  t.equal(proto('10s'), 10_000);
  t.equal(proto('1.5s'), 1500);
  t.equal(proto('0.000000001s'), 0);
  t.equal(proto('0.0005s'), 1);
  t.equal(proto('1.0000000001s'), undefined, 'ten decimals');
  t.equal(proto('1.s'), undefined);
  t.equal(proto('10ms'), undefined, 'only seconds');
});
