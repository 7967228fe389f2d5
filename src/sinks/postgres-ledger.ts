// The PostgreSQL sink's ledger tables, as SQL: their DDL, names quoted, and the ranges of a
// ledger row in the canonical form a batch's ranges are compared in.
import type { Range } from '../contracts';

/** `"a"."b"` from `a.b`. */
export function quoteName(name: string): string {
  return name.split('.').map((part) => `"${part.replace(/"/g, '""')}"`).join('.');
}

export function ledgerDDL(table: string): string {
  return `CREATE TABLE IF NOT EXISTS ${table} (
  job          text        NOT NULL,
  sink         text        NOT NULL,
  batch_id     bigint      NOT NULL,
  ranges       jsonb       NOT NULL,
  committed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job, sink, batch_id)
)`;
}

export function partitionLedgerDDL(table: string): string {
  return `CREATE TABLE IF NOT EXISTS ${table} (
  job        text        NOT NULL,
  sink       text        NOT NULL,
  topic      text        NOT NULL,
  partition  integer     NOT NULL,
  epoch      bigint      NOT NULL,
  until      bigint,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job, sink, topic, partition)
)`;
}

/** Ranges in a canonical order and shape, to compare a ledger row with a batch. */
export function canonicalRanges(ranges: readonly Range[]): string {
  return ranges.map((r) => JSON.stringify([r.topic, r.partition, Number(r.from), Number(r.until)])).sort().join('\n');
}
