// How tidemark's Kafka clients (the source and the sink) connect: the options they share
// and the kafkajs config those become.
import type { KafkaConfig, RetryOptions, SASLOptions } from 'kafkajs';
import type { ConnectionOptions } from 'node:tls';
import { installCoordinatorHook } from './coordinator-refusals';
import { installThrottleHook } from './throttle-hook';

export interface KafkaConnectionOptions {
  /** Bootstrap servers, `host:port`. */
  readonly brokers: readonly string[];
  /** Passed to kafkajs unchanged (`new Kafka({ ssl })`): `true`, or Node's tls.connect options (ca, cert, key, …). */
  readonly ssl?: boolean | ConnectionOptions;
  /** Passed to kafkajs unchanged (`new Kafka({ sasl })`): `{ mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512' | 'aws' | 'oauthbearer', … }`. */
  readonly sasl?: SASLOptions;
  /** Default `tidemark`. */
  readonly clientId?: string;
  /** kafkajs connection timeout and request timeout (ms). */
  readonly connectionTimeout?: number;
  readonly requestTimeout?: number;
  /** kafkajs's own retry options for its requests (tidemark retries around them). */
  readonly retry?: RetryOptions;
}

/** The kafkajs config for `options`; `defaults` (the client's own) stand where the options say nothing. */
export function kafkaConfig(options: KafkaConnectionOptions, defaults: Omit<Partial<KafkaConfig>, 'brokers'> = {}): KafkaConfig {
  installCoordinatorHook(); // a missing group or transactional-id ACL, named (errors.ts: accessFailure)
  installThrottleHook(); // no TimeoutNegativeWarning per connection on Node ≥ 24
  return {
    ...defaults,
    clientId: options.clientId ?? 'tidemark',
    brokers: [...options.brokers],
    ...(options.ssl !== undefined ? { ssl: options.ssl } : {}),
    ...(options.sasl !== undefined ? { sasl: options.sasl } : {}),
    ...(options.connectionTimeout !== undefined ? { connectionTimeout: options.connectionTimeout } : {}),
    ...(options.requestTimeout !== undefined ? { requestTimeout: options.requestTimeout } : {}),
    ...(options.retry !== undefined ? { retry: options.retry } : {}),
  };
}
