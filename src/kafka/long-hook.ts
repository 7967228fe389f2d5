// kafkajs's record decoder computes every record's offset and timestamp as
// `Long.fromValue(batch's first, a string).add(delta).toString()`: per record it parses the
// batch's two strings into new BigInt-backed Longs again, and `add` wraps a number delta in a
// Long before adding. With the delta's own Long and the sum, that was six BigInts and six Longs
// per record. This module makes `Long.fromString` give back the Long it made for the last two
// strings (the batch's first offset and first timestamp, asked alternately; a Long is never
// changed once made), and `add` add a safe-integer number directly, small ones from a table of
// BigInts. The same values come out (test/property/long-hook.property.test.ts).
//
// kafkajs 2.2.4 is the last release of kafkajs; install() checks the shape it relies on.
import Long from 'kafkajs/src/utils/long';

interface LongInternals {
  readonly value: bigint;
}

let installed = false;

/** BigInts of the deltas most records have (an offset delta is below the batch's record count). */
const SMALL = Array.from({ length: 4096 }, (_, i) => BigInt(i));

export function installLongHook(): void {
  if (installed) return;
  const statics = Long as unknown as { fromString: (this: unknown, s: string) => LongInternals };
  const proto = Long.prototype as unknown as { add: (this: LongInternals, addend: unknown) => LongInternals };
  const fromString = statics.fromString;
  const add = proto.add;
  const probe = typeof fromString === 'function' ? fromString.call(Long, '1') : undefined;
  if (typeof add !== 'function' || typeof probe?.value !== 'bigint') {
    throw new Error('tidemark needs kafkajs 2.2.x: kafkajs/src/utils/long has no fromString/add over a BigInt value (a different kafkajs version is installed)');
  }
  const LongClass = Long as unknown as new (value: bigint) => LongInternals;
  let lastString: string | undefined;
  let lastLong: LongInternals | undefined;
  let otherString: string | undefined;
  let otherLong: LongInternals | undefined;
  statics.fromString = function cachedFromString(this: unknown, s: string): LongInternals {
    if (s === lastString) return lastLong!;
    if (s === otherString) return otherLong!;
    const made = fromString.call(this, s);
    otherString = lastString;
    otherLong = lastLong;
    lastString = s;
    lastLong = made;
    return made;
  };
  proto.add = function addNumber(this: LongInternals, addend: unknown): LongInternals {
    if (typeof addend !== 'number' || !Number.isSafeInteger(addend)) return add.call(this, addend);
    return new LongClass(this.value + (addend >= 0 && addend < SMALL.length ? SMALL[addend]! : BigInt(addend)));
  };
  installed = true;
}
