// Every Kafka compression codec, written by Kafka's own Java producer tools (the same jars
// as the broker), read by tidemark. Each codec's decompressor is wrapped to count its
// calls, so the test proves the data really went through it.
import { join } from 'node:path';
import { CompressionCodecs, CompressionTypes } from 'kafkajs';
import { registerKafkaCodecs } from '../../src/kafka/codecs';
import { closeClients, createTopic, javaConsoleProduce, javaPerfProduce, runKafkaJob, uniqueTopic } from '../support/kafka';
import { tempDir } from '../support/tmp';

afterAll(closeClients);

const CODECS = ['gzip', 'snappy', 'lz4', 'zstd'] as const;
const TYPE = { gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy, lz4: CompressionTypes.LZ4, zstd: CompressionTypes.ZSTD } as const;

type CodecFactory = () => { decompress(b: Buffer): Promise<Buffer>; compress(e: unknown): Promise<Buffer> };
const decompressed: Record<string, number> = { gzip: 0, snappy: 0, lz4: 0, zstd: 0 };

beforeAll(() => {
  registerKafkaCodecs();
  const table = CompressionCodecs as unknown as Record<number, CodecFactory>;
  for (const name of CODECS) {
    const real = table[TYPE[name]]!;
    table[TYPE[name]] = () => {
      const codec = real();
      return {
        compress: (e) => codec.compress(e),
        decompress: async (b) => {
          decompressed[name]!++;
          return codec.decompress(b);
        },
      };
    };
  }
});

describe('kafkaSource reads every compression codec written by the Java producer', () => {
  const root = tempDir();

  it.each(CODECS)('%s: console-producer lines and producer-perf-test records, exactly', async (codec) => {
    const topic = uniqueTopic(`codec-${codec}`);
    await createTopic(topic, 1);
    // Known content through kafka-console-producer (several batches: linger and small batch size) …
    const lines = Array.from({ length: 300 }, (_, i) => `key${i}:${codec} line ${i} ${'abc'.repeat(i % 17)}`);
    await javaConsoleProduce(topic, lines, { 'compression.type': codec, 'batch.size': '2048' });
    // … then volume through kafka-producer-perf-test (200-byte records).
    await javaPerfProduce(topic, 5000, 200, { 'compression.type': codec });

    const before = decompressed[codec]!;
    const run = await runKafkaJob(join(root, codec), { topics: [topic], groupId: `${topic}-job` }, { once: true }, { batch: { maxRecordsPerPartition: 1000 } });
    expect(decompressed[codec]! - before).toBeGreaterThan(1);

    const all = run.records.flat();
    expect(all.length).toBe(5300);
    expect(all.map((r) => r.offset)).toEqual(Array.from({ length: 5300 }, (_, i) => i));
    expect(all.slice(0, 300).map((r) => `${r.key!.toString()}:${r.value!.toString()}`)).toEqual(lines);
    for (const r of all.slice(300)) {
      expect(r.key).toBeNull();
      expect(r.value!.length).toBe(200);
    }
  });
});
