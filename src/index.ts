// The public API of tidemark: what a job author and a sink author need. Internals
// (checkpoint store, recovery decision, planner, codecs) are imported from their modules;
// test helpers are in `tidemark/testing` (src/testing.ts). test/unit/public-api.test.ts
// lists every name, so the surface grows only on purpose.
export * from '../checkpoint/errors';
export * from '../recovery/errors';
export * from './errors';
export type { BatchContext, DeadLetter, OffsetMap, PartitionOwner, PartitionRef, Range, RejectedOutput, ReportedPositions, Sink, SinkBatch, Source, SourceChunk, SourceRecord } from './contracts';
export { defineJob, type Job, type JobDefinition, type BatchOptions } from './job';
export { Engine, type BatchStats, type EngineOptions, type EngineStatus, type RunOptions, type RunSummary } from './engine';
export { GroupEngine, type GroupStatus } from './group/engine';
// A sink of one's own in group mode keeps a ledger per partition and decides as the built-in ones do (docs/scale-out.md).
export { claimLedger, judgeLedgerWrite, type LedgerEntry, type LedgerVerdict } from '../recovery/handoff';
export { fingerprintOf } from './bundle';
export { createLogger, type Logger, type LogLevel } from './log';
export { embeddedLogSource, EmbeddedLog, type AppendRecord, type EmbeddedLogSourceOptions } from './sources/embedded-log';
export { generatorSource, type GeneratorOptions } from './sources/generator';
export { fileSink, type FileSinkOptions } from './sinks/file';
export { rollingFileSink, type RollingFileSinkOptions } from './sinks/rolling-file';
export { memorySink, type MemorySink } from './sinks/memory';
export { postgresSink, type PostgresSink, type PostgresSinkOptions } from './sinks/postgres';
export { kafkaSink, forwardRecord, type KafkaSink, type KafkaSinkOptions, type KafkaMessageOut, type KafkaCompression } from './sinks/kafka';
export { kafkaSource, type KafkaSource, type KafkaSourceOptions, type KafkaSourceStats, type KafkaStartingOffsets } from './sources/kafka';
export type { KafkaConnectionOptions } from './kafka/connection';
