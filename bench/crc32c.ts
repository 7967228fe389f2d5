// CRC-32C speed: the slicing-by-16 TypeScript one (checkpoint/crc32c.ts) against the native
// @node-rs/crc32, alternating (A B A B …) in one process so both see the same machine load.
//
//   node scripts/run-ts.js bench/crc32c.ts [rounds]
//
// Each round checksums 64 MiB whole and in 256 KiB pieces (how the store checks staged chunks).
import { jsCrc32c, nativeCrc32c, type Crc32c } from '../checkpoint/crc32c';

if (!nativeCrc32c) throw new Error('@node-rs/crc32 does not load here');

const big = Buffer.alloc(64 << 20);
for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
const PIECE = 256 << 10;

const impls: Array<[string, Crc32c]> = [['TypeScript slicing-by-16', jsCrc32c], ['@node-rs/crc32 (native)', nativeCrc32c]];
if (jsCrc32c(big) !== nativeCrc32c(big)) throw new Error('the two CRC-32C disagree');

const timeMs = (f: () => void): number => {
  const start = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - start) / 1e6;
};
const rounds = Number(process.argv[2] ?? 9);
const whole = impls.map(() => [] as number[]);
const pieces = impls.map(() => [] as number[]);
for (let r = 0; r < rounds; r++) {
  impls.forEach(([, crc], k) => {
    whole[k]!.push(timeMs(() => crc(big)));
    pieces[k]!.push(timeMs(() => {
      for (let at = 0; at < big.length; at += PIECE) crc(big.subarray(at, at + PIECE));
    }));
  });
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
console.log(`node ${process.version}; 64 MiB; median of ${rounds} alternating rounds`);
console.log('| CRC-32C | ms, whole | ms, 256 KiB pieces | MiB/s (whole) |');
console.log('| --- | ---: | ---: | ---: |');
impls.forEach(([name], k) => console.log(`| ${name} | ${median(whole[k]!).toFixed(1)} | ${median(pieces[k]!).toFixed(1)} | ${(64_000 / median(whole[k]!)).toFixed(0)} |`));
const ratios = whole[0]!.map((t, r) => t / whole[1]![r]!);
console.log(`native speed-up, per round (whole): median ${median(ratios).toFixed(1)}×, range ${Math.min(...ratios).toFixed(1)}–${Math.max(...ratios).toFixed(1)}×`);
