// The public API of tidemark.
export * from '../checkpoint/errors';
export type { BatchRecord, CheckpointMeta, CheckpointView, LostRange, OffsetMap, PartitionRef, Range } from '../checkpoint/model';
export { partitionKey } from '../checkpoint/model';
export { openCheckpoint, CheckpointStore, FORMAT_VERSION, sizeOnDisk } from '../checkpoint/store';
export { decideRecovery } from '../recovery/decide';
export type { BatchContext, DeadLetter, RejectedOutput, Sink, SinkBatch, Source, SourceRecord } from './contracts';
export { defineJob, isJob, type Job, type JobDefinition, type BatchOptions } from './job';
export { Engine, type BatchStats, type EngineOptions, type EngineStatus, type RunOptions, type RunSummary } from './engine';
export { fingerprintOf } from './bundle';
export { planRanges, type Plan, type PlanInput, type PlanLimits } from './planner';
export { createLogger, silentLogger, type Logger, type LogLevel } from './log';
export { embeddedLogSource, EmbeddedLog, type AppendRecord, type EmbeddedLogSourceOptions } from './sources/embedded-log';
export { generatorSource, generatedValue, type GeneratorOptions } from './sources/generator';
export { fileSink, type FileSinkOptions } from './sinks/file';
export { memorySink, type MemorySink } from './sinks/memory';
export { postgresSink, ledgerDDL, quoteName, type PostgresSink, type PostgresSinkOptions } from './sinks/postgres';
export { checkIdempotentSink, type SinkCheckOptions, type SinkCheckReport } from './sinks/testing';
