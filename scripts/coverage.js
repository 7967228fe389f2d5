'use strict';
// Line coverage of what the tests really run, per directory, checked against the
// thresholds (issue 12). Run after `jest --coverage` (.ci/run does):
//   jest's own coverage (coverage/coverage-final.json, the processes jest runs tests in)
// + the V8 coverage of the child processes the tests spawn (the real `tidemark` binary and
//   jobs' `require('tidemark')`, both dist/*.js, built with source maps; written to
//   coverage/children/ through NODE_V8_COVERAGE: test/support/coverage-env.ts),
// mapped back to the TypeScript and merged. Writes coverage/merged-coverage-final.json and
// exits 1 when a directory is below its threshold, listing the files that drag it down.
const fs = require('node:fs');
const path = require('node:path');
const { fileURLToPath } = require('node:url');
const { mergeProcessCovs } = require('@bcoe/v8-coverage');
const libCoverage = require('istanbul-lib-coverage');
const micromatch = require('micromatch');
const v8toIstanbul = require('v8-to-istanbul');
const { collectCoverageFrom } = require('../jest.config.js');

/** Lines covered, in %, of each directory as a whole: the one place these are set. */
const THRESHOLDS = { 'checkpoint/': 90, 'recovery/': 90, 'src/': 80 };

const root = path.join(__dirname, '..');
const coverageDir = path.join(root, 'coverage');
const jestFile = path.join(coverageDir, 'coverage-final.json');
const childDir = path.join(coverageDir, 'children');
const distDir = path.join(root, 'dist') + path.sep;

// The same files jest counts (type-only files are excluded there).
const counted = (file) => micromatch([path.relative(root, file)], collectCoverageFrom).length > 0;

/** The V8 coverage of dist/*.js from every process that wrote to `dir`, merged per script. */
function childScripts(dir = childDir) {
  if (!fs.existsSync(dir)) return [];
  const processes = [];
  for (const name of fs.readdirSync(dir)) {
    if (!name.endsWith('.json')) continue;
    let cov;
    try {
      cov = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));
    } catch {
      continue; // a process killed while writing its file leaves it partial
    }
    const result = cov.result.filter((s) => s.url.startsWith('file://') && fileURLToPath(s.url).startsWith(distDir));
    if (result.length > 0) processes.push({ result });
  }
  return processes.length === 0 ? [] : mergeProcessCovs(processes).result;
}

/** Adds `scripts` (from childScripts) to `map` as coverage of the TypeScript files jest counts. */
async function addSourceCoverage(map, scripts) {
  for (const script of scripts) {
    // The source map (dist/*.js.map) takes the bundle back to src/, checkpoint/, recovery/.
    // (Filtered after converting: v8-to-istanbul's excludePath sees paths relative to the map
    // while applying, and lines it skips there stay counted as run.)
    const converter = v8toIstanbul(fileURLToPath(script.url), 0);
    await converter.load();
    converter.applyCoverage(script.functions);
    const files = converter.toIstanbul();
    for (const file of Object.keys(files)) if (counted(file)) map.merge({ [file]: files[file] });
    converter.destroy();
  }
  return map;
}

async function main() {
  if (!fs.existsSync(jestFile)) {
    console.error(`coverage: ${path.relative(root, jestFile)} is missing; run \`npx jest --coverage\` first.`);
    return 1;
  }
  const scripts = childScripts();
  const map = await addSourceCoverage(libCoverage.createCoverageMap(JSON.parse(fs.readFileSync(jestFile, 'utf8'))), scripts);
  fs.writeFileSync(path.join(coverageDir, 'merged-coverage-final.json'), JSON.stringify(map.toJSON()));

  const dirs = {};
  for (const file of map.files()) {
    const dir = path.relative(root, file).split(path.sep)[0] + '/';
    const lines = map.fileCoverageFor(file).toSummary().lines;
    const d = (dirs[dir] ??= { covered: 0, total: 0, files: [] });
    d.covered += lines.covered;
    d.total += lines.total;
    d.files.push({ file: path.relative(root, file), missed: lines.total - lines.covered, pct: lines.pct });
  }
  console.log(`coverage: jest's processes and ${scripts.length} script(s) of dist/ run by child processes`);
  let status = 0;
  for (const [dir, d] of Object.entries(dirs).sort()) {
    const pct = d.total === 0 ? 100 : (100 * d.covered) / d.total;
    const min = THRESHOLDS[dir];
    const below = min !== undefined && pct < min;
    console.log(`coverage ${dir.padEnd(12)} lines ${pct.toFixed(2).padStart(6)} % (${d.covered}/${d.total})${min === undefined ? '' : ` threshold ${min} %${below ? ' FAILED' : ''}`}`);
    if (!below) continue;
    status = 1;
    for (const f of d.files.sort((a, b) => b.missed - a.missed).slice(0, 10)) {
      console.log(`  ${f.file}: ${f.missed} lines not run (${f.pct} % run)`);
    }
  }
  return status;
}

module.exports = { childScripts, addSourceCoverage };

if (require.main === module) {
  main().then(
    (status) => process.exit(status),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
