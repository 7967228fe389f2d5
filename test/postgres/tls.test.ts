// postgresSink over TLS with password authentication, by the real binary at debug level,
// against a cluster of its own (scripts/postgres start --tls: ssl=on, a throwaway CA,
// scram-sha-256 on hostssl only): sslmode=verify-full with the CA in the URL works; a wrong
// password (exit 13) and a certificate not trusted (exit 14) each stop at start with one
// message; no password appears in any output or checkpoint.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { tidemark, type Result } from '../support/cli';
import { tlsServer } from '../support/postgres';
import { tempDir } from '../support/tmp';

const JOB = join(__dirname, 'jobs', 'pg-job.ts');
const server = tlsServer();
const dir = tempDir('tidemark-pg-tls-run-');
const wrongPassword = `wrong-${randomBytes(8).toString('hex')}`;
const outputs: string[] = [];
let runs = 0;

async function run(url: string): Promise<Result> {
  const r = await tidemark(['run', JOB, '--checkpoint', join(dir, `cp-${++runs}`), '--once', '--log-level', 'debug'],
    { env: { PG_URL: url, PG_SCHEMA: 'public', JOB_SIZE: '40' } });
  outputs.push(r.stdout, r.stderr);
  return r;
}

async function query<R>(sql: string): Promise<R[]> {
  const client = new Client({ connectionString: server().PG_TLS_URL });
  await client.connect();
  try {
    return (await client.query(sql)).rows as R[];
  } finally {
    await client.end();
  }
}

function filesUnder(path: string): string[] {
  return statSync(path).isDirectory() ? readdirSync(path).flatMap((e) => filesUnder(join(path, e))) : [readFileSync(path, 'latin1')];
}

describe('postgresSink over TLS', () => {
  beforeAll(async () => {
    await query('CREATE TABLE out (p int, o bigint, v text, pid int)');
  });

  it('sslmode=verify-full with the CA (sslrootcert) in the URL: the rows and the ledger land, over TLS', async () => {
    const url = server().PG_TLS_URL!;
    expect(url).toMatch(/sslmode=verify-full&sslrootcert=/);
    const r = await run(url);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(await query('SELECT count(*)::int AS n FROM out')).toEqual([{ n: 80 }]);
    expect(await query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).toEqual([{ ssl: true }]);
  });

  it('a wrong password: exit 13 at start, naming the server without the URL', async () => {
    const r = await run(server().PG_TLS_URL!.replace(`:${server().PG_TLS_PASSWORD!}@`, `:${wrongPassword}@`));
    expect({ code: r.code, stderr: r.stderr }).toEqual({
      code: 13,
      stderr: expect.stringMatching(/^tidemark: PostgreSQL 127\.0\.0\.1:\d+\/tidemark refused tidemark's credentials: password authentication failed for user "tidemark" \(SQLSTATE 28P01\)\. Check the user name and password/),
    });
  });

  it('a certificate not trusted (verify-full without the CA): exit 14 at start', async () => {
    const r = await run(server().PG_TLS_URL!.replace(/&sslrootcert=.*$/, ''));
    expect({ code: r.code, stderr: r.stderr }).toEqual({
      code: 14,
      stderr: expect.stringMatching(/^tidemark: TLS connection to PostgreSQL 127\.0\.0\.1:\d+\/tidemark failed: the server's certificate is not trusted \(.+\): give the CA that signed it \(.*sslrootcert=/),
    });
  });

  it('no password appears in any output of the runs above, nor in their checkpoints', () => {
    const places = [...outputs, ...filesUnder(dir)];
    expect(places.length).toBeGreaterThan(6);
    for (const secret of [server().PG_TLS_PASSWORD!, wrongPassword]) expect(places.filter((p) => p.includes(secret))).toEqual([]);
  });
});
