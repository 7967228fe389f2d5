// `tidemark/testing`: helpers for testing a sink of your own, kept out of the root API.
export { checkIdempotentSink, type SinkCheckOptions, type SinkCheckReport } from './sinks/testing';
