// A job for the Kafka sink crash tests, run by the real `tidemark run`:
//   KAFKA_BROKERS, SINK_TOPIC   the broker and the output topic
//   JOB_SIZE                    records per partition of the generator source (2 partitions)
//   KILL_AT_OUTPUT=N            SIGKILL the process while mapping its N-th output, i.e. in the
//                               middle of a Kafka transaction whose first chunks were sent
// The transform is non-deterministic on purpose (the process id in every value): staged
// outputs, not a recomputation, must be what a redelivery writes.
import { forwardRecord, defineJob, generatorSource, kafkaSink, type KafkaMessageOut } from 'tidemark';

const killAt = Number(process.env.KILL_AT_OUTPUT ?? 0);
let mapped = 0;

export default defineJob<KafkaMessageOut>({
  name: 'kafka-crash',
  source: generatorSource({ topic: 'gen', partitions: 2, size: Number(process.env.JOB_SIZE ?? 3000) }),
  sinks: [kafkaSink<KafkaMessageOut>({
    name: 'kafka',
    brokers: (process.env.KAFKA_BROKERS ?? '').split(','),
    topic: process.env.SINK_TOPIC ?? 'out',
    maxRequestBytes: 16 * 1024, // several produce requests per batch: a kill can land between them
    message: (m) => {
      if (++mapped === killAt) process.kill(process.pid, 'SIGKILL');
      return m;
    },
  })],
  transform: (records) => records.map((r) => forwardRecord(r, { value: `${r.partition}:${r.offset}:${process.pid}` })),
  batch: { maxRecordsPerPartition: 500 },
});
