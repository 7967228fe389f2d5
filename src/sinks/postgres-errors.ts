// A PostgreSQL error, sorted as the sink needs it: a row the table refuses, a statement that
// can never work, or the server refusing the connection itself (credentials, TLS).
import { Pool, type PoolConfig } from 'pg';
import { AuthenticationError, TlsError } from '../errors';
import { tlsFailure } from '../tls-failure';

export const sqlState = (err: unknown): string | undefined => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
};
/** A row the table refuses: data exception (22) or integrity constraint violation (23). */
export const isRowError = (err: unknown): boolean => /^2[23]/.test(sqlState(err) ?? '');
/** A statement that cannot work however often it is retried: syntax, undefined table or column, privilege (42). */
export const isStatementError = (err: unknown): boolean => sqlState(err)?.startsWith('42') === true;
export const describe = (err: unknown): string => {
  const e = err as { message?: string; code?: string; detail?: string };
  return `${e.message ?? String(err)}${e.code ? ` (SQLSTATE ${e.code})` : ''}${e.detail ? `: ${e.detail}` : ''}`;
};

/** The server a connection setting names, without user or password: `PostgreSQL host:port/database`. */
export function serverOf(connection: string | PoolConfig | Pool): string {
  const c = connection instanceof Pool ? (connection as unknown as { options: PoolConfig }).options : connection;
  if (typeof c !== 'string' && c.connectionString === undefined) return `PostgreSQL ${c.host ?? 'localhost'}:${c.port ?? 5432}/${c.database ?? ''}`;
  try {
    const url = new URL(typeof c === 'string' ? c : c.connectionString ?? '');
    return `PostgreSQL ${url.host}${url.pathname}`;
  } catch {
    return 'PostgreSQL (connection string not a URL)';
  }
}

/** The server's refusal of the connection itself, as its typed error; undefined for anything else. */
export function refusal(err: unknown, server: string): Error | undefined {
  if (sqlState(err)?.startsWith('28')) return new AuthenticationError(server, describe(err), { cause: err });
  const tls = tlsFailure(err);
  return tls ? new TlsError(server, tls, { cause: err }) : undefined;
}
