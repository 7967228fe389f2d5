// Numbers for people in text output: counts with the right plural, durations and sizes
// rounded to what a reader can use. `--json` output keeps the exact numbers.

/** `1 record`, `2 records`, `1 batch`, `1,200 batches`. */
export function plural(n: number, one: string, many = /(s|sh|ch|x)$/.test(one) ? `${one}es` : `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

/** `0.4 ms`, `278.7 ms`, `1.2 s`, `2 min 5 s`: float sums like 278.71000000000004 never reach a person. */
export function formatMs(ms: number): string {
  const rounded = Number(ms.toFixed(1));
  if (rounded < 1000) return `${rounded} ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** `512 B`, `12.1 KiB`, `3.0 MiB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}
