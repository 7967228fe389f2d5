// A small SVG plot: one panel per series, stacked, sharing the x axis (minutes). Enough for
// the soak's report; no dependency.

export interface PlotSeries {
  readonly label: string;
  readonly unit: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
}

const W = 900;
const PANEL = 120;
const LEFT = 90;
const RIGHT = 20;
const GAP = 30;

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const num = (v: number): string => (Math.abs(v) >= 100 || Number.isInteger(v) ? v.toFixed(0) : v.toPrecision(3));

export function svgPlot(title: string, series: readonly PlotSeries[]): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const x0 = Math.min(...xs, 0);
  const x1 = Math.max(...xs, x0 + 1);
  const height = 40 + series.length * (PANEL + GAP);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${height}" fill="white"/>`,
    `<text x="${LEFT}" y="20" font-size="14">${esc(title)}</text>`,
  ];
  series.forEach((s, i) => {
    const top = 40 + i * (PANEL + GAP);
    const ys = s.points.map((p) => p[1]);
    const y0 = Math.min(0, ...ys);
    const highest = Math.max(...ys);
    const y1 = highest > y0 ? highest * 1.1 : y0 + 1; // a flat series at 0 gets the scale [0, 1]
    const px = (x: number): number => LEFT + ((x - x0) / (x1 - x0)) * (W - LEFT - RIGHT);
    const py = (y: number): number => top + PANEL - ((y - y0) / (y1 - y0)) * PANEL;
    parts.push(
      `<rect x="${LEFT}" y="${top}" width="${W - LEFT - RIGHT}" height="${PANEL}" fill="none" stroke="#bbb"/>`,
      `<text x="${LEFT + 4}" y="${top + 12}">${esc(`${s.label} (${s.unit})`)}</text>`,
      `<text x="${LEFT - 4}" y="${top + 10}" text-anchor="end">${num(y1)}</text>`,
      `<text x="${LEFT - 4}" y="${top + PANEL}" text-anchor="end">${num(y0)}</text>`,
      `<text x="${W - RIGHT}" y="${top + PANEL + 12}" text-anchor="end">${num(x1)} min</text>`,
      `<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="${s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
