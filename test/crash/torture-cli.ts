// `npm run torture -- --kills 1000 [--source embedded|kafka] [--seed N]`: the long form.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { embeddedProducer, printReport, runTorture, type Producer } from './torture';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { kills: { type: 'string' }, source: { type: 'string' }, seed: { type: 'string' }, dir: { type: 'string' } } });
  const kills = Number(values.kills ?? 1000);
  const source = values.source ?? 'embedded';
  let producer: (dir: string) => Producer;
  if (source === 'embedded') producer = (dir) => embeddedProducer(dir);
  else if (source === 'kafka') producer = (await import('./torture-kafka')).kafkaProducerFactory();
  else throw new Error(`--source must be embedded or kafka, not ${source}`);
  const report = await runTorture({
    kills, producer, dir: values.dir ?? join(tmpdir(), `tidemark-torture-${source}`),
    ...(values.seed ? { seed: Number(values.seed) } : {}), log: (l) => console.log(l),
  });
  console.log(printReport(report));
  const ok = report.lost === 0 && report.duplicated === 0 && report.mixedExecutions === 0 && report.outOfOrder === 0 && !report.inFlightAfterDrain;
  process.exitCode = ok ? 0 : 1;
}

void main();
