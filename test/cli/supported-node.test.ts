// `npm start` and `npm test` run through scripts/supported-node.js (issue 16): on the
// running Node when it is 22 or later, else on Node 24 from the npm registry (scripts/node,
// cached); TIDEMARK_NODE=<major> asks for one. The script's arguments and exit code pass through.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { childEnv, ROOT, write } from '../support/cli';
import { tempDir } from '../support/tmp';

const exec = promisify(execFile);
const root = tempDir('tidemark-node-');
const script = write(join(root, 'show.js'), "console.log(JSON.stringify({ node: process.versions.node, args: process.argv.slice(2) }));\nprocess.exitCode = Number(process.argv[2] ?? 0);\n");
const launcher = join(ROOT, 'scripts', 'supported-node.js');

async function launch(env: Record<string, string>, ...args: string[]): Promise<{ code: number; shown: { node: string; args: string[] } }> {
  try {
    const { stdout } = await exec(process.execPath, [launcher, script, ...args], { env: childEnv(env) });
    return { code: 0, shown: JSON.parse(stdout) as { node: string; args: string[] } };
  } catch (err) {
    const e = err as { code: number; stdout: string };
    return { code: e.code, shown: JSON.parse(e.stdout) as { node: string; args: string[] } };
  }
}

const major = (v: string): number => Number(v.split('.')[0]);

it('runs the script on this Node when it is supported, else on Node 24; TIDEMARK_NODE picks a major', async () => {
  const own = await launch({}, '0', 'a b');
  expect(own).toEqual({ code: 0, shown: { node: major(process.versions.node) >= 22 ? process.versions.node : expect.stringMatching(/^24\./), args: ['0', 'a b'] } });
  const other = major(process.versions.node) === 24 ? 22 : 24;
  const asked = await launch({ TIDEMARK_NODE: String(other) }, '3');
  expect(asked).toEqual({ code: 3, shown: { node: expect.stringMatching(new RegExp(`^${other}\\.`)), args: ['3'] } });
});
