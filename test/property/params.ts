// Shared fast-check parameters. On failure fast-check prints `{ seed, path }`; replay with
//   TIDEMARK_PROPERTY_SEED=<seed> TIDEMARK_PROPERTY_PATH=<path> npx jest test/property
// (the model-based tests replay from the seed alone: their path fails with "Unable to replay").
// TIDEMARK_PROPERTY_RUNS raises the number of runs for a soak.
import type * as fc from 'fast-check';

export function propertyParams<T>(defaultRuns: number): fc.Parameters<T> {
  const seed = process.env.TIDEMARK_PROPERTY_SEED;
  const path = process.env.TIDEMARK_PROPERTY_PATH;
  return {
    numRuns: Number(process.env.TIDEMARK_PROPERTY_RUNS ?? defaultRuns),
    ...(seed !== undefined ? { seed: Number(seed) } : {}),
    ...(path !== undefined ? { path } : {}),
  };
}
