// The rolling file sink under real SIGKILLs: the torture job (non-deterministic transform)
// writes the file sink and the rolling sink (gzipped parts of ~4 KiB, so parts roll every
// few batches) while a producer appends; the daemon is killed at every named point of the
// protocol (twice: at the first and the third time it gets there), and at random moments
// after a commit, restarted each time, then drained with --once. The rolling sink must then
// hold exactly what the file sink holds, execution ids and all, each produced record once,
// and its finished parts must not overlap.
//
// Replay a failure with TIDEMARK_TEST_SEED=<the printed seed>.
import { join } from 'node:path';
import { killAll, runTidemark, tidemark } from '../support/processes';
import { prng } from '../support/prng';
import { finishedParts, rollingLines } from '../support/rolling';
import { tempDir } from '../support/tmp';
import { embeddedProducer, fileSinkKeys, outputKey, SEAM_POINTS } from './torture';

const JOB = join(__dirname, 'torture-job.ts');

afterAll(killAll);
const dir = tempDir('tidemark-rolling-kill-');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

it('exactly once through SIGKILLs at every crash point and at random moments', async () => {
  const seed = Number(process.env.TIDEMARK_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const rand = prng(seed);
  const env = { TORTURE_DIR: dir, TIDEMARK_CHECKPOINT: join(dir, 'checkpoint'), TORTURE_ROLLING: '4096', TIDEMARK_LOG_LEVEL: 'info' };
  const producer = embeddedProducer(dir, 10);
  const history: string[] = [];
  producer.start();
  try {
    const points = [...SEAM_POINTS, 'delivering:rolling', 'delivered:rolling'];
    for (const point of points) {
      for (const nth of point === 'recovering' ? [1] : [1, 3]) {
        const r = await runTidemark(['run', JOB], { ...env, TIDEMARK_CRASH_AT: `${point}:${nth}` });
        expect({ point, nth, signal: r.signal, stderr: r.signal === 'SIGKILL' ? '' : r.stderr }).toEqual({ point, nth, signal: 'SIGKILL', stderr: '' });
        history.push(`${point}:${nth}`);
      }
    }
    for (let k = 0; k < 4; k++) {
      const child = tidemark(['run', JOB], env);
      await child.waitForLine(/"msg":"batch \d+ committed"/);
      const delay = Math.floor(rand() * 100);
      await sleep(delay);
      child.proc.kill('SIGKILL');
      expect((await child.exited).signal).toBe('SIGKILL');
      history.push(`random ${delay} ms after a commit`);
    }
    await producer.stop();
    const last = await runTidemark(['run', JOB, '--once'], env);
    expect({ code: last.code, stderr: last.stderr }).toEqual({ code: 0, stderr: '' });

    const lines = rollingLines(join(dir, 'out', 'rolling')).map((l) => JSON.parse(l) as Parameters<typeof outputKey>[0]);
    expect(lines.map(outputKey).sort()).toEqual(fileSinkKeys(dir));
    const produced = [...(await producer.produced()).values()].flat().sort();
    expect(lines.map((l) => l.v).sort()).toEqual(produced);
    expect(produced.length).toBeGreaterThan(0);

    const parts = finishedParts(join(dir, 'out', 'rolling')).map((f) => /-(\d{12})-(\d{12})\.jsonl\.gz$/.exec(f)!.slice(1).map(Number));
    expect(parts.length).toBeGreaterThan(3);
    for (let i = 1; i < parts.length; i++) expect(parts[i]![0]!).toBeGreaterThan(parts[i - 1]![1]!);
  } catch (err) {
    const note = `rolling crash test seed ${seed} (replay with TIDEMARK_TEST_SEED=${seed}); ${history.join('; ')}`;
    if (err instanceof Error) err.message = `${note}\n${err.message}`;
    throw err;
  } finally {
    await producer.stop();
  }
}, 240_000);
