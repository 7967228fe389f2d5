// Group mode takes only sinks that fence a partition's older owner (docs/scale-out.md,
// Requirements): one without `claim` is refused when the job is defined, before any write,
// instead of a daemon frozen past its session writing again after its partition moved.
import { defineJob, fileSink, kafkaSource, rollingFileSink, type Sink } from 'tidemark';
import { BadConfigError } from '../../checkpoint/errors';
import { tempDir } from '../support/tmp';

const dir = tempDir('tidemark-group-sinks-');
// Defining a job connects to nothing: the broker address is never dialled.
const source = kafkaSource({ brokers: ['127.0.0.1:9'], topics: ['t'], groupId: 'g' });
const unfenced: Sink<string> = { name: 'mine', async write() {} };
const job = (sinks: Array<Sink<string>>, extra: { deadLetterSink?: Sink<unknown> } = {}) => (): unknown =>
  defineJob<string>({
    name: 'g', source, sinks, scaleOut: 'group', transform: (records) => records.map((r) => String(r.offset)),
    ...(extra.deadLetterSink ? { onTransformError: 'dead-letter', deadLetterSink: extra.deadLetterSink } : {}),
  });

it('takes the sinks that fence (fileSink here)', () => {
  expect(job([fileSink({ dir })])()).toMatchObject({ scaleOut: 'group' });
});

it('refuses rollingFileSink and a sink of your own without claim, naming both and the way on', () => {
  const define = job([fileSink({ dir }), rollingFileSink({ dir, name: 'rolling' }), unfenced]);
  expect(define).toThrow(BadConfigError);
  expect(define).toThrow("Job field `scaleOut` is 'group', but the sinks rolling, mine cannot fence a partition's older owner (no `claim`)");
  expect(define).toThrow(/Use sinks that fence \(fileSink, postgresSink, kafkaSink\), give your sink a `claim` .*or run the job with scaleOut 'single'\.$/);
});

it('refuses a dead-letter sink without claim (group mode writes it per partition too)', () => {
  expect(job([fileSink({ dir })], { deadLetterSink: unfenced as Sink<unknown> })).toThrow(/the sink mine cannot fence/);
});

it("takes the same sinks with scaleOut 'single', where the checkpoint's lock is the fence", () => {
  expect(defineJob<string>({ name: 'g', source, sinks: [rollingFileSink({ dir, name: 'rolling' }), unfenced], transform: () => [] })).toMatchObject({ scaleOut: 'single' });
});
