// Row 3 (tidemark Kafka → file, staged, --once) over SASL_SSL beside plaintext: the same
// N × 200 B records on 8 partitions in each broker (the plaintext one of `scripts/kafka start`
// or KAFKA_BROKERS, the secured one of `scripts/kafka start --secure`), then row 3 on each,
// alternating (round 1 plaintext first, round 2 secured first, …), each run a child process
// (bench/rows/node-row.ts, with --secure on the secured broker). Prints every run and the medians.
//
//   node scripts/build.js && node scripts/run-ts.js bench/secure.ts [--records 1000000] [--rounds 3]
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildSync } from 'esbuild';

const root = join(__dirname, '..');
const { values: a } = parseArgs({ options: { records: { type: 'string' }, rounds: { type: 'string' } } });
const RECORDS = Number(a.records ?? 1_000_000);
const ROUNDS = Number(a.rounds ?? 3);
const kafka = (...args: string[]): string => execFileSync('bash', [join(root, 'scripts', 'kafka'), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 });
const log = (msg: string): void => void process.stderr.write(`[bench secure] ${msg}\n`);

const plain = process.env.KAFKA_BROKERS ?? kafka('start').trim().split('\n').pop()!.trim();
const secureEnv = Object.fromEntries(kafka('start', '--secure').trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2) as [string, string]));
const brokers = [
  { name: 'plaintext', bootstrap: plain, tool: [] as string[], row: [] as string[] },
  { name: 'SASL_SSL', bootstrap: secureEnv.KAFKA_SECURE_BROKERS!, tool: ['--command-config', secureEnv.KAFKA_SECURE_ADMIN_CONFIG!], row: ['--secure'] },
];
const topic = `bench-secure-${RECORDS}x200-${Date.now().toString(36)}`;
for (const b of brokers) {
  log(`producing ${RECORDS} records to ${topic} on ${b.name} (${b.bootstrap})`);
  kafka('tool', 'topics', '--bootstrap-server', b.bootstrap, ...b.tool, '--create', '--topic', topic, '--partitions', '8');
  kafka('tool', 'producer-perf-test', '--bootstrap-server', b.bootstrap, ...b.tool, '--topic', topic, '--num-records', String(RECORDS), '--record-size', '200', '--throughput', '-1', '--command-property', 'acks=1', 'linger.ms=5', 'batch.size=65536');
}

const row = join(root, 'dist', 'bench', 'rows', 'node-row.js');
buildSync({ entryPoints: [join(root, 'bench', 'rows', 'node-row.ts')], bundle: true, platform: 'node', target: 'node20', packages: 'external', logLevel: 'warning', outfile: row });
const rates = new Map<string, number[]>(brokers.map((b) => [b.name, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const b of round % 2 === 0 ? brokers : [...brokers].reverse()) {
    const r = spawnSync(process.execPath, [row, '--row', 'file', '--bootstrap', b.bootstrap, '--topic', topic, '--once', '--stage', 'true', ...b.row],
      { encoding: 'utf8', env: { ...process.env, ...secureEnv }, maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`row 3 on ${b.name} exited ${r.status}: ${r.stderr.slice(-2000)}`);
    const s = JSON.parse(r.stdout.trim().split('\n').pop()!) as { records: number; seconds: number; cpuSeconds: number };
    rates.get(b.name)!.push(s.records / s.seconds);
    log(`round ${round + 1}/${ROUNDS} ${b.name}: ${s.records} records in ${s.seconds.toFixed(2)} s = ${Math.round(s.records / s.seconds)}/s, CPU ${s.cpuSeconds.toFixed(2)} s`);
  }
}
const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const [p, s] = brokers.map((b) => median(rates.get(b.name)!));
console.log(`row 3, ${RECORDS} × 200 B, ${ROUNDS} runs each: plaintext ${Math.round(p!)}/s, SASL_SSL ${Math.round(s!)}/s, ratio ${(s! / p!).toFixed(2)}`);
