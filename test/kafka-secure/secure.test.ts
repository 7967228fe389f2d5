// The Kafka source and sink against a broker that asks for what production brokers ask for
// (scripts/kafka start --secure): SASL_SSL with SCRAM-SHA-512 and with PLAIN, mutual TLS, and
// OAUTHBEARER, each with only the minimal ACLs that docs/kafka-source.md and docs/sinks.md
// list. The job is examples/kafka-secure/job.ts, run by the real binary at debug level;
// nothing any run printed or stored holds a secret.
import { readFileSync } from 'node:fs';
import { defineJob, Engine, kafkaSource, memorySink, type SourceRecord } from 'tidemark';
import { tempDir } from '../support/tmp';
import {
  aclNames, closeClients, committedValues, createTopics, documentedAcls, grant, inspect, outputs, produce, runJob, secretsFound, secureBroker, secureJob,
  startJob, TIDEMARK, TIDEMARK_MTLS, unique, type SecureJob,
} from '../support/kafka-secure';

const dir = tempDir('tidemark-secure-');
afterAll(closeClients);

/** The documented minimal ACLs of the job's source and sink, for `principal`. */
function minimalAcls(job: SecureJob, principal: string) {
  return [...documentedAcls('docs/kafka-source.md', aclNames(job)), ...documentedAcls('docs/sinks.md', aclNames(job))].map((a) => ({ ...a, principal }));
}

async function roundTrip(job: SecureJob, principal: string): Promise<void> {
  await createTopics(job.topic, job.out);
  await grant(minimalAcls(job, principal));
  await produce(job.topic, ['a', 'b', 'c']);
  const first = await runJob(job);
  expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
  await produce(job.topic, ['d', 'e']);
  const second = await runJob(job);
  expect({ code: second.code, stderr: second.stderr }).toEqual({ code: 0, stderr: '' });
  expect(await committedValues(job.out)).toEqual(['A', 'B', 'C', 'D', 'E']);
  const report = JSON.parse((await inspect(job)).stdout) as { inFlight?: unknown; positions: Record<string, number> };
  expect(report.positions).toEqual({ [`${job.topic}/0`]: 5 });
}

describe('the Kafka source and sink on a secured broker, with only the minimal ACLs', () => {
  it('SASL_SSL with SCRAM-SHA-512: reads, transforms and writes transactionally', async () => {
    await roundTrip(secureJob(dir), TIDEMARK);
  });

  it('SASL_SSL with PLAIN', async () => {
    await roundTrip(secureJob(dir, { KAFKA_SASL_MECHANISM: 'plain' }), TIDEMARK);
  });

  it('mutual TLS: the client certificate is the principal', async () => {
    const b = secureBroker();
    await roundTrip(secureJob(dir, {
      KAFKA_BROKERS: b.mtlsBrokers, KAFKA_SASL_USERNAME: '', KAFKA_CLIENT_CERT_FILE: b.clientCert, KAFKA_CLIENT_KEY_FILE: b.clientKey,
    }), TIDEMARK_MTLS);
  });

  it("OAUTHBEARER: kafkajs's token provider against Kafka's unsecured-JWT validator", async () => {
    const b = secureBroker();
    const topic = unique('oauth');
    await createTopics(topic);
    await grant([{ resourceType: 'topic', name: topic, pattern: 'literal', operation: 'read' }, { resourceType: 'group', name: topic, pattern: 'prefixed', operation: 'read' }]);
    await produce(topic, ['x', 'y']);
    const part = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const token = `${part({ alg: 'none' })}.${part({ sub: 'tidemark', iat: now, exp: now + 600 })}.`;
    const sink = memorySink<string>();
    const engine = new Engine(defineJob<string>({
      name: topic, sinks: [sink], transform: (records: SourceRecord[]) => records.map((r) => r.value!.toString()),
      source: kafkaSource({
        brokers: [b.brokers], topics: [topic], groupId: topic, ssl: { ca: [readFileSync(b.ca)] },
        sasl: { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: token }) },
      }),
    }), { checkpointDir: `${dir}/${topic}` });
    await engine.run({ once: true });
    expect([...sink.batches.values()].flat()).toEqual(['x', 'y']);
  });

  it('a daemon on the secured broker: its metrics and health endpoints, kept for the secrets check', async () => {
    const job = secureJob(dir);
    await createTopics(job.topic, job.out);
    await grant(minimalAcls(job, TIDEMARK));
    await produce(job.topic, ['m']);
    const daemon = startJob(job, ['--metrics-port', '0']);
    const port = Number((await daemon.waitForLog(/^metrics on /)).metricsPort);
    await daemon.waitForLog(/^batch 1 committed$/);
    for (const path of ['/metrics', '/healthz', '/readyz']) {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      expect(res.status).toBe(200);
      outputs.push(await res.text());
    }
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
    expect(await committedValues(job.out)).toEqual(['M']);
  });

  it('no password or private key appears in any output of the runs above, nor in their checkpoints', () => {
    expect(secretsFound()).toEqual([]);
  });
});
