// The secured broker of the kafka-secure test project (scripts/kafka start --secure,
// started by test/support/kafka-secure-setup.js): its addresses, CA and users, an admin
// client as its super user, ACLs for the ordinary user `tidemark`, the example job
// examples/kafka-secure/job.ts run by the real binary, and the secrets every output of
// those runs is searched for.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  AclOperationTypes, AclPermissionTypes, AclResourceTypes, Kafka, logLevel, Partitioners, ResourcePatternTypes,
  type Admin, type KafkaConfig, type Producer,
} from 'kafkajs';
import { installThrottleHook } from '../../src/kafka/throttle-hook';
import { ROOT, start, tidemark, type Result, type Tidemark } from './cli';

// As in ./kafka.ts: no TimeoutNegativeWarning from the tests' own kafkajs clients on Node 24.
installThrottleHook();

export interface SecureBroker {
  /** SASL_SSL (SCRAM-SHA-512, PLAIN, OAUTHBEARER). */
  readonly brokers: string;
  /** SSL with a required client certificate. */
  readonly mtlsBrokers: string;
  readonly ca: string;
  readonly clientCert: string;
  readonly clientKey: string;
  readonly adminPassword: string;
  readonly user: string;
  readonly password: string;
}

/** The secured broker's settings: set by the project's global setup; missing means a failed setup (fail, never skip). */
export function secureBroker(): SecureBroker {
  const get = (name: string): string => {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set: the kafka-secure test project starts the secured broker in its global setup (scripts/kafka start --secure)`);
    return v;
  };
  return {
    brokers: get('KAFKA_SECURE_BROKERS'), mtlsBrokers: get('KAFKA_SECURE_MTLS_BROKERS'), ca: get('KAFKA_SECURE_CA'),
    clientCert: get('KAFKA_SECURE_CLIENT_CERT'), clientKey: get('KAFKA_SECURE_CLIENT_KEY'),
    adminPassword: get('KAFKA_SECURE_ADMIN_PASSWORD'), user: get('KAFKA_SECURE_USER'), password: get('KAFKA_SECURE_PASSWORD'),
  };
}

/** Principals of tidemark's runs: the SASL user, and the mTLS client certificate's subject. */
export const TIDEMARK = 'User:tidemark';
export const TIDEMARK_MTLS = 'User:CN=tidemark-mtls';

export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** A kafkajs client as the broker's super user (SCRAM-SHA-512 over TLS). */
export function superClient(extra: Partial<KafkaConfig> = {}): Kafka {
  const b = secureBroker();
  return new Kafka({
    clientId: 'tidemark-tests', brokers: [b.brokers], logLevel: logLevel.NOTHING,
    ssl: { ca: [readFileSync(b.ca)] }, sasl: { mechanism: 'scram-sha-512', username: 'admin', password: b.adminPassword }, ...extra,
  });
}

let sharedAdmin: Admin | undefined;
let sharedProducer: Producer | undefined;

export async function admin(): Promise<Admin> {
  if (!sharedAdmin) {
    const a = superClient().admin();
    await a.connect();
    sharedAdmin = a;
  }
  return sharedAdmin;
}

export async function createTopics(...topics: string[]): Promise<void> {
  const a = await admin();
  await a.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: 1, replicationFactor: 1 })), waitForLeaders: true });
}

/** Values produced in order to `topic` (idempotent, acks all), as the super user. */
export async function produce(topic: string, values: readonly string[]): Promise<void> {
  if (!sharedProducer) {
    const p = superClient().producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true, maxInFlightRequests: 1 });
    await p.connect();
    sharedProducer = p;
  }
  await sharedProducer.send({ topic, acks: -1, messages: values.map((value) => ({ value })) });
}

/** Every committed value of a one-partition topic, in offset order (a read_committed consumer, as the super user). */
export async function committedValues(topic: string): Promise<string[]> {
  const a = await admin();
  const [p0] = await a.fetchTopicOffsets(topic);
  const end = Number(p0!.high);
  if (end === 0) return [];
  const consumer = superClient().consumer({ groupId: unique('tests-read'), readUncommitted: false });
  const values: string[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${values.length} values of ${topic} before the end (offset ${end}) in 30 s`)), 30_000);
      consumer.run({
        eachMessage: async ({ message }) => {
          values.push(message.value!.toString());
          // The last offset may be a transaction marker: stop at the last record before the end.
          if (Number(message.offset) >= end - 2) {
            clearTimeout(timer);
            resolve();
          }
        },
      }).catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return values;
}

export interface Acl {
  readonly resourceType: 'topic' | 'group' | 'transactional-id';
  readonly name: string;
  readonly pattern: 'literal' | 'prefixed';
  readonly operation: 'read' | 'write' | 'describe';
  readonly principal?: string;
}

const RESOURCE = { topic: AclResourceTypes.TOPIC, group: AclResourceTypes.GROUP, 'transactional-id': AclResourceTypes.TRANSACTIONAL_ID } as const;
const OPERATION = { read: AclOperationTypes.READ, write: AclOperationTypes.WRITE, describe: AclOperationTypes.DESCRIBE } as const;

function toKafka(acl: Acl) {
  return {
    resourceType: RESOURCE[acl.resourceType], resourceName: acl.name,
    resourcePatternType: acl.pattern === 'prefixed' ? ResourcePatternTypes.PREFIXED : ResourcePatternTypes.LITERAL,
    principal: acl.principal ?? TIDEMARK, host: '*', operation: OPERATION[acl.operation], permissionType: AclPermissionTypes.ALLOW,
  };
}

export async function grant(acls: readonly Acl[]): Promise<void> {
  if (acls.length > 0) await (await admin()).createAcls({ acl: acls.map(toKafka) });
}

export async function revoke(acls: readonly Acl[]): Promise<void> {
  if (acls.length > 0) await (await admin()).deleteAcls({ filters: acls.map(toKafka) });
}

/**
 * The minimal ACL set as documented: the rows of the table under "Minimal ACLs" in a doc
 * (`| resource | name | pattern | operations |`), with `<…>` placeholders filled from `names`.
 */
export function documentedAcls(file: string, names: Record<string, string>): Acl[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const at = text.indexOf('Minimal ACLs');
  if (at < 0) throw new Error(`${file} has no "Minimal ACLs" section`);
  const lines = text.slice(at).split('\n');
  const first = lines.findIndex((l) => l.startsWith('| resource | name | pattern | operations |'));
  if (first < 0) throw new Error(`${file}: no ACL table under "Minimal ACLs"`);
  const acls: Acl[] = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break;
    const [resource, name, pattern, operations] = line.split(' | ').map((c) => c.replace(/^\|\s*|\s*\|$/g, '').replace(/`/g, '').trim());
    const filled = name!.replace(/<([^>]+)>/g, (_, key: string) => {
      const v = names[key];
      if (v === undefined) throw new Error(`${file}: no value for <${key}>`);
      return v;
    });
    for (const op of operations!.split(',').map((o) => o.trim().toLowerCase())) {
      acls.push({ resourceType: resource!.toLowerCase() as Acl['resourceType'], name: filled, pattern: pattern as Acl['pattern'], operation: op as Acl['operation'] });
    }
  }
  return acls;
}

// ------------------------------------------------------------------ the example job, by the real binary

export const JOB = join(ROOT, 'examples', 'kafka-secure', 'job.ts');

export interface SecureJob {
  readonly name: string;
  readonly topic: string;
  readonly out: string;
  readonly checkpoint: string;
  /** The environment of its runs: connection settings as examples/kafka-secure/README.md gives them. */
  readonly env: Record<string, string>;
}

/** Names for one run of the example job; `env` connects with SCRAM-SHA-512 as `tidemark` unless `connection` says otherwise. */
export function secureJob(dir: string, connection: Record<string, string> = {}): SecureJob {
  const b = secureBroker();
  const name = unique('secure');
  const job = { name, topic: `${name}-in`, out: `${name}-out`, checkpoint: join(dir, name) };
  return {
    ...job,
    env: {
      KAFKA_BROKERS: b.brokers, KAFKA_CA_FILE: b.ca, KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: b.user, KAFKA_SASL_PASSWORD: b.password,
      TOPIC: job.topic, OUT_TOPIC: job.out, JOB_NAME: name, ...connection,
    },
  };
}

/** The resources of a job's minimal ACLs, for documentedAcls. */
export function aclNames(job: SecureJob): Record<string, string> {
  return { topic: job.topic, groupId: job.name, 'output topic': job.out, 'ledger topic': job.out, job: job.name, sink: 'upper' };
}

/** Every output of the runs (stdout, stderr) and the checkpoint directories, for the secrets check. */
export const outputs: string[] = [];
export const checkpoints = new Set<string>();

function kept(job: SecureJob, r: Result): Result {
  outputs.push(r.stdout, r.stderr);
  checkpoints.add(job.checkpoint);
  return r;
}

/** `tidemark run` of the example job at debug level, to completion. */
export async function runJob(job: SecureJob, args: readonly string[] = ['--once']): Promise<Result> {
  return kept(job, await tidemark(['run', JOB, '--checkpoint', job.checkpoint, '--log-level', 'debug', ...args], { env: job.env }));
}

/** The same as a daemon; its outputs are kept when it exits. */
export function startJob(job: SecureJob, args: readonly string[] = []): Tidemark {
  const t = start(['run', JOB, '--checkpoint', job.checkpoint, '--log-level', 'debug', ...args], { env: job.env });
  void t.exited.then((r) => kept(job, r));
  return t;
}

/** `tidemark inspect --json`, its output kept. */
export async function inspect(job: SecureJob): Promise<Result> {
  return kept(job, await tidemark(['inspect', job.checkpoint, '--json']));
}

/** Every file under `dir`, as bytes read as latin1 (LevelDB files are binary). */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...filesUnder(path));
    else out.push(readFileSync(path, 'latin1'));
  }
  return out;
}

/** The secrets of the secured broker's users and the mTLS key (its base64 body), and where any of them appears. */
export function secretsFound(extra: readonly string[] = []): string[] {
  const b = secureBroker();
  const key = readFileSync(b.clientKey, 'utf8').split('\n').filter((l) => l && !l.startsWith('-----'));
  const secrets = [b.password, b.adminPassword, ...key.slice(0, 2), ...extra];
  const places = [...outputs.map((text, i) => ({ where: `output #${i}`, text }))];
  for (const dir of checkpoints) {
    try {
      filesUnder(dir).forEach((text, i) => places.push({ where: `${dir} file #${i}`, text }));
    } catch {
      // a checkpoint a failed run never created
    }
  }
  // The search itself: a piece of the longest output must be found.
  const longest = places.reduce((a, b) => (b.text.length > a.text.length ? b : a), { where: '', text: '' });
  if (longest.text.length < 200 || !places.some((p) => p.text.includes(longest.text.slice(100, 140)))) throw new Error('the secrets check has nothing to search');
  const found: string[] = [];
  for (const s of secrets) for (const p of places) if (p.text.includes(s)) found.push(`${p.where} holds a secret (${s.slice(0, 3)}…)`);
  return found;
}

export async function closeClients(): Promise<void> {
  const p = sharedProducer;
  sharedProducer = undefined;
  await p?.disconnect().catch(() => {});
  const a = sharedAdmin;
  sharedAdmin = undefined;
  await a?.disconnect().catch(() => {});
}
