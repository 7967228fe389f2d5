// Placeholder until the Kafka source lands: the torture driver's Kafka producer.
import type { Producer } from './torture';

export function kafkaProducerFactory(): (dir: string) => Producer {
  throw new Error('the Kafka torture producer is not written yet');
}
