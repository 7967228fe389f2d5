// The crash seam: TIDEMARK_CRASH_AT=phase[:n] makes the daemon SIGKILL itself the n-th
// time (default 1st) it reaches the named point, so crash tests hit narrow phases
// reliably. Inert unless set. The phases are listed in docs/protocol.md.
export type CrashPoint = (phase: string) => void | Promise<void>;

export const PHASES = [
  'recovering', 'planned', 'read', 'transformed', 'staged', 'delivering:<sink>', 'delivered:<sink>', 'committed', 'source-committed',
] as const;

export function crashSeamFromEnv(value: string | undefined = process.env.TIDEMARK_CRASH_AT): CrashPoint | undefined {
  if (!value) return undefined;
  const colon = value.lastIndexOf(':');
  const n = colon > 0 && /^\d+$/.test(value.slice(colon + 1)) ? Number(value.slice(colon + 1)) : 1;
  const target = colon > 0 && /^\d+$/.test(value.slice(colon + 1)) ? value.slice(0, colon) : value;
  let seen = 0;
  return (phase) => {
    if (phase === target && ++seen === n) process.kill(process.pid, 'SIGKILL');
  };
}
