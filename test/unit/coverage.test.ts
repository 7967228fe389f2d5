// The coverage of child processes (issue 12): what a spawned `tidemark` runs must reach
// CI's figures as lines of the TypeScript, and what it does not run must stay uncovered.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { coverageEnv } from '../support/coverage-env';
import { tempDir } from '../support/tmp';

const root = join(__dirname, '..', '..');
const dir = tempDir('tidemark-coverage-');

/** Lines (covered, total) per file, as scripts/coverage.js reads the V8 coverage in `dir`. */
function sourceLines(): Record<string, { covered: number; total: number }> {
  const script = `
    const path = require('node:path');
    const { childScripts, addSourceCoverage } = require('./scripts/coverage.js');
    const map = require('istanbul-lib-coverage').createCoverageMap({});
    addSourceCoverage(map, childScripts(${JSON.stringify(dir)})).then((m) => {
      const out = {};
      for (const f of m.files()) out[path.relative(process.cwd(), f)] = m.fileCoverageFor(f).toSummary().lines;
      console.log(JSON.stringify(out));
    });`;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as Record<string, { covered: number; total: number }>;
}

describe('coverage of spawned processes', () => {
  it('coverageEnv passes the run\'s directory on as NODE_V8_COVERAGE, and nothing when coverage is off', () => {
    const saved = process.env.TIDEMARK_CHILD_COVERAGE_DIR;
    try {
      delete process.env.TIDEMARK_CHILD_COVERAGE_DIR;
      expect(coverageEnv({ A: '1' })).toEqual({ A: '1' });
      process.env.TIDEMARK_CHILD_COVERAGE_DIR = dir;
      expect(coverageEnv({ A: '1' })).toEqual({ A: '1', NODE_V8_COVERAGE: dir });
    } finally {
      if (saved === undefined) delete process.env.TIDEMARK_CHILD_COVERAGE_DIR;
      else process.env.TIDEMARK_CHILD_COVERAGE_DIR = saved;
    }
  });

  it('`tidemark --help` run with NODE_V8_COVERAGE counts in src/cli/main.ts; the commands it does not run stay uncovered', () => {
    const r = spawnSync(process.execPath, [join(root, 'bin', 'tidemark.js'), '--help'], { cwd: root, env: { ...process.env, NODE_V8_COVERAGE: dir }, encoding: 'utf8' });
    expect(r.status).toBe(0);
    const lines = sourceLines();
    expect(lines['src/cli/main.ts']!.covered).toBeGreaterThan(0);
    // A command `--help` never enters: most of its lines were not run.
    expect(lines['src/cli/reset.ts']!.covered).toBeLessThan(lines['src/cli/reset.ts']!.total / 2);
    // Only the files jest counts: no dependency, no file of types only.
    expect(Object.keys(lines).filter((f) => !/^(src|checkpoint|recovery)\//.test(f) || f === 'src/contracts.ts')).toEqual([]);
  });
});
