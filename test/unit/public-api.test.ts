// The public API is a curated list: what a job author and a sink author need, at the root,
// and test helpers under `tidemark/testing`. Internals (checkpoint store, recovery decision,
// planner, codecs) stay out, so that they can change without breaking users. A name
// added to either entry point fails this test until it is added here, on purpose.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import ts from 'typescript';
import * as root from 'tidemark';
import * as testing from 'tidemark/testing';
import { coverageEnv } from '../support/coverage-env';

const ROOT_DIR = join(__dirname, '..', '..');

// The error module(s) are exported whole (`export *`): every class a user may catch,
// the exit codes and `isTidemarkError`. The list does not care which file they live in.
const ERROR_VALUES = [
  'AuthenticationError', 'BadConfigError', 'CheckpointLockedError', 'CheckpointWriteError', 'CodeChangedError', 'CorruptCheckpointError',
  'DataLossError', 'ERRORS', 'ExitCode', 'GroupStateLostError', 'InvariantError', 'LockCompromisedError', 'LogWriteError', 'NewerFormatError', 'NotAuthorizedError', 'OtherJobError', 'SinkError',
  'SinkFencedError', 'PartitionFencedError', 'SinkLedgerMismatchError', 'SinkRejectedError', 'SourceCorruptError', 'SourceUnreachableError', 'SourceWentBackwardsError',
  'OTHER_EXITS', 'TidemarkError', 'TlsError', 'TransformError', 'causes', 'describeCause', 'exitCodeRows', 'isTidemarkError',
];
const ERROR_TYPES = ['ErrorCode', 'ExitCodeRow', 'LostPartition', 'RejectedRow'];

const ROOT_VALUES = [
  ...ERROR_VALUES,
  'EmbeddedLog', 'Engine', 'GroupEngine', 'createLogger', 'defineJob', 'embeddedLogSource', 'fileSink', 'fingerprintOf', 'forwardRecord',
  'generatorSource', 'kafkaSink', 'kafkaSource', 'memorySink', 'postgresSink', 'rollingFileSink',
  // group mode: a sink of one's own decides as the built-in ones do
  'claimLedger', 'judgeLedgerWrite',
];
const ROOT_TYPES = [
  ...ERROR_TYPES,
  // contracts
  'BatchContext', 'DeadLetter', 'OffsetMap', 'PartitionOwner', 'PartitionRef', 'Range', 'RejectedOutput', 'ReportedPositions', 'Sink', 'SinkBatch', 'Source', 'SourceChunk', 'SourceRecord',
  // job and engine
  'BatchOptions', 'BatchStats', 'EngineOptions', 'EngineStatus', 'GroupStatus', 'Job', 'JobDefinition', 'LogLevel', 'Logger', 'RunOptions', 'RunSummary',
  // sources and sinks
  'AppendRecord', 'EmbeddedLogSourceOptions', 'FileSinkOptions', 'GeneratorOptions', 'KafkaCompression', 'KafkaConnectionOptions',
  'KafkaMessageOut', 'KafkaSink', 'KafkaSinkOptions', 'KafkaSource', 'KafkaSourceOptions', 'KafkaSourceStats', 'KafkaStartingOffsets',
  'MemorySink', 'PostgresSink', 'PostgresSinkOptions', 'RollingFileSinkOptions',
  'LedgerEntry', 'LedgerVerdict',
];
const TESTING_VALUES = ['checkIdempotentSink'];
const TESTING_TYPES = ['SinkCheckOptions', 'SinkCheckReport'];

const sorted = (names: Iterable<string>): string[] => [...names].sort();

/** Every name a module exports, types included, as the compiler sees it. */
function exportedNames(files: string[]): Map<string, string[]> {
  const program = ts.createProgram(files, { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, strict: true, skipLibCheck: true, noEmit: true, types: ['node'] });
  const checker = program.getTypeChecker();
  const out = new Map<string, string[]>();
  for (const file of files) {
    const source = program.getSourceFile(file)!;
    const symbol = checker.getSymbolAtLocation(source)!;
    out.set(file, sorted(checker.getExportsOfModule(symbol).map((s) => s.name)));
  }
  return out;
}

describe('public API', () => {
  it('the root exports exactly the curated values', () => {
    expect(sorted(Object.keys(root).filter((k) => k !== '__esModule'))).toEqual(sorted(ROOT_VALUES));
  });

  it('tidemark/testing exports exactly the test helpers', () => {
    expect(sorted(Object.keys(testing).filter((k) => k !== '__esModule'))).toEqual(sorted(TESTING_VALUES));
  });

  it('the type-level exports (values and types) are exactly the curated lists', () => {
    const indexFile = join(ROOT_DIR, 'src', 'index.ts');
    const testingFile = join(ROOT_DIR, 'src', 'testing.ts');
    const names = exportedNames([indexFile, testingFile]);
    expect(names.get(indexFile)).toEqual(sorted([...ROOT_VALUES, ...ROOT_TYPES]));
    expect(names.get(testingFile)).toEqual(sorted([...TESTING_VALUES, ...TESTING_TYPES]));
  });

  it("package.json's exports map serves the built root and testing entry points, and nothing else", () => {
    // A package may require itself by name through its own exports map (Node's self-reference),
    // which is what a user's `require('tidemark/…')` goes through.
    const script = `
      const out = {};
      for (const id of ['tidemark', 'tidemark/testing']) {
        out[id] = { file: require.resolve(id), names: Object.keys(require(id)).filter((k) => k !== '__esModule').sort() };
      }
      try { require.resolve('tidemark/dist/engine.js'); out.internal = 'resolved'; } catch (err) { out.internal = err.code; }
      process.stdout.write(JSON.stringify(out));`;
    const run = spawnSync(process.execPath, ['-e', script], { cwd: ROOT_DIR, env: coverageEnv(), encoding: 'utf8' });
    expect(run.stderr).toBe('');
    const out = JSON.parse(run.stdout) as Record<string, { file: string; names: string[] } | string>;
    expect(out.tidemark).toEqual({ file: join(ROOT_DIR, 'dist', 'index.js'), names: sorted(ROOT_VALUES) });
    expect(out['tidemark/testing']).toEqual({ file: join(ROOT_DIR, 'dist', 'testing.js'), names: sorted(TESTING_VALUES) });
    expect(out.internal).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED');
  });
});
