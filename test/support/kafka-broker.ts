// A Kafka broker of a test's own (scripts/kafka with its own state directory), for tests
// that kill and restart the broker: the shared broker of the other tests stays untouched.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './tmp';

const script = join(__dirname, '..', '..', 'scripts', 'kafka');

function kafkaScript(dir: string, args: readonly string[]): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, TIDEMARK_KAFKA_DIR: dir };
  delete env.KAFKA_BROKERS; // this broker, not the shared one
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out.trim().split('\n').pop()!.trim()) : reject(new Error(`scripts/kafka ${args.join(' ')} exited with ${code}:\n${err}`))));
  });
}

export class OwnBroker {
  address = '';

  constructor(readonly dir: string) {}

  async start(): Promise<string> {
    this.address = await kafkaScript(this.dir, ['start']);
    return this.address;
  }

  /** SIGKILL to the broker's JVM: no clean shutdown. */
  kill9(): void {
    const pid = Number(readFileSync(join(this.dir, 'kafka.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
  }

  /** Starts it again on the same port with the same data; resolves when it serves requests. */
  async restart(): Promise<void> {
    const address = await kafkaScript(this.dir, ['restart']);
    if (address !== this.address) throw new Error(`the broker came back on ${address}, not ${this.address}`);
  }

  async stop(): Promise<void> {
    await kafkaScript(this.dir, ['stop']);
  }
}

/**
 * A broker of the suite's own, in a temp directory (`root`, removed after the file): started
 * before the suite's tests and stopped after them. Call it in a describe block. The stop is
 * declared before tempDir()'s removal because jest runs afterAll hooks in declaration order,
 * and the directory must outlive the broker writing into it (removing it first raced: ENOTEMPTY).
 */
export function ownBrokerForSuite(): { readonly root: string; readonly broker: OwnBroker } {
  afterAll(async () => {
    await broker.stop();
  });
  const root = tempDir();
  const broker = new OwnBroker(join(root, 'broker'));
  beforeAll(async () => {
    await broker.start();
  });
  return { root, broker };
}
