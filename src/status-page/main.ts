/// <reference lib="dom" />
// The status page in the browser: polls /status.json every second and draws it with
// uPlot. Bundled with uPlot and the CSS into dist/status-page/ by scripts/build.js.
//
// Every string from the daemon goes into the page as text (textContent), never as markup:
// job names, partition keys and fingerprints cannot inject anything. Each plot's element
// carries `data-points` and `data-max` of what it was last given, for people and tests.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { PHASES } from '../batch-stats';
import { formatBytes, formatMs } from '../cli/format';
import type { StatusBatch, StatusJson } from '../status';

const COLORS = ['#2f6fdf', '#e8772e', '#3aa655', '#c4383a', '#8e5cc4', '#8c6d31', '#d16ba5', '#6b7b8c', '#b9b32c', '#29a9b8'];
const HEIGHT = 200;
/** Whole batch ids on the batch axis: 1, 2, 5, 10, 20, 50, … */
const BATCH_STEPS = Array.from({ length: 30 }, (_, i) => [1, 2, 5][i % 3]! * 10 ** Math.floor(i / 3));

const byId = (id: string): HTMLElement => document.getElementById(id)!;

/** An element with text (never markup) and optional class. */
function el(tag: string, text = '', className?: string): HTMLElement {
  const e = document.createElement(tag);
  e.textContent = text;
  if (className) e.className = className;
  return e;
}

const iso = (ms: number | null): string => (ms === null ? '?' : new Date(ms).toISOString().replace('.000Z', 'Z'));
const rangesText = (ranges: StatusBatch['ranges'], count: number): string =>
  ranges.map((r) => `${r.topic}/${r.partition} [${r.from}, ${r.until})`).join(', ') + (count > ranges.length ? ` … ${count - ranges.length} more` : '');

/** A uPlot chart in `holder`, remade when its series change (the lag plot's partitions). */
class Plot {
  private chart: uPlot | undefined;
  private shape = '';

  constructor(private readonly holder: HTMLElement, private readonly x: 'time' | 'batch', private readonly yAxis: Partial<uPlot.Axis> = {}) {}

  draw(names: readonly string[], data: uPlot.AlignedData, series: (i: number) => Partial<uPlot.Series> = () => ({})): void {
    const shape = names.join('\n');
    if (!this.chart || shape !== this.shape) {
      this.chart?.destroy();
      this.shape = shape;
      this.chart = new uPlot({
        width: Math.max(300, this.holder.clientWidth), height: HEIGHT,
        // Time plots span a minute at least: a page opened at start shows seconds, not milliseconds, on its axis.
        scales: { x: this.x === 'time' ? { time: true, range: (_u, min, max) => [Math.min(min, max - 60), max] } : { time: false } },
        axes: [this.x === 'time' ? {} : { label: 'batch', incrs: BATCH_STEPS }, { size: 80, ...this.yAxis }],
        series: [{ label: this.x }, ...names.map((label, i) => ({ label, stroke: COLORS[i % COLORS.length], width: 1.5, ...series(i) }))],
      }, data, this.holder);
    } else {
      this.chart.setData(data);
    }
    const values = data.slice(1).flatMap((s) => [...s].filter((v): v is number => typeof v === 'number'));
    this.holder.dataset.points = String(data[0].length);
    this.holder.dataset.max = String(values.length > 0 ? Math.max(...values) : 0);
  }
}

const rates = new Plot(byId('plot-rates'), 'time');
const phases = new Plot(byId('plot-phases'), 'batch');
const lag = new Plot(byId('plot-lag'), 'time');
const size = new Plot(byId('plot-size'), 'time', { values: (_u, ticks) => ticks.map(formatBytes) });

function facts(s: StatusJson): void {
  const dl = byId('facts');
  const owner = s.lock.owner;
  const rows: Array<[string, string]> = [
    ['source', s.job.source ?? '?'],
    ['sinks', s.job.sinks.join(', ')],
    ['fingerprint', s.job.fingerprint ?? '?'],
    ['lock', `${s.lock.held ? 'held by this daemon' : 'NOT held'}${owner ? ` (pid ${owner.pid} on ${owner.host}, since ${iso(owner.since)})` : ''}`],
    ['last committed', `batch ${s.lastCommitted}`],
    ['this run', `${s.totals.batches} batches, ${s.totals.records} records in, ${s.totals.outputs} outputs`],
    ['recoveries', s.recoveries.count === 0 ? 'none in this run' : `${s.recoveries.count}: batch ${s.recoveries.batches.join(', ')}`],
  ];
  dl.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', k), el('dd', v)]));
}

function inFlight(s: StatusJson): void {
  const b = s.inFlight;
  const box = byId('in-flight');
  if (!b) {
    box.textContent = 'none: the last batch is committed';
    return;
  }
  const staged = b.staged ? Object.entries(b.staged).map(([sink, n]) => `${sink}: ${n}`).join(', ') : 'nothing staged';
  box.replaceChildren(
    el('div', `batch ${b.id}, ${b.state} (planned ${iso(b.plannedAt)}${b.stagedAt ? `, staged ${iso(b.stagedAt)}` : ''}), fingerprint ${b.fingerprint}`),
    el('div', `ranges: ${rangesText(b.ranges, b.rangeCount)}`),
    el('div', `records in: ${b.recordsIn ?? '?'}; staged outputs: ${staged}`),
  );
}

function batchRow(b: StatusBatch): HTMLElement {
  const tr = el('tr');
  tr.dataset.batch = String(b.id);
  const total = PHASES.reduce((sum, p) => sum + (b.durations[p] ?? 0), 0);
  tr.append(
    el('td', String(b.id)), el('td', rangesText(b.ranges, b.rangeCount), 'text'), el('td', String(b.records)), el('td', String(b.outputs)),
    ...PHASES.map((p) => el('td', b.durations[p] === undefined ? '' : formatMs(b.durations[p]!))),
    el('td', formatMs(total)), el('td', b.recovered ? 'yes' : ''),
  );
  return tr;
}

function tables(s: StatusJson): void {
  byId('batches').querySelector('tbody')!.replaceChildren(...s.batches.slice(0, 20).map(batchRow));
  byId('fingerprints').querySelector('tbody')!.replaceChildren(...[...s.job.fingerprints].reverse().map((f) => {
    const tr = el('tr');
    tr.append(el('td', iso(f.since), 'text'), el('td', f.fingerprint, 'text'), el('td', f.note, 'text'));
    return tr;
  }));
}

function plots(s: StatusJson): void {
  const t = [...s.series.t];
  rates.draw(['in', 'out'], [t, [...s.series.recordsIn], [...s.series.recordsOut]]);
  size.draw(['checkpoint'], [t, [...s.series.checkpointBytes]], () => ({ value: (_u, v) => (v === null ? '' : formatBytes(v)) }));
  lag.draw(s.series.lag.map((l) => l.partition), [t, ...s.series.lag.map((l) => [...l.values])]);

  // Stacked: each phase drawn as the sum of it and the phases before it, the last (largest) first so the smaller ones paint over it.
  const batches = [...s.batches].reverse();
  const ids = batches.map((b) => b.id);
  const own = PHASES.map((p) => batches.map((b) => b.durations[p] ?? 0));
  const stacked = own.map((_, i) => batches.map((_b, j) => own.slice(0, i + 1).reduce((sum, o) => sum + o[j]!, 0)));
  const order = PHASES.map((_, i) => PHASES.length - 1 - i);
  phases.draw(order.map((i) => PHASES[i]!), [ids, ...order.map((i) => stacked[i]!)], (k) => ({
    fill: `${COLORS[k % COLORS.length]}cc`,
    value: (_u, _v, _si, idx) => (idx === null ? '' : formatMs(own[order[k]!]![idx]!)),
  }));
}

async function poll(): Promise<void> {
  const state = byId('state');
  try {
    const res = await fetch('/status.json', { cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const s = (await res.json()) as StatusJson;
    byId('job').textContent = s.job.name;
    document.title = `tidemark · ${s.job.name}`;
    state.textContent = `${s.ready.ready ? 'ready' : `not ready: ${s.ready.reason}`} · updated ${iso(s.now)}`;
    state.className = `state ${s.ready.ready ? 'ok' : 'bad'}`;
    facts(s);
    inFlight(s);
    tables(s);
    plots(s);
  } catch (err) {
    state.textContent = `cannot reach the daemon: ${(err as Error).message}`;
    state.className = 'state bad';
  } finally {
    setTimeout(() => void poll(), 1_000);
  }
}

void poll();
