// A child process for the lock tests: opens (and so locks) the checkpoint at argv[2], says
// `locked`, and stays. Run through scripts/run-ts.js: openCheckpoint is not public API, so
// the built dist/index.js does not have it.
import { openCheckpoint } from '../../checkpoint/store';

openCheckpoint(process.argv[2]!).then(
  () => {
    console.log('locked');
    setInterval(() => {}, 1000);
  },
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(1);
  },
);
