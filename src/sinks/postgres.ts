// The PostgreSQL sink: a batch's rows and a ledger row `(job, sink, batch_id, ranges)` in
// one transaction. A redelivered batch finds its ledger row and does nothing; a crash or
// a lost connection before COMMIT leaves neither, so the redelivery writes both.
//
//   BEGIN
//   INSERT INTO ledger … ON CONFLICT DO NOTHING RETURNING …   -- claims the batch id (or finds it taken)
//   the rows (insert | upsert | your SQL)                      -- under a savepoint
//   COMMIT
//
// Claiming the id first also serialises two processes delivering the same batch (a zombie
// and its successor): the second blocks on the first's uncommitted ledger row, then finds
// it and does nothing. Errors are sorted into three kinds:
//   - a row the table refuses (SQLSTATE class 22 data exception, 23 integrity constraint
//     violation): the rows at fault are found by bisection under savepoints, the
//     transaction is rolled back, and `SinkRejectedError` names them (not retried);
//   - a statement that can never work (class 42: no such table or column, no privilege):
//     `BadConfigError` (not retried);
//   - anything else (connection refused or lost, server shutting down, deadlock): thrown
//     as is, so the engine retries with backoff and the batch stays staged.
//
// Group mode (a batch with `owner`, docs/scale-out.md): batch ids are each daemon's own, so
// the ledger is kept per (job, sink, topic, partition) in a second table instead, holding
// the newest epoch that claimed the partition and the end of the last range written:
//
//   BEGIN
//   INSERT INTO partition ledger … ON CONFLICT DO NOTHING      -- the row exists
//   SELECT epoch, until … FOR UPDATE                           -- locked until COMMIT
//   judgeLedgerWrite: fenced | duplicate | gap → ROLLBACK (throw | done | throw)
//   the rows; UPDATE the ledger row to (epoch, until)
//   COMMIT
//
// The lock serialises a zombie and the new owner: a claim waits for a write in flight and
// then fences the writes after it; a write waits for a claim and then finds itself fenced.
// A connection the server refuses for good — the password (SQLSTATE class 28) or the TLS
// handshake (an untrusted or misnamed certificate) — is AuthenticationError or TlsError (not
// retried), naming the server by host and database only: a URL may hold a password.
import { Pool, type PoolClient, type PoolConfig } from 'pg';
import { BadConfigError, InvariantError, isTidemarkError } from '../../checkpoint/errors';
import { claimLedger, judgeLedgerWrite, type LedgerEntry } from '../../recovery/handoff';
import { PartitionFencedError, SinkLedgerMismatchError, SinkRejectedError, type RejectedRow } from '../errors';
import type { PartitionOwner, Range, Sink, SinkBatch } from '../contracts';
import { ownedRange } from './owned';
import { describe, isRowError, isStatementError, refusal, serverOf, sqlState } from './postgres-errors';
import { canonicalRanges, ledgerDDL, partitionLedgerDDL, quoteName } from './postgres-ledger';

export interface PostgresSinkOptions<T> {
  /** A connection string, node-postgres pool settings, or a `Pool` you own (then `close()` leaves it open). */
  readonly connection: string | PoolConfig | Pool;
  /** Stable sink name (default `postgres`); part of the ledger key. */
  readonly name?: string;
  /**
   * `insert` (default): plain multi-row INSERTs.
   * `upsert`: `INSERT … ON CONFLICT (key) DO UPDATE SET …`; rows with the same key in one batch apply in order.
   * `custom`: your `apply(client, batch)` runs arbitrary SQL inside the sink's transaction.
   */
  readonly mode?: 'insert' | 'upsert' | 'custom';
  /** Target table, `table` or `schema.table` (insert and upsert). */
  readonly table?: string;
  /** The columns to fill, in order (insert and upsert). */
  readonly columns?: readonly string[];
  /** Column values of an output, in `columns` order (default: `output[column]` for each column). */
  readonly row?: (output: T) => readonly unknown[];
  /** upsert: the conflict target (a unique index or primary key of the table). */
  readonly key?: readonly string[];
  /**
   * upsert: `column → SQL expression` for `DO UPDATE SET` (default: every non-key column
   * `= EXCLUDED.column`). E.g. `{ clicks: 'user_clicks.clicks + EXCLUDED.clicks' }` accumulates.
   */
  readonly update?: Readonly<Record<string, string>>;
  /**
   * custom: writes the outputs with `client`, inside the sink's transaction (do not COMMIT or
   * ROLLBACK). It may be called on parts of a batch while the sink looks for rejected rows.
   */
  readonly apply?: (client: PoolClient, batch: SinkBatch<T>) => Promise<void>;
  /**
   * The ledger table (default `tidemark_ledger` in the connection's current schema) and, for
   * group mode, the per-partition ledger (`partitionTable`, default `tidemark_partition_ledger`
   * in the same schema); created if missing.
   */
  readonly ledger?: { readonly schema?: string; readonly table?: string; readonly partitionTable?: string; readonly create?: boolean };
  /** The job name in the ledger key (default: the name the engine passes with each batch). */
  readonly job?: string;
  /** Rows per INSERT statement (default: as many as fit in PostgreSQL's 65,535 parameters, at most 10,000). */
  readonly rowsPerStatement?: number;
}

export interface PostgresSink<T> extends Sink<T> {
  /** The ledger table, quoted and qualified, as used in SQL. */
  readonly ledgerTable: string;
  /** The DDL the sink runs when the ledger is missing. */
  readonly ledgerDDL: string;
  /** Group mode's per-partition ledger table, quoted and qualified. */
  readonly partitionLedgerTable: string;
  /** The DDL the sink runs when the per-partition ledger is missing. */
  readonly partitionLedgerDDL: string;
  /** The last batch id the ledger holds for the job (the sink's `job` option, else the one given); undefined when none. */
  lastDelivered(job?: string): Promise<number | undefined>;
  /** Ends the connection pool (unless you passed your own `Pool`). */
  close(): Promise<void>;
}

const MAX_PARAMS = 65_535;

/** Groups rows so that each group holds each key at most once, keeping the order of a key's rows across groups. */
function rounds<R>(rows: readonly R[], keyOf: (row: R) => string): R[][] {
  const seen = new Map<string, number>();
  const out: R[][] = [];
  for (const row of rows) {
    const k = keyOf(row);
    const n = seen.get(k) ?? 0;
    seen.set(k, n + 1);
    (out[n] ??= []).push(row);
  }
  return out;
}

export function postgresSink<T>(options: PostgresSinkOptions<T>): PostgresSink<T> {
  const name = options.name ?? 'postgres';
  const mode = options.mode ?? 'insert';
  const where = `postgresSink ${name}`;
  if (!['insert', 'upsert', 'custom'].includes(mode)) throw new BadConfigError(`${where}: mode must be 'insert', 'upsert' or 'custom'; got ${JSON.stringify(mode)}.`);
  if (mode === 'custom' && typeof options.apply !== 'function') throw new BadConfigError(`${where}: mode 'custom' needs apply(client, batch).`);
  const columns = options.columns ?? [];
  if (mode !== 'custom') {
    if (typeof options.table !== 'string' || options.table === '') throw new BadConfigError(`${where}: table is required in mode '${mode}'.`);
    if (!Array.isArray(columns) || columns.length === 0) throw new BadConfigError(`${where}: columns must list the columns to fill.`);
  }
  const key = options.key ?? [];
  if (mode === 'upsert') {
    if (key.length === 0) throw new BadConfigError(`${where}: mode 'upsert' needs key, the columns of a unique index.`);
    const missing = key.filter((k) => !columns.includes(k));
    if (missing.length > 0) throw new BadConfigError(`${where}: key column(s) ${missing.join(', ')} must be among columns.`);
  }
  const toValues = options.row ?? ((o: T) => columns.map((c) => (o as Record<string, unknown>)[c]));
  const ledgerTable = quoteName(options.ledger?.schema ? `${options.ledger.schema}.${options.ledger.table ?? 'tidemark_ledger'}` : options.ledger?.table ?? 'tidemark_ledger');
  const ddl = ledgerDDL(ledgerTable);
  const partitionTable = options.ledger?.partitionTable ?? 'tidemark_partition_ledger';
  const partitionLedgerTable = quoteName(options.ledger?.schema ? `${options.ledger.schema}.${partitionTable}` : partitionTable);
  const partitionDDL = partitionLedgerDDL(partitionLedgerTable);
  const perStatement = Math.max(1, Math.min(options.rowsPerStatement ?? 10_000, Math.floor(MAX_PARAMS / Math.max(1, columns.length))));

  const server = serverOf(options.connection);
  const ownPool = !(options.connection instanceof Pool);
  let pool: Pool | undefined = ownPool ? undefined : (options.connection as Pool);
  const getPool = (): Pool => {
    if (!pool) {
      const config: PoolConfig = typeof options.connection === 'string' ? { connectionString: options.connection } : (options.connection as PoolConfig);
      pool = new Pool({ connectionTimeoutMillis: 10_000, max: 2, allowExitOnIdle: true, ...config });
      // An idle connection dropped by the server (restart, failover) must not crash the process:
      // the next write gets a fresh connection, and a failed write is retried by the engine.
      pool.on('error', () => {});
    }
    return pool;
  };

  const table = options.table ? quoteName(options.table) : '';
  const columnList = columns.map((c) => quoteName(c)).join(', ');
  let conflict = '';
  if (mode === 'upsert') {
    const sets = options.update ?? Object.fromEntries(columns.filter((c) => !key.includes(c)).map((c) => [c, `EXCLUDED.${quoteName(c)}`]));
    const assignments = Object.entries(sets).map(([c, expr]) => `${quoteName(c)} = ${expr}`);
    conflict = ` ON CONFLICT (${key.map((k) => quoteName(k)).join(', ')}) ${assignments.length > 0 ? `DO UPDATE SET ${assignments.join(', ')}` : 'DO NOTHING'}`;
  }
  const keyIndexes = key.map((k) => columns.indexOf(k));

  async function insertRows(client: PoolClient, rows: ReadonlyArray<readonly unknown[]>): Promise<void> {
    for (let start = 0; start < rows.length; start += perStatement) {
      const slice = rows.slice(start, start + perStatement);
      const params: unknown[] = [];
      const tuples: string[] = [];
      for (const values of slice) {
        if (values.length !== columns.length) throw new BadConfigError(`${where}: row() returned ${values.length} values for ${columns.length} columns.`);
        const marks: string[] = [];
        for (const v of values) {
          params.push(v);
          marks.push(`$${params.length}`);
        }
        tuples.push(`(${marks.join(', ')})`);
      }
      await client.query(`INSERT INTO ${table} (${columnList}) VALUES ${tuples.join(', ')}${conflict}`, params);
    }
  }

  /** Writes outputs (all, or a part while looking for rejected rows). */
  async function apply(client: PoolClient, batch: SinkBatch<T>, outputs: readonly T[]): Promise<void> {
    if (mode === 'custom') return options.apply!(client, { ...batch, outputs });
    const rows = outputs.map((o) => toValues(o));
    if (mode === 'insert') return insertRows(client, rows);
    for (const round of rounds(rows, (r) => JSON.stringify(keyIndexes.map((i) => r[i])))) await insertRows(client, round);
  }

  /** Finds the outputs the table refuses on their own, by bisection under savepoints (like the transform's poison records). */
  async function isolate(client: PoolClient, batch: SinkBatch<T>, outputs: readonly T[], offset: number, found: RejectedRow[]): Promise<void> {
    const attempt = async (part: readonly T[]): Promise<unknown> => {
      await client.query('SAVEPOINT tidemark_part');
      try {
        await apply(client, batch, part);
        await client.query('RELEASE SAVEPOINT tidemark_part');
        return undefined;
      } catch (err) {
        if (!isRowError(err)) throw err;
        await client.query('ROLLBACK TO SAVEPOINT tidemark_part');
        return err;
      }
    };
    if (outputs.length === 1) {
      const err = await attempt(outputs);
      if (err !== undefined) found.push({ index: offset, output: outputs[0], reason: describe(err) });
      return;
    }
    const mid = outputs.length >> 1;
    for (const [part, at] of [[outputs.slice(0, mid), offset], [outputs.slice(mid), offset + mid]] as const) {
      if ((await attempt(part)) !== undefined) await isolate(client, batch, part, at, found);
    }
  }

  const ready = new Set<string>();
  /** Creates a ledger table (`ddl`) once per sink, unless the user manages it. */
  async function ensureLedger(client: PoolClient, tableDDL: string): Promise<void> {
    if (ready.has(tableDDL) || options.ledger?.create === false) return;
    // IF NOT EXISTS does not make two creators at once safe: the loser fails on the catalog
    // (23505, 42710) while the winner's table is not yet visible. Group mode's daemons claim
    // their first partitions at the same moment, so creators take turns under a lock.
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`tidemark ledger DDL ${tableDDL}`]);
    if (options.ledger?.schema) await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteName(options.ledger.schema)}`);
    await client.query(tableDDL);
    await client.query('COMMIT');
    ready.add(tableDDL);
  }

  async function writeInTransaction(client: PoolClient, batch: SinkBatch<T>, job: string): Promise<void> {
    const ranges = batch.ranges.map(({ topic, partition, from, until }) => ({ topic, partition, from, until }));
    const claimed = await client.query(
      `INSERT INTO ${ledgerTable} (job, sink, batch_id, ranges) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING batch_id`,
      [job, name, batch.id, JSON.stringify(ranges)],
    );
    if (claimed.rowCount === 0) {
      const found = await client.query<{ ranges: Range[] }>(`SELECT ranges FROM ${ledgerTable} WHERE job = $1 AND sink = $2 AND batch_id = $3`, [job, name, batch.id]);
      await client.query('ROLLBACK');
      if (canonicalRanges(found.rows[0]?.ranges ?? []) === canonicalRanges(ranges)) return; // delivered before: nothing to do
      throw new SinkLedgerMismatchError(name, batch.id,
        `the ledger ${ledgerTable} already holds batch ${batch.id} of job ${job} with other offset ranges (${JSON.stringify(found.rows[0]?.ranges)})`);
    }
    const later = await client.query<{ max: string | null }>(`SELECT max(batch_id)::text AS max FROM ${ledgerTable} WHERE job = $1 AND sink = $2 AND batch_id > $3`, [job, name, batch.id]);
    if (later.rows[0]?.max) {
      await client.query('ROLLBACK');
      throw new SinkLedgerMismatchError(name, batch.id, `the ledger ${ledgerTable} already holds a later batch (${later.rows[0].max}) of job ${job}`);
    }
    await writeRows(client, batch);
    await client.query('COMMIT');
  }

  /** The batch's rows, in the open transaction; rows the table refuses roll it back and are named. */
  async function writeRows(client: PoolClient, batch: SinkBatch<T>): Promise<void> {
    await client.query('SAVEPOINT tidemark_rows');
    try {
      await apply(client, batch, batch.outputs);
    } catch (err) {
      if (!isRowError(err)) throw err;
      await client.query('ROLLBACK TO SAVEPOINT tidemark_rows');
      const rejected: RejectedRow[] = [];
      await isolate(client, batch, batch.outputs, 0, rejected);
      await client.query('ROLLBACK');
      if (rejected.length === 0) throw new SinkRejectedError(name, batch.id, [{ index: 0, output: batch.outputs[0], reason: `the batch as a whole: ${describe(err)} (no single output fails alone)` }], { cause: err });
      throw new SinkRejectedError(name, batch.id, rejected, { cause: err });
    }
  }

  /** The partition's ledger entry, locked until the transaction ends (the row is made first if missing). */
  async function lockPartition(client: PoolClient, job: string, owner: PartitionOwner): Promise<LedgerEntry> {
    const key = [job, name, owner.topic, owner.partition];
    await client.query(`INSERT INTO ${partitionLedgerTable} (job, sink, topic, partition, epoch) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, [...key, owner.epoch]);
    const found = await client.query<{ epoch: string; until: string | null }>(
      `SELECT epoch::text, until::text FROM ${partitionLedgerTable} WHERE job = $1 AND sink = $2 AND topic = $3 AND partition = $4 FOR UPDATE`, key);
    const row = found.rows[0]!;
    return { epoch: Number(row.epoch), ...(row.until !== null ? { until: Number(row.until) } : {}) };
  }

  async function setPartition(client: PoolClient, job: string, owner: PartitionOwner, entry: LedgerEntry): Promise<void> {
    await client.query(`UPDATE ${partitionLedgerTable} SET epoch = $5, until = $6, updated_at = now() WHERE job = $1 AND sink = $2 AND topic = $3 AND partition = $4`,
      [job, name, owner.topic, owner.partition, entry.epoch, entry.until ?? null]);
  }

  /** Group mode: the partition's ledger judges the write (recovery/handoff.ts) in the rows' transaction. */
  async function writeOwnedInTransaction(client: PoolClient, batch: SinkBatch<T>, job: string, owner: PartitionOwner): Promise<void> {
    const { from, until } = ownedRange(where, batch, owner);
    const write = { epoch: owner.epoch, from, until };
    const entry = await lockPartition(client, job, owner);
    const verdict = judgeLedgerWrite(entry, write);
    if (verdict !== 'write') {
      await client.query('ROLLBACK');
      if (verdict === 'duplicate') return; // delivered before, by this owner or another
      if (verdict === 'fenced') throw new PartitionFencedError(where, owner.topic, owner.partition, owner.epoch, entry.epoch);
      throw new InvariantError(undefined, `${where} was asked to write ${owner.topic}/${owner.partition} [${write.from}, ${write.until}) ` +
        `but its ledger ${partitionLedgerTable} for job ${job} ends at ${entry.until ?? '(nothing)'}: offsets would be skipped or written twice`);
    }
    await writeRows(client, batch);
    await setPartition(client, job, owner, { epoch: write.epoch, until: write.until });
    await client.query('COMMIT');
  }

  /** Runs `work` in a transaction on a pooled client, the ledger `tableDDL` made first; sorts its errors as the header says. */
  async function inTransaction(what: string, tableDDL: string, work: (client: PoolClient) => Promise<void>): Promise<void> {
    const client = await getPool().connect().catch((err: unknown) => {
      throw refusal(err, server) ?? err;
    });
    const onError = (): void => {}; // reported by the pending query; keeps a dropped connection from crashing the process
    client.on('error', onError);
    let broken: Error | undefined;
    try {
      await ensureLedger(client, tableDDL);
      await client.query('BEGIN');
      await work(client);
    } catch (err) {
      await client.query('ROLLBACK').catch((e: Error) => {
        broken = e; // the connection is gone: do not return it to the pool
      });
      if (sqlState(err) === undefined && !isTidemarkError(err)) broken = err as Error; // not an answer from the server
      if (isStatementError(err)) throw new BadConfigError(`${where} cannot ${what}: ${describe(err)}.`);
      throw err;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  return {
    name,
    ledgerTable,
    ledgerDDL: ddl,
    partitionLedgerTable,
    partitionLedgerDDL: partitionDDL,
    async write(batch: SinkBatch<T>) {
      const job = options.job ?? batch.job;
      if (!job) throw new BadConfigError(`${where}: no job name for the ledger: set the sink's job option (the engine passes it with each batch).`);
      const owner = batch.owner;
      await inTransaction(`write batch ${batch.id}`, owner ? partitionDDL : ddl,
        (client) => (owner ? writeOwnedInTransaction(client, batch, job, owner) : writeInTransaction(client, batch, job)));
    },
    async claim(claim) {
      const job = options.job ?? claim.job;
      let before: LedgerEntry | undefined;
      await inTransaction(`claim ${claim.topic}/${claim.partition}`, partitionDDL, async (client) => {
        const entry = before = await lockPartition(client, job, claim);
        const next = claimLedger(entry, claim.epoch);
        if (next === 'fenced') throw new PartitionFencedError(where, claim.topic, claim.partition, claim.epoch, entry.epoch, entry.until);
        await setPartition(client, job, claim, next);
        await client.query('COMMIT');
      });
      return before;
    },
    async lastDelivered(jobName?: string) {
      const job = options.job ?? jobName;
      if (!job) throw new BadConfigError(`${where}: lastDelivered needs the job name.`);
      try {
        const found = await getPool().query<{ max: string | null }>(`SELECT max(batch_id)::text AS max FROM ${ledgerTable} WHERE job = $1 AND sink = $2`, [job, name]);
        return found.rows[0]?.max ? Number(found.rows[0].max) : undefined;
      } catch (err) {
        if (sqlState(err) === '42P01') return undefined; // no ledger yet: nothing delivered
        throw refusal(err, server) ?? err;
      }
    },
    async close() {
      if (ownPool && pool) await pool.end();
      pool = undefined;
    },
  };
}
