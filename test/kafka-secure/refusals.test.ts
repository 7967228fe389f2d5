// The failures a person meets on day one with a secured Kafka, by the real binary on the
// example job (examples/kafka-secure/job.ts) at debug level: each stops at once with one
// message naming the cause and the way on, its own exit code, and nothing lost or
// half-written — including an ACL taken away while the daemon runs: the batch stays
// STAGED, and once the ACL is back a restart delivers it exactly once.
import { randomBytes } from 'node:crypto';
import {
  aclNames, closeClients, committedValues, createTopics, documentedAcls, grant, inspect, produce, revoke, runJob, secretsFound, secureBroker,
  secureJob, startJob, type Acl, type SecureJob,
} from '../support/kafka-secure';
import { tempDir } from '../support/tmp';

const dir = tempDir('tidemark-refusals-');
afterAll(closeClients);
const wrongPassword = `wrong-${randomBytes(8).toString('hex')}`;

function minimalAcls(job: SecureJob): Acl[] {
  return [...documentedAcls('docs/kafka-source.md', aclNames(job)), ...documentedAcls('docs/sinks.md', aclNames(job))];
}

/** A job with its topics and three input records, granted the minimal ACLs but those `without` picks. */
async function jobWithout(without: (acl: Acl, job: SecureJob) => boolean, connection: Record<string, string> = {}): Promise<SecureJob> {
  const job = secureJob(dir, connection);
  await createTopics(job.topic, job.out);
  await grant(minimalAcls(job).filter((a) => !without(a, job)));
  await produce(job.topic, ['a', 'b', 'c']);
  return job;
}

/** Runs the job once: one message on stderr (the stack trace after it, at debug level), this exit code. */
async function refused(job: SecureJob, exitCode: number, message: RegExp): Promise<string> {
  const r = await runJob(job);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: exitCode, stderr: expect.stringMatching(message) });
  return r.stderr;
}

/** The batch in flight is STAGED (the sink refused it), nothing of it is in the output topic. */
async function stagedNothingWritten(job: SecureJob, id: number, before: string[] = []): Promise<void> {
  const report = JSON.parse((await inspect(job)).stdout) as { inFlight: { id: number; state: string } | null };
  expect(report.inFlight).toMatchObject({ id, state: 'staged' });
  expect(await committedValues(job.out)).toEqual(before);
}

const none = (): boolean => false;
const isGroup = (a: Acl): boolean => a.resourceType === 'group' && a.pattern === 'prefixed';

describe('refusals by a secured Kafka', () => {
  it('a wrong password: exit 13, naming the credentials', async () => {
    await refused(await jobWithout(none, { KAFKA_SASL_PASSWORD: wrongPassword }), 13,
      /^tidemark: Kafka 127\.0\.0\.1:\d+ refused tidemark's credentials: SASL SCRAM SHA512 authentication failed: .*invalid credentials.*Check the user name and password/);
  });

  it('an unknown user: exit 13 (Kafka answers it as a wrong password)', async () => {
    await refused(await jobWithout(none, { KAFKA_SASL_USERNAME: 'nobody', KAFKA_SASL_MECHANISM: 'plain' }), 13,
      /^tidemark: Kafka 127\.0\.0\.1:\d+ refused tidemark's credentials: SASL PLAIN authentication failed: Authentication failed: Invalid username or password/);
  });

  it("the CA not given: the broker's certificate is not trusted, exit 14", async () => {
    await refused(await jobWithout(none, { KAFKA_CA_FILE: '' }), 14,
      /^tidemark: TLS connection to Kafka 127\.0\.0\.1:\d+ failed: the server's certificate is not trusted \(.+\): give the CA that signed it/);
  });

  it('a host name the certificate does not name (issued for 127.0.0.1, reached as localhost): exit 14', async () => {
    const port = secureBroker().brokers.split(':')[1]!;
    await refused(await jobWithout(none, { KAFKA_BROKERS: `localhost:${port}` }), 14,
      /^tidemark: TLS connection to Kafka localhost:\d+ failed: the server's certificate does not name the host connected to \(.*localhost.*\)/);
  });

  it('mutual TLS without a client certificate: exit 14', async () => {
    await refused(await jobWithout(none, { KAFKA_BROKERS: secureBroker().mtlsBrokers, KAFKA_SASL_USERNAME: '' }), 14,
      /^tidemark: TLS connection to Kafka 127\.0\.0\.1:\d+ failed: the server refused the handshake \(.+\): it requires a client certificate/);
  });

  it('no ACL on the input topic: exit 15, the topic named — not "does not exist"', async () => {
    const job = await jobWithout((a, j) => a.resourceType === 'topic' && a.name === j.topic);
    const stderr = await refused(job, 15, /^tidemark: Kafka 127\.0\.0\.1:\d+ did not authorize describing topic (\S+) \(Describe, implied by Read, on the topic\): no ACL lets this principal do it on the topic \(TOPIC_AUTHORIZATION_FAILED\)/);
    expect(stderr).toContain(`describing topic ${job.topic} `);
  });

  it("no ACL on the job's groups: exit 15, the groups named", async () => {
    const job = await jobWithout(isGroup);
    const stderr = await refused(job, 15, /did not authorize .*group.*: no ACL lets this principal do it on the consumer group \(GROUP_AUTHORIZATION_FAILED\)/);
    expect(stderr).toContain(job.name);
  });

  it("a literal ACL on the job's group only: the reader's own group is refused (why the documented ACL is prefixed)", async () => {
    const job = await jobWithout(isGroup);
    await grant([{ resourceType: 'group', name: job.name, pattern: 'literal', operation: 'read' }]);
    const stderr = await refused(job, 15, /did not authorize reading \S+ as a member of group \S+\.reader\.\d+\.\w+ \(Read on the topic; Read on the groups whose names start with /);
    expect(stderr).toContain(`start with ${job.name},`);
  });

  it('no ACL on the output topic: exit 15, the batch stays STAGED, nothing written', async () => {
    const job = await jobWithout((a, j) => a.resourceType === 'topic' && a.name === j.out && a.operation === 'write');
    // Write on another topic, as a principal that produces elsewhere has: Kafka then lets the idempotent producer
    // start (KIP-679) and refuses the write itself. Without any Write the start is refused first
    // (CLUSTER_AUTHORIZATION_FAILED), so the test would depend on the grants of the tests run before it.
    await grant([{ resourceType: 'topic', name: `${job.out}-elsewhere`, pattern: 'literal', operation: 'write' }]);
    await refused(job, 15, /did not authorize writing batch 1 \(it needs Write on topic \S+-out, .*\): no ACL lets this principal do it on the topic \(TOPIC_AUTHORIZATION_FAILED\)/);
    await stagedNothingWritten(job, 1);
  });

  it('no ACL on the transactional id: exit 15, the batch stays STAGED, nothing written', async () => {
    const job = await jobWithout((a) => a.resourceType === 'transactional-id');
    await refused(job, 15, /did not authorize (connecting the sink's producer for|writing) batch 1 \(.*Write on transactional id tidemark\.\S+\.upper\): no ACL lets this principal use the transactional id \(TRANSACTIONAL_ID_AUTHORIZATION_FAILED\)/);
    await stagedNothingWritten(job, 1);
  });

  it('the transactional id ACL taken away mid-run: the daemon stops with exit 15, the batch STAGED; restored, a restart is exactly-once', async () => {
    const job = await jobWithout(none);
    const daemon = startJob(job);
    await daemon.waitForLog(/^batch 1 committed$/);
    const txn = minimalAcls(job).filter((a) => a.resourceType === 'transactional-id');
    await revoke(txn);
    await produce(job.topic, ['d', 'e']);
    const stopped = await daemon.exited;
    expect({ code: stopped.code, stderr: stopped.stderr }).toEqual({ code: 15, stderr: expect.stringMatching(/did not authorize writing batch 2 .*TRANSACTIONAL_ID_AUTHORIZATION_FAILED/) });
    await stagedNothingWritten(job, 2, ['A', 'B', 'C']);
    await grant(txn);
    const again = await runJob(job);
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: '' });
    expect(await committedValues(job.out)).toEqual(['A', 'B', 'C', 'D', 'E']);
    expect(JSON.parse((await inspect(job)).stdout)).toMatchObject({ inFlight: null, positions: { [`${job.topic}/0`]: 5 } });
  });

  it('no password, wrong password or private key appears in any output of the runs above, nor in their checkpoints', () => {
    expect(secretsFound([wrongPassword])).toEqual([]);
  });
});
