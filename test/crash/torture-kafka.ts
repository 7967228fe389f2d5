// The torture driver's producer for a real Kafka topic: 4 partitions, values `r<seq>`
// sent by an idempotent kafkajs producer every 20 ms while the daemon is killed and
// restarted. Records are listed as produced only once the broker acknowledged them.
import { Kafka, logLevel } from 'kafkajs';
import { waitForLeaders } from '../support/kafka';
import type { Producer } from './torture';

export function kafkaProducerFactory(brokers = process.env.KAFKA_BROKERS): (dir: string) => Producer {
  if (!brokers) throw new Error('KAFKA_BROKERS is not set: start a broker with `scripts/kafka start` (npm test does it for the kafka project)');
  return () => {
    const topic = `torture-${process.pid}-${Date.now()}`;
    const kafka = new Kafka({ clientId: 'torture-producer', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    const acked = new Map<number, string[]>([[0, []], [1, []], [2, []], [3, []]]);
    let seq = 0;
    let timer: NodeJS.Timeout | undefined;
    let pending: Promise<void> = (async () => {
      const admin = kafka.admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic, numPartitions: 4, replicationFactor: 1 }] });
      await waitForLeaders(admin, topic, 4);
      await admin.disconnect();
      await producer.connect();
    })();
    const tick = (): void => {
      pending = pending.then(async () => {
        const messages = Array.from({ length: 40 }, () => {
          const n = seq++;
          return { partition: n % 4, value: `r${n}` };
        });
        await producer.send({ topic, acks: -1, messages });
        for (const m of messages) acked.get(m.partition)!.push(m.value);
      });
    };
    return {
      sourceEnv: { TORTURE_SOURCE: 'kafka', TORTURE_TOPIC: topic, KAFKA_BROKERS: brokers },
      start() {
        tick();
        timer = setInterval(tick, 20);
      },
      async stop() {
        clearInterval(timer);
        await pending;
        await producer.disconnect();
      },
      async produced() {
        return acked;
      },
    };
  };
}
