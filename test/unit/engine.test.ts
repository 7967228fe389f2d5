import { join } from 'node:path';
import { defineJob, Engine, generatorSource, memorySink, type SourceRecord } from 'tidemark';
import { tempDir } from '../support/tmp';

const values = (records: SourceRecord[]): string[] => records.map((r) => `${r.partition}:${r.offset}`);

describe('engine on the generator source', () => {
  const root = tempDir();

  it('processes every offset exactly once across batches and restarts', async () => {
    const sink = memorySink<string>();
    let size = 250;
    const make = () => defineJob({
      name: 'gen', source: generatorSource({ partitions: 3, size: () => size }), sinks: [sink],
      transform: values, batch: { maxRecordsPerPartition: 40 },
    });
    const dir = join(root, 'cp1');
    const first = await new Engine(make(), { checkpointDir: dir }).run({ once: true });
    expect(first.records).toBe(750);
    expect(first.batches).toBe(Math.ceil(250 / 40));
    size = 300;
    const second = await new Engine(make(), { checkpointDir: dir }).run({ once: true });
    expect(second.records).toBe(150);
    const all = sink.all();
    expect(new Set(all).size).toBe(900);
    expect(all.length).toBe(900);
    expect(second.positions).toEqual({ 'generated/0': 300, 'generated/1': 300, 'generated/2': 300 });
  });
});
