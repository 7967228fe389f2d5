// PostgreSQL for the `postgres` test project: the server its global setup started (or
// PG_URL), and a fresh schema per test file so files running in parallel never meet.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'pg';
import { repoRoot } from './processes';

/** The server's URL. Throws (the test fails, never skips) when there is none. */
export function pgUrl(): string {
  const url = process.env.PG_URL;
  if (!url) throw new Error('PG_URL is not set: run the postgres tests through jest (its global setup starts scripts/postgres), or set PG_URL');
  return url;
}

export interface TestSchema {
  readonly schema: string;
  /** Connection settings whose search_path is the schema (for sinks and for the test's own queries). */
  readonly config: { connectionString: string; options: string };
  /** A pool on the schema, for the test's own queries; closed after the file. */
  readonly pool: Pool;
  query<R extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
}

/** A schema of its own for a test file, dropped after it. */
export function testSchema(prefix = 't'): TestSchema {
  const schema = `${prefix}_${randomBytes(5).toString('hex')}`;
  const config = { connectionString: pgUrl(), options: `-c search_path=${schema}` };
  const pool = new Pool({ ...config, max: 4 });
  pool.on('error', () => {});
  beforeAll(async () => {
    await pool.query(`CREATE SCHEMA ${schema}`);
  });
  afterAll(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await pool.end();
  });
  return {
    schema, config, pool,
    async query<R extends Record<string, unknown>>(sql: string, params?: unknown[]) {
      return (await pool.query<R>(sql, params)).rows;
    },
  };
}

/**
 * A TLS cluster of its own (`scripts/postgres start --tls` in a temp dir: ssl=on, a throwaway
 * CA, scram-sha-256 on hostssl only): its variables (PG_TLS_URL with the password, PG_TLS_CA,
 * PG_TLS_PASSWORD) once started.
 */
export function tlsServer(): () => Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-pg-tls-'));
  chmodSync(dir, 0o755); // the server runs as another user when the tests run as root
  const env: NodeJS.ProcessEnv = { ...process.env, TIDEMARK_PG_TLS_DIR: join(dir, 'pg') };
  const run = (cmd: string): string => execFileSync('bash', [join(repoRoot, 'scripts', 'postgres'), cmd, '--tls'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
  const vars: Record<string, string> = {};
  beforeAll(() => {
    for (const line of run('start').trim().split('\n')) {
      const m = /^(PG_TLS_[A-Z_]+)=(.*)$/.exec(line);
      if (m) vars[m[1]!] = m[2]!;
    }
    if (!vars.PG_TLS_URL) throw new Error('scripts/postgres start --tls printed no PG_TLS_URL');
  });
  afterAll(() => {
    try {
      run('stop');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  return () => vars;
}

/**
 * A PostgreSQL server of its own (scripts/postgres in a temp dir) for tests that stop and
 * start it: the shared one serves other test files at the same time.
 */
export function privateServer(): { url: () => string; halt: () => void; resume: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-pg-private-'));
  chmodSync(dir, 0o755); // the server runs as another user when the tests run as root
  const env: NodeJS.ProcessEnv = { ...process.env, TIDEMARK_PG_DIR: join(dir, 'pg') };
  delete env.PG_URL;
  const run = (cmd: string): string => execFileSync('bash', [join(repoRoot, 'scripts', 'postgres'), cmd], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 }).trim().split('\n').pop()!;
  let url = '';
  beforeAll(() => {
    url = run('start');
  });
  afterAll(() => {
    try {
      run('stop');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  return { url: () => url, halt: () => void run('halt'), resume: () => void run('resume') };
}
